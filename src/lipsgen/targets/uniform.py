"""Uniform (flat) massless phase space, sampled exactly with RAMBO."""

from __future__ import annotations

import torch
from torch import Tensor

from ..coordinates.qspace import sample_prior_components
from ..coordinates.rambo import rambo_map_components
from ..kinematics import phase_space_volume
from .base import Target

__all__ = ["Uniform", "uniform_phase_space"]


class Uniform(Target):
    """Flat massless N-body phase space at ``sqrt_s``: the RAMBO map of prior samples.

    The density on phase space is the constant ``1 / V_N`` (normalised, measure of DESIGN §1).
    """

    name = "uniform"
    labelled = False
    density_normalised = True

    def sample_chunk(
        self, n_events: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        components = sample_prior_components(n_events, self.n_particles, generator, dtype, device)
        return rambo_map_components(*components, self.sqrt_s).p

    def log_density(self, events: Tensor) -> Tensor:
        """``log(1 / V_N)`` per event, shape (n,)."""
        value = -torch.log(torch.tensor(phase_space_volume(self.n_particles, self.sqrt_s)))
        return value.to(events).expand(events.shape[0])


def uniform_phase_space(
    n_events: int,
    n_particles: int,
    *,
    sqrt_s: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Events (n_events, n_particles, 4), order (E, px, py, pz), uniform on massless phase space.

    Every event satisfies ``sum_i p_i = (sqrt_s, 0, 0, 0)`` to rounding.
    """
    if not isinstance(n_events, int) or n_events < 0:
        raise ValueError(f"n_events must be a non-negative integer, got {n_events!r}")
    target = Uniform(n_particles, sqrt_s)
    return target.sample(n_events, seed=seed, generator=generator, dtype=dtype, device=device)
