"""The paper's conservation metric (Table I): violation per event in units of its median energy.

Kinematics, not evaluation: the sampler records it for every file it writes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .kinematics import mass_shell_offsets

__all__ = ["ConservationMetric", "absolute_violations", "conservation_metric", "event_violations",
           "mass_shell_violations"]


@dataclass(frozen=True)
class ConservationMetric:
    """Means over events of ``|sum_i E_i - sqrt_s| / median_i E_i`` (energy) and
    ``|sum_i p_i| / median_i E_i`` (momentum, Euclidean norm of the summed 3-momentum), and the
    largest violations in units of sqrt_s."""

    energy: float
    momentum: float
    max_energy: float
    max_momentum: float

    def as_dict(self) -> dict[str, float]:
        return {"energy": self.energy, "momentum": self.momentum,
                "max_energy": self.max_energy, "max_momentum": self.max_momentum}


def absolute_violations(events: Tensor, sqrt_s: float) -> tuple[Tensor, Tensor, Tensor]:
    """Per event (...,): ``|sum_i E_i - sqrt_s|``, ``|sum_i p_i|`` and the median particle energy."""
    total = events.sum(dim=-2)
    median = events[..., 0].median(dim=-1).values.clamp(min=torch.finfo(events.dtype).tiny)
    return (total[..., 0] - sqrt_s).abs(), torch.linalg.vector_norm(total[..., 1:], dim=-1), median


def event_violations(events: Tensor, *, sqrt_s: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-event ``|sum_i E_i - sqrt_s| / median_i E_i`` and ``|sum_i p_i| / median_i E_i``, each
    of shape (...,) for events (..., N, 4): what the conservation metric averages."""
    energy, momentum, median = absolute_violations(events, sqrt_s)
    return energy / median, momentum / median


def conservation_metric(events: Tensor, *, sqrt_s: float = 1.0) -> ConservationMetric:
    """Conservation metric of events (..., n, N, 4); leading axes (e.g. trajectory steps) are
    averaged over too."""
    energy, momentum, median = absolute_violations(events, sqrt_s)
    return ConservationMetric(
        energy=float((energy / median).mean()), momentum=float((momentum / median).mean()),
        max_energy=float(energy.max()) / sqrt_s, max_momentum=float(momentum.max()) / sqrt_s,
    )


def mass_shell_violations(events: Tensor, masses: list[float] | tuple[float, ...]) -> list[float]:
    """Per particle (N,), the largest ``|E^2 - |p|^2 - m^2| / E^2`` over events (n, N, 4): how far
    massive events are off their mass shells (rounding, ~1e-16, for lipsgen's exact models)."""
    if not len(events):
        return [0.0] * len(masses)
    return [float(v) for v in mass_shell_offsets(events, masses).amax(dim=0)]
