"""A neural spline flow on z-space, from zuko: exact density and sampling in one pass each.

Its base distribution is N(0, I_3N), which in z-space *is* uniform phase space (docs/design.md,
z-space), and every coupling layer starts as the identity, so an untrained flow samples uniform
phase space exactly. Rational-quadratic spline coupling layers (zuko's ``NSF`` with two passes,
random feature halves per layer). zuko's forward direction costs one network pass per layer, its
inverse three (the coupling's two passes and the spline's), so the flow is built with its cheap
direction where the work is: ``direction="density"`` (maximum-likelihood training evaluates data
densities) or ``"sampling"`` (a distilled student regressed through its map from noise; weighted
sampling gets the density in that same pass).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import zuko
from torch import Tensor, nn
from torch.distributions import Transform
from zuko.flows.autoregressive import MaskedAutoregressiveTransform
from zuko.transforms import MonotonicRQSTransform

from ..coordinates.zspace import standard_normal_log_prob

__all__ = ["SplineFlow", "RationalQuadraticSpline"]

SLOPE = 1e-3  # zuko's default minimum slope of the spline


def _knots(logits: Tensor, bound: float) -> Tensor:
    """Bin logits (*, K) -> the K + 1 knot positions on [-bound, bound]: normalised bin sizes by
    exp / sum rather than torch.softmax, whose CPU kernel in torch 2.13 takes twice as long over a last
    axis of 8 as over 16 (docs/benchmarks.md, "Spline flows")."""
    weights = (logits - logits.amax(dim=-1, keepdim=True).detach()).exp()
    fractions = nn.functional.pad(weights / weights.sum(dim=-1, keepdim=True), (1, 0))
    return bound * (2 * torch.cumsum(fractions, dim=-1) - 1)


class RationalQuadraticSpline(MonotonicRQSTransform):
    """zuko's monotonic rational-quadratic spline (Durkan et al., arXiv:1906.04032) with the same
    parameterisation, its knots made by :func:`_knots`; zuko's methods evaluate it (a test holds
    the two equal)."""

    def __init__(self, widths: Tensor, heights: Tensor, derivatives: Tensor, bound: float = 5.0,
                 slope: float = SLOPE, **kwargs: object) -> None:
        Transform.__init__(self, **kwargs)  # type: ignore[arg-type]
        log_slope = math.log(slope)
        # zuko's soft bounds on the unconstrained parameters keep every slope above ``slope``
        widths = widths / (1 + (2 * widths / log_slope).abs())
        heights = heights / (1 + (2 * heights / log_slope).abs())
        derivatives = derivatives / (1 + (derivatives / log_slope).abs())
        self.horizontal = _knots(widths, bound)
        self.vertical = _knots(heights, bound)
        self.derivatives = nn.functional.pad(derivatives, (1, 1)).exp()


class SplineFlow(nn.Module):
    """Coupling spline flow for states (n, N, 3): ``transforms`` layers, each a masked MLP of
    ``depth`` hidden layers of ``width`` units predicting ``bins``-bin splines on [-5, 5]
    (identity outside, where N(0, 1) has mass 6e-7); ``direction`` names the cheap direction."""

    def __init__(self, n_particles: int, *, transforms: int = 6, width: int = 128, depth: int = 2,
                 bins: int = 8, direction: str = "density") -> None:
        super().__init__()
        if direction not in ("density", "sampling"):
            raise ValueError(f"direction must be 'density' or 'sampling', got {direction!r}")
        self.n_particles = n_particles
        self.direction = direction
        # zuko's NSF, with the spline of this module
        self.flow = zuko.flows.MAF(3 * n_particles, transforms=transforms, passes=2, randperm=True,
                                   univariate=partial(RationalQuadraticSpline, slope=SLOPE),
                                   shapes=[(bins,), (bins,), (bins - 1,)], hidden_features=[width] * depth)
        for module in self.flow.modules():
            if isinstance(module, MaskedAutoregressiveTransform):
                last = [m for m in module.hyper.modules() if isinstance(m, nn.Linear)][-1]
                # equal bins and unit knot slopes: the identity spline
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density (n,) of states x (n, N, 3) under the flow."""
        if self.direction == "density":
            return self.flow().log_prob(x.flatten(1))
        z, log_det = self.flow().transform.inv.call_and_ladj(x.flatten(1))  # log|det dz/dx|
        return (standard_normal_log_prob(z) + log_det.double()).to(x.dtype)

    def from_noise(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Map base draws z (n, N, 3) to states x (n, N, 3); also ``log|det dx/dz|`` (n,) float64."""
        transform = self.flow().transform
        x, log_det = (transform.inv if self.direction == "density" else transform).call_and_ladj(z.flatten(1))
        return x.view_as(z), log_det.double()

    def forward(self, x: Tensor, *, from_noise: bool = False) -> Tensor:
        """``log_prob(x)`` (n,), or with ``from_noise`` the states (n, N, 3) that base draws x map
        to: training losses go through here, so that DistributedDataParallel, which wraps
        ``forward``, sees them. A flow has no time-dependent field."""
        return self.from_noise(x)[0] if from_noise else self.log_prob(x)
