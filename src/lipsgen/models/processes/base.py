"""What a generative process provides to the trainer and the sampler."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...distributed import SINGLE_PROCESS, World
from .solver import DensityStep, Step, Trajectory, invert_with_log_det, jacobian_step, solve, solve_with_log_det

__all__ = ["Process", "Velocity", "ode_step", "BatchDraws", "batch_draws"]

Velocity = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class BatchDraws:
    """The random draws of one training step, for this process's ``rows`` of a global batch of
    ``total`` items. Every draw is made for the whole global batch from ``generator`` and then
    sliced, so an item gets the same numbers however the batch is split over ranks
    (torch.distributed): K ranks follow the one-process optimisation, up to reduction order."""

    generator: torch.Generator
    total: int
    rows: slice | None = None  # None: all of them

    def __call__(self, draw: Callable[[int], Tensor]) -> Tensor:
        """``draw(m)`` returns m items (m, ...); this process's rows of ``draw(total)``."""
        items = draw(self.total)
        return items if self.rows is None else items[self.rows]


def batch_draws(source: torch.Generator | BatchDraws, n: int) -> BatchDraws:
    """``source`` itself, or a plain generator as the draws of a whole batch of ``n`` items."""
    return source if isinstance(source, BatchDraws) else BatchDraws(source, n)


def ode_step(velocity: Velocity, solver: str) -> Step:
    """An explicit step of ``dx/dt = velocity(x, t)`` (``t`` (n,) per event): ``euler`` or ``heun``
    (the trapezoidal corrector on the Euler predictor)."""

    def step(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
        dt = t_next - t
        tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        v = velocity(x, tt)
        if solver == "euler":
            return x + dt * v
        v_next = velocity(x + dt * v, torch.full_like(tt, t_next))
        return x + 0.5 * dt * (v + v_next)

    return step


class Process:
    """A forward (noising) process with its training loss and its reverse step.

    States are (n, N, 3) float32 tensors in the model's space; the network ``net(x, t)`` with
    ``t`` (n,) in [0, 1] returns a (n, N, 3) field whose meaning the process defines. Time runs
    from the noise end ``t = 1`` to the data end ``t = 0``.
    """

    default_steps: int = 100
    solvers: tuple[str, ...] = ("euler",)
    # solvers whose steps are deterministic and invertible: the sampler's density is exact
    density_solvers: tuple[str, ...] = ()
    # training items that prepare_epoch makes from each event (an epoch is one pass over them)
    items_per_event: int = 1
    trains_from_density: bool = False  # whether density_loss is offered

    def prepare_epoch(self, x0: Tensor, generator: torch.Generator, world: World = SINGLE_PROCESS) -> dict[str, Tensor]:
        """Per-epoch training tensors from the encoded data x0 (n, N, 3); default: x0 itself.
        Every tensor has ``items_per_event * n`` rows, the same on every rank of ``world``, which
        may share the work."""
        return {"x0": x0}

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | BatchDraws) -> Tensor:
        """The mean training loss over the batch's items; every random draw goes through
        ``batch_draws(generator, n)`` (distributed training hands a ``BatchDraws``)."""
        raise NotImplementedError

    def density_loss(self, net: nn.Module, log_target: Callable[[Tensor], Tensor], batch_size: int,
                     generator: torch.Generator, device: torch.device,
                     log_prob: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """A loss from the target's log-density alone (no events); see ``trains_from_density``;
        ``log_prob`` replaces the model's own log-density of its states (a symmetrised model's)."""
        raise NotImplementedError(f"{type(self).__name__} trains on events only")

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        """Forward-noise data x0 to time ``t`` in (0, 1] (for partial runs)."""
        raise NotImplementedError

    def time_grid(self, steps: int, t_start: float) -> list[float]:
        """The decreasing times the reverse run visits, from ``t_start`` to the data end."""
        return torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float64).tolist()

    def partial_steps(self, steps: int, t_start: float) -> int:
        """The steps of a partial run from ``t_start`` with the step size of a full run of ``steps``."""
        return max(1, math.ceil(steps * t_start - 1e-9))

    def step(self, net: nn.Module, solver: str, generator: torch.Generator) -> Step:
        """The reverse step of this process with network ``net`` and ``solver``."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        net: nn.Module,
        x: Tensor,
        *,
        steps: int,
        solver: str,
        generator: torch.Generator,
        t_start: float = 1.0,
        trajectory: int = 0,
    ) -> tuple[Tensor, Trajectory]:
        """Run the reverse process from state ``x`` at ``t_start`` to the data end, recording
        ``trajectory`` evenly spaced states."""
        self.check_solver(solver)
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        return solve(self.step(net, solver, generator), x, self.time_grid(steps, t_start), trajectory)

    def density_step(self, net: nn.Module, solver: str, generator: torch.Generator) -> DensityStep:
        """The reverse step with its exact log-Jacobian (autograd, :func:`jacobian_step`)."""
        return jacobian_step(self.step(net, solver, generator))

    @torch.no_grad()
    def sample_with_log_det(
        self, net: nn.Module, x: Tensor, *, steps: int, solver: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Run the reverse process from the noise end ``x``; returns the final state and the summed
        log-determinant (n,) float64 of the steps (see :func:`solve_with_log_det`)."""
        self._check_density_solver(solver, steps)
        return solve_with_log_det(self.density_step(net, solver, generator), x, self.time_grid(steps, 1.0))

    @torch.no_grad()
    def invert_with_log_det(
        self, net: nn.Module, x: Tensor, *, steps: int, solver: str, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The inverse of :meth:`sample_with_log_det`: from a data-end state ``x`` the noise-end
        state that the same run maps onto it, and the same summed log-determinant (n,) float64,
        so that the run's density at x is ``log g_noise(x_noise) - sum``. Each discrete step is
        inverted to rounding, so the density is that of the sampler as run, not of its ODE."""
        self._check_density_solver(solver, steps)
        return invert_with_log_det(self.step(net, solver, generator), x, self.time_grid(steps, 1.0))

    def _check_density_solver(self, solver: str, steps: int) -> None:
        if solver not in self.density_solvers:
            offered = ", ".join(self.density_solvers) or "none"
            raise ValueError(f"solver {solver!r} has no tractable density; solvers with one: {offered}")
        if steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")

    def check_solver(self, solver: str) -> None:
        if solver not in self.solvers:
            raise ValueError(f"solver {solver!r} is not available here; choose from {', '.join(self.solvers)}")
