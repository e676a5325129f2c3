"""One entry point for event files of every format, and the physics checks on reading them."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..coordinates.massive import massive_from_massless, massless_from_massive
from ..coordinates.rambo import to_cm_frame
from ..validation import check_events
from .errors import EventFileError
from .hdf5 import read_attributes_h5, read_events_h5, read_weights_h5, write_events_h5
from .lhe import read_events_lhe, read_weights_lhe, write_events_lhe
from .npz import read_events_npz, read_weights_npz, write_events_npz

__all__ = ["event_format", "read_events", "read_weights", "write_events", "load_events", "checked_phase_space",
           "recorded_masses", "file_attributes",
           "FILE_RTOL"]

_SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".npz": "npz", ".lhe": "lhe", ".lhe.gz": "lhe"}


def event_format(path: str | os.PathLike[str]) -> str:
    """``hdf5``, ``npz`` or ``lhe`` from the file name."""
    name = Path(path).name.lower()
    for suffix, fmt in sorted(_SUFFIXES.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"{path}: unknown event-file type; use one of {', '.join(_SUFFIXES)}")


def read_events(path: str | os.PathLike[str]) -> tuple[Tensor, dict[str, Any]]:
    """Read events (n, N, 4) float64 and attributes from an HDF5, npz or LHE file (layout checks only)."""
    fmt = event_format(path)
    reader = {"hdf5": read_events_h5, "npz": read_events_npz, "lhe": read_events_lhe}[fmt]
    events, attributes = reader(path)
    if "sqrt_s" in attributes:
        attributes["sqrt_s"] = energy_attribute(path, attributes["sqrt_s"])
    return events, attributes


def energy_attribute(path: str | os.PathLike[str], value: Any) -> float:
    """The ``sqrt_s`` attribute as a float, refused unless it is one finite positive number."""
    try:
        energy = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        raise EventFileError(f"{path}: attribute sqrt_s must be a number, got {value!r}") from None
    if not 0 < energy < float("inf"):
        raise EventFileError(f"{path}: attribute sqrt_s must be finite and positive, got {value!r}")
    return energy


def read_weights(path: str | os.PathLike[str]) -> Tensor | None:
    """The event weights (n,) float64 of a file of weighted events, or None if they are unweighted."""
    fmt = event_format(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such event file")
    return {"hdf5": read_weights_h5, "npz": read_weights_npz, "lhe": read_weights_lhe}[fmt](path)


def write_events(path: str | os.PathLike[str], events: Tensor, attributes: dict[str, Any],
                 weights: Tensor | None = None, datasets: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write events (n, N, 4) with attributes and optional weights (n,), in the format the file name
    asks for (atomically). ``datasets``: further per-event arrays (n, ...), kept by HDF5 and npz
    (an LHE file has no place for them)."""
    fmt = event_format(path)
    n, n_particles = events.shape[:2]
    if weights is not None and tuple(weights.shape) != (n,):
        raise ValueError(f"{path}: {tuple(weights.shape)} weights for {n} events")
    for name, values in (datasets or {}).items():
        if name in ("momenta", "weights", "attributes") or np.shape(values)[:1] != (n,):
            raise ValueError(f"{path}: dataset {name!r} of shape {np.shape(values)} is not a per-event "
                             f"array for {n} events, or its name is reserved")
    if fmt == "hdf5":
        return write_events_h5(path, [events], n_events=n, n_particles=n_particles,
                               attributes=_hdf5_safe(attributes), weights=weights, datasets=datasets)
    if fmt == "npz":
        return write_events_npz(path, events, attributes, weights, datasets)
    from ..targets.facts import facts_from_attributes  # targets sit above io

    recorded = list(attributes.get("pdg_ids") or ())
    if recorded and len(recorded) != n_particles:
        raise ValueError(f"{path}: {len(recorded)} PDG ids for {n_particles} particles")
    pdg_ids = recorded or facts_from_attributes(attributes, n_particles).pdg_ids
    energy = float(attributes.get("sqrt_s", 1.0))
    if energy < LHE_MIN_GEV:
        warnings.warn(f"{path}: LHE energies are in GeV, so this file describes a collision at {energy:g} GeV; a "
                      f"shower (Pythia) takes it as that. Rescale first: lipsgen convert IN OUT.lhe --to-cm "
                      f"--sqrt-s 91.1876", stacklevel=2)
    masses = attributes.get("masses")
    return write_events_lhe(path, [events], sqrt_s=energy, pdg_ids=pdg_ids, attributes=_json_safe(attributes),
                            weights=weights, masses=None if masses is None else np.ravel(masses).tolist())


# Below this total energy (GeV) an LHE file is almost surely lipsgen's unit sqrt_s = 1, not physics.
LHE_MIN_GEV = 2.0


def _json_safe(attributes: dict[str, Any]) -> dict[str, Any]:
    """Plain attributes only (numpy scalars and arrays as Python values), for JSON headers."""
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in attributes.items()
            if v is not None and k not in ("lipsgen_version", "pdg_ids")}


def _hdf5_safe(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None and k != "lipsgen_version"}


# Relative tolerance for events read from files (printed precision); see load_events.
FILE_RTOL = 1e-6


def _exact(events: Tensor, sqrt_s: float, masses: list[float] | None = None) -> bool:
    """Whether events are CM phase space (massless, or on the shells of ``masses``) at float64 rounding
    (the default tolerances)."""
    try:
        check_events(events, sqrt_s=sqrt_s, masses=masses)
    except ValueError:
        return False
    return True


def load_events(
    path: str | os.PathLike[str],
    *,
    sqrt_s: float | None = None,
    to_cm: bool = False,
    mass_rtol: float | None = None,
    cm_rtol: float | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Read a user's event file and check it is massless phase space in the CM frame.

    ``sqrt_s`` defaults to the file's ``sqrt_s`` attribute, else to the total energy all its events
    share, else 1. With ``to_cm`` every event is
    boosted to its CM frame and rescaled to ``sqrt_s``; without it, events off their CM frame or
    off ``sqrt_s`` are refused, naming the first. Non-massless particles are always refused.

    Tolerance policy: ``mass_rtol``/``cm_rtol`` default to ``FILE_RTOL`` = 1e-6, loose enough for
    momenta printed with 7 or more significant digits (pylhe's default prints 9). Events that pass
    but are not exact to float64 rounding (1e-9) are projected onto exact massless CM phase space
    (energies reset to |p|, then the RAMBO map: a near-identity change within the tolerance), so
    training and evaluation downstream see exact events. Exact files are returned unchanged.
    """
    events, attributes = read_events(path)
    if sqrt_s is not None:
        energy = sqrt_s
    elif "sqrt_s" in attributes:
        energy = float(attributes["sqrt_s"])
    else:
        energy = _common_total_energy(events, FILE_RTOL if cm_rtol is None else cm_rtol)
    events = checked_phase_space(events, energy, str(path), to_cm=to_cm, mass_rtol=mass_rtol, cm_rtol=cm_rtol,
                                 masses=recorded_masses(attributes))
    return events, {**attributes, "sqrt_s": energy}


def recorded_masses(attributes: dict[str, Any]) -> list[float] | None:
    """The particle masses an event file records (attribute ``masses``), or None for massless events."""
    masses = [float(m) for m in np.ravel(attributes.get("masses", []))]
    return masses if any(masses) else None


def file_attributes(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An event file's attributes (HDF5: without reading its events)."""
    if event_format(path) == "hdf5":
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such event file")
        return read_attributes_h5(path)
    return read_events(path)[1]


def _common_total_energy(events: Tensor, rtol: float) -> float:
    """The total energy every event of a file without a ``sqrt_s`` attribute shares (within
    ``rtol``), or 1 (the unit default) when they do not share one."""
    if len(events) == 0:
        return 1.0
    totals = events[..., 0].to(torch.float64).sum(1)
    energy = float(totals.median())
    return energy if energy > 0 and bool(((totals - energy).abs() <= rtol * energy).all()) else 1.0


def checked_phase_space(events: Tensor, sqrt_s: float, where: str, *, to_cm: bool = False,
                        mass_rtol: float | None = None, cm_rtol: float | None = None, name: str = "events",
                        masses: list[float] | None = None) -> Tensor:
    """Events (n, N, 4) read from a file, checked and made exact as ``load_events`` describes;
    errors are :class:`EventFileError` prefixed with ``where`` (the file), the events called ``name``.
    With ``masses`` (N,) the events are checked on those mass shells, and made exact through their
    massless images (``lipsgen.coordinates.massive``)."""
    mass_rtol = FILE_RTOL if mass_rtol is None else mass_rtol
    cm_rtol = FILE_RTOL if cm_rtol is None else cm_rtol
    if masses is not None:
        return _checked_massive(events, sqrt_s, where, masses, to_cm, mass_rtol, cm_rtol, name)
    try:
        if to_cm:
            return to_cm_frame(events, sqrt_s=sqrt_s, mass_rtol=mass_rtol)
        check_events(events, name, sqrt_s=sqrt_s, mass_rtol=mass_rtol, cm_rtol=cm_rtol)
        return events if _exact(events, sqrt_s) else to_cm_frame(events, sqrt_s=sqrt_s, mass_rtol=mass_rtol)
    except ValueError as err:
        raise EventFileError(f"{where}: {err}") from None


def _checked_massive(events: Tensor, sqrt_s: float, where: str, masses: list[float], to_cm: bool,
                     mass_rtol: float, cm_rtol: float, name: str) -> Tensor:
    try:
        if to_cm:
            raise ValueError("--to-cm boosts massless events only; massive events must be in their CM frame")
        check_events(events, name, masses=masses, sqrt_s=sqrt_s, mass_rtol=mass_rtol, cm_rtol=cm_rtol)
        if _exact(events, sqrt_s, masses):
            return events
        # within the file tolerance, not exact: project through the massless images
        massless, _ = massless_from_massive(events.to(torch.float64), sqrt_s)
        exact = to_cm_frame(massless, sqrt_s=sqrt_s, mass_rtol=mass_rtol)
        return massive_from_massless(exact, masses, sqrt_s).events.to(events.dtype)
    except ValueError as err:
        raise EventFileError(f"{where}: {err}") from None
