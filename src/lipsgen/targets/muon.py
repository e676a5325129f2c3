"""Muon decay at rest, mu- -> e- nu_mu anti-nu_e, with massless final states (docs/design.md, Targets)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..kinematics import minkowski_dot
from .base import Target, fill_by_rejection
from .three_body import dalitz_jacobian
from .uniform import Uniform

__all__ = ["MuonDecay"]


class MuonDecay(Target):
    """Particles (e-, nu_mu, anti-nu_e). Density on phase space ∝ ``(p_mu·p_3)(p_1·p_2)``.

    At rest ``p_mu = (sqrt_s, 0)``, so the weight is ``w = sqrt_s E_3 (p_1·p_2)``; with
    ``x_3 = 2 E_3 / sqrt_s`` and ``p_1·p_2 = s (1 - x_3) / 2``: ``w = s^2 x_3 (1 - x_3) / 4``.
    Bound (proof): ``x (1 - x) <= 1/4`` for all real x, so ``w <= s^2 / 16 = w_max``. Sampling is
    rejection from uniform phase space with probability ``w / w_max`` (efficiency 2/3, since
    ``x_3 ~ Beta(2, 1)`` under uniform phase space and ``E[x(1-x)] = 1/6``).
    """

    name = "muon"
    particle_ids = (11, 14, -12)  # e-, nu_mu, anti-nu_e
    labelled = True
    density_normalised = True

    def __init__(self, *, sqrt_s: float = 1.0) -> None:
        super().__init__(3, sqrt_s=sqrt_s)
        self._uniform = Uniform(3, sqrt_s=sqrt_s)

    def parameters(self) -> dict:
        return {"sqrt_s": self.sqrt_s}

    def spectra(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Energy fractions x = 2E/sqrt_s: e- and nu_mu follow the Michel spectrum 2 x^2 (3 - 2x)
        (CDF 2x^3 - x^4), anti-nu_e follows 12 x^2 (1 - x) (Beta(3, 2))."""

        def michel(x: np.ndarray) -> np.ndarray:
            x = np.clip(x, 0.0, 1.0)
            return 2 * x**3 - x**4

        def anti_nu(x: np.ndarray) -> np.ndarray:
            x = np.clip(x, 0.0, 1.0)
            return 4 * x**3 - 3 * x**4

        return {"x_1": michel, "x_2": michel, "x_3": anti_nu}

    def weight(self, events: Tensor) -> Tensor:
        """Unnormalised weight ``w / w_max`` in [0, 1], shape (n,)."""
        s = self.sqrt_s**2
        w = self.sqrt_s * events[:, 2, 0] * minkowski_dot(events[:, 0], events[:, 1])
        return w / (s * s / 16)

    def log_density(self, events: Tensor) -> Tensor:
        """Normalised log-density on phase space (measure of docs/design.md, Conventions), shape (n,).

        ``∫ w dPhi = w_max * E_uniform[w / w_max] * V_3 = w_max * (2/3) * V_3``.
        """
        volume = dalitz_jacobian(self.sqrt_s) / 2
        return torch.log(self.weight(self.check_shape(events))) - math.log(2 / 3 * volume)

    def sample_chunk(self, n_events: int, generator: torch.Generator, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        def draw_accepted(size: int) -> Tensor:
            proposal = self._uniform.sample_chunk(size, generator, dtype, device)
            ratio = self.weight(proposal)
            if bool((ratio > 1 + 1e-12).any()):
                raise RuntimeError(f"muon: weight ratio {float(ratio.max())} exceeds its proven bound 1")
            keep = torch.rand(ratio.shape, generator=generator, dtype=dtype, device=device) < ratio
            return proposal[keep]

        return fill_by_rejection(n_events, draw_accepted, self.name, overdraw=1.6)
