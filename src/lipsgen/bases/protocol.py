"""What a base is: an exact phase-space sampler from the unit hypercube, with its density and inverse.

A base (docs/design.md, "Bases") maps the open unit hypercube ``(0, 1)^d`` onto massless N-particle
phase space at ``sqrt_s`` (or onto the part of it a cut leaves), so that uniform ``u`` gives events
with a known density ``g`` on phase space (with respect to lipsgen's dPhi, no factors of 2 pi). A
bijection has ``d = 3N - 4`` and ``g(p) = 1 / w_M(u)``, ``w_M = dPhi/du`` its Jacobian; a mixture of
channels spends one more coordinate on the channel and has ``g = sum_c alpha_c g_c``. A user's base
is any object with this interface (``--base module:function``, where
``function(n_particles=, sqrt_s=, ycut=)`` returns it).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["PhaseSpaceMap"]


@runtime_checkable
class PhaseSpaceMap(Protocol):
    """An exact phase-space sampler from the unit hypercube; tensors float64.

    - ``dim``: the number of hypercube coordinates, 3N - 4 for a bijection, at most 3N.
    - ``forward(u)``: u (n, dim) in (0, 1) -> events (n, N, 4) in the CM frame at ``sqrt_s`` and
      ``log g`` (n,) at them: the density of the events that uniform u give, on phase space.
    - ``inverse(events, generator)``: events (n, N, 4) -> u (n, dim) that ``forward`` maps back to
      the events and ``log g`` (n,) at them. Where several u give the same event (a mixture's
      channels), u is drawn from their conditional law given the event with ``generator``. Events
      outside the base's support give u = NaN and ``log g = -inf``.
    - optionally ``events(u)``: ``forward(u)[0]`` alone, for maps whose density costs more than
      their events (a mixture's); decoding model states uses it when present.
    - ``parameters()``: the JSON-serialisable parameters that rebuild the map (checkpoints), and
      ``load_parameters(values)`` restores them; ``fit(events, weights)`` sets them from data
      (maximum likelihood), or does nothing for a map without free parameters.
    """

    n_particles: int
    sqrt_s: float

    @property
    def dim(self) -> int: ...

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]: ...

    def inverse(self, events: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]: ...

    def parameters(self) -> dict[str, Any]: ...

    def load_parameters(self, values: dict[str, Any]) -> None: ...

    def fit(self, events: Tensor, weights: Tensor | None = None) -> None: ...
