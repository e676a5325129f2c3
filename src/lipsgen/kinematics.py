"""Four-vector algebra for massless events.

Conventions (docs/design.md, Conventions): events are tensors (n_events, n_particles, 4) ordered (E, px, py, pz),
metric (+,-,-,-), energies in units where the total energy is ``sqrt_s``. Every function here is
batched, differentiable and device/dtype-agnostic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
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
    "two_body_momentum",
    "two_step_decay",
    "mass_shell_offsets",
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


def phase_space_volume(n_particles: int, sqrt_s: float = 1.0, masses: Sequence[float] | None = None) -> float:
    """Volume of N-body phase space with ``dPhi = prod d^3p/(2E) delta^4(P - sum p)``.

    No factors of 2 pi. Massless: ``V_N = (pi/2)^(N-1) s^(N-2) / ((N-1)! (N-2)!)``, N >= 2. With
    ``masses`` (N,) not all zero: ``V_2 = pi lambda^(1/2)(s, m1^2, m2^2) / (2 s)`` in closed form, and
    for N >= 3 the recursion ``V_N(M) = int dQ^2 V_2(M; m_1, Q) V_(N-1)(Q; m_2..m_N)`` by adaptive
    Gauss-Legendre quadrature (relative accuracy about 1e-13), heaviest particles first so that the inner
    volumes become massless (closed form) as early as possible; at most 6 massive particles.
    """
    if not isinstance(n_particles, int) or n_particles < 2:
        raise ValueError(f"n_particles must be an integer >= 2, got {n_particles!r}")
    if masses is not None and any(m != 0 for m in masses):
        if len(masses) != n_particles:
            raise ValueError(f"masses: expected {n_particles} values, got {len(masses)}")
        if sum(masses) >= sqrt_s:
            raise ValueError(f"masses sum to {sum(masses):.6g} >= sqrt_s = {sqrt_s:.6g}: no phase space")
        return _massive_volume(sorted((float(m) for m in masses), reverse=True), float(sqrt_s))
    s = sqrt_s**2
    return (
        (math.pi / 2) ** (n_particles - 1)
        * s ** (n_particles - 2)
        / (math.factorial(n_particles - 1) * math.factorial(n_particles - 2))
    )


def two_body_momentum(sqrt_s: float, m1: float, m2: float) -> float:
    """``|p|`` of either particle of a two-body state of masses m1, m2 in its rest frame at
    ``sqrt_s``: ``lambda^(1/2)(s, m1^2, m2^2) / (2 sqrt_s)``, 0 at or below threshold."""
    return float(_two_body_momenta(np.array([sqrt_s], dtype=np.float64), m1, m2)[0])


def _two_body_momenta(energy: np.ndarray, m1: float, m2: float) -> np.ndarray:
    product = (energy - m1 - m2) * (energy + m1 + m2) * (energy - m1 + m2) * (energy + m1 - m2)
    return np.sqrt(np.maximum(product, 0.0)) / (2 * energy)


# Gauss-Legendre nodes per level of the volume recursion, by the number of levels: the substitution
# Q = low + (high - low) sin^2(theta) makes both threshold square roots analytic, so the rule
# converges exponentially (these reach about 1e-13; tests/test_massive.py checks closed forms).
_VOLUME_NODES = {1: 96, 2: 64, 3: 40, 4: 24, 5: 16}


def _massive_volume(masses: list[float], sqrt_s: float) -> float:
    levels = sum(1 for m in masses if m > 0)
    if levels - 1 > max(_VOLUME_NODES):
        raise ValueError(f"the volume of phase space with {levels} massive particles is not implemented "
                         f"(at most {max(_VOLUME_NODES) + 1}); sampling it does not need the volume")
    nodes = _VOLUME_NODES.get(max(levels - 1, 1), 16)
    theta, weights = np.polynomial.legendre.leggauss(nodes)
    theta, weights = (theta + 1) * math.pi / 4, weights * math.pi / 4  # on [0, pi/2]
    return float(_volumes(masses, np.array([sqrt_s], dtype=np.float64), theta, weights)[0])


def _volumes(masses: list[float], energy: np.ndarray, theta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Volumes (len(energy),) of phase space of particles ``masses`` (heaviest first) in their rest
    frame at each total energy."""
    n = len(masses)
    if not any(masses):
        factor = (math.pi / 2) ** (n - 1) / (math.factorial(n - 1) * math.factorial(n - 2))
        return factor * energy ** (2 * (n - 2))
    if n == 2:
        return math.pi * _two_body_momenta(energy, *masses) / energy
    first, rest = masses[0], masses[1:]
    low = sum(rest)
    width = energy[:, None] - first - low  # (E, 1)
    sin2 = np.sin(theta) ** 2  # (nodes,)
    q = low + width * sin2  # (E, nodes): the rest's invariant mass
    dq = width * np.sin(2 * theta)  # dQ/dtheta
    inner = _volumes(rest, q.ravel(), theta, weights).reshape(q.shape)
    outer = math.pi * _two_body_momenta(np.broadcast_to(energy[:, None], q.shape), first, q) / energy[:, None]
    return (weights * 2 * q * dq * outer * inner).sum(axis=1)  # dQ^2 = 2 Q dQ


def two_step_decay(sqrt_s: float, first_mass: float, pair_mass2: Tensor, first_direction: Tensor,
                   decay_direction: Tensor) -> tuple[Tensor, Tensor]:
    """Three-body events (n, 3, 4) in the CM frame at ``sqrt_s``: particle 1 (mass ``first_mass``)
    along the unit vectors ``first_direction`` (n, 3), recoiling against a pair of invariant mass
    squared ``pair_mass2`` (n,) that decays into two massless particles, particle 2 along the unit
    vectors ``decay_direction`` (n, 3) in the pair's rest frame (reached by the pure boost), particle 3
    opposite. Returns the events and particle 1's momentum p* (n,)."""
    s, m2 = sqrt_s**2, first_mass**2
    p_star = torch.sqrt(((s - pair_mass2 - m2).square() - 4 * pair_mass2 * m2).clamp(min=0)) / (2 * sqrt_s)
    first_momentum = p_star[:, None] * first_direction
    first = torch.cat([torch.sqrt(m2 + p_star.square())[:, None], first_momentum], dim=-1)
    half = (pair_mass2.clamp(min=0).sqrt() / 2)[:, None]
    pair = torch.stack([torch.cat([half, half * decay_direction], -1),
                        torch.cat([half, -half * decay_direction], -1)], dim=1)
    pair_mass = torch.where(pair_mass2 > 0, pair_mass2.clamp(min=0).sqrt(), torch.ones_like(pair_mass2))
    pair = boost(pair, -first_momentum / pair_mass[:, None])  # the pair moves against particle 1
    # massless to rounding: the boost's rounding grows with the pair's gamma
    pair = torch.cat([torch.linalg.vector_norm(pair[..., 1:], dim=-1, keepdim=True), pair[..., 1:]], dim=-1)
    return torch.cat([first[:, None], pair], dim=1), p_star


def mass_shell_offsets(events: Tensor, masses: Sequence[float] | Tensor) -> Tensor:
    """``|E^2 - |p|^2 - m^2| / E^2`` (n, N) of events (n, N, 4) for masses (N,)."""
    mass = torch.as_tensor(masses, dtype=events.dtype, device=events.device)
    energy2 = events[..., 0].square()
    return (energy2 - events[..., 1:].square().sum(-1) - mass.square()).abs() / energy2


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
