"""What a base is: an exact phase-space map from the unit hypercube with its Jacobian and inverse.

A base (docs/design.md, "Bases") is a bijection ``M`` from the open unit hypercube ``(0, 1)^d``,
``d = 3N - 4``, onto massless N-particle phase space at ``sqrt_s`` (or onto the part of it a cut
leaves), with its weight ``w_M(u) = dPhi / du`` in lipsgen's convention (no factors of 2 pi).
Uniform ``u`` gives events with density ``1 / w_M`` on phase space; a model that transports ``u``
gives density ``g_U(u) / w_M(u)``. A user's base is any object with this interface (pass
``--base module:function``, where ``function(n_particles, sqrt_s, **options)`` returns it).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["PhaseSpaceMap"]


@runtime_checkable
class PhaseSpaceMap(Protocol):
    """An exact, invertible phase-space map; tensors float64.

    - ``forward(u)``: u (n, d) in (0, 1) -> events (n, N, 4) in the CM frame at ``sqrt_s`` and
      ``log w_M(u)`` (n,), with ``w_M = dPhi/du`` (lipsgen's measure, energies in the unit of sqrt_s).
    - ``inverse(events)``: events (n, N, 4) -> u (n, d) and ``log w_M(u)`` (n,), the same weight as
      the forward map at that u. Events outside the map's support give u = NaN and weight -inf.
    - ``parameters()``: the JSON-serialisable parameters that rebuild the map (checkpoints), and
      ``load_parameters(values)`` restores them; ``fit(events)`` sets them from data (maximum
      likelihood), or does nothing for a map without free parameters.
    """

    n_particles: int
    sqrt_s: float

    @property
    def dim(self) -> int: ...

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]: ...

    def inverse(self, events: Tensor) -> tuple[Tensor, Tensor]: ...

    def parameters(self) -> dict[str, Any]: ...

    def load_parameters(self, values: dict[str, Any]) -> None: ...

    def fit(self, events: Tensor, weights: Tensor | None = None) -> None: ...
