"""Two-sided power maps: the unit interval onto [lo, hi] with poles x^-a0 at 0 and (1-x)^-a1 at 1.

The building block of the chain base's invariants and angles: u < 1/2 fills [lo, 1/2] with density
∝ x^-a0, u >= 1/2 fills [1/2, hi] with density ∝ (1-x)^-a1, each half with probability 1/2. Both
``x`` and ``1 - x`` are carried, so the soft and collinear ends keep relative precision.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["PowerEnds", "power_forward", "power_inverse"]

# Exponents are kept below 1 (an integrable pole) and above -1.
MAX_POWER = 0.95


def _span(edge: Tensor, power: float) -> tuple[Tensor, float]:
    """(edge^b, 1/2^b) with b = 1 - power: the ends of the half-interval in the variable x^b."""
    b = 1.0 - power
    return edge.clamp(min=0.0) ** b, 0.5**b


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
    lower = u < 0.5
    l0, h0 = _span(lo, ends.a0)
    l1, h1 = _span(1 - hi, ends.a1)
    b0, b1 = 1 - ends.a0, 1 - ends.a1
    t0 = (2 * u).clamp(max=1.0)
    t1 = (2 * (1 - u)).clamp(max=1.0)
    x_lower = (l0 + t0 * (h0 - l0)) ** (1 / b0)
    y_upper = (l1 + t1 * (h1 - l1)) ** (1 / b1)
    x = torch.where(lower, x_lower, 1 - y_upper)
    y = torch.where(lower, 1 - x_lower, y_upper)
    log_jac = math.log(2) + torch.where(
        lower,
        torch.log(h0 - l0) - math.log(b0) + ends.a0 * torch.log(x_lower),
        torch.log(h1 - l1) - math.log(b1) + ends.a1 * torch.log(y_upper),
    )
    return x, y, log_jac


def power_inverse(x: Tensor, y: Tensor, lo: Tensor, hi: Tensor, ends: PowerEnds) -> tuple[Tensor, Tensor]:
    """x (n,) with y = 1 - x (n,) -> u (n,) and log dx/du (n,), the same as :func:`power_forward`
    gives at u. Points outside [lo, hi] give u = NaN and log dx/du = +inf (no density there)."""
    lower = x < 0.5
    l0, h0 = _span(lo, ends.a0)
    l1, h1 = _span(1 - hi, ends.a1)
    b0, b1 = 1 - ends.a0, 1 - ends.a1
    x_safe, y_safe = x.clamp(min=0.0), y.clamp(min=0.0)
    u_lower = (x_safe**b0 - l0) / (2 * (h0 - l0))
    u_upper = 1 - (y_safe**b1 - l1) / (2 * (h1 - l1))
    u = torch.where(lower, u_lower, u_upper)
    log_jac = math.log(2) + torch.where(
        lower,
        torch.log(h0 - l0) - math.log(b0) + ends.a0 * torch.log(x_safe),
        torch.log(h1 - l1) - math.log(b1) + ends.a1 * torch.log(y_safe),
    )
    outside = (x < lo) | (x > hi) | ~torch.isfinite(u)
    return u.masked_fill(outside, math.nan), log_jac.masked_fill(outside, math.inf)
