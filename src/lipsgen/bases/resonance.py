"""The resonance base: three-body phase space with the last pair's invariant mass on a Breit-Wigner.

A propagator mapping (as event generators sample an s-channel resonance): u (n, 5) in (0, 1)^5 ->
the pair invariant ``s_23`` from a Breit-Wigner truncated to [0, s] (``s_23 = M^2 + M Gamma tan rho``,
rho uniform), particle 1 isotropic in the CM frame against the pair, particle 2 isotropic in the pair's
rest frame (reached by the pure boost), its polar angle measured from the pair's direction of flight
(the helicity angle, e.g. top decay's cos theta*: a decay's spin correlation is then one chart
coordinate), particle 3 its partner. Massless particles;
``dPhi_3 = ds_23 (p* / 4 sqrt_s) dOmega_1 (1/8) dOmega_2`` (p* = (s - s_23) / (2 sqrt_s)), so the
density on phase space is ``g = h(s_23) 2 sqrt_s / (pi^2 p*)`` with h the Breit-Wigner's density.
Its parameters M and Gamma are fitted to data by maximum likelihood. With massive particles
(``lipsgen.models.spaces.MassiveSpace``) it acts on the events' massless images, whose pair mass
sits at the massive pair's divided by the map's scale (close to 1 for light particles).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..coordinates.breit_wigner import BreitWigner
from ..kinematics import boost, mass_squared, two_step_decay

__all__ = ["ResonanceMap"]


def _direction(cos_theta: Tensor, phi: Tensor) -> Tensor:
    sin_theta = torch.sqrt((1 - cos_theta.square()).clamp(min=0.0))
    return torch.stack([sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), cos_theta], dim=-1)


def _to_frame(flight: Tensor, local: Tensor, inverse: bool = False) -> Tensor:
    """Rotate vectors (n, 3) from the frame whose z axis is the unit vector ``flight`` (n, 3) (the
    rotation Rz(phi) Ry(theta) of its polar angles) to the fixed axes, or back with ``inverse``."""
    cos_t = flight[:, 2].clamp(-1.0, 1.0)
    sin_t = torch.sqrt((1 - cos_t.square()).clamp(min=0.0))
    phi = torch.atan2(flight[:, 1], flight[:, 0])
    cos_p, sin_p = torch.cos(phi), torch.sin(phi)
    x, y, z = local.unbind(-1)
    if not inverse:
        x, z = cos_t * x + sin_t * z, -sin_t * x + cos_t * z
        return torch.stack([cos_p * x - sin_p * y, sin_p * x + cos_p * y, z], dim=-1)
    x, y = cos_p * x + sin_p * y, -sin_p * x + cos_p * y
    return torch.stack([cos_t * x - sin_t * z, y, sin_t * x + cos_t * z], dim=-1)


def _angles(direction: Tensor) -> tuple[Tensor, Tensor]:
    """(cos theta, phi in [0, 2 pi)) of unit-ish vectors (n, 3)."""
    norm = torch.linalg.vector_norm(direction, dim=-1)
    phi = torch.atan2(direction[:, 1], direction[:, 0]) % (2 * math.pi)
    return (direction[:, 2] / norm).clamp(-1.0, 1.0), phi


class ResonanceMap:
    """A Breit-Wigner in the invariant mass of particles 2 and 3 of three massless particles at
    ``sqrt_s`` (:class:`lipsgen.bases.PhaseSpaceMap`; dim 5). ``mass`` and ``width`` in the unit of
    sqrt_s (defaults: a broad peak at half the energy, replaced by :meth:`fit`)."""

    def __init__(self, n_particles: int, sqrt_s: float, *, ycut: float = 0.0, mass: float | None = None,
                 width: float | None = None) -> None:
        if n_particles != 3:
            raise ValueError(f"base resonance: three particles (a resonance decaying to particles 2 and 3), "
                             f"got {n_particles}")
        if ycut:
            raise ValueError("base resonance has no cut to fold in (base_ycut must be 0)")
        self.n_particles, self.sqrt_s = n_particles, float(sqrt_s)
        self.load_parameters({"mass": 0.5 * sqrt_s if mass is None else mass,
                              "width": 0.25 * sqrt_s if width is None else width})

    @property
    def dim(self) -> int:
        return 5

    def parameters(self) -> dict[str, Any]:
        return {"mass": self.mass, "width": self.width}

    def load_parameters(self, values: dict[str, Any]) -> None:
        mass, width = float(values["mass"]), float(values["width"])
        if not (0 < mass < float("inf") and 0 < width < float("inf")):
            raise ValueError(f"base resonance: mass and width must be finite and > 0, got {mass}, {width}")
        self.mass, self.width = mass, width
        self._propagator = BreitWigner(mass, width, 0.0, self.sqrt_s**2)

    def _log_g(self, s23: Tensor) -> Tensor:
        p_star = (self.sqrt_s**2 - s23) / (2 * self.sqrt_s)
        return self._propagator.log_density(s23) + math.log(2 * self.sqrt_s / math.pi**2) - torch.log(p_star)

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        u = u.to(torch.float64)
        s23 = self._propagator.from_uniform(u[:, 0]).clamp(0.0, self.sqrt_s**2)
        axis = _direction(2 * u[:, 1] - 1, 2 * math.pi * u[:, 2])
        decay = _to_frame(-axis, _direction(2 * u[:, 3] - 1, 2 * math.pi * u[:, 4]))
        events, _ = two_step_decay(self.sqrt_s, 0.0, s23, axis, decay)
        return events, self._log_g(s23)

    def inverse(self, events: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        events = events.to(torch.float64)
        pair_total = events[:, 1] + events[:, 2]
        s23 = mass_squared(pair_total).clamp(min=0.0)
        u0 = self._propagator.to_uniform(s23)
        cos1, phi1 = _angles(events[:, 0, 1:])
        rest = boost(events[:, 1:2], -pair_total[:, 1:] / s23.sqrt().clamp(min=1e-300)[:, None])[:, 0]
        flight = pair_total[:, 1:] / torch.linalg.vector_norm(pair_total[:, 1:], dim=-1, keepdim=True)
        cos2, phi2 = _angles(_to_frame(flight, rest[:, 1:], inverse=True))
        u = torch.stack([u0, (cos1 + 1) / 2, phi1 / (2 * math.pi), (cos2 + 1) / 2, phi2 / (2 * math.pi)], dim=1)
        return u, self._log_g(s23)

    def fit(self, events: Tensor, weights: Tensor | None = None) -> None:
        """Maximum likelihood of (M, Gamma) on the events' s_23 (weighted if ``weights``)."""
        from scipy.optimize import minimize

        s23 = mass_squared(events[:, 1] + events[:, 2]).to(torch.float64).clamp(min=0.0).cpu().numpy()
        w = np.ones(len(s23)) if weights is None else weights.to(torch.float64).cpu().numpy()
        w = w / w.sum()
        s = self.sqrt_s**2
        order = np.argsort(s23)
        cumulative = np.cumsum(w[order])
        quartiles = np.interp([0.25, 0.5, 0.75], cumulative, s23[order])

        def negative_log_likelihood(theta: np.ndarray) -> float:
            m2, scale = theta[0], math.exp(theta[1])
            norm = math.atan((s - m2) / scale) - math.atan(-m2 / scale)
            return float(-(w * (math.log(scale / norm) - np.log((s23 - m2) ** 2 + scale**2))).sum())

        start = np.array([quartiles[1], math.log(max((quartiles[2] - quartiles[0]) / 2, 1e-6 * s))])
        result = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                          options={"xatol": 1e-10 * s, "fatol": 1e-12, "maxiter": 2000})
        m2 = float(np.clip(result.x[0], 1e-6 * s, (1 - 1e-6) * s))
        self.load_parameters({"mass": math.sqrt(m2), "width": math.exp(result.x[1]) / math.sqrt(m2)})
