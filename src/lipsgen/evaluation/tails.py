"""Where densities vanish: tail metrics per observable, and chi^2 against analytic spectra.

The classifier AUC averages over events and barely sees regions of little density; physicists
look at ratio plots, endpoints and tails. Per observable:

- ``max_log_ratio``: the largest |ln(sample density / truth density)| over bins holding at least
  ``min_count`` truth events (up to 40 equal-population bins of the truth, fewer for a small
  truth), with half a count added to an empty sample bin;
- ``w1_tails``: the W1 integrand ``|F_sample - F_truth|`` integrated only below the truth's 5%
  and above its 95% quantile (W1 restricted to the outer 5% on each side).

``chi2_per_ndf`` compares a sample with an analytic CDF (a target's known one-dimensional
spectrum, :meth:`lipsgen.targets.Target.spectra`) in equal-width bins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["max_log_ratio", "w1_tails", "chi2_per_ndf", "TAIL_QUANTILE"]

TAIL_QUANTILE = 0.05


def _weights(sample: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.ones(len(sample)) if weights is None else np.asarray(weights, dtype=np.float64)


def max_log_ratio(truth: np.ndarray, sample: np.ndarray, n_bins: int = 40, min_count: int = 50,
                  sample_weights: np.ndarray | None = None) -> float:
    """Largest |ln ratio| of sample to truth over equal-population truth bins with >= ``min_count``
    truth events (both normalised to their totals; the sample weighted by ``sample_weights``); fewer
    bins where the truth has fewer than ``n_bins * min_count`` events, none (nan) below ``min_count``."""
    n_bins = max(1, min(n_bins, len(truth) // min_count))
    edges = np.unique(np.quantile(truth, np.linspace(0, 1, n_bins + 1)))
    edges[0], edges[-1] = min(edges[0], sample.min(initial=edges[0])), max(edges[-1], sample.max(initial=edges[-1]))
    t_counts, _ = np.histogram(truth, edges)
    w = _weights(sample, sample_weights)
    if not w.sum() > 0:
        return float("nan")
    s_counts, _ = np.histogram(sample, edges, weights=w / w.mean())
    keep = t_counts >= min_count
    if not keep.any():
        return float("nan")
    ratio = ((s_counts[keep] + 0.5) / len(sample)) / (t_counts[keep] / len(truth))
    return float(np.max(np.abs(np.log(ratio))))


def w1_tails(truth: np.ndarray, sample: np.ndarray, quantile: float = TAIL_QUANTILE,
             sample_weights: np.ndarray | None = None) -> float:
    """``∫ |F_sample - F_truth| dx`` over x below the truth's ``quantile`` and above its
    ``1 - quantile`` quantile (the part of W1 that the tails carry); the sample optionally weighted."""
    low, high = np.quantile(truth, [quantile, 1 - quantile])
    grid = np.sort(np.concatenate([truth, sample, [low, high]]))
    f_truth = np.searchsorted(np.sort(truth), grid[:-1], side="right") / len(truth)
    order = np.argsort(sample)
    cumulative = np.concatenate([[0.0], np.cumsum(_weights(sample, sample_weights)[order])])
    if not cumulative[-1] > 0:
        return float("nan")
    f_sample = cumulative[np.searchsorted(sample[order], grid[:-1], side="right")] / cumulative[-1]
    width = np.diff(grid)
    middle = 0.5 * (grid[:-1] + grid[1:])
    outside = (middle < low) | (middle > high)
    return float(np.sum(np.abs(f_sample - f_truth)[outside] * width[outside]))


def chi2_per_ndf(values: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray], low: float = 0.0, high: float = 1.0,
                 n_bins: int = 40, weights: np.ndarray | None = None) -> tuple[float, int]:
    """Pearson chi^2 per degree of freedom of ``values`` against the law with CDF ``cdf`` in
    ``n_bins`` equal bins on [low, high] (bins expecting fewer than 5 events are left out; no
    parameter is fitted, so ndf is the number of bins used). Returns (chi2 / ndf, ndf).

    Weighted values (``weights`` rescaled to sum to the event count) use each bin's own variance
    ``sum w^2`` in place of the expected count."""
    edges = np.linspace(low, high, n_bins + 1)
    expected = len(values) * np.diff(cdf(edges))
    if weights is None:
        observed, _ = np.histogram(values, edges)
        variance = expected
    elif not np.sum(weights) > 0:
        return float("nan"), 0
    else:
        w = np.asarray(weights, dtype=np.float64) * (len(values) / np.sum(weights))
        observed, _ = np.histogram(values, edges, weights=w)
        variance, _ = np.histogram(values, edges, weights=w * w)
    use = (expected >= 5) & (variance > 0)
    ndf = int(use.sum())
    if ndf == 0:
        return float("nan"), 0
    chi2 = float(np.sum((observed[use] - expected[use]) ** 2 / variance[use]))
    return chi2 / ndf, ndf
