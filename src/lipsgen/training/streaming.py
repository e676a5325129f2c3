"""Training data: in memory, or streamed from an HDF5 file in windows of blocks (bounded memory).

An epoch is cut into windows. In memory there is one window, all events. Streamed, the file is
cut into blocks of ``BLOCK_EVENTS`` consecutive events (its HDF5 chunks); every epoch the blocks
are permuted (generator (seed, "blocks", epoch)) and taken ``window_blocks`` at a time; a window
is read in file order, lifted, prepared (Langevin: its forward simulation) and shuffled, and its
batches are trained on before the next is read. Only one window is in memory.

The difference from in-memory training, stated and tested: events mix within a window only (across
windows, by the block order), and each window drops its last ``items mod batch`` items instead of
the epoch dropping them once. A file that fits in one window trains exactly as in memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from ..io.errors import EventFileError
from ..io.formats import checked_phase_space, event_format, recorded_masses
from ..io.hdf5 import read_attributes_h5

__all__ = ["EventSource", "InMemoryEvents", "StreamedEvents", "BLOCK_EVENTS", "FIT_EVENTS"]

BLOCK_EVENTS = 16384  # lipsgen's HDF5 chunk rows: a block is read in one piece
FIT_EVENTS = 1 << 20  # events used to fit data-dependent state (p-space scale, fitted Gaussian)


class EventSource:
    """Training events by blocks. ``n_events``, ``n_particles``; ``block_sizes`` (events per block)."""

    n_events: int
    n_particles: int
    block_sizes: list[int]

    def read(self, blocks: Sequence[int]) -> Tensor:
        """Events (m, N, 4) float64 of these blocks, in file order."""
        raise NotImplementedError

    def fit_sample(self) -> Tensor:
        """Events to fit data-dependent state on: all of them, or the first ``FIT_EVENTS``."""
        raise NotImplementedError


@dataclass
class InMemoryEvents(EventSource):
    """Events (n, N, 4) already in memory: one block."""

    events: Tensor

    def __post_init__(self) -> None:
        self.n_events, self.n_particles = int(self.events.shape[0]), int(self.events.shape[1])
        self.block_sizes = [self.n_events]

    def read(self, blocks: Sequence[int]) -> Tensor:
        return self.events

    def fit_sample(self) -> Tensor:
        return self.events


class StreamedEvents(EventSource):
    """The dataset ``momenta`` of an HDF5 event file, read by blocks and checked like
    ``load_events`` (massless, CM frame at ``sqrt_s``, projected exact if within the file
    tolerance; default: the file's ``sqrt_s`` attribute, else 1). ``max_events`` keeps the first
    events only. ``attributes``: the file's, with ``sqrt_s``."""

    attributes: dict[str, Any]

    def __init__(self, path: str | os.PathLike[str], sqrt_s: float | None = None,
                 max_events: int | None = None) -> None:
        self.path = Path(path)
        if event_format(self.path) != "hdf5":
            raise ValueError(f"{self.path}: streaming reads HDF5 event files; convert with lipsgen convert")
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such event file")
        try:
            with h5py.File(self.path, "r") as f:
                shape = f["momenta"].shape
            self.attributes = read_attributes_h5(self.path)
        except (OSError, KeyError) as err:
            raise EventFileError(f"{self.path}: not an HDF5 event file with a dataset 'momenta' ({err})") from None
        if len(shape) != 3 or shape[2] != 4:
            raise EventFileError(f"{self.path}: 'momenta' must have shape (n_events, n_particles, 4), got {shape}")
        self.sqrt_s = float(self.attributes.get("sqrt_s", 1.0)) if sqrt_s is None else sqrt_s
        self.attributes["sqrt_s"] = self.sqrt_s
        self.n_events = min(shape[0], max_events) if max_events is not None else shape[0]
        self.n_particles = shape[1]
        starts = range(0, self.n_events, BLOCK_EVENTS)
        self.block_sizes = [min(BLOCK_EVENTS, self.n_events - start) for start in starts]

    def _rows(self, start: int, stop: int) -> Tensor:
        try:
            with h5py.File(self.path, "r") as f:
                data = f["momenta"][start:stop]
        except OSError as err:
            raise EventFileError(f"{self.path}: events {start}..{stop - 1} cannot be read, file corrupt? ({err})") \
                from None
        events = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float64))
        return checked_phase_space(events, self.sqrt_s, str(self.path), name=f"events {start}..{stop - 1}",
                                   masses=recorded_masses(self.attributes))

    def read(self, blocks: Sequence[int]) -> Tensor:
        return torch.cat([self._rows(b * BLOCK_EVENTS, b * BLOCK_EVENTS + self.block_sizes[b])
                          for b in sorted(blocks)])

    def fit_sample(self) -> Tensor:
        return self._rows(0, min(self.n_events, FIT_EVENTS))
