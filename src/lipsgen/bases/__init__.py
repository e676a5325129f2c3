"""Bases: the noise ends of models beyond uniform phase space (docs/design.md, "Bases").

A base is an exact phase-space map from the unit hypercube (:class:`PhaseSpaceMap`); a z-space
model with a base learns in the base's Gaussianised chart (:class:`lipsgen.models.spaces.ChartSpace`),
so its untrained noise end is the base's own distribution on phase space.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..catalogue import BASE_HELP
from .chain import ChainMap
from .mixture import ChannelMixture, chain_mixture, chain_orderings, colour_orderings
from .protocol import PhaseSpaceMap
from .resonance import ResonanceMap

__all__ = ["PhaseSpaceMap", "ChainMap", "ResonanceMap", "ChannelMixture", "chain_mixture", "chain_orderings",
           "colour_orderings", "make_base", "BASE_HELP"]

def make_base(name: str, n_particles: int, sqrt_s: float, *, ycut: float = 0.0) -> PhaseSpaceMap:
    """The base ``name`` (``chain``, ``chains``, ``colour``, ``resonance``, or ``module:function`` for a user's
    base, called as ``function(n_particles=..., sqrt_s=..., ycut=...)``) for N particles at ``sqrt_s``."""
    if name == "chain":
        return ChainMap(n_particles, sqrt_s, ycut=ycut, fit_direction=True)
    if name in ("chains", "colour"):
        return chain_mixture(n_particles, sqrt_s, ycut=ycut, colour=name == "colour")
    if name == "resonance":
        return ResonanceMap(n_particles, sqrt_s, ycut=ycut)
    if ":" not in name:
        raise ValueError(f"unknown base {name!r}; choose from {', '.join(BASE_HELP)} or give MODULE:FUNCTION")
    module_name, _, function_name = name.partition(":")
    try:
        factory: Any = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"base {name!r}: cannot load {function_name} from {module_name} ({err})") from None
    base = factory(n_particles=n_particles, sqrt_s=sqrt_s, ycut=ycut)
    if not isinstance(base, PhaseSpaceMap):
        raise TypeError(f"base {name!r} returned a {type(base).__name__}, not a PhaseSpaceMap (lipsgen.bases)")
    if not 3 * n_particles - 4 <= base.dim <= 3 * n_particles or base.n_particles != n_particles:
        raise ValueError(f"base {name!r} maps {base.dim} random numbers to {base.n_particles} particles; "
                         f"{n_particles} particles need {3 * n_particles - 4} to {3 * n_particles}")
    return base
