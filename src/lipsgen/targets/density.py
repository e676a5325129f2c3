"""Target densities for event weights: a registered target's closed form, or a user's callable.

A density is anything with ``name``, ``density_normalised`` and ``log_density(events)``: events
(n, N, 4) float64 to the log-density (n,) on phase space (measure of docs/design.md, Conventions),
normalised or not. A user's ``module:function`` returns ``log |M|^2`` (n,), unnormalised.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import LipsgenError

__all__ = ["Density", "CallableDensity", "load_density", "checked_log_density"]


class Density(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def density_normalised(self) -> bool | None: ...

    def log_density(self, events: Tensor) -> Tensor: ...


class DensityError(LipsgenError, ValueError):
    """A target density that cannot be used for weights (missing, or bad values)."""


def checked_log_density(density: Density, events: Tensor) -> Tensor:
    """``density.log_density(events)`` as (n,) float64, refused (naming the density and the first bad
    event) when it has the wrong shape, is NaN or is +inf; -inf (zero density) is allowed."""
    try:
        value = density.log_density(events)
    except NotImplementedError as err:
        raise DensityError(str(err)) from None
    value = torch.as_tensor(value)
    if value.shape != (events.shape[0],):
        raise DensityError(f"density {density.name}: returned shape {tuple(value.shape)} for {events.shape[0]} "
                           f"events; expected ({events.shape[0]},)")
    value = value.to(torch.float64)
    bad = torch.isnan(value) | (value == math.inf)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise DensityError(f"density {density.name}: log-density is {float(value[first])} at event {first} "
                           f"(NaN and +inf are not densities)")
    return value


class CallableDensity:
    """A user's log |M|^2 as a Python callable on events (n, N, 4) float64, returning (n,)."""

    density_normalised = False

    def __init__(self, function: Callable[[Tensor], Any], name: str) -> None:
        self.function, self.name = function, name

    def log_density(self, events: Tensor) -> Tensor:
        value = self.function(events)
        return torch.as_tensor(value, dtype=torch.float64)


def load_density(spec: str) -> CallableDensity:
    """``module:function`` (the module importable, e.g. on PYTHONPATH) as a density."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise DensityError(f"density {spec!r}: give it as module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise DensityError(f"density {spec!r}: cannot import {module_name!r} ({err})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DensityError(f"density {spec!r}: {module_name} has no function {function_name!r}")
    return CallableDensity(function, spec)
