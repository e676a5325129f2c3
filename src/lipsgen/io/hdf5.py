"""Event files in HDF5: dataset ``momenta`` (n_events, n_particles, 4) float64, (E, px, py, pz).

Attributes: ``target``, the target's parameters, ``sqrt_s``, ``seed``, ``lipsgen_version``.
Writing streams chunk by chunk into a temporary file that is renamed on success.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from .._version import __version__
from ..errors import raise_if_terminated
from ..progress import progress_bar
from .atomic import atomic_output
from .errors import EventFileError

__all__ = ["write_events_h5", "read_events_h5", "read_attributes_h5", "read_weights_h5", "EventFileError"]

MOMENTA = "momenta"
WEIGHTS = "weights"


def write_events_h5(
    path: str | os.PathLike[str],
    chunks: Iterable[Tensor],
    *,
    n_events: int,
    n_particles: int,
    attributes: Mapping[str, Any],
    progress: bool | None = None,
    weights: Tensor | None = None,
    datasets: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Stream event chunks (each (m, n_particles, 4)) into ``path``; ``n_events`` in all.

    ``attributes`` are stored on the file (``lipsgen_version`` is added). ``progress=None`` shows a
    progress bar only on a terminal. ``weights`` (n_events,) are stored as the dataset ``weights``;
    ``datasets`` are further per-event arrays (n_events, ...), stored under their names.
    Returns the path written.
    """
    path = Path(path)
    if weights is not None and tuple(weights.shape) != (n_events,):
        raise ValueError(f"{path}: {tuple(weights.shape)} weights for {n_events} events")
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        chunk_shape = (min(n_events, 16384), n_particles, 4) if n_events else None
        dset = f.create_dataset(MOMENTA, shape=(n_events, n_particles, 4), dtype="f8", chunks=chunk_shape)
        for key, value in attributes.items():
            f.attrs[key] = value
        f.attrs["lipsgen_version"] = __version__
        if weights is not None:
            f.create_dataset(WEIGHTS, data=weights.detach().to("cpu", torch.float64).numpy())
        for name, values in (datasets or {}).items():
            f.create_dataset(name, data=np.asarray(values))
        written = 0
        with progress_bar(total=n_events, unit="ev", desc=f"writing {path.name}", enable=progress) as bar:
            for chunk in chunks:
                if chunk.ndim != 3 or chunk.shape[1:] != (n_particles, 4):
                    raise ValueError(
                        f"chunk of shape {tuple(chunk.shape)} does not fit ({n_particles} particles, 4)"
                    )
                m = chunk.shape[0]
                if written + m > n_events:
                    raise ValueError(f"more than the announced {n_events} events")
                dset[written : written + m] = chunk.detach().to("cpu", torch.float64).numpy()
                written += m
                bar.update(m)
                raise_if_terminated()
        if written != n_events:
            raise ValueError(f"got {written} events, expected {n_events}")
    return path


def _open(path: str | os.PathLike[str]) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such event file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise EventFileError(f"{path}: not a readable HDF5 file ({err})") from None


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python (scalars, lists, str)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value.decode() if isinstance(value, bytes) else value


def read_attributes_h5(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The attributes of an event file, as plain Python values."""
    with _open(path) as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def read_events_h5(
    path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, dict[str, Any]]:
    """Read ``momenta`` (n, N, 4) and the attributes of an event file. Only the layout is checked
    here; physics checks (masslessness, CM frame) are the caller's, see :mod:`lipsgen.validation`."""
    with _open(path) as f:
        if MOMENTA not in f:
            raise EventFileError(f"{path}: no dataset '{MOMENTA}' (found: {sorted(f.keys())})")
        dset = f[MOMENTA]
        if not isinstance(dset, h5py.Dataset) or dset.ndim != 3 or dset.shape[-1] != 4:
            shape = getattr(dset, "shape", None)
            raise EventFileError(
                f"{path}: '{MOMENTA}' must have shape (n_events, n_particles, 4), got {shape}"
            )
        try:
            data = dset[...]
        except OSError as err:
            raise EventFileError(f"{path}: '{MOMENTA}' cannot be read, file corrupt? ({err})") from None
        attributes = {k: _plain(v) for k, v in f.attrs.items()}
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float64)).to(dtype), attributes


def read_weights_h5(path: str | os.PathLike[str]) -> Tensor | None:
    """The dataset ``weights`` (n,) float64 of an event file, or None if its events are unweighted."""
    with _open(path) as f:
        if WEIGHTS not in f:
            return None
        dset, n_events = f[WEIGHTS], f[MOMENTA].shape[0] if MOMENTA in f else None
        if not isinstance(dset, h5py.Dataset) or dset.shape != (n_events,):
            raise EventFileError(f"{path}: '{WEIGHTS}' must have one entry per event ({n_events}), "
                                 f"got shape {getattr(dset, 'shape', None)}")
        try:
            return torch.from_numpy(np.asarray(dset[...], dtype=np.float64))
        except OSError as err:
            raise EventFileError(f"{path}: '{WEIGHTS}' cannot be read, file corrupt? ({err})") from None
