"""Per-target facts read from a target class or from an event file's attributes.

Everything that depends on which process produced the events (whether particle order carries
meaning, the particles' PDG ids and names, whether a closed-form density exists) is declared on the
target classes and looked up here, so the CLI, the evaluation and the LHE writer agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Target

__all__ = ["TargetFacts", "facts_from_attributes", "PDG_NAMES"]

PDG_NAMES = {1: "d", -1: "d~", 2: "u", -2: "u~", 3: "s", -3: "s~", 4: "c", -4: "c~", 5: "b", -5: "b~",
             11: "e-", -11: "e+", 12: "nu_e", -12: "anti-nu_e", 13: "mu-", -13: "mu+", 14: "nu_mu",
             -14: "anti-nu_mu", 21: "g", 22: "gamma"}


@dataclass(frozen=True)
class TargetFacts:
    """``name``: the target (or ``unknown``); ``labelled``: particle i means the same particle in
    every event; ``pdg_ids`` and ``particle_names`` (N,); ``has_density``: a closed-form density
    on phase space exists (``Target.log_density``)."""

    name: str
    labelled: bool
    pdg_ids: tuple[int, ...]
    particle_names: tuple[str, ...]
    has_density: bool


def _target_class(name: str) -> type[Target] | None:
    from . import TARGETS  # the registry imports every target module

    return TARGETS.get(name)


def facts_from_attributes(attributes: dict[str, Any], n_particles: int) -> TargetFacts:
    """Facts of the target named in an event file's ``attributes`` (``target``, ``permuted``,
    ``pdg_ids``), for events of ``n_particles`` particles. Unknown targets (a user's own events)
    are unlabelled, with the file's PDG ids if it has them, else photons."""
    name = str(attributes.get("target", "unknown"))
    cls = _target_class(name)
    recorded = tuple(int(i) for i in (attributes.get("pdg_ids") or ()))
    if cls is not None:
        pdg_ids = cls.pdg_ids_for(n_particles)
    else:
        pdg_ids = recorded if len(recorded) == n_particles else (22,) * n_particles
    labelled = cls is not None and cls.labelled and not bool(attributes.get("permuted", False))
    names = tuple(PDG_NAMES.get(i, str(i)) for i in pdg_ids)
    return TargetFacts(name, labelled, pdg_ids, names, cls is not None and cls.density_normalised is not None)
