"""Event weights: from model and target densities, their summary metrics, and unweighting.

For events drawn from a model with exact density, ``w = m(p) V_N rho_0(q) / g(q)`` (docs/design.md,
"Exact event weights"): weighted events follow the target m exactly and ``E[w] = ∫ m dPhi`` (1 for
a normalised target). Generators report the same metrics as here: the integral with its Monte Carlo
error, the relative standard deviation of the weights, the effective sample size
``(sum w)^2 / sum w^2`` per event and the unweighting efficiency ``mean w / max w``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .kinematics import phase_space_volume

__all__ = ["log_event_weights", "WeightSummary", "summarise_weights", "reduced_maximum", "unweight"]


def log_event_weights(log_target: Tensor, log_model: Tensor, *, n_particles: int, sqrt_s: float = 1.0,
                      masses: Sequence[float] | None = None) -> Tensor:
    """``log w`` (n,) float64 from the target's log-density on phase space (n,) and the model's
    ``log(g / rho_0)`` (n,) (:attr:`lipsgen.models.SampleOutput.log_density`). Where the target's
    density is zero the weight is zero, whatever the model's (which can be undefined in float64 at
    the edge of a base's support). ``masses``: massive phase space, whose volume replaces V_N."""
    log_volume = math.log(phase_space_volume(n_particles, sqrt_s, masses))
    log_target = log_target.to(torch.float64)
    log_w = log_target + log_volume - log_model.to(torch.float64)
    return torch.where(torch.isneginf(log_target), torch.full_like(log_w, -math.inf), log_w)


@dataclass(frozen=True)
class WeightSummary:
    """Metrics of n weights: ``integral`` = mean w (of the target density over phase space, 1 if it
    is normalised) +- ``integral_error``; ``relative_std`` = std(w) / mean(w); ``ess_per_event``;
    ``unweighting_efficiency`` = mean w / max w; ``zero_fraction`` (events outside the target's support)."""

    n: int
    integral: float
    integral_error: float
    relative_std: float
    ess_per_event: float
    unweighting_efficiency: float
    zero_fraction: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarise_weights(weights: Tensor) -> WeightSummary:
    """Summary of weights (n,) (non-negative, finite)."""
    w = weights.to(torch.float64)
    n = w.numel()
    if n < 2:
        raise ValueError(f"need at least 2 weights, got {n}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("weights must be finite and non-negative")
    mean, std = float(w.mean()), float(w.std())
    total, squares = float(w.sum()), float(w.square().sum())
    peak = float(w.max())
    return WeightSummary(
        n=n, integral=mean, integral_error=std / math.sqrt(n),
        relative_std=std / mean if mean > 0 else math.inf,
        ess_per_event=total * total / squares / n if squares > 0 else 0.0,
        unweighting_efficiency=mean / peak if peak > 0 else 0.0,
        zero_fraction=float((w == 0).double().mean()),
    )


def reduced_maximum(weights: Tensor, tolerance: float = 1e-3) -> float:
    """The smallest reference weight ``w_ref`` whose overweights carry at most ``tolerance`` of the
    total: ``sum max(w - w_ref, 0) <= tolerance * sum w`` (as event generators choose it; 0 gives
    the maximum weight)."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"overweight tolerance must be in [0, 1), got {tolerance}")
    w = weights.to(torch.float64).sort(descending=True).values
    if tolerance == 0 or len(w) == 1:
        return float(w[0])
    # excess(w_ref = w[k]) = sum_{j<k} w[j] - k w[k]: non-decreasing in k
    k = torch.arange(len(w), dtype=torch.float64)
    excess = torch.cumsum(w, 0) - w - k * w
    allowed = int((excess <= tolerance * float(w.sum())).sum())
    return float(w[allowed - 1])


def unweight(weights: Tensor, reference: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Accept-reject: keep event i with probability ``min(1, w_i / reference)``. Returns the mask
    (n,) of kept events and their new weights: 1, or ``w_i / reference`` for the overweights, so
    the output is still exact (in units of ``reference``, i.e. multiply by it for the integral)."""
    if not reference > 0:
        raise ValueError(f"reference weight must be positive, got {reference}")
    ratio = weights.to(torch.float64) / reference
    keep = torch.rand(ratio.shape, generator=generator, dtype=torch.float64, device=ratio.device) < ratio
    return keep, ratio[keep].clamp(min=1.0)
