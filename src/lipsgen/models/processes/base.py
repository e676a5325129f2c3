"""What a generative process provides to the trainer and the sampler."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["Process", "Trajectory", "record_indices"]


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


class Process:
    """A forward (noising) process with its training loss and its reverse sampler.

    States are (n, N, 3) float32 tensors in the model's space; the network ``net(x, t)`` with
    ``t`` (n,) in [0, 1] returns a (n, N, 3) field whose meaning the process defines.
    """

    default_steps: int = 100
    solvers: tuple[str, ...] = ("euler",)

    def prepare_epoch(self, x0: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Per-epoch training tensors from the encoded data x0 (n, N, 3); default: x0 itself."""
        return {"x0": x0}

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        """Forward-noise data x0 to time ``t`` in (0, 1] (for partial runs)."""
        raise NotImplementedError

    def sample(
        self,
        net: nn.Module,
        x: Tensor,
        *,
        steps: int,
        solver: str,
        generator: torch.Generator,
        t_start: float = 1.0,
        n_record: int = 0,
    ) -> tuple[Tensor, Trajectory]:
        """Run the reverse process from state ``x`` at ``t_start`` to the data end."""
        raise NotImplementedError

    def check_solver(self, solver: str) -> None:
        if solver not in self.solvers:
            raise ValueError(f"solver {solver!r} is not available here; choose from {', '.join(self.solvers)}")
