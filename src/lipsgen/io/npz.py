"""Event files in NumPy's npz: array ``momenta`` (n, N, 4) float64 and a JSON ``attributes`` string."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._version import __version__
from .atomic import atomic_output
from .errors import EventFileError

__all__ = ["write_events_npz", "read_events_npz", "read_weights_npz"]


def write_events_npz(path: str | os.PathLike[str], events: Tensor, attributes: dict[str, Any],
                     weights: Tensor | None = None, datasets: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write events (n, N, 4), their attributes, optionally their weights (n,) and further
    per-event arrays ``datasets`` (n, ...) under their names; exact for float64."""
    path = Path(path)
    meta = json.dumps({**attributes, "lipsgen_version": __version__})
    arrays = {**(datasets or {}), "momenta": events.detach().to("cpu", torch.float64).numpy(),
              "attributes": np.array(meta)}
    if weights is not None:
        arrays["weights"] = weights.detach().to("cpu", torch.float64).numpy()
    with atomic_output(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy types allow_pickle among the keywords
    return path


def read_weights_npz(path: str | os.PathLike[str]) -> Tensor | None:
    """The array ``weights`` (n,) float64, or None if the file has none."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "weights" not in data.files:
                return None
            return torch.from_numpy(np.asarray(data["weights"], dtype=np.float64))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise EventFileError(f"{path}: not a readable npz file ({type(err).__name__}: {err})") from None


def read_events_npz(path: str | os.PathLike[str]) -> tuple[Tensor, dict[str, Any]]:
    """Read ``momenta`` (n, N, 4) and the attributes (an empty dict if the file has none)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such event file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "momenta" not in data.files:
                raise EventFileError(f"{path}: no array 'momenta' (found: {sorted(data.files)})")
            momenta = data["momenta"]
            attributes = json.loads(str(data["attributes"])) if "attributes" in data.files else {}
    except EventFileError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise EventFileError(f"{path}: not a readable npz file ({type(err).__name__}: {err})") from None
    if momenta.ndim != 3 or momenta.shape[-1] != 4:
        raise EventFileError(f"{path}: 'momenta' must have shape (n_events, n_particles, 4), got {momenta.shape}")
    if not np.issubdtype(momenta.dtype, np.floating):
        raise EventFileError(f"{path}: 'momenta' must be floating point, got {momenta.dtype}")
    return torch.from_numpy(np.ascontiguousarray(momenta, dtype=np.float64)), attributes
