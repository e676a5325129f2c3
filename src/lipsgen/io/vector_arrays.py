"""Conversion to and from scikit-hep ``vector`` Momentum4D arrays (awkward backend)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import torch
import vector
from torch import Tensor

__all__ = ["to_vector", "from_vector"]


def to_vector(events: Tensor) -> ak.Array:
    """Events (n, N, 4) as an awkward array of ``Momentum4D`` records, n lists of N particles."""
    array = events.detach().to("cpu", torch.float64).numpy()
    fields = {name: array[..., k] for k, name in enumerate(("E", "px", "py", "pz"))}
    return vector.zip({name: ak.Array(values) for name, values in fields.items()})


def from_vector(momenta: ak.Array) -> Tensor:
    """Events (n, N, 4) float64 from an array of ``Momentum4D`` (or any array with px, py, pz and
    E fields) with the same number of particles in every event."""
    try:
        components = [momenta.E, momenta.px, momenta.py, momenta.pz]
    except AttributeError as err:
        raise ValueError(f"expected Momentum4D records with E, px, py, pz: {err}") from None
    try:
        stacked = np.stack([ak.to_numpy(c) for c in components], axis=-1)
    except ValueError as err:
        raise ValueError(f"events must all have the same number of particles ({err})") from None
    if stacked.ndim != 3:
        raise ValueError(f"expected an array of events of particles, got {stacked.ndim - 1} dimensions")
    return torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float64))
