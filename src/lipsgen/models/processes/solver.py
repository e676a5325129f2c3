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

from torch import Tensor

__all__ = ["Step", "Trajectory", "record_indices", "solve"]


class Step(Protocol):
    """One step of a reverse run: state x (n, N, 3) at time ``t`` to the state at ``t_next < t``;
    ``last`` is True for the final step of the grid (Langevin adds no noise there)."""

    def __call__(self, x: Tensor, t: float, t_next: float, last: bool) -> Tensor: ...


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
