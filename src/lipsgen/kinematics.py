"""Four-vector algebra for massless events.

Conventions (docs/design.md, Conventions): events are tensors (n_events, n_particles, 4) ordered (E, px, py, pz),
metric (+,-,-,-), energies in units where the total energy is ``sqrt_s``. Every function here is
batched, differentiable and device/dtype-agnostic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "minkowski_dot",
    "min_pair_invariant",
    "sorted_by_energy",
    "mass_squared",
    "energies",
    "three_to_four",
    "four_to_three",
    "boost",
    "pair_invariants",
    "scaled_pair_invariants",
    "phase_space_volume",
]


def minkowski_dot(p: Tensor, k: Tensor) -> Tensor:
    """Minkowski product ``p·k = p0 k0 - p_vec·k_vec`` over the last axis (size 4)."""
    return p[..., 0] * k[..., 0] - (p[..., 1:] * k[..., 1:]).sum(dim=-1)


def mass_squared(p: Tensor) -> Tensor:
    """Invariant mass squared ``p·p`` over the last axis (size 4)."""
    return minkowski_dot(p, p)


def energies(events: Tensor) -> Tensor:
    """Energies (n_events, n_particles) of events (n_events, n_particles, 4)."""
    return events[..., 0]


def three_to_four(momenta: Tensor) -> Tensor:
    """Massless four-vectors (..., 4) with ``E = |p|`` from 3-momenta (..., 3)."""
    energy = torch.linalg.vector_norm(momenta, dim=-1, keepdim=True)
    return torch.cat([energy, momenta], dim=-1)


def four_to_three(events: Tensor) -> Tensor:
    """3-momenta (..., 3) of four-vectors (..., 4); the energy is dropped."""
    return events[..., 1:]


def boost(p: Tensor, b: Tensor) -> Tensor:
    """Lorentz boost of four-vectors ``p`` (n, N, 4) by ``b`` (n, 3), the spatial four-velocity.

    ``b = gamma * beta``, ``gamma = sqrt(1 + |b|^2)``, ``a = 1 / (1 + gamma)``:
    ``p0' = gamma p0 + b·p``, ``p' = p + b p0 + a (b·p) b``. ``boost(boost(p, b), -b) == p``.
    """
    gamma = torch.sqrt(1 + (b * b).sum(dim=-1, keepdim=True))  # (n, 1)
    a = 1 / (1 + gamma)
    b = b.unsqueeze(1)  # (n, 1, 3)
    bp = (b * p[..., 1:]).sum(dim=-1, keepdim=True)  # (n, N, 1)
    e = gamma.unsqueeze(1) * p[..., :1] + bp
    vec = p[..., 1:] + b * p[..., :1] + a.unsqueeze(1) * bp * b
    return torch.cat([e, vec], dim=-1)


def pair_invariants(events: Tensor) -> Tensor:
    """``s_ij = (p_i + p_j)^2 = 2 p_i·p_j`` for massless particles, shape (n, N, N), zero diagonal.

    Computed as ``2 E_i E_j (1 - cos theta_ij)`` with ``1 - cos = |n_i - n_j|^2 / 2`` so that
    small (collinear) invariants keep full relative precision.
    """
    energy = events[..., 0]
    momentum = events[..., 1:]
    norm = torch.linalg.vector_norm(momentum, dim=-1, keepdim=True)
    direction = momentum / torch.where(norm > 0, norm, torch.ones_like(norm))
    diff = direction.unsqueeze(2) - direction.unsqueeze(1)
    one_minus_cos = 0.5 * (diff * diff).sum(dim=-1)
    return 2 * energy.unsqueeze(2) * energy.unsqueeze(1) * one_minus_cos


def scaled_pair_invariants(events: Tensor, sqrt_s: float | None = None) -> Tensor:
    """``y_ij = s_ij / s`` (n, N, N); ``s`` is taken per event from the total energy if not given."""
    if sqrt_s is None:
        return pair_invariants(events) / events[..., 0].sum(dim=1).square().reshape(-1, 1, 1)
    return pair_invariants(events) / sqrt_s**2


def phase_space_volume(n_particles: int, sqrt_s: float = 1.0) -> float:
    """Volume of massless N-body phase space with ``dPhi = prod d^3p/(2E) delta^4(P - sum p)``.

    No factors of 2 pi: ``V_N = (pi/2)^(N-1) s^(N-2) / ((N-1)! (N-2)!)``, N >= 2.
    """
    if not isinstance(n_particles, int) or n_particles < 2:
        raise ValueError(f"n_particles must be an integer >= 2, got {n_particles!r}")
    s = sqrt_s**2
    return (
        (math.pi / 2) ** (n_particles - 1)
        * s ** (n_particles - 2)
        / (math.factorial(n_particles - 1) * math.factorial(n_particles - 2))
    )


def sorted_by_energy(events: Tensor) -> Tensor:
    """The particles of every event (n, N, 4) in decreasing energy (stable for ties): the canonical
    order of unlabelled particles."""
    order = torch.argsort(events[..., 0], dim=1, descending=True, stable=True)
    return torch.take_along_dim(events, order.unsqueeze(-1), dim=1)


def min_pair_invariant(events: Tensor, sqrt_s: float | None = None) -> Tensor:
    """``min_{i<j} y_ij`` (n,) of events (n, N, 4), with ``y_ij = s_ij / s`` (see
    :func:`scaled_pair_invariants`): the resolution a pairwise cut ``y_ij > ycut`` acts on."""
    n_particles = events.shape[1]
    pairs = torch.triu_indices(n_particles, n_particles, 1, device=events.device)
    return scaled_pair_invariants(events, sqrt_s)[:, pairs[0], pairs[1]].min(dim=1).values
