"""Event features for a density-ratio classifier: a complete description of an event up to the
symmetry the ratio is assumed to have.

For N massless particles in their CM frame, the scaled invariants ``y_ij`` fix the event up to a
rotation (and reflection); the energy fractions ``x_i = sum_j y_ij`` are among them. The polar
angles ``cos theta_i`` of the particles about the beam (z) axis then fix it up to a rotation about
the beam, the symmetry of every unpolarised collider process. With ``rotation_invariant`` they are
left out: for isotropic processes (muon decay at rest, the targets' random orientation) they carry
no information and only add noise to the ratio.

Unlabelled particles are ordered by energy, so that the features (and the ratio learnt from them)
do not depend on the arbitrary order of a file.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..kinematics import scaled_pair_invariants, sorted_by_energy

__all__ = ["ratio_features", "n_ratio_features", "MIN_Y"]

# log y_ij is floored here: float64 resolves collinear invariants far below, and no process of
# interest has structure beneath it.
MIN_Y = 1e-12


def n_ratio_features(n_particles: int, rotation_invariant: bool) -> int:
    """Width F of :func:`ratio_features` for N particles."""
    pairs = n_particles * (n_particles - 1) // 2
    return n_particles + 2 * pairs + (0 if rotation_invariant else n_particles)


def ratio_features(events: Tensor, *, labelled: bool, rotation_invariant: bool = False) -> Tensor:
    """Features (n, F) float64 of events (n, N, 4): energy fractions ``x_i`` (N), ``y_ij`` and
    ``log y_ij`` for i < j (2 x N(N-1)/2), and unless ``rotation_invariant`` the polar-angle
    cosines ``p_z,i / |p_i|`` (N). Energies are in units of each event's total energy, so that
    events of ambient-space models that do not conserve it are described on the same scale."""
    if events.ndim != 3 or events.shape[-1] != 4:
        raise ValueError(f"events must have shape (n, N, 4), got {tuple(events.shape)}")
    events = events.to(torch.float64)
    if not labelled:
        events = sorted_by_energy(events)
    n_particles = events.shape[1]
    x = 2 * events[..., 0] / events[..., 0].sum(dim=1, keepdim=True)
    i, j = torch.triu_indices(n_particles, n_particles, offset=1)
    y = scaled_pair_invariants(events)[:, i, j]
    parts = [x, y, torch.log(y.clamp(min=MIN_Y))]
    if not rotation_invariant:
        norm = torch.linalg.vector_norm(events[..., 1:], dim=-1)
        parts.append(events[..., 3] / torch.where(norm > 0, norm, torch.ones_like(norm)))
    return torch.cat(parts, dim=1)
