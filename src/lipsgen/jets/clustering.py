"""Durham (e+e- kt) clustering through FastJet's awkward-array interface.

The Durham distance of two momenta is ``y_ij = 2 min(E_i, E_j)^2 (1 - cos theta_ij) / Q^2`` with
``Q`` the event's total energy, pairs are merged by adding four-momenta (E scheme), and
``exclusive_jets(N)`` stops at N jets. ``y_{k,k+1}`` is the y at which an event goes from k + 1
to k jets.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import cache
from typing import Any

import awkward as ak
import numpy as np
import torch
from torch import Tensor

__all__ = ["durham_jets", "durham_resolutions", "durham_multiplicity", "particles_array", "CLUSTERING"]

# recorded in every file of clustered events
CLUSTERING = "FastJet ee_kt_algorithm (Durham), E scheme, exclusive_jets(n_jets), all final-state particles"


@cache
def _jet_definition() -> Any:
    import fastjet
    import fastjet._swig as swig

    swig.ClusterSequence.set_fastjet_banner_stream(None)  # the banner would go to stdout, once per process
    return fastjet.JetDefinition0Param(fastjet.ee_kt_algorithm)


def _cluster(particles: ak.Array) -> Any:
    import fastjet

    return fastjet.ClusterSequence(particles, _jet_definition())


def particles_array(momenta: Iterable[np.ndarray]) -> ak.Array:
    """Ragged particles for clustering from per-event arrays (m_i, 4) of (E, px, py, pz)."""
    builder = [np.asarray(m, dtype=np.float64).reshape(-1, 4) for m in momenta]
    counts = np.array([len(m) for m in builder], dtype=np.int64)
    flat = np.concatenate(builder) if builder else np.zeros((0, 4))
    return _from_flat(flat, counts)


def _from_flat(flat: np.ndarray, counts: np.ndarray) -> ak.Array:
    fields = {"px": flat[:, 1], "py": flat[:, 2], "pz": flat[:, 3], "E": flat[:, 0]}
    return ak.unflatten(ak.zip(fields), counts)


def durham_jets(particles: ak.Array, n_jets: int) -> np.ndarray:
    """Exactly ``n_jets`` exclusive Durham jets per event, (n, n_jets, 4) float64 (E, px, py, pz),
    ordered by decreasing energy. ``particles``: ragged records px, py, pz, E per event, each with
    at least ``n_jets`` entries (the caller checks, so that its error can name the event)."""
    counts = ak.to_numpy(ak.num(particles))
    if len(counts) and counts.min() < n_jets:
        raise ValueError(f"event {int(np.argmin(counts))} has {int(counts.min())} particles, fewer than {n_jets} jets")
    if len(counts) == 0:
        return np.zeros((0, n_jets, 4))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        jets = _cluster(particles).exclusive_jets(n_jets=n_jets)
    out = np.stack([ak.to_numpy(ak.flatten(jets[f])).reshape(-1, n_jets) for f in ("E", "px", "py", "pz")], axis=-1)
    order = np.argsort(-out[..., 0], axis=1, kind="stable")
    return np.take_along_axis(out, order[..., None], axis=1)


def durham_resolutions(events: Tensor, jets: Iterable[int]) -> dict[int, np.ndarray]:
    """``{k: y_{k,k+1}}`` (n,) of events (n, N, 4): the Durham y at which each event goes from
    k + 1 to k jets (k + 1 <= N), normalised to the event's total energy squared."""
    flat = events.detach().to("cpu", torch.float64).reshape(-1, 4).numpy()
    n, n_particles = events.shape[:2]
    sequence = _cluster(_from_flat(flat, np.full(n, n_particles)))
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        for k in jets:
            if not 1 <= k < n_particles:
                raise ValueError(f"y_{{{k},{k + 1}}} needs at least {k + 1} particles, events have {n_particles}")
            out[k] = ak.to_numpy(sequence.exclusive_ymerge(k)).astype(np.float64)
    return out


def durham_multiplicity(events: Tensor, ycut: float) -> np.ndarray:
    """The number of Durham jets (n,) int64 of events (n, N, 4) at resolution ``ycut`` (in units of
    the event's total energy squared): FastJet's ``exclusive_jets_ycut``."""
    flat = events.detach().to("cpu", torch.float64).reshape(-1, 4).numpy()
    n, n_particles = events.shape[:2]
    sequence = _cluster(_from_flat(flat, np.full(n, n_particles)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dcut and exclusive jets")
        return ak.to_numpy(ak.num(sequence.exclusive_jets_ycut(ycut))).astype(np.int64)
