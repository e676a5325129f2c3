"""Evaluation inputs: event files into checked events and their observables.

The first stage of ``evaluate``: the truth's description (target, labels), sample files read in
bounded memory and checked against the truth (energy, particle count), and the per-event
observables, computed in chunks. Metrics (``report``) and documents (``render``) work on what
this returns.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.errors import EventFileError
from ..io.formats import FILE_RTOL, recorded_masses
from ..io.subsample import FileSubsample, read_subsample
from ..kinematics import mass_squared
from ..targets import target_from_attributes
from ..targets.facts import facts_from_attributes
from ..validation import check_events
from .observables import Observable, event_observables, jet_observables

__all__ = ["EvaluationInputs", "describe_truth", "observables_of", "inside_support", "read_sample", "OBSERVABLE_CHUNK"]


@dataclass
class EvaluationInputs:
    """The files to evaluate (paths or strings): a truth file, sample files and a trajectory file."""

    truth: Path
    samples: list[Path] = field(default_factory=list)
    trajectory: Path | None = None

    def __post_init__(self) -> None:
        self.truth = Path(self.truth)
        self.samples = [Path(p) for p in self.samples]
        self.trajectory = None if self.trajectory is None else Path(self.trajectory)


def describe_truth(attributes: dict[str, Any], n_particles: int) -> tuple[str, bool, tuple[str, ...] | None]:
    facts = facts_from_attributes(attributes, n_particles)
    return facts.name, facts.labelled, facts.particle_names if facts.labelled else None


def _massive_observables(attributes: dict[str, Any], events: torch.Tensor, labelled: bool) -> list[Observable]:
    """Massive events: the pair invariant masses m_ij (labelled particles; where resonances show) and
    the target's own observables (e.g. top decay's W line shape), where it has them."""
    events = events.to(torch.float64)
    result = []
    if labelled:
        for a, b in itertools.combinations(range(events.shape[1]), 2):
            mass = mass_squared(events[:, a] + events[:, b]).clamp(min=0.0).sqrt()
            result.append(Observable(f"m_{a + 1}{b + 1}", f"m({a + 1}, {b + 1})", mass.numpy()))
    try:
        target = target_from_attributes(attributes)
    except (ValueError, TypeError):
        return result
    return result + [Observable(name, name.replace("_", " "), values.numpy())
                     for name, values in target.observables(events).items()]


def density_observable(target: str, attributes: dict[str, Any], events: torch.Tensor) -> Observable | None:
    """The target's own log-density (its matrix element) as an observable, where known in closed
    form and not trivially flat (uniform phase space)."""
    facts = facts_from_attributes(attributes, events.shape[1])
    if not facts.has_density or facts.name == "uniform":
        return None
    model = target_from_attributes(attributes)
    total = events[..., 0].sum(dim=1, keepdim=True)
    scaled = events * (model.sqrt_s / total).unsqueeze(-1)  # baselines: measure on the same scale
    with np.errstate(divide="ignore"):
        values = model.log_density(scaled).numpy()
    return Observable("log_density", f"log |M|^2 ({target}, normalised)", values)


# events per pass through the observables: their intermediates (pair invariants, sorts, hemisphere
# splits) take about 4 kB per event at N = 10, the results 0.5 kB
OBSERVABLE_CHUNK = 1 << 15


def observables_of(events: torch.Tensor, target: str, labelled: bool, names: tuple[str, ...] | None,
                   attributes: dict[str, Any]) -> list[Observable]:
    """Every observable of events (n, N, 4), computed ``OBSERVABLE_CHUNK`` events at a time."""
    parts = [observables_of_chunk(events[start:start + OBSERVABLE_CHUNK], target, labelled, names, attributes)
             for start in range(0, max(len(events), 1), OBSERVABLE_CHUNK)]
    return [replace(first, values=np.concatenate([part[i].values for part in parts]))
            for i, first in enumerate(parts[0])]


def observables_of_chunk(events: torch.Tensor, target: str, labelled: bool, names: tuple[str, ...] | None,
                         attributes: dict[str, Any]) -> list[Observable]:
    result = event_observables(events, labelled=labelled, names=names)
    if "n_jets" in attributes:  # clustered jets (lipsgen data pythia, convert --jets)
        result += jet_observables(events)
    if recorded_masses(attributes) is not None:
        result += _massive_observables(attributes, events, labelled)
    density = density_observable(target, attributes, events)
    return result + ([density] if density is not None else [])


def inside_support(observables: list[Observable]) -> np.ndarray | None:
    """Mask (n,) of events where the target's density is non-zero (e.g. qqg events above ycut), or
    None where the density is not known; a smooth model leaks across a hard cut."""
    density = next((o for o in observables if o.name == "log_density"), None)
    return None if density is None else ~np.isneginf(density.values)


def read_sample(path: Path, n_particles: int, target: str, sqrt_s: float, max_events: int | None,
                seed: int, masses: list[float] | None = None) -> FileSubsample:
    """A sample file, checked against the truth: its energy, its particle count and, with the truth's
    ``masses``, its mass shells (else: massless), at the files' precision."""
    def on_shell(events: torch.Tensor, name: str, energy: float) -> None:
        check_events(events, name, mass_rtol=FILE_RTOL, masses=masses)

    read = read_subsample(path, max_events, seed=seed, sqrt_s=sqrt_s, check=on_shell)
    events, attributes = read.events, read.attributes
    recorded = attributes.get("sqrt_s")
    # without the attribute, the events' own total energy (the baselines conserve it only roughly)
    energy = float(recorded) if recorded is not None else float(events[..., 0].sum(1).median())
    if not abs(energy - sqrt_s) <= (1e-9 if recorded is not None else 0.1) * sqrt_s:
        raise EventFileError(f"{path}: events at sqrt_s = {energy:.10g}, the truth is at {sqrt_s:.10g}; rescale one "
                             f"of them (lipsgen convert --to-cm --sqrt-s)")
    if events.shape[1] != n_particles:
        raise EventFileError(f"{path}: {events.shape[1]} particles, the truth has {n_particles}")
    if len(events) < 2:
        raise EventFileError(f"{path}: {len(events)} events; need at least 2 to compare with the truth")
    other = attributes.get("target")
    if other is not None and target != "unknown" and other != target:
        # e.g. uniform phase space (the noise end) against the data: a comparison users want
        warnings.warn(f"{path}: target {other!r}, the truth is {target!r}; comparing anyway", stacklevel=3)
    if read.all_weights is not None:
        w = read.all_weights
        if not bool((torch.isfinite(w) & (w >= 0)).all()):
            bad = int(torch.nonzero(~(torch.isfinite(w) & (w >= 0)))[0])
            raise EventFileError(f"{path}: event {bad} has weight {float(w[bad])!r}; histograms, W1 and the "
                                 f"classifier need finite non-negative weights (unweight the events first, or "
                                 f"split a sample with negative weights into its positive and negative parts)")
    return read
