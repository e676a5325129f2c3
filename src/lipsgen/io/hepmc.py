"""HepMC3 input through pyhepmc: the final-state particles of showered e+e- events, for clustering.

Only reading: lipsgen's own events are massless N-particle states, which LHE, HDF5 and npz hold.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EventFileError

__all__ = ["read_final_states_hepmc"]

_FINAL, _BEAM = 1, 4
_MEV_PER_GEV = 1000.0


def _event_records(path: Path) -> int:
    """The number of event records (lines starting with ``E ``) of an ASCII HepMC file."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        return sum(1 for line in f if line.startswith(b"E "))


def _refuse_other_formats(path: Path) -> None:
    """Name a file whose content is another format (an LHE file called .hepmc3), which the HepMC
    reader would only call corrupt."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return  # unreadable: the HepMC reader says so
    if head.startswith(b"<LesHouchesEvents") or b"<LesHouchesEvents" in head[:200]:
        raise EventFileError(f"{path}: this is a Les Houches (LHE) file, not HepMC; name it .lhe (or .lhe.gz) "
                             f"and convert it as LHE")


@contextlib.contextmanager
def _cpp_messages() -> Iterator[list[str]]:
    """Catch what C++ code writes to the process's stdout and stderr (HepMC3's DEBUG and ERROR
    lines, which Python cannot intercept) into a list, filled when the block ends, instead of the
    terminal."""
    messages: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield messages
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            messages += [line for line in sink.read().decode(errors="replace").splitlines() if line.strip()]


def read_final_states_hepmc(path: str | os.PathLike[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The final-state (status 1) particles of every event, a list of (m_i, 4) float64 arrays
    (E, px, py, pz) in GeV, and attributes ``sqrt_s`` (the first event's beam invariant mass) and
    ``target = "hepmc"``.

    Raises :class:`EventFileError` naming the event for a file that is not HepMC, holds no events,
    or has an event whose beams (status 4) are not one e+ and one e-.
    """
    import pyhepmc

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such event file")
    _refuse_other_formats(path)
    events: list[np.ndarray] = []
    sqrt_s = None
    said: list[str] = []
    try:
        with _cpp_messages() as said, pyhepmc.open(path) as reader:
            for index, event in enumerate(reader):
                particles = event.numpy.particles
                status, pid = np.asarray(particles.status), np.asarray(particles.pid)
                momenta = np.stack([np.asarray(getattr(particles, c), dtype=np.float64)
                                    for c in ("e", "px", "py", "pz")], axis=-1)
                if event.momentum_unit == pyhepmc.Units.MEV:
                    momenta = momenta / _MEV_PER_GEV
                beams = status == _BEAM
                if sorted(pid[beams].tolist()) != [-11, 11]:
                    raise EventFileError(
                        f"{path}: event {index} (number {event.event_number}) has beams (status 4) "
                        f"{pid[beams].tolist()}, not e+ e-; lipsgen clusters e+e- events only")
                if sqrt_s is None:
                    total = momenta[beams].sum(axis=0)
                    sqrt_s = float(np.sqrt(max(total[0] ** 2 - (total[1:] ** 2).sum(), 0.0)))
                events.append(momenta[status == _FINAL])
    except EventFileError:
        raise
    except Exception as err:  # pyhepmc raises IOError, RuntimeError, ... on bad input
        raise EventFileError(f"{path}: not a readable HepMC3 file after {len(events)} events "
                             f"({type(err).__name__}: {err}){_quoted(said)}") from None
    if not events:
        raise EventFileError(f"{path}: no HepMC events found (not a HepMC file, or empty){_quoted(said)}")
    records = _event_records(path)
    if records != len(events):  # HepMC3's reader stops at a damaged event without raising
        raise EventFileError(f"{path}: {records} event records but only {len(events)} could be read: the file is "
                             f"corrupt or truncated after event {len(events) - 1}{_quoted(said)}")
    if said:
        warnings.warn(f"{path}: HepMC3 reported {len(said)} line(s) while reading, e.g. {said[0]!r}", stacklevel=2)
    return events, {"target": "hepmc", "sqrt_s": sqrt_s}


def _quoted(messages: list[str]) -> str:
    return f"; HepMC3 said: {messages[0]!r}" if messages else ""
