"""Showered events from a user's files (HepMC3, LHE of any multiplicity) as N-jet massless events."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.errors import EventFileError
from ..kinematics import boost
from .clustering import CLUSTERING, durham_jets, particles_array
from .projection import ProjectedJets, project_jets

__all__ = ["jets_from_file", "HEPMC_SUFFIXES"]

HEPMC_SUFFIXES = (".hepmc", ".hepmc3", ".hepmc.gz", ".hepmc3.gz")


def _read_final_states(path: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    name = path.name.lower()
    if name.endswith(HEPMC_SUFFIXES):
        from ..io.hepmc import read_final_states_hepmc
        return read_final_states_hepmc(path)
    if name.endswith((".lhe", ".lhe.gz")):
        from ..io.lhe import read_final_states_lhe
        return read_final_states_lhe(path)
    raise ValueError(f"{path}: jet clustering reads HepMC3 ({', '.join(HEPMC_SUFFIXES)}) or LHE (.lhe, .lhe.gz) files")


def _rest_frame(events: list[np.ndarray]) -> list[np.ndarray]:
    """Every event's particles boosted to the event's rest frame (no rotation)."""
    counts = np.array([len(e) for e in events])
    flat = torch.from_numpy(np.concatenate(events))
    totals = torch.from_numpy(np.stack([e.sum(axis=0) for e in events]))
    mass = torch.sqrt((totals[:, 0] ** 2 - (totals[:, 1:] ** 2).sum(dim=1)).clamp(min=0))
    if bool((mass <= 0).any()):
        raise EventFileError(f"event {int(torch.nonzero(mass <= 0)[0, 0])}: its final state has no rest frame")
    velocity = -totals[:, 1:] / mass.unsqueeze(1)  # spatial four-velocity taking each event to rest
    boosted = boost(flat.unsqueeze(1), torch.repeat_interleave(velocity, torch.from_numpy(counts), dim=0))
    return np.split(boosted[:, 0].numpy(), np.cumsum(counts)[:-1])


def jets_from_file(
    path: str | os.PathLike[str],
    n_jets: int,
    *,
    sqrt_s: float | None = None,
    to_cm: bool = False,
    cm_rtol: float = 1e-6,
) -> tuple[ProjectedJets, dict[str, Any]]:
    """Cluster the final state of every event of a HepMC3 or LHE file into ``n_jets`` Durham jets
    and project them onto massless phase space at ``sqrt_s`` (default: the file's), in GeV.

    Without ``to_cm`` every event's final state must be in its CM frame at the file's energy
    (relative tolerance ``cm_rtol``); with it, each final state is boosted to its rest frame
    before clustering (Durham distances are not boost invariant) and scaled to ``sqrt_s``.
    Raises :class:`EventFileError` naming the first event with fewer final-state particles than
    jets or off its CM frame. Returns the projected jets and the attributes for the output file.
    """
    path = Path(path)
    events, attributes = _read_final_states(path)
    counts = np.array([len(e) for e in events])
    if (counts < n_jets).any():
        index = int(np.argmax(counts < n_jets))
        raise EventFileError(f"{path}: event {index} has {counts[index]} final-state particles, "
                             f"fewer than the {n_jets} jets asked for")
    energy = float(attributes.get("sqrt_s") or 0.0) if sqrt_s is None else sqrt_s
    if to_cm:
        events = _rest_frame(events)
    else:
        totals = np.stack([e.sum(axis=0) for e in events])
        scale = energy if energy > 0 else 1.0
        off = (np.abs(totals[:, 0] - energy) > cm_rtol * scale) | (
            np.linalg.norm(totals[:, 1:], axis=1) > cm_rtol * scale)
        if off.any():
            index = int(np.argmax(off))
            raise EventFileError(
                f"{path}: event {index} is not in its CM frame at sqrt_s = {energy:g} GeV: final state sums to "
                f"E = {totals[index, 0]:.9g}, |p| = {np.linalg.norm(totals[index, 1:]):.3g} (relative tolerance "
                f"{cm_rtol:g}); use --to-cm to boost each event to its rest frame")
    if not energy > 0:
        raise EventFileError(f"{path}: no beam energy in the file; give --sqrt-s")
    projected = project_jets(torch.from_numpy(durham_jets(particles_array(events), n_jets)), energy)
    attributes = {**attributes, "sqrt_s": energy, "n_jets": n_jets, "n_particles": n_jets, "permuted": False,
                  "clustering": CLUSTERING, "boosted_to_cm": to_cm, **projected.summary()}
    return projected, attributes
