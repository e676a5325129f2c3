"""Metrics of one sample against the truth, as small functions of their observables, in one table.

The middle stage of ``evaluate`` (after :mod:`.inputs`, before :mod:`.render`): a
:class:`Comparison` holds a sample's observables (and weights) beside the truth's; every entry of
:data:`SAMPLE_METRICS` turns it into one value of ``metrics.json`` ("samples" -> name -> key).
Adding a metric is adding a row. (The EEC's W1 works on particle pairs, not on per-event
observables, and is added by ``report``.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..targets.base import RangedSpectrum
from .inputs import inside_support
from .metrics import classifier_auc, feature_matrix, wasserstein_batches
from .observables import Observable
from .tails import chi2_per_ndf, max_log_ratio, w1_tails

__all__ = ["Comparison", "SAMPLE_METRICS", "compare", "spectra_chi2", "finite_values"]


@dataclass
class Comparison:
    """A sample's observables against the truth's (the same observables, in the same order).

    ``truth``: the reference half of the truth; ``weights`` (n,) the sample's event weights or
    None; ``spectra``: the target's analytic CDFs by observable name; ``seed`` and ``n_batches``
    for the classifier and the batched W1."""

    truth: list[Observable]
    sample: list[Observable]
    weights: np.ndarray | None
    truth_features: np.ndarray
    spectra: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)
    seed: int = 0
    n_batches: int = 5

    @cached_property
    def features(self) -> np.ndarray:
        return feature_matrix(self.sample)

    @cached_property
    def auc(self) -> float:
        return classifier_auc(self.features, self.truth_features, self.seed, self.weights)

    @cached_property
    def inside(self) -> np.ndarray | None:
        return inside_support(self.sample)

    def pairs(self) -> list[tuple[Observable, np.ndarray, np.ndarray | None]]:
        """(truth observable, the sample's finite values, their weights) per observable."""
        return [(r, *finite_values(o.values, self.weights)) for r, o in zip(self.truth, self.sample)]


def finite_values(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The finite values of an observable, with their events' weights."""
    keep = np.isfinite(values)
    return values[keep], None if weights is None else weights[keep]


def _wasserstein(c: Comparison) -> dict[str, tuple[float, float]]:
    return {r.name: wasserstein_batches(r.values[np.isfinite(r.values)], values, c.n_batches, sample_weights=w)
            for r, values, w in c.pairs()}


def _tails(c: Comparison) -> dict[str, dict[str, float]]:
    result = {}
    for r, values, w in c.pairs():
        truth = r.values[np.isfinite(r.values)]
        if len(truth) < 2 or len(values) < 2:
            result[r.name] = {"max_log_ratio": float("nan"), "w1_tails": float("nan")}
        else:
            result[r.name] = {"max_log_ratio": max_log_ratio(truth, values, sample_weights=w),
                              "w1_tails": w1_tails(truth, values, sample_weights=w)}
    return result


def spectra_chi2(spectra: dict, observables: list[Observable],
                 weights: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """chi^2/ndf of each observable that has an analytic spectrum (40 bins on [0, 1], or on a
    :class:`~lipsgen.targets.base.RangedSpectrum`'s range)."""
    result = {}
    for o in observables:
        if o.name in spectra:
            values, w = finite_values(o.values, weights)
            spectrum = spectra[o.name]
            low, high = (spectrum.low, spectrum.high) if isinstance(spectrum, RangedSpectrum) else (0.0, 1.0)
            value, ndf = chi2_per_ndf(values, spectrum, low, high, weights=w)
            result[o.name] = {"chi2_ndf": value, "ndf": ndf}
    return result


def _outside_support(c: Comparison) -> float | None:
    """Fraction of the events (of the weight) where the target's density is zero (e.g. below ycut)."""
    if c.inside is None:
        return None
    w = np.ones(len(c.inside)) if c.weights is None else c.weights
    return float(w[~c.inside].sum() / w.sum())


def _auc_in_support(c: Comparison) -> float | None:
    """The classifier AUC of the events inside the target's support: what the model scores once the
    target's own cut is applied to its samples. A classifier sees a leak across a hard cut at once;
    this separates the leak from the shape inside the cut."""
    if c.inside is None:
        return None
    if bool(c.inside.all()):
        return c.auc
    if int(c.inside.sum()) < 20:
        return None
    return classifier_auc(c.features[c.inside], c.truth_features, c.seed,
                          None if c.weights is None else c.weights[c.inside])


# metrics.json "samples" -> name -> key: the value of each sample's metric
SAMPLE_METRICS: dict[str, Callable[[Comparison], Any]] = {
    "auc": lambda c: c.auc,
    "outside_support": _outside_support,
    "auc_in_support": _auc_in_support,
    "wasserstein": _wasserstein,
    "tails": _tails,
    "spectra": lambda c: spectra_chi2(c.spectra, c.sample, c.weights),
}


def compare(comparison: Comparison) -> dict[str, Any]:
    """Every metric of :data:`SAMPLE_METRICS` for one sample."""
    return {name: metric(comparison) for name, metric in SAMPLE_METRICS.items()}
