"""Distances between samples and truth: Wasserstein-1 per observable and a classifier test."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from .observables import Observable

__all__ = ["wasserstein_batches", "classifier_auc", "feature_matrix"]


def binned_wasserstein(a: np.ndarray, b: np.ndarray, a_weights: np.ndarray | None, b_weights: np.ndarray | None,
                       grid: tuple[float, float, int]) -> float:
    """W1 of two (weighted) samples on a bounded range from their histograms on ``grid`` = (low,
    high, bins): ``sum |F_a - F_b| dx``, within one bin width of the exact W1, in memory O(bins)
    (numpy fills uniform bins in blocks) where the exact one sorts both samples whole."""
    low, high, bins = grid
    counts = [np.histogram(x, bins=bins, range=(low, high), weights=w)[0] for x, w in ((a, a_weights), (b, b_weights))]
    cdfs = [np.cumsum(c) / c.sum() for c in counts]
    return float(np.abs(cdfs[0] - cdfs[1]).sum() * (high - low) / bins)


def wasserstein_batches(truth: np.ndarray, sample: np.ndarray, n_batches: int = 5,
                        truth_weights: np.ndarray | None = None,
                        sample_weights: np.ndarray | None = None,
                        grid: tuple[float, float, int] | None = None) -> tuple[float, float]:
    """W1 between ``n_batches`` equal slices of sample and truth: (mean, std over batches).

    With one batch, (W1 of the full samples, 0). Weights (e.g. for the EEC, or weighted events)
    are optional; a batch whose weights sum to zero is left out, and with none left the result is NaN.
    ``grid`` (low, high, bins): W1 from histograms (:func:`binned_wasserstein`), for samples of tens
    of millions of values on a known range (the EEC's pairs).
    """
    t_parts = np.array_split(np.arange(len(truth)), n_batches)
    s_parts = np.array_split(np.arange(len(sample)), n_batches)
    values = []
    for t_idx, s_idx in zip(t_parts, s_parts):
        if sample_weights is not None and not sample_weights[s_idx].sum() > 0:
            continue
        t_w = None if truth_weights is None else truth_weights[t_idx]
        s_w = None if sample_weights is None else sample_weights[s_idx]
        if grid is not None:
            values.append(binned_wasserstein(truth[t_idx], sample[s_idx], t_w, s_w, grid))
        else:
            values.append(stats.wasserstein_distance(truth[t_idx], sample[s_idx], t_w, s_w))
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1) if len(values) > 1 else 0.0)


def feature_matrix(observables: list[Observable]) -> np.ndarray:
    """Observables as classifier features (n, k); non-finite values become large sentinels."""
    matrix = np.column_stack([o.values for o in observables]).astype(np.float64)
    return np.nan_to_num(matrix, nan=-1e6, posinf=1e6, neginf=-1e6)


def classifier_auc(a: np.ndarray, b: np.ndarray, seed: int = 0, a_weights: np.ndarray | None = None) -> float:
    """ROC AUC of gradient boosting separating feature sets a and b (equal sizes used), trained
    on half of each and scored on the other half; 0.5 means indistinguishable. ``a_weights``
    (len(a),) makes a's events weighted, in training and in the AUC (each half's weights rescaled
    to that half's event count, so both classes weigh the same); NaN if a half has no weight at all."""
    n = min(len(a), len(b))
    if n < 20:
        raise ValueError(f"need at least 20 events per sample for the classifier test, got {n}")
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(a))[:n]
    a = a[pick]
    wa = np.ones(n) if a_weights is None else np.asarray(a_weights, dtype=np.float64)[pick]
    b = b[rng.permutation(len(b))[:n]]
    half = n // 2

    def balanced(w: np.ndarray) -> np.ndarray:
        return w * (len(w) / w.sum())

    if not (wa[:half].sum() > 0 and wa[half:].sum() > 0):
        return float("nan")
    x_train = np.vstack([a[:half], b[:half]])
    y_train = np.r_[np.zeros(half), np.ones(half)]
    w_train = np.r_[balanced(wa[:half]), np.ones(half)]
    x_test = np.vstack([a[half:], b[half:]])
    y_test = np.r_[np.zeros(n - half), np.ones(n - half)]
    w_test = np.r_[balanced(wa[half:]), np.ones(n - half)]
    clf = HistGradientBoostingClassifier(max_iter=200, early_stopping=True, validation_fraction=0.2,
                                         random_state=seed)
    clf.fit(x_train, y_train, sample_weight=None if a_weights is None else w_train)
    return float(roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1],
                               sample_weight=None if a_weights is None else w_test))
