"""Two-sided power maps: the unit interval onto [lo, hi] with poles x^-a0 at 0 and (1-x)^-a1 at 1.

The building block of the chain base's invariants and angles: u < p0 fills [lo, 1/2] with density
∝ x^-a0, u >= p0 fills [1/2, hi] with density ∝ (1-x)^-a1, the split p0 chosen so that the density
is continuous at 1/2 (a step there is structure the network would have to learn away). Both
``x`` and ``1 - x`` are carried, so the soft and collinear ends keep relative precision.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["PowerEnds", "power_forward", "power_inverse"]

# Exponents are kept below 1 (an integrable pole) and above -1.
MAX_POWER = 0.95


def _halves(lo: Tensor, hi: Tensor, ends: PowerEnds) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The ends of both halves in their power variables x^b0 on [lo, 1/2] and (1-x)^b1 on [1 - hi, 1/2]
    (l0, h0, l1, h1), and the probability p0 of the lower half that makes the density continuous at 1/2."""
    b0, b1 = 1 - ends.a0, 1 - ends.a1
    l0, h0 = lo.clamp(min=0.0) ** b0, 0.5**b0
    l1, h1 = (1 - hi).clamp(min=0.0) ** b1, 0.5**b1
    # each half's density at x = 1/2 per unit probability: b 2^a / (h - l)
    c0 = b0 * 2**ends.a0 / (h0 - l0)
    c1 = b1 * 2**ends.a1 / (h1 - l1)
    return l0, h0, l1, h1, c1 / (c0 + c1)


def _log_jacobian(lower: Tensor, x: Tensor, y: Tensor, halves: tuple[Tensor, ...], ends: PowerEnds) -> Tensor:
    """log dx/du (n,) at x (n,), y = 1 - x, on the half ``lower`` says."""
    l0, h0, l1, h1, p0 = halves
    return torch.where(
        lower,
        torch.log(h0 - l0) - math.log(1 - ends.a0) + ends.a0 * torch.log(x) - torch.log(p0),
        torch.log(h1 - l1) - math.log(1 - ends.a1) + ends.a1 * torch.log(y) - torch.log(1 - p0),
    )


class PowerEnds:
    """The pole exponents (a0 at x = 0, a1 at x = 1) of one two-sided power map."""

    def __init__(self, a0: float, a1: float) -> None:
        for name, a in (("a0", a0), ("a1", a1)):
            if not -MAX_POWER <= a <= MAX_POWER:
                raise ValueError(f"power {name} = {a} must lie in [-{MAX_POWER}, {MAX_POWER}]")
        self.a0, self.a1 = float(a0), float(a1)


def power_forward(u: Tensor, lo: Tensor, hi: Tensor, ends: PowerEnds) -> tuple[Tensor, Tensor, Tensor]:
    """u (n,) in (0, 1) -> x (n,), 1 - x (n,) and log dx/du (n,), with x in [lo, hi], lo < 1/2 < hi
    (lo, hi (n,) float64)."""
    halves = _halves(lo, hi, ends)
    l0, h0, l1, h1, p0 = halves
    lower = u < p0
    t0 = (u / p0).clamp(max=1.0)
    t1 = ((1 - u) / (1 - p0)).clamp(max=1.0)
    x_lower = (l0 + t0 * (h0 - l0)) ** (1 / (1 - ends.a0))
    y_upper = (l1 + t1 * (h1 - l1)) ** (1 / (1 - ends.a1))
    x = torch.where(lower, x_lower, 1 - y_upper)
    y = torch.where(lower, 1 - x_lower, y_upper)
    return x, y, _log_jacobian(lower, x_lower, y_upper, halves, ends)


def power_inverse(x: Tensor, y: Tensor, lo: Tensor, hi: Tensor, ends: PowerEnds) -> tuple[Tensor, Tensor]:
    """x (n,) with y = 1 - x (n,) -> u (n,) and log dx/du (n,), the same as :func:`power_forward`
    gives at u. Points outside [lo, hi] give u = NaN and log dx/du = +inf (no density there)."""
    halves = _halves(lo, hi, ends)
    l0, h0, l1, h1, p0 = halves
    lower = x < 0.5
    x_safe, y_safe = x.clamp(min=0.0), y.clamp(min=0.0)
    u_lower = p0 * (x_safe ** (1 - ends.a0) - l0) / (h0 - l0)
    u_upper = 1 - (1 - p0) * (y_safe ** (1 - ends.a1) - l1) / (h1 - l1)
    u = torch.where(lower, u_lower, u_upper)
    log_jac = _log_jacobian(lower, x_safe, y_safe, halves, ends)
    outside = (x < lo) | (x > hi) | ~torch.isfinite(u)
    return u.masked_fill(outside, math.nan), log_jac.masked_fill(outside, math.inf)
