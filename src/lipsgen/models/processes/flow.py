"""Flow matching on the linear path ``x_t = (1 - t) x_data + t x_prior`` (DESIGN §5.3)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .base import Process, Trajectory, record_indices

__all__ = ["FlowMatching", "integrate_ode"]

PriorSampler = Callable[[int, torch.Generator, torch.device], Tensor]


def integrate_ode(
    velocity: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    *,
    t_start: float,
    t_end: float,
    steps: int,
    solver: str,
    n_record: int,
) -> tuple[Tensor, Trajectory]:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t_start`` to ``t_end`` in ``steps`` equal
    steps with Euler or Heun, recording ``n_record`` evenly spaced states."""
    trajectory = Trajectory()
    keep = record_indices(steps, n_record)
    times = torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64).tolist()
    if 0 in keep:
        trajectory.add(times[0], x)
    n = x.shape[0]
    for i in range(steps):
        t, t_next = times[i], times[i + 1]
        dt = t_next - t
        tt = torch.full((n,), t, dtype=x.dtype, device=x.device)
        v = velocity(x, tt)
        if solver == "heun":
            x_euler = x + dt * v
            v_next = velocity(x_euler, torch.full_like(tt, t_next))
            x = x + 0.5 * dt * (v + v_next)
        else:
            x = x + dt * v
        if i + 1 in keep:
            trajectory.add(t_next, x)
    return x, trajectory


class FlowMatching(Process):
    """Velocity regression ``|v(x_t, t) - (x_prior - x_data)|^2`` with independent coupling; the
    sampler integrates the ODE from the prior (t = 1) to the data (t = 0)."""

    default_steps = 100
    solvers = ("euler", "heun")

    def __init__(self, prior: PriorSampler) -> None:
        self.prior = prior

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator) -> Tensor:
        x0 = batch["x0"]
        x1 = self.prior(x0.shape[0], generator, x0.device)
        t = torch.rand((x0.shape[0],), generator=generator, device=x0.device)
        tt = t.view(-1, 1, 1)
        xt = (1 - tt) * x0 + tt * x1
        return (net(xt, t) - (x1 - x0)).square().sum(dim=(1, 2)).mean()

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        x1 = self.prior(x0.shape[0], generator, x0.device)
        return (1 - t) * x0 + t * x1

    @torch.no_grad()
    def sample(self, net, x, *, steps, solver, generator, t_start=1.0, n_record=0):
        self.check_solver(solver)
        return integrate_ode(net, x, t_start=t_start, t_end=0.0, steps=steps, solver=solver,
                             n_record=n_record)
