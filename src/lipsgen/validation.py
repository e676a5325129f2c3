"""Input checks that turn bad tensors into a ``ValueError`` naming what is wrong and where.

Every public function that accepts events or q-space momenta runs these checks first, so no
malformed input silently propagates to NaN. Messages name the argument, the first offending event
(and particle) and the tolerance applied.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import Tensor

from .kinematics import mass_shell_offsets

__all__ = [
    "check_known_fields",
    "check_threevectors",
    "check_events",
    "check_positive",
    "check_nonzero_vectors",
    "default_mass_rtol",
    "default_cm_rtol",
]


def _first_event(mask: Tensor) -> tuple[int, ...]:
    """Index (event, particle, ...) of the first True entry of ``mask``."""
    flat = int(torch.nonzero(mask.reshape(-1), as_tuple=False)[0, 0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), mask.shape))


def _where(index: tuple[int, ...]) -> str:
    parts = [f"event {index[0]}"]
    if len(index) > 1:
        parts.append(f"particle {index[1]}")
    return ", ".join(parts)


def default_mass_rtol(dtype: torch.dtype) -> float:
    """Relative tolerance on ``|E - |p|| / E`` for a particle to count as massless."""
    return max(1e-9, 1e4 * torch.finfo(dtype).eps)


def default_cm_rtol(dtype: torch.dtype) -> float:
    """Relative tolerance (in units of sqrt_s) on total energy and 3-momentum of an event."""
    return max(1e-9, 1e4 * torch.finfo(dtype).eps)


def _check_tensor(x: object, name: str, last_dim: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[-1] != last_dim:
        raise ValueError(
            f"{name}: expected shape (n_events, n_particles, {last_dim}), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if x.shape[1] < 2:
        raise ValueError(f"{name}: need at least 2 particles per event, got {x.shape[1]}")
    bad = ~torch.isfinite(x).all(dim=-1)
    if bad.any():
        raise ValueError(f"{name}: {_where(_first_event(bad))} has a NaN or infinite component")
    return x


def check_threevectors(q: Tensor, name: str = "q") -> Tensor:
    """Check ``q`` of shape (n_events, n_particles, 3): rank, size, at least 2 particles, finite."""
    return _check_tensor(q, name, 3)


def check_events(
    events: Tensor,
    name: str = "events",
    *,
    massless: bool = True,
    masses: tuple[float, ...] | list[float] | None = None,
    sqrt_s: float | None = None,
    mass_rtol: float | None = None,
    cm_rtol: float | None = None,
) -> Tensor:
    """Check four-momenta of shape (n_events, n_particles, 4), order (E, px, py, pz).

    Always: rank, last dimension 4, at least 2 particles, finite, E >= 0.
    ``massless``: every particle has ``|E - |p|| <= mass_rtol * E``. ``masses`` (N,) given instead:
    every particle is on its mass shell, ``|E^2 - |p|^2 - m_i^2| <= mass_rtol * E^2`` (this replaces
    the massless check).
    ``sqrt_s`` given: every event is in its CM frame at that energy, ``|sum E - sqrt_s|`` and
    ``|sum p|`` both ``<= cm_rtol * sqrt_s``.
    """
    _check_tensor(events, name, 4)
    energy = events[..., 0]
    negative = energy < 0
    if negative.any():
        idx = _first_event(negative)
        raise ValueError(
            f"{name}: {_where(idx)} has negative energy {float(energy[idx]):.6g}"
        )
    if masses is not None:
        _check_mass_shells(events, masses, name, mass_rtol)
    elif massless:
        rtol = default_mass_rtol(events.dtype) if mass_rtol is None else mass_rtol
        momentum = torch.linalg.vector_norm(events[..., 1:], dim=-1)
        off_shell = (energy - momentum).abs() > rtol * energy
        if off_shell.any():
            idx = _first_event(off_shell)
            e, p = float(energy[idx]), float(momentum[idx])
            raise ValueError(
                f"{name}: {_where(idx)} is not massless: E = {e:.10g}, |p| = {p:.10g} "
                f"(relative tolerance {rtol:.1e}); lipsgen handles massless final states only"
            )
    if sqrt_s is not None:
        check_positive(sqrt_s, "sqrt_s")
        rtol = default_cm_rtol(events.dtype) if cm_rtol is None else cm_rtol
        total = events.sum(dim=1)
        energy_off = (total[:, 0] - sqrt_s).abs()
        momentum_off = torch.linalg.vector_norm(total[:, 1:], dim=-1)
        bad = (energy_off > rtol * sqrt_s) | (momentum_off > rtol * sqrt_s)
        if bad.any():
            i = int(torch.nonzero(bad)[0, 0])
            raise ValueError(
                f"{name}: event {i} is not in its centre-of-momentum frame at sqrt_s = {sqrt_s:g}: "
                f"sum E = {float(total[i, 0]):.12g}, |sum p| = {float(momentum_off[i]):.3g} "
                f"(relative tolerance {rtol:.1e}); boost it with lipsgen.to_cm_frame (on the command line: "
                f"lipsgen convert IN OUT --to-cm)"
            )
    return events


def _check_mass_shells(events: Tensor, masses: tuple[float, ...] | list[float], name: str,
                       mass_rtol: float | None) -> None:
    if len(masses) != events.shape[1]:
        raise ValueError(f"{name}: {len(masses)} masses for {events.shape[1]} particles")
    rtol = default_mass_rtol(events.dtype) if mass_rtol is None else mass_rtol
    off_shell = mass_shell_offsets(events, masses) > rtol
    if off_shell.any():
        idx = _first_event(off_shell)
        invariant = float(events[idx][0].square() - events[idx][1:].square().sum())
        raise ValueError(f"{name}: {_where(idx)} is off its mass shell: E^2 - |p|^2 = {invariant:.10g}, "
                         f"m^2 = {float(masses[idx[1]]) ** 2:.10g} (relative tolerance {rtol:.1e} of E^2)")


def check_positive(value: float | Tensor, name: str) -> None:
    """Raise unless ``value`` (scalar or tensor) is finite and > 0 everywhere."""
    if isinstance(value, Tensor):
        bad = ~(torch.isfinite(value) & (value > 0))
        if bad.any():
            idx = _first_event(bad) if bad.ndim else ()
            where = f" at {_where(idx)}" if idx else ""
            raise ValueError(f"{name} must be finite and > 0{where}, got {float(value[idx]):.6g}")
        return
    if not (isinstance(value, (int, float)) and value == value and 0 < value < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_nonzero_vectors(q: Tensor, reason: str, name: str = "q") -> Tensor:
    """Raise if a particle of q (n, N, 3) is the zero vector; returns the norms |q| (n, N)."""
    r = torch.linalg.vector_norm(q, dim=-1)
    zero = r == 0
    if zero.any():
        raise ValueError(f"{name}: {_where(_first_event(zero))} is the zero vector, {reason}")
    return r


def check_known_fields(cls: type, values: dict[str, Any], what: str,
                       error: type[Exception] = ValueError) -> None:
    """Refuse a stored config ``values`` (a dict) with fields the dataclass ``cls`` does not have
    (written by a newer lipsgen), naming them; ``what`` names the config in the message."""
    unknown = sorted(set(values) - {f.name for f in fields(cls)})
    if unknown:
        raise error(f"{what} has unknown fields {unknown}: written by a newer lipsgen?")
