"""Three-body events from Dalitz variables, and the pieces the three-body targets share."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["events_from_invariants", "random_rotations", "dalitz_jacobian"]


def dalitz_jacobian(sqrt_s: float) -> float:
    """``dPhi_3 = J dx1 dx2 (dOmega dphi / 8 pi^2)`` with ``J = pi^2 s / 4``: V_3 = J / 2, the
    Dalitz triangle having area 1/2. Densities in (x1, x2) divide by J to become densities on
    phase space."""
    return math.pi**2 * sqrt_s**2 / 4


def random_rotations(n: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Haar-uniform rotation matrices (n, 3, 3), from normalised Gaussian quaternions."""
    quat = torch.randn((n, 4), generator=generator, dtype=dtype, device=device)
    w, x, y, z = (quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True)).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(n, 3, 3)


def events_from_invariants(
    y23: Tensor, y13: Tensor, sqrt_s: float, generator: torch.Generator
) -> Tensor:
    """Massless three-body events (n, 3, 4) with ``y_23 = 1 - x1 = y23`` and ``y_13 = 1 - x2 = y13``,
    isotropically oriented.

    Particle 1 is put along z, particle 2 in the xz-plane at angle theta_12 with
    ``1 - cos = 2 y_12 / (x1 x2)`` and ``1 + cos = 2 y_23 y_13 / (x1 x2)`` (both exact, so neither
    collinear nor back-to-back pairs lose precision), and particle 3 is ``-(p_1 + p_2)`` written out
    as ``-(x2 sin, 0, (x1 - x2) + x2 (1 + cos)) sqrt_s/2``, accurate also for a soft particle 3;
    then a Haar-random rotation. ``E_i = |p_i|``.
    """
    dtype, device = y23.dtype, y23.device
    half = sqrt_s / 2
    x1, x2 = 1 - y23, 1 - y13
    y12 = 1 - y23 - y13
    one_minus_cos = 2 * y12 / (x1 * x2)
    one_plus_cos = 2 * y23 * y13 / (x1 * x2)
    sin12 = torch.sqrt(one_minus_cos * one_plus_cos)
    cos12 = torch.where(one_minus_cos < 1, 1 - one_minus_cos, one_plus_cos - 1)
    zero = torch.zeros_like(x1)
    p1 = torch.stack([zero, zero, x1], dim=-1)
    p2 = torch.stack([x2 * sin12, zero, x2 * cos12], dim=-1)
    p3 = -torch.stack([x2 * sin12, zero, (y13 - y23) + x2 * one_plus_cos], dim=-1)
    vec = half * torch.stack([p1, p2, p3], dim=1)
    rot = random_rotations(len(x1), generator, dtype, device)
    vec = torch.einsum("nij,npj->npi", rot, vec)
    energy = torch.linalg.vector_norm(vec, dim=-1, keepdim=True)
    return torch.cat([energy, vec], dim=-1)
