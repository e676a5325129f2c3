"""A Breit-Wigner truncated to an interval: the propagator mapping of an s-channel resonance.

``s = M^2 + M Gamma tan(rho)`` with rho uniform between the images of the interval's ends gives s the
density ``h(s) = M Gamma / ((rho_high - rho_low) ((s - M^2)^2 + M^2 Gamma^2))`` on [low, high];
``ds h(s) = d rho / (rho_high - rho_low)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["BreitWigner"]


class BreitWigner:
    """The Breit-Wigner of ``mass`` and ``width`` truncated to invariants s in [low, high]."""

    def __init__(self, mass: float, width: float, low: float, high: float) -> None:
        self.mass2, self.scale = mass * mass, mass * width
        self.rho_low = math.atan((low - self.mass2) / self.scale)
        self.rho_high = math.atan((high - self.mass2) / self.scale)

    def invariant(self, rho: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """s at angles rho (torch or numpy)."""
        tan = torch.tan(rho) if isinstance(rho, Tensor) else np.tan(rho)
        return self.mass2 + self.scale * tan

    def from_uniform(self, u: Tensor) -> Tensor:
        """s (n,) from u (n,) in (0, 1)."""
        return self.invariant(self.rho_low + (self.rho_high - self.rho_low) * u)  # type: ignore[return-value]

    def to_uniform(self, s: Tensor) -> Tensor:
        """u (n,) that :meth:`from_uniform` maps to s (n,)."""
        return (torch.atan((s - self.mass2) / self.scale) - self.rho_low) / (self.rho_high - self.rho_low)

    def log_density(self, s: Tensor) -> Tensor:
        """log h(s) (n,)."""
        return math.log(self.scale / (self.rho_high - self.rho_low)) - torch.log((s - self.mass2).square()
                                                                                 + self.scale**2)
