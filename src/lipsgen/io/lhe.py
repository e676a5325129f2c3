"""Les Houches Event files through pylhe: e+e- beams at sqrt_s, outgoing particles (massless unless masses are
given: column M).

Momenta are written with 17 significant digits, so a float64 event survives the round trip
exactly; files from other generators are read at whatever precision they were printed with.
"""

from __future__ import annotations

import json
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pylhe
import torch
from torch import Tensor

from .._version import __version__
from .atomic import atomic_output
from .errors import EventFileError

__all__ = ["shower_scales", "write_events_lhe", "read_events_lhe", "read_final_states_lhe", "read_weights_lhe"]

# Full double precision for momenta and event weights; the rest as pylhe's default.
_FORMAT_FIELDS: dict[str, Any] = dict(
    eventinfo="{nparticles:3d} {pid:6d} {weight: .16e} {scale: .16e} {aqed: 15.10e} {aqcd: 15.10e}",
    particle="{id:5d} {status:3d} {mother1:3d} {mother2:3d} {color1:4d} {color2:4d} "
    "{px: .16e} {py: .16e} {pz: .16e} {e: .16e} {m: .16e} {lifetime: 10.4e} {spin: 10.4e}",
    # beam energies at full precision too: sqrt_s is read back from them
    initinfo=" {beamA: 6d} {beamB: 6d} {energyA: .16e} {energyB: .16e} {PDFgroupA: 5d} {PDFgroupB: 5d} "
    "{PDFsetA: 5d} {PDFsetB: 5d} {weightingStrategy: 5d} {numProcesses: 5d}",
    procinfo="{xSection: .16e} {error: .16e} {unitWeight: .16e} {procId: 5d}",
)
_ELECTRON, _POSITRON, _GLUON = 11, -11, 21
# header element holding the file's lipsgen attributes (target, its parameters, seed) as JSON
_ATTRIBUTES_TAG = "lipsgen"


def _colours(pdg_ids: Sequence[int]) -> list[tuple[int, int]]:
    """A colour-singlet assignment: quarks open a line, gluons pass it on, antiquarks close it;
    an all-gluon final state is one closed loop. Colourless particles get (0, 0)."""
    coloured = [i for i, pid in enumerate(pdg_ids) if pid == _GLUON or 1 <= abs(pid) <= 6]
    colours = [(0, 0)] * len(pdg_ids)
    if not coloured:
        return colours
    quarks = [i for i in coloured if 1 <= pdg_ids[i] <= 6]
    antiquarks = [i for i in coloured if -6 <= pdg_ids[i] <= -1]
    gluons = [i for i in coloured if pdg_ids[i] == _GLUON]
    chain = quarks + gluons + antiquarks
    tag = 501
    for position, i in enumerate(chain):
        previous = tag + position - 1 if position else (tag + len(chain) - 1 if not quarks else 0)
        current = tag + position if i not in antiquarks else 0
        colours[i] = (current, previous)
    return colours


def shower_scales(events: Tensor, pdg_ids: Sequence[int], sqrt_s: float) -> Tensor:
    """Each event's SCALUP (m,): the Durham kT of its softest resolved emission,
    ``min_ij sqrt(2 min(E_i, E_j)^2 (1 - cos theta_ij))`` over pairs of coloured partons, so that a
    shower started from it does not emit above the matrix element's own resolution (double
    counting); ``sqrt_s`` for events with fewer than 3 coloured partons (no emission to resolve)."""
    coloured = [i for i, pid in enumerate(pdg_ids) if pid == _GLUON or 1 <= abs(pid) <= 6]
    if len(coloured) < 3:
        return torch.full((len(events),), float(sqrt_s), dtype=torch.float64)
    partons = events[:, coloured].to(torch.float64)
    energy = partons[..., 0]
    direction = partons[..., 1:] / torch.linalg.vector_norm(partons[..., 1:], dim=-1, keepdim=True)
    one_minus_cos = (direction.unsqueeze(2) - direction.unsqueeze(1)).square().sum(-1) / 2  # exact for small angles
    softer = torch.minimum(energy.unsqueeze(2), energy.unsqueeze(1))
    kt2 = 2 * softer.square() * one_minus_cos
    pairs = torch.triu_indices(len(coloured), len(coloured), 1)
    return kt2[:, pairs[0], pairs[1]].min(dim=1).values.sqrt()


def _lhe_events(events: Iterable[Tensor], pdg_ids: Sequence[int], sqrt_s: float,
                weights: Tensor | None, masses: Sequence[float]) -> Iterator[pylhe.LHEEvent]:
    half = sqrt_s / 2
    colours = _colours(pdg_ids)
    beams = [
        pylhe.LHEParticle(_ELECTRON, -1, 0, 0, 0, 0, 0.0, 0.0, half, half, 0.0, 0.0, 9.0),
        pylhe.LHEParticle(_POSITRON, -1, 0, 0, 0, 0, 0.0, 0.0, -half, half, 0.0, 0.0, 9.0),
    ]
    index = 0
    for chunk in events:
        chunk = chunk.detach().to("cpu", torch.float64)
        for event, scale in zip(chunk.numpy(), shower_scales(chunk, pdg_ids, sqrt_s).tolist()):
            weight = 1.0 if weights is None else float(weights[index])
            index += 1
            outgoing = [
                pylhe.LHEParticle(int(pid), 1, 1, 2, c1, c2, float(px), float(py), float(pz), float(e),
                                  float(mass), 0.0, 9.0)
                for pid, (c1, c2), (e, px, py, pz), mass in zip(pdg_ids, colours, event, masses)
            ]
            info = pylhe.LHEEventInfo(len(outgoing) + 2, 1, weight, scale, 1 / 137.035999, 0.118)
            yield pylhe.LHEEvent(eventinfo=info, particles=beams + outgoing)


def write_events_lhe(
    path: str | os.PathLike[str],
    events: Iterable[Tensor],
    *,
    sqrt_s: float,
    pdg_ids: Sequence[int],
    attributes: dict[str, Any] | None = None,
    weights: Tensor | None = None,
    masses: Sequence[float] | None = None,
) -> Path:
    """Write chunks of events (each (m, N, 4)) to an LHE file (gzip if the name ends in .gz);
    ``attributes`` (JSON-serialisable) go into the header, so reading the file gives them back.

    ``weights`` (n,) become the events' XWGTUP; the process's cross section XSECUP is their mean,
    XERRUP its Monte Carlo error, XMAXUP their maximum, and IDWTUP is 4 (weighted events), or 3
    when every weight is the same (unweighted); without weights, IDWTUP = 3 and unit weights. Events
    unweighted from a weighted sample carry its ``integral_error`` (attributes): that is XERRUP, as
    equal weights have no spread to tell it. ``masses`` (N,): the particles' masses (column M; default 0)."""
    path = Path(path)
    masses = [0.0] * len(pdg_ids) if masses is None else [float(m) for m in masses]
    if len(masses) != len(pdg_ids):
        raise ValueError(f"{path}: {len(masses)} masses for {len(pdg_ids)} particles")
    xsec, xerr, xmax, idwtup = 1.0, 0.0, 1.0, 3
    if weights is not None:
        w = weights.detach().to("cpu", torch.float64)
        xsec, xmax = float(w.mean()), float(w.max())
        xerr = float(w.std() / len(w) ** 0.5) if len(w) > 1 else 0.0
        idwtup = 3 if bool((w == w[0]).all()) else 4
        xerr = float((attributes or {}).get("integral_error", xerr))
    element = ET.Element(_ATTRIBUTES_TAG)
    element.text = json.dumps({**(attributes or {}), "lipsgen_version": __version__})
    header = pylhe.LHEHeader(initrwgt=pylhe.LHEInitRWGT(), extra_elements=[element])
    init = pylhe.LHEInit(
        initInfo=pylhe.LHEInitInfo(_ELECTRON, _POSITRON, sqrt_s / 2, sqrt_s / 2, 0, 0, 0, 0, idwtup, 1),
        procInfo=[pylhe.LHEProcInfo(xsec, xerr, xmax, 1)],
        generators=[pylhe.LHEGenerator("lipsgen", __version__, "generative models on phase space")],
    )
    lhe = pylhe.LHEFile(init=init, events=_lhe_events(events, list(pdg_ids), sqrt_s, weights, masses), header=header)
    fmt = pylhe.LHEXMLFormat(compress=path.name.endswith(".gz"), **_FORMAT_FIELDS)
    with atomic_output(path) as tmp:
        lhe.tofile(tmp, lheformat=fmt)
    return path


def _read_outgoing(path: Path) -> tuple[list[tuple[int, ...]], list[np.ndarray], dict[str, Any]]:
    """PDG ids and momenta (m_i, 4) (E, px, py, pz) of the outgoing (status 1) particles of every
    event, and the file's attributes (see ``read_events_lhe``)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such event file")
    ids: list[tuple[int, ...]] = []
    rows: list[np.ndarray] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lhe = pylhe.LHEFile.fromfile(path)
            for event in lhe.events:
                outgoing = [p for p in event.particles if int(p.status) == 1]
                ids.append(tuple(int(p.id) for p in outgoing))
                rows.append(np.array([[p.e, p.px, p.py, p.pz] for p in outgoing], dtype=np.float64).reshape(-1, 4))
            beams = lhe.init.initInfo
            sqrt_s = float(beams.energyA) + float(beams.energyB)
            recorded = _recorded_attributes(lhe.header)
            sqrt_s = _recorded_energy(path, recorded, sqrt_s)
        except Exception as err:  # pylhe raises ValueError, KeyError, OSError, ... on bad input
            raise EventFileError(f"{path}: not a readable LHE file ({type(err).__name__}: {err})") from None
    problems = [str(w.message) for w in caught if "Parse Error" in str(w.message)]
    if problems:
        raise EventFileError(f"{path}: LHE file is corrupt or truncated after {len(rows)} events ({problems[0]})")
    if not rows:
        raise EventFileError(f"{path}: no events found")
    return ids, rows, {"target": "lhe", **recorded, "sqrt_s": sqrt_s}


def _recorded_energy(path: Path, recorded: dict[str, Any], beams: float) -> float:
    """sqrt_s as lipsgen recorded it in the header (exact; older files printed the beams with 8
    digits), checked against the beams; the beams' sum for other generators' files."""
    value = recorded.get("sqrt_s")
    if value is None:
        return beams
    energy = float(value)
    if not abs(energy - beams) <= 1e-6 * max(abs(energy), abs(beams)):
        raise EventFileError(f"{path}: the header records sqrt_s = {energy!r} but the beams sum to {beams!r}")
    return energy


def read_events_lhe(path: str | os.PathLike[str]) -> tuple[Tensor, dict]:
    """Outgoing (status 1) particles of every event, (n, N, 4) float64 in (E, px, py, pz), and
    attributes: those lipsgen recorded in the header, if any (else ``target = "lhe"``), with
    ``sqrt_s`` (sum of the beam energies) and ``pdg_ids``.

    Raises :class:`EventFileError` for unparsable or truncated files and for events whose number
    or kinds of outgoing particles differ from the first event's.
    """
    path = Path(path)
    ids, rows, attributes = _read_outgoing(path)
    for index, event_ids in enumerate(ids):
        if event_ids != ids[0]:
            raise EventFileError(
                f"{path}: event {index} has outgoing particles {event_ids}, event 0 has {ids[0]}; "
                f"lipsgen needs the same final state in every event (or clustering: lipsgen convert --jets N)"
            )
    if len(rows[0]) < 2:
        raise EventFileError(f"{path}: events have {len(rows[0])} outgoing particles, need at least 2")
    return torch.from_numpy(np.stack(rows)), {**attributes, "pdg_ids": list(ids[0])}


def read_final_states_lhe(path: str | os.PathLike[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The outgoing particles of every event, any number per event, as (m_i, 4) float64 arrays
    (E, px, py, pz), with the file's attributes: the input of jet clustering."""
    _, rows, attributes = _read_outgoing(Path(path))
    return rows, attributes


def _recorded_attributes(header: pylhe.LHEHeader | None) -> dict[str, Any]:
    """The attributes lipsgen wrote into an LHE header ({} for other generators' files)."""
    for element in header.extra_elements if header is not None else ():
        if element.tag == _ATTRIBUTES_TAG and element.text:
            values = json.loads(element.text)
            if isinstance(values, dict):
                return values
    return {}


def read_weights_lhe(path: str | os.PathLike[str]) -> Tensor | None:
    """The events' XWGTUP (n,) float64 if the file holds weighted events (IDWTUP = +-4, or weights
    that differ), else None."""
    try:
        lhe = pylhe.LHEFile.fromfile(path)
        weights = np.array([float(event.eventinfo.weight) for event in lhe.events], dtype=np.float64)
        idwtup = abs(int(lhe.init.initInfo.weightingStrategy))
    except Exception as err:  # as in read_events_lhe
        raise EventFileError(f"{path}: not a readable LHE file ({type(err).__name__}: {err})") from None
    if idwtup != 4 and (len(weights) == 0 or bool((weights == weights[0]).all())):
        return None
    return torch.from_numpy(weights)
