"""Read an event file in bounded memory: a uniform random subsample, and what must see every event.

Evaluating a sample of 10^7 events does not need 10^7 events in memory: histograms, Wasserstein
distances and the classifier are estimated from a uniform random subsample (its size is their
precision, and the report states it), while the conservation metric and the physics checks
(massless, CM frame) stream over every event of the file. HDF5 files are read chunk by chunk;
npz and LHE files, written from memory, are read whole.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from ..conservation import ConservationMetric, absolute_violations
from .errors import EventFileError
from .formats import energy_attribute, event_format, read_events, read_weights
from .hdf5 import MOMENTA, read_attributes_h5

__all__ = ["FileSubsample", "read_subsample", "READ_CHUNK_EVENTS"]

READ_CHUNK_EVENTS = 1 << 16  # events per HDF5 read: 20 MB at N = 10


@dataclass
class FileSubsample:
    """``events`` (m, N, 4) float64: every event of the file (m = n_events) or a uniform random
    subsample without replacement, in file order; ``weights`` (m,) theirs, or None (unweighted);
    ``all_weights`` (n_events,) every event's; ``conservation``: the metric over every event."""

    events: Tensor
    weights: Tensor | None
    all_weights: Tensor | None
    attributes: dict[str, Any]
    n_events: int
    conservation: ConservationMetric


class _ConservationSum:
    """The conservation metric accumulated chunk by chunk (a mean and a max over events)."""

    def __init__(self, sqrt_s: float) -> None:
        self.sqrt_s, self.count = sqrt_s, 0
        self.energy = self.momentum = self.max_energy = self.max_momentum = 0.0

    def add(self, events: Tensor) -> None:
        if len(events) == 0:
            return
        energy, momentum, median = absolute_violations(events, self.sqrt_s)
        self.count += len(events)
        self.energy += float((energy / median).sum())
        self.momentum += float((momentum / median).sum())
        self.max_energy = max(self.max_energy, float(energy.max()) / self.sqrt_s)
        self.max_momentum = max(self.max_momentum, float(momentum.max()) / self.sqrt_s)

    def metric(self) -> ConservationMetric:
        if self.count == 0:
            return ConservationMetric(math.nan, math.nan, math.nan, math.nan)
        return ConservationMetric(energy=self.energy / self.count, momentum=self.momentum / self.count,
                                  max_energy=self.max_energy, max_momentum=self.max_momentum)


def read_subsample(
    path: str | os.PathLike[str],
    max_events: int | None,
    *,
    seed: int = 0,
    sqrt_s: float | None = None,
    check: Callable[[Tensor, str, float], Any] | None = None,
) -> FileSubsample:
    """Read the file at ``path`` keeping at most ``max_events`` events (None: all), drawn uniformly
    without replacement with ``seed``; ``check(events, name, sqrt_s)`` sees every chunk of every event
    (e.g. to call :func:`lipsgen.validation.check_events`), and the conservation metric covers every
    event, at ``sqrt_s`` (default: the file's ``sqrt_s`` attribute, else 1)."""
    path = Path(path)
    if event_format(path) != "hdf5":
        events, attributes = read_events(path)
        return _subsample_in_memory(path, events, attributes, read_weights(path), max_events, seed, sqrt_s, check)
    attributes = read_attributes_h5(path)
    if "sqrt_s" in attributes:
        attributes["sqrt_s"] = energy_attribute(path, attributes["sqrt_s"])
    all_weights = read_weights(path)
    energy = float(attributes.get("sqrt_s", 1.0)) if sqrt_s is None else sqrt_s
    conservation = _ConservationSum(energy)
    try:
        with h5py.File(path, "r") as f:
            if MOMENTA not in f or f[MOMENTA].ndim != 3 or f[MOMENTA].shape[-1] != 4:
                raise EventFileError(f"{path}: no dataset '{MOMENTA}' of shape (n_events, n_particles, 4)")
            dset = f[MOMENTA]
            n_events = int(dset.shape[0])
            keep = _chosen(n_events, max_events, seed)
            parts = [torch.empty((0, *dset.shape[1:]), dtype=torch.float64)]
            for start in range(0, n_events, READ_CHUNK_EVENTS):
                stop = min(start + READ_CHUNK_EVENTS, n_events)
                chunk = torch.from_numpy(np.ascontiguousarray(dset[start:stop], dtype=np.float64))
                if check is not None:
                    check(chunk, f"{path} (events {start}..{stop - 1})", energy)
                conservation.add(chunk)
                if keep is None:
                    parts.append(chunk)
                else:
                    lo, hi = np.searchsorted(keep, [start, stop])
                    parts.append(chunk[torch.from_numpy(keep[lo:hi] - start)])
    except OSError as err:
        raise EventFileError(f"{path}: '{MOMENTA}' cannot be read, file corrupt? ({err})") from None
    return FileSubsample(torch.cat(parts), _kept(all_weights, keep), all_weights, attributes, n_events,
                         conservation.metric())


def _chosen(n_events: int, max_events: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of the kept events, or None for all of them."""
    if max_events is None or n_events <= max_events:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_events, size=max_events, replace=False))


def _kept(values: Tensor | None, keep: np.ndarray | None) -> Tensor | None:
    return values if values is None or keep is None else values[torch.from_numpy(keep)]


def _subsample_in_memory(path: Path, events: Tensor, attributes: dict[str, Any], all_weights: Tensor | None,
                         max_events: int | None, seed: int, sqrt_s: float | None,
                         check: Callable[[Tensor, str, float], Any] | None) -> FileSubsample:
    conservation = _ConservationSum(float(attributes.get("sqrt_s", 1.0)) if sqrt_s is None else sqrt_s)
    if check is not None:
        check(events, str(path), conservation.sqrt_s)
    conservation.add(events)
    keep = _chosen(len(events), max_events, seed)
    kept = events if keep is None else events[torch.from_numpy(keep)]
    return FileSubsample(kept, _kept(all_weights, keep), all_weights, attributes, len(events), conservation.metric())
