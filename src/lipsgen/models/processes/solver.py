"""The one reverse-time solver: walk a time grid, apply a process's step, record states.

Every process (flow matching, VP diffusion, q-space Langevin) supplies only its time grid and a
``Step``; the walking and the trajectory recording live here, once (compare the path / solver split
of facebookresearch/flow_matching). lipsgen's time runs from the noise end ``t = 1`` to the data
end ``t = 0``; flow_matching's convention is the opposite (its ``x_0`` is noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["Step", "DensityStep", "Trajectory", "record_indices", "solve", "jacobian_step", "solve_with_log_det"]

# Rows (events x state dimension) of one Jacobian pass: bounds the memory of the copies.
JACOBIAN_ROWS = 1 << 15


class Step(Protocol):
    """One step of a reverse run: state x (n, N, 3) at time ``t`` to the state at ``t_next < t``;
    ``last`` is True for the final step of the grid (Langevin adds no noise there)."""

    def __call__(self, x: Tensor, t: float, t_next: float, last: bool) -> Tensor: ...


class DensityStep(Protocol):
    """A deterministic step that also returns ``log|det d x_next / d x|`` per event, shape (n,) float64."""

    def __call__(self, x: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]: ...


@dataclass
class Trajectory:
    """States recorded along a reverse run: ``times`` (K,) in [0, 1] (1 = noise end) and ``states``
    (K tensors of shape (n, N, 3)), noise end first."""

    times: list[float] = field(default_factory=list)
    states: list[Tensor] = field(default_factory=list)

    def add(self, t: float, x: Tensor) -> None:
        self.times.append(float(t))
        self.states.append(x.detach().clone())


def record_indices(n_steps: int, n_record: int) -> set[int]:
    """``n_record`` evenly spaced positions among the ``n_steps + 1`` states of a run (0 = start)."""
    if n_record <= 0:
        return set()
    if n_record == 1:
        return {n_steps}
    return {round(i * n_steps / (n_record - 1)) for i in range(n_record)}


def solve(step: Step, x: Tensor, times: Sequence[float], trajectory: int = 0) -> tuple[Tensor, Trajectory]:
    """Apply ``step`` along ``times`` (decreasing, K + 1 entries: K steps) from the state ``x`` at
    ``times[0]``; returns the final state and ``trajectory`` evenly spaced recorded states (the
    first and the last included when ``trajectory >= 2``)."""
    n_steps = len(times) - 1
    keep = record_indices(n_steps, trajectory)
    recorded = Trajectory()
    if 0 in keep:
        recorded.add(times[0], x)
    for i in range(n_steps):
        x = step(x, times[i], times[i + 1], i + 1 == n_steps)
        if i + 1 in keep:
            recorded.add(times[i + 1], x)
    return x, recorded


def jacobian_step(step: Step, max_rows: int = JACOBIAN_ROWS) -> DensityStep:
    """Wrap a deterministic ``step`` so that it also returns the exact log-determinant of its
    Jacobian per event (no trace estimator: the full D x D Jacobian, D = 3N, and its determinant).

    Each event is copied D times and copy i back-propagates output coordinate i, so one
    reverse-mode pass over D n rows gives every row of every event's Jacobian; events do not
    interact inside a step, so the copies' cross terms vanish. Costs about D times a plain step
    (forward and backward), done in blocks of at most ``max_rows`` rows."""

    def step_with_log_det(x: Tensor, t: float, t_next: float, last: bool) -> tuple[Tensor, Tensor]:
        dim = x[0].numel()
        block = max(1, max_rows // dim)
        states, log_dets = [], []
        for part in x.detach().split(block):
            m = part.shape[0]
            copies = part.unsqueeze(0).expand(dim, *part.shape).reshape(dim * m, *part.shape[1:])
            copies = copies.clone().requires_grad_(True)
            with torch.enable_grad():
                out = step(copies, t, t_next, last).reshape(dim, m, dim)
                picked = out.diagonal(dim1=0, dim2=2)  # (m, dim): output i of copy i
                (grad,) = torch.autograd.grad(picked.sum(), copies)
            jacobian = grad.reshape(dim, m, dim).transpose(0, 1)  # (m, i, j) = d out_i / d x_j
            sign, log_abs = torch.linalg.slogdet(jacobian.to(torch.float64))
            if bool((sign == 0).any()):
                raise FloatingPointError(f"a sampler step at t = {t:.4g} is singular (zero Jacobian "
                                         f"determinant): the model's density is not defined there")
            log_dets.append(log_abs)
            states.append(out[0].detach().reshape(part.shape))
        return torch.cat(states), torch.cat(log_dets)

    return step_with_log_det


def solve_with_log_det(step: DensityStep, x: Tensor, times: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Apply a density step along ``times`` like :func:`solve`; returns the final state and
    ``sum_k log|det d x_{k+1} / d x_k|`` (n,) float64, so that
    ``log g(x_final) = log g_start(x) - sum``."""
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    n_steps = len(times) - 1
    for i in range(n_steps):
        x, log_det = step(x, times[i], times[i + 1], i + 1 == n_steps)
        total = total + log_det
    return x, total
