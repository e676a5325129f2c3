"""Flow matching on the linear path ``x_t = (1 - t) x_data + t x_prior`` (docs/design.md, Models).

lipsgen's time runs from the prior (t = 1) to the data (t = 0), the opposite of
facebookresearch/flow_matching, where ``x_0`` is the noise: its velocity is minus ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .base import BatchDraws, Process, batch_draws, ode_step
from .solver import Step

__all__ = ["FlowMatching"]

PriorSampler = Callable[[int, torch.Generator, torch.device], Tensor]
# (data states, prior states) -> data states paired with them: any coupling with the right
# marginals keeps flow matching exact
Coupling = Callable[[Tensor, Tensor], Tensor]


class FlowMatching(Process):
    """Velocity regression ``|v(x_t, t) - (x_prior - x_data)|^2``, the pairs independent or made by
    ``couple``; the sampler integrates ``dx/dt = v`` from the prior (t = 1) to the data (t = 0)."""

    default_steps = 100
    solvers = ("euler", "heun")
    density_solvers = solvers

    def __init__(self, prior: PriorSampler, couple: Coupling | None = None, time_power: float = 1.0) -> None:
        self.prior = prior
        self.couple = couple
        self.time_power = time_power

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | BatchDraws) -> Tensor:
        x0 = batch["x0"]
        draws = batch_draws(generator, x0.shape[0])
        x1 = draws(lambda m: self.prior(m, draws.generator, x0.device))
        if self.couple is not None:
            x0 = self.couple(x0, x1)
        t = draws(lambda m: torch.rand((m,), generator=draws.generator, device=x0.device))
        if self.time_power != 1.0:
            t = t**self.time_power
        tt = t.view(-1, 1, 1)
        xt = (1 - tt) * x0 + tt * x1
        return (net(xt, t) - (x1 - x0)).square().sum(dim=(1, 2)).mean()

    def time_grid(self, steps: int, t_start: float) -> list[float]:
        """``t_k = t_start (1 - k / steps)^P``, P the training's time power: the sampler's steps lie
        as densely near the data end as training drew its times (P = 1: evenly spaced)."""
        if self.time_power == 1.0:
            return super().time_grid(steps, t_start)
        u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
        return (t_start * u**self.time_power).tolist()

    def partial_steps(self, steps: int, t_start: float) -> int:
        """The steps below ``t_start`` of the full run's grid."""
        return max(1, math.ceil(steps * t_start ** (1 / self.time_power) - 1e-9))

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        x1 = self.prior(x0.shape[0], generator, x0.device)
        return (1 - t) * x0 + t * x1

    def step(self, net: nn.Module, solver: str, generator: torch.Generator) -> Step:
        return ode_step(net, solver)
