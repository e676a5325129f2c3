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

import zuko
from torch import Tensor, nn

from ..coordinates.zspace import standard_normal_log_prob
from zuko.flows.autoregressive import MaskedAutoregressiveTransform

__all__ = ["SplineFlow"]


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
        self.flow = zuko.flows.NSF(3 * n_particles, transforms=transforms, bins=bins, passes=2, randperm=True,
                                   hidden_features=[width] * depth)
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
