"""e+e- -> q qbar g at O(alpha_s), with a cut on the scaled invariants (docs/design.md, Targets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property

import numpy as np
import torch
from scipy import integrate
from torch import Tensor

from ..kinematics import min_pair_invariant, scaled_pair_invariants
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

    @staticmethod
    def _inner(u: float, low: float, high: float) -> float:
        """``∫_low^high ((1-u)^2 + (1-v)^2) / (u v) dv`` in closed form (0 if high <= low)."""
        if high <= low:
            return 0.0
        log_ratio = math.log(high / low)
        return ((1 - u) ** 2 * log_ratio + log_ratio - 2 * (high - low) + (high * high - low * low) / 2) / u

    def _probability(self, u_low: float, u_high: float, v_range: Callable[[float], tuple[float, float]]) -> float:
        """``P(u_low < u < u_high, v in v_range(u))`` under the normalised Dalitz density (quadrature
        in ln u of the closed-form inner integral)."""
        if u_high <= u_low:
            return 0.0

        def integrand(t: float) -> float:
            u = math.exp(t)
            return u * self._inner(u, *v_range(u))

        value, _ = integrate.quad(integrand, math.log(u_low), math.log(u_high), limit=200, epsabs=0,
                                  epsrel=1e-10)
        return value / self.dalitz_normalisation

    def spectra(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """CDFs of the quark and antiquark energy fractions x_1, x_2, the gluon's x_3 and the thrust
        T = max x_i (three massless partons), from the O(alpha_s) Dalitz density inside the cut, in
        u = 1 - x_1, v = 1 - x_2, x_3 = u + v: one quadrature each over the closed-form inner integral."""
        c = self.ycut

        def quark(t: float) -> float:  # P(x_1 <= t) = P(u >= 1 - t)
            return self._probability(max(c, 1 - t), 1 - 2 * c, lambda u: (c, 1 - c - u))

        def gluon(t: float) -> float:  # P(u + v <= t)
            return self._probability(c, t - c, lambda u: (c, min(1 - c - u, t - u)))

        def thrust(t: float) -> float:  # every x_i <= t: u, v >= 1 - t and u + v <= t
            low = max(c, 1 - t)
            return self._probability(low, t - low, lambda u: (low, t - u))

        def cdf(function: Callable[[float], float]) -> Callable[[np.ndarray], np.ndarray]:
            def evaluate(x: np.ndarray) -> np.ndarray:
                values = np.vectorize(function, otypes=[float])(np.clip(np.asarray(x, dtype=np.float64), 0, 1))
                return np.clip(values, 0.0, 1.0)

            return evaluate

        return {"x_1": cdf(quark), "x_2": cdf(quark), "x_3": cdf(gluon), "thrust": cdf(thrust)}

    def dalitz_density(self, u: Tensor, v: Tensor) -> Tensor:
        """Normalised density in (u, v) = (y_23, y_13); zero outside the cut."""
        inside = (u > self.ycut) & (v > self.ycut) & (1 - u - v > self.ycut)
        value = ((1 - u) ** 2 + (1 - v) ** 2) / (u * v) / self.dalitz_normalisation
        return torch.where(inside, value, torch.zeros_like(value))

    def in_support(self, events: Tensor) -> Tensor:
        """Mask (n,): ``min_ij y_ij > ycut`` for events (n, 3, 4)."""
        return min_pair_invariant(self.check_shape(events), self.sqrt_s) > self.ycut

    def log_density(self, events: Tensor) -> Tensor:
        """Normalised log-density on phase space (measure of docs/design.md, Conventions); -inf outside the cut."""
        y = scaled_pair_invariants(self.check_shape(events), self.sqrt_s)
        density = self.dalitz_density(y[:, 1, 2], y[:, 0, 2])
        return torch.log(density) - math.log(dalitz_jacobian(self.sqrt_s))

    def sample_chunk(self, n_events: int, generator: torch.Generator, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
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
