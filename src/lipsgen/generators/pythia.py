"""e+e- -> gamma*/Z -> hadrons with Pythia 8 (pythia8mc), clustered to N Durham jets.

Reproducibility does not depend on the number of worker processes: the events are made in blocks
of ``block_size``, block ``b`` by a fresh Pythia instance seeded from ``(seed, b)``, and the
blocks are concatenated in order. Workers (``multiprocessing``, one Pythia each: Pythia is
single-threaded) only decide which process runs which block.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

import awkward as ak
import numpy as np

from ..catalogue import PYTHIA_BLOCK_SIZE, Z_POLE
from ..errors import LipsgenError
from ..jets.clustering import CLUSTERING, durham_jets

__all__ = ["PythiaJets", "JetBlock", "generate_jets", "pythia_available", "Z_POLE", "BLOCK_SIZE"]

BLOCK_SIZE = PYTHIA_BLOCK_SIZE
PYTHIA_SEED_MAX = 900_000_000  # Random:seed accepts 1 .. 900000000
Level = Literal["hadron", "parton"]


def _import_pythia() -> Any:
    try:
        import pythia8mc
    except ImportError:
        raise LipsgenError(
            "Pythia 8 is not installed: install lipsgen's optional extra with pip install 'lipsgen[pythia]' "
            "(the pythia8mc package, 8.317.2 has wheels for CPython 3.11 on Linux)") from None
    return pythia8mc


def pythia_available() -> bool:
    """Whether pythia8mc can be imported."""
    try:
        _import_pythia()
    except LipsgenError:
        return False
    return True


def block_seed(seed: int, block: int) -> int:
    """Pythia's ``Random:seed`` for block ``block`` of a run seeded ``seed``, in [1, 900000000]."""
    state = np.random.SeedSequence([seed, block]).generate_state(1, dtype=np.uint64)[0]
    return int(state % PYTHIA_SEED_MAX) + 1


@dataclass(frozen=True)
class PythiaJets:
    """The process and clustering: ``n_jets`` exclusive Durham jets of e+e- -> gamma*/Z -> q qbar
    (d, u, s, c, b, Pythia's default mixture at ``sqrt_s`` in GeV) at ``level`` hadron (shower,
    hadronisation, decays) or parton (shower only). Beams without ISR (``PDF:lepton = off``), so
    every event is in its CM frame and all its final-state particles, neutrinos from hadron
    decays included, sum to (sqrt_s, 0)."""

    n_jets: int
    sqrt_s: float = Z_POLE
    level: Level = "hadron"
    block_size: int = BLOCK_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.n_jets, int) or not 2 <= self.n_jets <= 20:
            raise ValueError(f"n_jets must be an integer in 2..20, got {self.n_jets!r}")
        if self.level not in ("hadron", "parton"):
            raise ValueError(f"level must be hadron or parton, got {self.level!r}")
        if not 0 < self.sqrt_s < float("inf"):
            raise ValueError(f"sqrt_s must be finite and > 0, got {self.sqrt_s!r}")

    def settings(self) -> list[str]:
        """Every Pythia setting lipsgen changes (the seed is set per block, ``block_seed``)."""
        return [
            "Beams:idA = 11", "Beams:idB = -11", f"Beams:eCM = {self.sqrt_s!r}",
            "PDF:lepton = off",
            "WeakSingleBoson:ffbar2gmZ = on",
            "23:onMode = off", "23:onIfAny = 1 2 3 4 5",
            *(["HadronLevel:all = off"] if self.level == "parton" else []),
            "Print:quiet = on", "Next:numberCount = 0",
        ]

    def attributes(self) -> dict[str, Any]:
        """What a file of these events records about how they were made."""
        pythia = _import_pythia()
        version = pythia.Pythia("", False).parm("Pythia:versionNumber")
        return {"target": "pythia", "n_jets": self.n_jets, "level": self.level, "sqrt_s": self.sqrt_s,
                "pythia_version": f"{version:.3f}", "pythia8mc_version": metadata.version("pythia8mc"),
                "pythia_settings": self.settings(), "block_size": self.block_size,
                "seed_rule": "Random:seed of block b = SeedSequence([seed, b]) mod 900000000 + 1",
                "clustering": CLUSTERING}


@dataclass
class JetBlock:
    """One block's massive jets (m, n_jets, 4) in GeV (E, px, py, pz), by decreasing energy, and
    how many generated events were dropped: ``failed`` (Pythia's errors), ``too_few``
    (fewer final-state particles than jets, possible at parton level)."""

    jets: np.ndarray
    failed: int = 0
    too_few: int = 0
    multiplicity: list[int] = field(default_factory=list)


def _final_state(batch: ak.Array) -> ak.Array:
    prt = batch.prt
    final = prt[prt.status > 0]
    return ak.zip({"px": final.p.px, "py": final.p.py, "pz": final.p.pz, "E": final.p.e})


def generate_block(process: PythiaJets, seed: int, block: int, n_events: int) -> JetBlock:
    """``n_events`` events of block ``block``: generate, keep the final state, cluster."""
    pythia = _import_pythia().Pythia("", False)
    for line in [*process.settings(), "Random:setSeed = on", f"Random:seed = {block_seed(seed, block)}"]:
        if not pythia.readString(line):
            raise LipsgenError(f"Pythia refused the setting {line!r}")
    if not pythia.init():
        raise LipsgenError("Pythia failed to initialise (settings: " + "; ".join(process.settings()) + ")")
    pieces, result = [], JetBlock(np.zeros((0, process.n_jets, 4)))
    have = 0
    while have < n_events:
        ask = min(1000, n_events - have)
        batch = pythia.nextBatch(ask, "skip")
        result.failed += ask - len(batch)
        particles = _final_state(batch)
        counts = ak.to_numpy(ak.num(particles))
        enough = counts >= process.n_jets
        result.too_few += int((~enough).sum())
        particles, counts = particles[enough], counts[enough]
        if len(particles):
            pieces.append(durham_jets(particles, process.n_jets))
            result.multiplicity.extend(counts.tolist())
            have += len(particles)
    result.jets = np.concatenate(pieces)[:n_events] if pieces else result.jets
    result.multiplicity = result.multiplicity[:n_events]
    return result


def _generate_block_task(task: tuple[PythiaJets, int, int, int]) -> JetBlock:
    return generate_block(*task)


def generate_jets(process: PythiaJets, n_events: int, seed: int, workers: int = 1) -> Iterator[JetBlock]:
    """The blocks of a run of ``n_events`` events in order, made by ``workers`` processes."""
    _import_pythia()  # fail here, with the install hint, not in a worker
    sizes = [min(process.block_size, n_events - start) for start in range(0, n_events, process.block_size)]
    tasks = [(process, seed, b, size) for b, size in enumerate(sizes)]
    if workers <= 1 or len(tasks) == 1:
        yield from map(_generate_block_task, tasks)
        return
    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork
    with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(_generate_block_task, tasks)
