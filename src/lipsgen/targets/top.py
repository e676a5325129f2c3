"""Top-quark decay at rest, t -> b W+ -> b e+ nu_e, at tree level (docs/design.md, Targets).

Massive b, massless leptons, the W as a Breit-Wigner: a target with a narrow resonance and a
mass shell, both exact in the truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property

import numpy as np
import torch
from scipy import integrate
from torch import Tensor

from ..coordinates.breit_wigner import BreitWigner
from ..coordinates.massive import check_masses
from ..kinematics import boost, mass_squared, minkowski_dot, two_step_decay
from .base import RangedSpectrum, Target, fill_by_rejection
from .three_body import random_rotations

__all__ = ["TopDecay", "top_observables"]


def top_observables(events: Tensor) -> dict[str, Tensor]:
    """``m_enu`` (n,), the invariant mass of the lepton pair (the W line shape), and
    ``cos_theta_star`` (n,), the cosine of the angle between the e+ in the W rest frame and the W's
    direction of flight in the top frame, of events (n, 3, 4) ordered (b, e+, nu_e) at rest."""
    w = events[:, 1] + events[:, 2]
    m2 = mass_squared(w)
    # boost the e+ into the W frame: spatial four-velocity -p_W / m_W
    velocity = -w[:, 1:] / m2.sqrt()[:, None]
    positron = boost(events[:, 1:2], velocity)[:, 0]
    cosine = (positron[:, 1:] * w[:, 1:]).sum(-1) / (
        torch.linalg.vector_norm(positron[:, 1:], dim=-1) * torch.linalg.vector_norm(w[:, 1:], dim=-1))
    return {"m_enu": m2.sqrt(), "cos_theta_star": cosine}


class TopDecay(Target):
    """Particles (b, e+, nu_e) of a top quark at rest; ``sqrt_s`` is the top mass, and every mass and
    width is in its unit (the defaults are GeV).

    ``|M|^2 ∝ (p_t·p_e)(p_b·p_nu) / ((q^2 - M_W^2)^2 + M_W^2 Gamma_W^2)`` with ``q = p_e + p_nu``
    (V-A; the propagator's ``q q`` term vanishes on massless leptons). With ``x = m_bnu^2``:
    ``p_t·p_e = (s - x) / 2`` and ``p_b·p_nu = (x - m_b^2) / 2``.

    Sampling: q^2 from the Breit-Wigner on [0, (sqrt_s - m_b)^2] (``q^2 = M^2 + M Gamma tan rho``,
    rho uniform), the b isotropic in the top frame and the e+ isotropic in the W frame; this proposal
    has the density ``g = h(q^2) 2 sqrt_s / (pi^2 p*(q^2))`` on phase space (``dPhi_3 = dq^2
    (p* / 4 sqrt_s) dOmega_b (1/8) dOmega_e``, p* the b momentum). The ratio |M|^2 / g is
    proportional to ``(p_t·p_e)(p_b·p_nu) p*``. Bound (proof): the two products sum to ``(s - m_b^2) /
    2``, so their product is at most ``(s - m_b^2)^2 / 16``, and ``p* <= (s - m_b^2) / (2 sqrt_s)``
    (at q^2 = 0); accept with the ratio to this bound.
    """

    name = "top"
    particle_ids = (5, -11, 12)  # b, e+, nu_e
    labelled = True
    density_normalised = True

    def __init__(self, *, sqrt_s: float = 172.5, w_mass: float = 80.38, w_width: float = 2.09,
                 b_mass: float = 4.8) -> None:
        super().__init__(3, sqrt_s=sqrt_s)
        for label, value in (("w_mass", w_mass), ("w_width", w_width)):
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ValueError(f"top: {label} must be a finite number > 0, got {value!r}")
        self.masses = check_masses([b_mass, 0.0, 0.0], 3, self.sqrt_s, "top: b_mass")
        self.w_mass, self.w_width, self.b_mass = float(w_mass), float(w_width), float(b_mass)
        q2_max = (self.sqrt_s - self.b_mass) ** 2
        if not w_mass**2 < q2_max:
            raise ValueError(f"top: w_mass = {w_mass} leaves no room for an on-shell W below sqrt_s - b_mass")
        self._propagator = BreitWigner(self.w_mass, self.w_width, 0.0, q2_max)

    def parameters(self) -> dict:
        return {"sqrt_s": self.sqrt_s, "w_mass": self.w_mass, "w_width": self.w_width, "b_mass": self.b_mass}

    # --- the Dalitz plot at fixed q^2: x - m_b^2 = alpha - beta cos_theta_star, alpha, beta >= 0 ---
    def _alpha_beta(self, q2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, mb2 = self.sqrt_s**2, self.b_mass**2
        alpha = (s - q2 - mb2) / 2  # q E_b* with E_b* the b energy in the W frame
        beta = np.sqrt(np.maximum((s - q2 - mb2) ** 2 - 4 * q2 * mb2, 0.0)) / 2  # q p_b*
        return alpha, beta

    def _cos_coefficients(self, rho: np.ndarray) -> np.ndarray:
        """(3, len(rho)): at fixed q^2, ``(s - x)(x - m_b^2) dx = beta (c0 + c1 c + c2 c^2) dc`` with
        c = cos_theta_star; returns ``beta * (c0, c1, c2)``."""
        alpha, beta = self._alpha_beta(np.asarray(self._propagator.invariant(rho)))
        big = self.sqrt_s**2 - self.b_mass**2
        return np.stack([beta * (big * alpha - alpha**2), beta**2 * (2 * alpha - big), -(beta**3)])

    def _integral(self, function: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        low, high = self._propagator.rho_low, self._propagator.rho_high
        return integrate.quad_vec(function, low, high, epsabs=0, epsrel=1e-12, limit=400)[0]

    @cached_property
    def _cos_polynomial(self) -> np.ndarray:
        """Coefficients (3,) of the cos_theta_star density ∝ C0 + C1 c + C2 c^2 on [-1, 1]: the fixed-q^2
        quadratics integrated over the Breit-Wigner (``dq^2 BW = d rho / (M Gamma)``)."""
        return self._integral(lambda rho: self._cos_coefficients(np.array([rho]))[:, 0])

    @cached_property
    def normalisation(self) -> float:
        """``Z = ∫ |M|^2 dPhi_3`` for the |M|^2 of :meth:`log_density`: ``dPhi_3 = pi^2 / (4 s) dq^2 dx``
        and ``∫ dx (s - x)(x - m_b^2) / 4 = ∫ dc beta (C0 + C1 c + C2 c^2) / 4``."""
        c0, _, c2 = self._cos_polynomial
        per_width = 2 * c0 + 2 * c2 / 3  # the integral over c in [-1, 1]
        return math.pi**2 / (4 * self.sqrt_s**2) * per_width / 4 / (self.w_mass * self.w_width)

    def helicity_fractions(self) -> dict[str, float]:
        """W helicity fractions ``F_0, F_L, F_R`` of ``dN/dc = 3/8 F_L (1-c)^2 + 3/4 F_0 (1-c^2) +
        3/8 F_R (1+c)^2``, c = cos_theta_star, over the Breit-Wigner."""
        c0, c1, c2 = self._cos_polynomial / (2 * self._cos_polynomial[0] + 2 * self._cos_polynomial[2] / 3)
        # constant 3/8 (F_L + F_R) + 3/4 F_0, linear 3/4 (F_R - F_L), quadratic 3/8 (F_L + F_R) - 3/4 F_0
        sum_lr, f0 = 4 / 3 * (c0 + c2), 2 / 3 * (c0 - c2)
        diff = 4 / 3 * c1
        return {"F_0": f0, "F_L": (sum_lr - diff) / 2, "F_R": (sum_lr + diff) / 2}

    def spectra(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """CDFs of ``m_enu`` (the W line shape, by quadrature on a fine grid; chi^2 over M_W +- 3
        Gamma_W) and ``cos_theta_star`` (a cubic), the observables of :func:`top_observables`."""
        c0, c1, c2 = self._cos_polynomial

        def antiderivative(t: np.ndarray) -> np.ndarray:
            return np.asarray(c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3)

        def cos_cdf(c: np.ndarray) -> np.ndarray:
            c = np.clip(c, -1.0, 1.0)
            ends = antiderivative(np.array([-1.0, 1.0]))
            return (antiderivative(c) - ends[0]) / (ends[1] - ends[0])

        rho = np.linspace(self._propagator.rho_low, self._propagator.rho_high, 200_001)
        coefficients = self._cos_coefficients(rho)
        cumulative = integrate.cumulative_trapezoid(2 * coefficients[0] + 2 * coefficients[2] / 3, rho, initial=0.0)
        cumulative /= cumulative[-1]
        masses = np.sqrt(np.maximum(self._propagator.invariant(rho), 0.0))

        def mass_cdf(m: np.ndarray) -> np.ndarray:
            return np.interp(m, masses, cumulative, left=0.0, right=1.0)

        peak = (self.w_mass - 3 * self.w_width, self.w_mass + 3 * self.w_width)
        return {"m_enu": RangedSpectrum(mass_cdf, *peak), "cos_theta_star": RangedSpectrum(cos_cdf, -1.0, 1.0)}

    def observables(self, events: Tensor) -> dict[str, Tensor]:
        return top_observables(events)

    def matrix_element(self, events: Tensor) -> Tensor:
        """``|M|^2`` (n,) up to the normalisation: ``(p_t·p_e)(p_b·p_nu) / ((q^2 - M^2)^2 + M^2 Gamma^2)``."""
        q2 = mass_squared(events[:, 1] + events[:, 2])
        top_dot_e = self.sqrt_s * events[:, 1, 0]
        b_dot_nu = minkowski_dot(events[:, 0], events[:, 2])
        m2 = self.w_mass**2
        return top_dot_e * b_dot_nu / ((q2 - m2) ** 2 + m2 * self.w_width**2)

    def log_density(self, events: Tensor) -> Tensor:
        """Normalised log-density (n,) on massive phase space (measure of docs/design.md, Conventions)."""
        return torch.log(self.matrix_element(self.check_shape(events))) - math.log(self.normalisation)

    def sample_chunk(self, n_events: int, generator: torch.Generator, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        mb = self.b_mass
        bound = (self.sqrt_s**2 - mb * mb) ** 3 / (32 * self.sqrt_s)

        def draw_accepted(size: int) -> Tensor:
            q2 = self._propagator.from_uniform(torch.rand(size, generator=generator, dtype=torch.float64,
                                                          device=device))
            w_direction = random_rotations(size, generator, torch.float64, device)[:, :, 2]
            lepton_direction = random_rotations(size, generator, torch.float64, device)[:, :, 2]
            events, p_star = two_step_decay(self.sqrt_s, mb, q2, -w_direction, lepton_direction)
            ratio = (self.sqrt_s * events[:, 1, 0]) * minkowski_dot(events[:, 0], events[:, 2]) * p_star / bound
            if bool((ratio > 1 + 1e-12).any()):
                raise RuntimeError(f"top: weight ratio {float(ratio.max())} exceeds its proven bound 1")
            keep = torch.rand(size, generator=generator, dtype=torch.float64, device=device) < ratio
            return events[keep].to(dtype)

        return fill_by_rejection(n_events, draw_accepted, self.name, overdraw=2.5)
