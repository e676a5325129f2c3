"""e+e- -> q qbar g at O(alpha_s), with a cut on the scaled invariants (docs/design.md, Targets)."""

from __future__ import annotations

import math
from functools import cached_property

import torch
from scipy import integrate
from torch import Tensor

from ..kinematics import scaled_pair_invariants
from .base import Target, fill_by_rejection
from .three_body import dalitz_jacobian, events_from_invariants

__all__ = ["QQG"]


class QQG(Target):
    """Particles (q, qbar, g). Density ∝ ``(x1^2 + x2^2) / ((1 - x1)(1 - x2))`` on phase space,
    restricted to ``min_ij y_ij > ycut``; isotropic orientation.

    In ``u = y_23 = 1 - x1`` and ``v = y_13 = 1 - x2`` (phase space is flat in them) the density is
    ``((1-u)^2 + (1-v)^2) / (u v)`` on ``u, v > ycut``, ``1 - u - v > ycut``. Proposal: u and v
    independently log-uniform on [ycut, 1], density ∝ ``1/(u v)``, which has the same poles.
    Bound (proof): ``0 <= 1 - u, 1 - v <= 1`` on the region, so the target/proposal ratio
    ``((1-u)^2 + (1-v)^2) / 2`` lies in [0, 1]; accept with that probability and inside the cut.
    The cut is applied once more to the invariants recomputed from the final momenta, so it
    holds exactly for the events returned.
    """

    name = "qqg"
    particle_ids = (1, -1, 21)  # a massless d quark stands for any flavour
    labelled = True
    density_normalised = True
    singular = True

    def __init__(self, ycut: float = 1e-3, *, sqrt_s: float = 1.0) -> None:
        super().__init__(3, sqrt_s=sqrt_s)
        if not (isinstance(ycut, (int, float)) and 0 < ycut < 1 / 3):
            raise ValueError(f"qqg: ycut must be a number in (0, 1/3), got {ycut!r}")
        self.ycut = float(ycut)

    def parameters(self) -> dict:
        return {"ycut": self.ycut, "sqrt_s": self.sqrt_s}

    @cached_property
    def dalitz_normalisation(self) -> float:
        """``I = ∫∫ ((1-u)^2 + (1-v)^2) / (u v) du dv`` over the cut region (1-D quadrature of the
        analytic inner integral, in ``t = ln u``)."""
        c = self.ycut

        def inner(t: float) -> float:
            u = math.exp(t)
            top = 1 - c - u
            log_ratio = math.log(top / c)
            return (1 - u) ** 2 * log_ratio + log_ratio - 2 * (top - c) + (top * top - c * c) / 2

        value, _ = integrate.quad(inner, math.log(c), math.log(1 - 2 * c), limit=200, epsabs=0, epsrel=1e-12)
        return value

    def dalitz_density(self, u: Tensor, v: Tensor) -> Tensor:
        """Normalised density in (u, v) = (y_23, y_13); zero outside the cut."""
        inside = (u > self.ycut) & (v > self.ycut) & (1 - u - v > self.ycut)
        value = ((1 - u) ** 2 + (1 - v) ** 2) / (u * v) / self.dalitz_normalisation
        return torch.where(inside, value, torch.zeros_like(value))

    def in_support(self, events: Tensor) -> Tensor:
        """Mask (n,): ``min_ij y_ij > ycut`` for events (n, 3, 4)."""
        y = scaled_pair_invariants(self.check_shape(events), self.sqrt_s)
        return torch.stack([y[:, 0, 1], y[:, 0, 2], y[:, 1, 2]], dim=1).min(dim=1).values > self.ycut

    def log_density(self, events: Tensor) -> Tensor:
        """Normalised log-density on phase space (measure of docs/design.md, Conventions); -inf outside the cut."""
        y = scaled_pair_invariants(self.check_shape(events), self.sqrt_s)
        density = self.dalitz_density(y[:, 1, 2], y[:, 0, 2])
        return torch.log(density) - math.log(dalitz_jacobian(self.sqrt_s))

    def sample_chunk(self, n_events, generator, dtype, device) -> Tensor:
        log_cut = math.log(self.ycut)

        def draw_accepted(size: int) -> Tensor:
            r = torch.rand((3, size), generator=generator, dtype=dtype, device=device)
            u, v = torch.exp(r[0] * log_cut), torch.exp(r[1] * log_cut)
            ratio = ((1 - u) ** 2 + (1 - v) ** 2) / 2
            if bool((ratio > 1).any()):
                raise RuntimeError(f"qqg: weight ratio {float(ratio.max())} exceeds its proven bound 1")
            keep = (r[2] < ratio) & (u > self.ycut) & (v > self.ycut) & (1 - u - v > self.ycut)
            events = events_from_invariants(u[keep], v[keep], self.sqrt_s, generator)
            return events[self.in_support(events)]

        return fill_by_rejection(n_events, draw_accepted, self.name, overdraw=1.5)
