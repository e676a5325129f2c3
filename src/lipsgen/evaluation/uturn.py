"""U-turn experiments (arXiv:2308.07421; Sclocchi, Favero, Wyart, arXiv:2402.16991): noise data exactly to
time t with the forward process, denoise with the model, and measure what the result keeps of the original.

The runs (:func:`uturn_events`) need a model; the statistics of their outcome are pure functions of
arrays, each with a bootstrap band over the events (replicas resample the (original, result) pairs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata, wasserstein_distance
from torch import Tensor

from ..models.model import GenerativeModel
from ..progress import progress_bar
from ..sampling import partial_start
from .structures import independent_share, shared_fraction

__all__ = ["Curve", "uturn_events", "keep_curve", "correlation_curve", "distance_curve", "half_way_time",
           "rank_correlation", "json_list", "array_of", "bootstrap_band", "BAND"]

BAND = (15.865, 84.135)  # percentiles of a one-sigma band


@dataclass(frozen=True)
class Curve:
    """A quantity along t: ``value`` (T,) from all events, ``low``/``high`` (T,) its bootstrap band;
    ``limit``: its value for independent events (keep curves), ``crossing`` (t, low, high): where it
    falls half-way from its t -> 0 limit to ``limit`` (NaN: not on the grid, or nothing to decide)."""

    times: np.ndarray
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    limit: float | None = None
    crossing: tuple[float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: arrays as lists, NaN as None."""
        return {"t": json_list(self.times), "value": json_list(self.value), "low": json_list(self.low),
                "high": json_list(self.high), "limit": self.limit,
                "crossing": None if self.crossing is None else json_list(self.crossing)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Curve:
        crossing = values.get("crossing")
        return cls(array_of(values["t"]), array_of(values["value"]), array_of(values["low"]),
                   array_of(values["high"]), values.get("limit"),
                   None if crossing is None else (float(array_of(crossing)[0]), float(array_of(crossing)[1]),
                                                  float(array_of(crossing)[2])))


def json_list(values: np.ndarray | Sequence[float]) -> list[float | None]:
    """Numbers (any shape, flattened) as a JSON list, NaN and infinities as None."""
    return [float(v) if np.isfinite(v) else None for v in np.ravel(np.asarray(values, dtype=np.float64))]


def array_of(values: Sequence[float | None]) -> np.ndarray:
    """The inverse of :func:`json_list`: None back to NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@torch.no_grad()
def uturn_events(model: GenerativeModel, events: Tensor, times: Sequence[float], generator: torch.Generator, *,
                 steps: int | None = None, solver: str | None = None, batch_size: int = 5000,
                 progress: bool | None = None) -> list[Tensor]:
    """For each t of ``times`` in (0, 1], the events (n, N, 4) noised to t by the forward process and
    denoised by the model, with the step size of a full run of ``steps`` (default: the model's)."""
    steps = model.default_steps if steps is None else steps
    results = []
    with progress_bar(total=len(times) * len(events), unit="ev", desc="U-turns", enable=progress) as bar:
        for t in times:
            parts = []
            for start in range(0, len(events), batch_size):
                chunk = events[start:start + batch_size]
                x = partial_start(model, chunk, float(t), generator)
                out = model.sample(len(chunk), generator=generator, start=x, t_start=float(t), solver=solver,
                                   steps=model.process.partial_steps(steps, float(t)))
                parts.append(out.events.cpu())
                bar.update(len(chunk))
            results.append(torch.cat(parts))
    return results


def half_way_time(times: np.ndarray, values: np.ndarray, upper: float, lower: float) -> float:
    """The first t at which ``values`` (T,) on the increasing ``times`` (T,) fall to the level half-way
    between ``upper`` (their t -> 0 limit, taken at t = 0) and ``lower``, interpolated linearly; NaN if
    the two limits coincide or the level is not reached."""
    if not upper - lower > 1e-9:
        return float("nan")
    level = 0.5 * (upper + lower)
    t = np.concatenate([[0.0], times])
    v = np.concatenate([[upper], values])
    below = np.nonzero(v <= level)[0]
    if not len(below):
        return float("nan")
    i = below[0]
    return float(t[i - 1] + (t[i] - t[i - 1]) * (v[i - 1] - level) / (v[i - 1] - v[i]))


def _bootstrap(n: int, replicas: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(0, n, n) for _ in range(replicas)]


def bootstrap_band(replicas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one-sigma band (16th and 84th percentiles) over bootstrap replicas (R, ...) along axis 0,
    ignoring NaN; NaN where every replica is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: NaN, as it should be
        low, high = np.nanpercentile(replicas, BAND, axis=0)
    return np.asarray(low), np.asarray(high)


def _crossing(estimate: float, replicas: np.ndarray) -> tuple[float, float, float]:
    finite = replicas[np.isfinite(replicas)]
    if not np.isfinite(estimate) or len(finite) < 0.5 * len(replicas):
        return estimate, float("nan"), float("nan")
    low, high = np.percentile(finite, BAND)
    return estimate, float(low), float(high)


def keep_curve(original: np.ndarray, results: Sequence[np.ndarray], times: np.ndarray, *,
               independent: np.ndarray, replicas: int, rng: np.random.Generator) -> Curve:
    """The probability that a structure (rows (n, k)) of the originals is the one of the U-turn
    results at each t, with ``limit`` the probability for an independent pair: originals against
    ``independent`` (n, k), the structures of the model's own samples (the t = 1 results);
    ``crossing``: where the keep probability is half-way between 1 and that limit."""
    kept = np.stack([shared_fraction(original, r) for r in results])  # (T, n)
    limit = independent_share(original, independent)
    value = kept.mean(axis=1)
    draws, crossings = [], []
    for index in _bootstrap(len(original), replicas, rng):
        curve = kept[:, index].mean(axis=1)
        low_limit = independent_share(original[index], independent[index])
        draws.append(curve)
        crossings.append(half_way_time(times, curve, 1.0, low_limit))
    low, high = bootstrap_band(np.array(draws))
    return Curve(times, value, low, high, limit, _crossing(half_way_time(times, value, 1.0, limit),
                                                           np.array(crossings)))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of a and b (n,) over the events where both are finite (NaN: no
    spread): robust to the heavy tails of log y_ij, and the same for an observable and its logarithm."""
    good = np.isfinite(a) & np.isfinite(b)
    ra, rb = rankdata(a[good]), rankdata(b[good])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def correlation_curve(original: np.ndarray, results: Sequence[np.ndarray], times: np.ndarray, *,
                      replicas: int, rng: np.random.Generator) -> Curve:
    """Rank correlation between an observable (n,) of the originals and of the results at each t;
    ``crossing``: where it falls to half-way between 1 and 0 (independent events)."""
    value = np.array([rank_correlation(original, r) for r in results])
    draws, crossings = [], []
    for index in _bootstrap(len(original), replicas, rng):
        curve = np.array([rank_correlation(original[index], r[index]) for r in results])
        draws.append(curve)
        crossings.append(half_way_time(times, curve, 1.0, 0.0))
    low, high = bootstrap_band(np.array(draws))
    return Curve(times, value, low, high, 0.0, _crossing(half_way_time(times, value, 1.0, 0.0), np.array(crossings)))


def distance_curve(reference: np.ndarray, samples: Sequence[np.ndarray], times: np.ndarray, *, replicas: int,
                   rng: np.random.Generator, distance: Callable[[np.ndarray, np.ndarray], float] | None = None,
                   references: Sequence[np.ndarray] | None = None) -> Curve:
    """The distance (default W1) at each t between ``samples[t]`` (n_t,) and ``reference`` (m,), or
    ``references[t]`` for a reference that moves with t; bands from resampling both."""
    distance = distance or (lambda a, b: float(wasserstein_distance(a, b)))
    refs = [reference] * len(samples) if references is None else list(references)
    clean = [(s[np.isfinite(s)], r[np.isfinite(r)]) for s, r in zip(samples, refs)]
    value = np.array([distance(s, r) for s, r in clean])
    draws = np.array([[distance(s[rng.integers(0, len(s), len(s))], r[rng.integers(0, len(r), len(r))])
                       for s, r in clean] for _ in range(replicas)])
    low, high = bootstrap_band(draws)
    return Curve(times, value, low, high)
