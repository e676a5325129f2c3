"""torch.distributed for lipsgen: joining the process group that ``torchrun`` sets up.

``torchrun --nproc-per-node K -m lipsgen train|sample ...`` starts K processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment; each
joins one process group (Gloo on CPUs, NCCL on CUDA devices). A plain ``lipsgen`` run is a world
of one and touches no collective.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from .errors import LipsgenError

__all__ = ["World", "SINGLE_PROCESS", "DistributedError", "join_world", "leave_world", "gather_to_main"]

# how long a collective waits for a missing rank before the run fails (torchrun restarts or stops)
TIMEOUT = timedelta(minutes=10)
_REQUIRED = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(LipsgenError):
    """The distributed environment is incomplete or inconsistent."""


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` ranks; ``World()`` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and prints."""
        return self.rank == 0

    def rows(self) -> slice:
        """This rank's rows of every global batch: items r, r + K, r + 2K, ..."""
        return slice(self.rank, None, self.size)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


SINGLE_PROCESS = World()


def _environment_int(name: str) -> int:
    text = os.environ[name]
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"environment variable {name}={text!r} is not an integer") from None


def join_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group if this process was started by torchrun (``WORLD_SIZE`` > 1), with
    Gloo on CPU and NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``); returns the world and the
    device this rank uses. Raises :class:`DistributedError` naming what is missing."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return SINGLE_PROCESS, device
    missing = [name for name in _REQUIRED if not os.environ.get(name)]
    if missing:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: start "
                               f"distributed runs with torchrun (README, Scaling out), which sets the rendezvous")
    world = World(_environment_int("RANK"), _environment_int("WORLD_SIZE"), _environment_int("LOCAL_RANK"))
    if not 0 <= world.rank < world.size:
        raise DistributedError(f"RANK={world.rank} is outside WORLD_SIZE={world.size}")
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not torch.distributed.is_initialized():
        try:
            torch.distributed.init_process_group(backend, timeout=TIMEOUT)
        except (RuntimeError, ValueError) as err:  # rendezvous unreachable, port taken, ...
            raise DistributedError(f"rank {world.rank} could not join the {backend} process group at "
                                   f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}: {err}") from None
    return world, device


def leave_world(world: World) -> None:
    if world.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def gather_to_main(world: World, value: Any) -> list[Any] | None:
    """Every rank's ``value`` (picklable), in rank order, on rank 0; None on the others."""
    if not world.distributed:
        return [value]
    gathered: list[Any] | None = [None] * world.size if world.is_main else None
    torch.distributed.gather_object(value, gathered, dst=0)
    return gathered
