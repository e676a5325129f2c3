"""Massive phase space from massless events: the massive RAMBO map, its inverse and its weight.

docs/design.md, "Massive phase space". A massless CM event ``k`` (n, N, 4) at ``sqrt_s`` becomes a
massive one ``p_i = (sqrt(m_i^2 + xi^2 |k_i|^2), xi k_i)`` with the common scale ``xi`` in (0, 1]
solving ``sum_i sqrt(m_i^2 + xi^2 |k_i|^2) = sqrt_s``. Momentum is conserved because the massless
event conserves it (``sum xi k_i = xi sum k_i``), energy because xi solves the equation, and every
particle is on its mass shell because its energy is computed from it. The map pushes the uniform
massless law forward to the massive law with density ``1 / (V_0 W)``, where

    W = dPhi_m / dPhi_0 = xi^(2N-3) sqrt_s (prod_i |p_i| / E_i) / (sum_i |p_i|^2 / E_i)

(derivation in docs/design.md), and ``W <= xi^(2N-4) <= 1``: uniform massive events are uniform
massless ones mapped and kept with probability W. The inverse needs no solve: ``xi = sum_i |p_i| /
sqrt_s`` because the massless energies sum to sqrt_s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "MassiveResult",
    "check_masses",
    "massive_from_massless",
    "massive_scale",
    "massless_from_massive",
    "log_massive_weight",
]

# Newton from the right of the root of a convex increasing function decreases monotonically; in
# floating point it stalls within an ulp or two after a handful of steps. Near threshold (the
# masses summing to almost sqrt_s) the slope at the root vanishes and convergence becomes linear:
# events still moving after this many steps are finished by bisection.
_NEWTON_STEPS = 60
_BISECTION_STEPS = 200


class MassiveResult(NamedTuple):
    """``events`` (n, N, 4) massive, ``xi`` (n,) the scale, ``log_weight`` (n,) ``log W``."""

    events: Tensor
    xi: Tensor
    log_weight: Tensor


def check_masses(masses: Sequence[float] | Tensor, n_particles: int, sqrt_s: float,
                 name: str = "masses") -> tuple[float, ...]:
    """``masses`` as a tuple of N floats, each finite and >= 0, summing to less than ``sqrt_s``."""
    values = tuple(float(m) for m in (masses.tolist() if isinstance(masses, Tensor) else masses))
    if len(values) != n_particles:
        raise ValueError(f"{name}: expected {n_particles} masses (one per particle), got {len(values)}")
    for i, m in enumerate(values):
        if not (m == m and 0 <= m < float("inf")):
            raise ValueError(f"{name}: particle {i} has mass {m!r}; masses must be finite and >= 0")
    if sum(values) >= sqrt_s:
        raise ValueError(f"{name}: the masses sum to {sum(values):.6g} >= sqrt_s = {sqrt_s:.6g}: "
                         f"no phase space is left")
    return values


def massive_scale(momenta: Tensor, masses: Tensor, sqrt_s: float) -> Tensor:
    """The scale xi (n,) solving ``sum_i sqrt(m_i^2 + xi^2 |k_i|^2) = sqrt_s``.

    ``momenta`` (n, N) are the massless magnitudes ``|k_i|`` (summing to sqrt_s), ``masses`` (N,).
    Newton's method from ``xi_0 = sqrt(1 - (sum m / sqrt_s)^2)``, which lies right of the root
    (Minkowski's inequality), so the iterates fall monotonically onto it; events it has not settled
    after 60 steps (near threshold) are finished by bisection. Not differentiated.
    """
    with torch.no_grad():
        mass2 = masses.square()
        total_mass = float(masses.sum())
        xi = torch.full(momenta.shape[:1], (1 - (total_mass / sqrt_s) ** 2) ** 0.5,
                        dtype=momenta.dtype, device=momenta.device)
        k2 = momenta.square()
        active = torch.arange(len(xi), device=xi.device)  # events Newton still moves
        for _ in range(_NEWTON_STEPS):
            x, k2_active = xi[active], k2[active]
            energy = torch.sqrt(mass2 + x[:, None].square() * k2_active)
            excess = energy.sum(dim=1) - sqrt_s
            slope = (x[:, None] * k2_active / energy).sum(dim=1)
            step = torch.where(slope > 0, excess / slope, torch.zeros_like(excess))
            new = torch.minimum(x - step.clamp(min=0), x)
            moved = new < x
            xi[active] = new
            active = active[moved]
            if len(active) == 0:
                return xi
        # Bisection on [0, xi] for the stragglers: the root lies there, f(0) < 0 <= f(xi).
        low, high = torch.zeros_like(xi[active]), xi[active]
        k2_slow = k2[active]
        for _ in range(_BISECTION_STEPS):
            middle = (low + high) / 2
            if bool(((middle == low) | (middle == high)).all()):
                break
            above = torch.sqrt(mass2 + middle[:, None].square() * k2_slow).sum(dim=1) >= sqrt_s
            high = torch.where(above, middle, high)
            low = torch.where(above, low, middle)
        xi[active] = high
        return xi


def log_massive_weight(events: Tensor, xi: Tensor, sqrt_s: float) -> Tensor:
    """``log W`` (n,), ``W = dPhi_m / dPhi_0``, at massive events (n, N, 4) with scale xi (n,).

    ``-inf`` where a massive particle is exactly at rest (a set of measure zero)."""
    n_particles = events.shape[1]
    momentum = torch.linalg.vector_norm(events[..., 1:], dim=-1)
    energy = events[..., 0]
    return ((2 * n_particles - 3) * torch.log(xi) + torch.log(momentum / energy).sum(dim=1)
            + torch.log(torch.as_tensor(sqrt_s, dtype=events.dtype))
            - torch.log((momentum.square() / energy).sum(dim=1)))


def massive_from_massless(events: Tensor, masses: Sequence[float] | Tensor, sqrt_s: float) -> MassiveResult:
    """Massive events (n, N, 4) with masses (N,) from massless CM events (n, N, 4) at ``sqrt_s``.

    Every output particle has ``E^2 - |p|^2 = m^2`` and every event ``sum p = (sqrt_s, 0)`` to
    rounding when the input conserves momentum to rounding. Massless particles keep their momentum
    scaled by xi. Returns the events, xi (n,) and ``log W`` (n,) (module docstring).
    """
    mass = torch.as_tensor(masses, dtype=events.dtype, device=events.device)
    momentum = events[..., 1:]
    magnitude = torch.linalg.vector_norm(momentum, dim=-1)
    xi = massive_scale(magnitude, mass, sqrt_s)
    scaled = xi[:, None, None] * momentum
    energy = torch.sqrt(mass.square() + scaled.square().sum(dim=-1))
    massive = torch.cat([energy.unsqueeze(-1), scaled], dim=-1)
    return MassiveResult(massive, xi, log_massive_weight(massive, xi, sqrt_s))


def massless_from_massive(events: Tensor, sqrt_s: float) -> tuple[Tensor, Tensor]:
    """The massless CM events (n, N, 4) at ``sqrt_s`` that :func:`massive_from_massless` maps onto
    the massive events (n, N, 4), and the scale xi (n,): ``k_i = p_i / xi`` with ``xi = sum_i
    |p_i| / sqrt_s``, ``E(k_i) = |k_i|``. No solve, exact up to rounding."""
    momentum = events[..., 1:]
    magnitude = torch.linalg.vector_norm(momentum, dim=-1)
    xi = magnitude.sum(dim=1) / sqrt_s
    massless = momentum / xi[:, None, None]
    energy = magnitude / xi[:, None]
    return torch.cat([energy.unsqueeze(-1), massless], dim=-1), xi
