"""A normalizing flow as a one-step process: maximum likelihood on data, or importance-weighted
KL from a target density alone (docs/design.md, "Exact event weights").

The "network" is a :class:`lipsgen.models.flows.SplineFlow`; the reverse run is one step from the
base draw (t = 1) to the state (t = 0), with the flow's own log-determinant.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ...coordinates.zspace import standard_normal_log_prob
from ..flows import SplineFlow
from .base import BatchDraws, Process
from .solver import DensityStep, Step

__all__ = ["NormalizingFlowProcess"]


def _as_flow(net: nn.Module) -> SplineFlow:
    if not isinstance(net, SplineFlow):
        raise TypeError(f"the normalizing-flow process needs a SplineFlow, got {type(net).__name__}")
    return net


class NormalizingFlowProcess(Process):
    default_steps = 1
    solvers = ("flow",)
    density_solvers = solvers
    trains_from_density = True

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | BatchDraws) -> Tensor:
        """Negative log-likelihood per event of the encoded data ``batch["x0"]`` (n, N, 3)."""
        return -net(batch["x0"]).mean()  # SplineFlow.forward is its log-density, also under DDP

    def density_loss(self, net: nn.Module, log_target: Callable[[Tensor], Tensor], batch_size: int,
                     generator: torch.Generator, device: torch.device,
                     log_prob: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Forward KL to the target estimated by importance sampling from the flow itself:
        ``-sum_i wbar_i log g(x_i)`` with x_i drawn from the flow (no gradient through the draw) and
        ``wbar`` the self-normalised weights ``rho_T / g``. ``log_target`` maps states (n, N, 3) to
        the unnormalised log-density (n,) of the lifted target in this space; ``log_prob`` replaces
        the flow's own log-density g, differentiably (a symmetrised flow's, whose draws are the
        flow's relabelled: the same states up to a relabelling under which target and g agree)."""
        flow = _as_flow(net)
        z = torch.randn((batch_size, flow.n_particles, 3), generator=generator, device=device)
        with torch.no_grad():
            x, log_det = flow.from_noise(z)
        log_g = flow.log_prob(x) if log_prob is None else log_prob(x)
        with torch.no_grad():
            log_drawn = standard_normal_log_prob(z) - log_det if log_prob is None else log_g.double()
            log_w = log_target(x).double() - log_drawn
        if not bool(torch.isfinite(log_w).any()):
            raise FloatingPointError("no event drawn from the flow has a positive target density: the target's "
                                     "support is too small for the flow to find")
        weights = torch.softmax(log_w.nan_to_num(nan=-torch.inf), dim=0).to(log_g.dtype)
        carried = weights > 0  # draws of no weight leave the loss (their density may be undefined: 0 * nan)
        return -(weights[carried] * log_g[carried]).sum()

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        raise ValueError("a normalizing flow has no noising path: partial runs need a diffusion or flow-matching "
                         "model")

    def time_grid(self, steps: int, t_start: float) -> list[float]:
        """One step whatever ``steps`` says: a flow samples in one pass."""
        if t_start != 1.0:
            raise ValueError(f"a normalizing flow samples from the noise end only (t_start = 1, got {t_start})")
        return [1.0, 0.0]

    def step(self, net: nn.Module, solver: str, generator: torch.Generator) -> Step:
        flow = _as_flow(net)

        def step(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
            return flow.from_noise(x)[0]

        return step

    def density_step(self, net: nn.Module, solver: str, generator: torch.Generator) -> DensityStep:
        flow = _as_flow(net)

        def step(x: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]:
            return flow.from_noise(x)

        return step
