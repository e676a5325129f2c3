"""N-parton QCD antenna ("APS") events from the SARGE algorithm (hep-ph/0004047; docs/design.md, Targets)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..coordinates.rambo import rambo_map
from ..kinematics import boost, minkowski_dot
from .base import Target, random_permutations

__all__ = ["Sarge", "antenna"]


def antenna(
    p_a: Tensor, p_b: Tensor, xi1: Tensor, xi2: Tensor, phi: Tensor
) -> Tensor:
    """Massless k (n, 4) radiated from massless (p_a, p_b) (each (n, 4)) with
    ``xi1 = p_a·k / p_a·p_b``, ``xi2 = p_b·k / p_a·p_b`` and azimuth ``phi`` (each (n,)).

    In the rest frame of ``p_a + p_b``: ``k0 = sqrt(s_ab)/2 (xi1 + xi2)`` and
    ``cos theta = (xi2 - xi1)/(xi1 + xi2)`` relative to p_a; then boosted back.
    """
    total = p_a + p_b
    mass = torch.sqrt(2 * minkowski_dot(p_a, p_b))
    to_rest = -total[:, 1:] / mass.unsqueeze(-1)
    a_rest = boost(p_a.unsqueeze(1), to_rest)[:, 0, 1:]
    axis = a_rest / torch.linalg.vector_norm(a_rest, dim=-1, keepdim=True)
    # A unit vector orthogonal to the axis: cross it with the coordinate axis it is least along.
    helper = torch.zeros_like(axis)
    helper.scatter_(1, axis.abs().argmin(dim=1, keepdim=True), 1.0)
    e1 = torch.linalg.cross(axis, helper)
    e1 = e1 / torch.linalg.vector_norm(e1, dim=-1, keepdim=True)
    e2 = torch.linalg.cross(axis, e1)
    xi_sum = xi1 + xi2
    energy = 0.5 * mass * xi_sum
    cos_theta = (xi2 - xi1) / xi_sum
    sin_theta = 2 * torch.sqrt(xi1 * xi2) / xi_sum  # sqrt(1 - cos^2) without cancellation
    direction = (cos_theta.unsqueeze(-1) * axis
                 + (sin_theta * torch.cos(phi)).unsqueeze(-1) * e1
                 + (sin_theta * torch.sin(phi)).unsqueeze(-1) * e2)
    k_rest = torch.cat([energy.unsqueeze(-1), energy.unsqueeze(-1) * direction], dim=-1)
    return boost(k_rest.unsqueeze(1), -to_rest)[:, 0]


class Sarge(Target):
    """SARGE antenna events: N gluons, unlabelled (particle order randomly permuted).

    ``q_1, q_N`` back to back with energy 1/2 in a random direction; for i = 2..N-1,
    ``q_i = antenna(q_{i-1}, q_N)`` with ``xi1, xi2`` independently log-uniform on
    ``[1/xi_max, xi_max]`` and uniform azimuth; the RAMBO map of the q's; a random permutation.
    Exact by construction (no weights). No closed-form density is exposed.
    """

    name = "sarge"
    particle_id = 21  # gluons
    labelled = False
    singular = True

    def __init__(self, n_particles: int = 10, xi_max: float = 30.0, *, sqrt_s: float = 1.0,
                 shuffle: bool = True) -> None:
        super().__init__(n_particles, sqrt_s=sqrt_s)
        if n_particles < 3:
            raise ValueError(f"sarge: needs at least 3 particles, got {n_particles}")
        if not (isinstance(xi_max, (int, float)) and 1 < xi_max < float("inf")):
            raise ValueError(f"sarge: xi_max must be a finite number > 1, got {xi_max!r}")
        self.xi_max = float(xi_max)
        self.shuffle = shuffle

    def parameters(self) -> dict:
        return {"n_particles": self.n_particles, "xi_max": self.xi_max, "sqrt_s": self.sqrt_s}

    def sample_chunk(self, n_events: int, generator: torch.Generator, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        n = n_events
        direction = torch.randn((n, 3), generator=generator, dtype=dtype, device=device)
        direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
        half = torch.full((n, 1), 0.5, dtype=dtype, device=device)
        first = torch.cat([half, 0.5 * direction], dim=-1)
        last = torch.cat([half, -0.5 * direction], dim=-1)
        chain = [first]
        log_xi = math.log(self.xi_max)
        for _ in range(self.n_particles - 2):
            r = torch.rand((3, n), generator=generator, dtype=dtype, device=device)
            xi1, xi2 = torch.exp((2 * r[0] - 1) * log_xi), torch.exp((2 * r[1] - 1) * log_xi)
            chain.append(antenna(chain[-1], last, xi1, xi2, 2 * math.pi * r[2]))
        chain.append(last)
        q = torch.stack(chain, dim=1)[..., 1:]
        bad = ~torch.isfinite(q).all(dim=(1, 2))
        if bool(bad.any()):
            # each antenna step rescales by up to xi_max: deep chains leave float64's range
            raise ValueError(f"sarge: with {self.n_particles} particles and xi_max {self.xi_max:g} an antenna chain "
                             f"(event {int(bad.nonzero()[0, 0])} of the chunk) leaves float64's range; use fewer "
                             f"particles or a smaller xi_max (N <= 20 at xi_max 30 and N = 10 at xi_max <= 100 "
                             f"work)")
        events = rambo_map(q, sqrt_s=self.sqrt_s).p
        return random_permutations(events, generator) if self.shuffle else events
