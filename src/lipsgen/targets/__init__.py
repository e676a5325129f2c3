"""Training targets with known truth (docs/design.md, Targets): exact, seeded, streamed in chunks."""

import inspect
from typing import Any

from .antenna import Antenna
from .base import DEFAULT_CHUNK_SIZE, Target, random_permutations
from .muon import MuonDecay
from .qqg import QQG
from .sarge import Sarge, antenna
from .top import TopDecay, top_observables
from .uniform import Uniform, uniform_phase_space

TARGETS: dict[str, type[Target]] = {"uniform": Uniform, "muon": MuonDecay, "qqg": QQG, "sarge": Sarge,
                                   "antenna": Antenna, "top": TopDecay}


def make_target(name: str, **parameters: Any) -> Target:
    """Build a target by name with its parameters (as stored in event-file attributes)."""
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    return TARGETS[name](**parameters)


def target_from_attributes(attributes: dict[str, Any]) -> Target:
    """Rebuild the target an event file (or a model's training data) was drawn from, from its
    recorded attributes (``target`` and the target's parameters)."""
    name = str(attributes.get("target", "unknown"))
    if name not in TARGETS:
        raise ValueError(f"no known target recorded (target {name!r}); choose from {', '.join(TARGETS)}")
    accepted = inspect.signature(TARGETS[name]).parameters
    return make_target(name, **{k: v for k, v in attributes.items() if k in accepted and k != "shuffle"})


__all__ = [
    "Antenna", "DEFAULT_CHUNK_SIZE", "QQG", "TARGETS", "MuonDecay", "Sarge", "Target", "TopDecay", "Uniform", "antenna",
    "make_target", "random_permutations", "target_from_attributes", "top_observables", "uniform_phase_space",
]
