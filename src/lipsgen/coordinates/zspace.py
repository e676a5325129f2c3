"""z-space: Gaussian coordinates for the RAMBO prior (docs/design.md, z-space).

Each particle is mapped radially, ``z = q/|q| * F_chi3^{-1}(F_Gamma2(|q|))``: the radius
``|q| ~ Gamma(2, 1)`` is transported onto ``|z| ~ chi_3``, so the prior becomes N(0, I_3N) exactly.
Gaussian diffusion or flow matching in z therefore has uniform phase space as its noise end, and
every z maps (z -> q -> p) to a point exactly on phase space.

Numerics: the quantile transport runs on log-CDFs below the median and log-survival functions above
it, solved by Newton's method in ``log(radius)``, so it is accurate from ``|q| = 1e-10``
(``F ~ 5e-21``) to ``|q| = 50`` (``1 - F ~ 1e-20``). Near 0, ``|z| ∝ |q|^(2/3)``.
Gradients flow through the implicit-function theorem: ``d|z|/d|q| = f_Gamma2(|q|) / f_chi3(|z|)``.
Tensors: q and z of shape (n_events, n_particles, 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..validation import check_nonzero_vectors, check_threevectors

__all__ = ["q_to_z", "z_to_q", "log_abs_det_q_to_z", "standard_normal_log_prob"]

_HALF_LOG_2_OVER_PI = 0.5 * math.log(2 / math.pi)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_MAX_NEWTON_STEPS = 60


def _gammainc(a: float, x: Tensor) -> Tensor:
    return torch.special.gammainc(torch.tensor(a, dtype=x.dtype, device=x.device), x)


@dataclass(frozen=True)
class _Radial:
    """A distribution of a radius on (0, inf) through its log-CDF, log-survival and log-density."""

    logcdf: Callable[[Tensor], Tensor]
    logsf: Callable[[Tensor], Tensor]
    logpdf: Callable[[Tensor], Tensor]
    # Rough log-quantile from a log-probability, for the lower and the upper branch.
    guess_lower: Callable[[Tensor], Tensor]
    guess_upper: Callable[[Tensor], Tensor]


# |q| ~ Gamma(2, 1): F = 1 - (1 + r) e^{-r}, f = r e^{-r}.
_GAMMA2 = _Radial(
    logcdf=lambda r: torch.log(_gammainc(2.0, r)),
    logsf=lambda r: torch.log1p(r) - r,
    logpdf=lambda r: torch.log(r) - r,
    guess_lower=lambda lp: 0.5 * (lp + math.log(2.0)),  # F ~ r^2 / 2
    guess_upper=lambda lp: torch.log(-lp + torch.log1p(-lp)),  # S ~ (1 + r) e^{-r}
)

# |z| ~ chi_3: F = P(3/2, rho^2/2), f = sqrt(2/pi) rho^2 e^{-rho^2/2},
# S = e^{-rho^2/2} (erfcx(rho/sqrt2) + sqrt(2/pi) rho) without underflow.
_CHI3 = _Radial(
    logcdf=lambda rho: torch.log(_gammainc(1.5, 0.5 * rho * rho)),
    logsf=lambda rho: -0.5 * rho * rho
    + torch.log(torch.special.erfcx(rho / math.sqrt(2)) + math.exp(_HALF_LOG_2_OVER_PI) * rho),
    logpdf=lambda rho: _HALF_LOG_2_OVER_PI + 2 * torch.log(rho) - 0.5 * rho * rho,
    guess_lower=lambda lp: (lp - _HALF_LOG_2_OVER_PI + math.log(3.0)) / 3,  # F ~ sqrt(2/pi) rho^3/3
    guess_upper=lambda lp: 0.5 * torch.log(-2 * lp + 1),  # S ~ e^{-rho^2/2}
)


def _value_and_slope(target: _Radial, lower: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """log F (below the median) or log S (above it) of ``target`` at ``rho = e^s``, and its
    derivative in ``s``: ``+rho f / F`` or ``-rho f / S``."""
    rho = torch.exp(s)
    value = torch.where(lower, target.logcdf(rho), target.logsf(rho))
    slope = torch.exp(s + target.logpdf(rho) - value)
    return value, torch.where(lower, slope, -slope)


def _transport(radius: Tensor, source: _Radial, target: _Radial) -> Tensor:
    """Radius with the same quantile under ``target`` as ``radius`` has under ``source``.

    Zero maps to zero. Differentiable (first order) through the implicit-function theorem.
    """
    positive = radius > 0
    r = torch.where(positive, radius, torch.ones_like(radius))
    # P(R <= r) <= 1/2 iff log F <= log S: solve on the branch whose probability is the small one.
    log_cdf, log_sf = source.logcdf(r), source.logsf(r)
    lower = log_cdf <= log_sf
    level = torch.where(lower, log_cdf, log_sf)
    with torch.no_grad():
        goal = level.detach()
        s = torch.where(lower, target.guess_lower(goal), target.guess_upper(goal))
        tol = 8 * torch.finfo(radius.dtype).eps
        for _ in range(_MAX_NEWTON_STEPS):
            value, slope = _value_and_slope(target, lower, s)
            step = ((value - goal) / slope).clamp(-1.0, 1.0)
            s = s - step
            if bool((step.abs() <= tol * (1 + s.abs())).all()):
                break
        slope = _value_and_slope(target, lower, s)[1]
    # Same value; gradient d log(rho) = d level / slope (implicit-function theorem).
    s = s + (level - goal) / slope
    return torch.where(positive, torch.exp(s), torch.zeros_like(radius))


def _radial_map(v: Tensor, source: _Radial, target: _Radial) -> Tensor:
    radius = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    new_radius = _transport(radius, source, target)
    return v * (new_radius / torch.where(radius > 0, radius, torch.ones_like(radius)))


def q_to_z(q: Tensor) -> Tensor:
    """Map q (n, N, 3) to z (n, N, 3); the RAMBO prior becomes N(0, I). Differentiable."""
    check_threevectors(q)
    return _radial_map(q, _GAMMA2, _CHI3)


def z_to_q(z: Tensor) -> Tensor:
    """Inverse of :func:`q_to_z`: z (n, N, 3) to q (n, N, 3). Differentiable."""
    check_threevectors(z, "z")
    return _radial_map(z, _CHI3, _GAMMA2)


def log_abs_det_q_to_z(q: Tensor) -> Tensor:
    """``log|det dz/dq|`` per event, shape (n,), for q (n, N, 3) with no zero vector.

    A radial map ``r -> rho(r)`` in 3-D has Jacobian determinant ``(rho/r)^2 drho/dr`` and
    ``drho/dr = f_Gamma2(r) / f_chi3(rho)``. ``log|det dq/dz|`` at ``z`` is minus this at ``z_to_q(z)``.
    """
    check_threevectors(q)
    r = check_nonzero_vectors(q, "where the z-map is singular")
    rho = _transport(r, _GAMMA2, _CHI3)
    per_particle = 2 * torch.log(rho / r) + _GAMMA2.logpdf(r) - _CHI3.logpdf(rho)
    return per_particle.sum(dim=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` (n,) float64 for z (n, N, 3): the log-density of the z-space prior."""
    return -(0.5 * z.double().square() + _HALF_LOG_2PI).flatten(1).sum(1)
