"""Pictures: histograms with truth ratio panels, and observables along reverse trajectories (PNG)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402

from ..io.atomic import atomic_output  # noqa: E402

__all__ = ["ratio_limits", "histogram_with_ratio", "trajectory_histograms", "conservation_histograms",
           "conservation_along_trajectory"]

_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink"]


# Share of each sample's events at either end that may fall outside the plotted range: a few far
# outliers of a bad model would otherwise squeeze everything else into one bin.
SAMPLE_OUTLIER_SHARE = 1e-4


def histogram_bins(truth: np.ndarray, samples: list[np.ndarray], log: bool,
                   n: int = 50) -> tuple[np.ndarray, bool]:
    """Bin edges (n + 1,) spanning every finite truth value and all but the outermost
    ``SAMPLE_OUTLIER_SHARE`` of each sample at either end, so that the edges of the truth's
    distribution, where densities vanish and models over-fill, are never cut off; logarithmic
    (second value True) for ``log`` observables spanning more than two decades."""
    finite_truth = truth[np.isfinite(truth)]
    lo, hi = (float(finite_truth.min()), float(finite_truth.max())) if finite_truth.size else (np.inf, -np.inf)
    for values in samples:
        finite = values[np.isfinite(values)]
        if finite.size:
            q_lo, q_hi = np.quantile(finite, [SAMPLE_OUTLIER_SHARE, 1 - SAMPLE_OUTLIER_SHARE])
            lo, hi = min(lo, float(q_lo)), max(hi, float(q_hi))
    if not np.isfinite(lo):
        lo, hi = 0.0, 1.0
    if log and lo > 0 and hi / lo > 100:
        return np.geomspace(lo, hi, n + 1), True
    if hi <= lo:
        hi = lo + 1e-9
    return np.linspace(lo, hi, n + 1), False


# float64 rounding of a sum of O(1) energies; exact zeros are drawn at the plot floor.
_ROUNDING = float(np.finfo(np.float64).eps)
_FLOOR = 1e-19


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def ratio_limits(ratios: list[np.ndarray]) -> tuple[float, float]:
    """Limits of a log-scaled ratio axis that show every finite, positive ratio (NaN: no truth in
    the bin; 0: marked separately), symmetric about 1 and at least [1/2, 2]."""
    values = np.concatenate([r[np.isfinite(r) & (r > 0)] for r in ratios]) if ratios else np.empty(0)
    extent = max(2.0, float(np.max(np.maximum(values, 1 / values)))) if values.size else 2.0
    return 1 / (1.1 * extent), 1.1 * extent


def histogram_with_ratio(
    truth: np.ndarray,
    samples: dict[str, np.ndarray],
    label: str,
    path: str | os.PathLike[str],
    *,
    log: bool = False,
    truth_weights: np.ndarray | None = None,
    sample_weights: dict[str, np.ndarray] | None = None,
) -> Path:
    """Normalised histograms of truth (grey, filled) and each sample (lines) with a model/truth
    ratio panel on a log axis that shows every bin (bins where the model is empty marked at the
    bottom edge; the statistical bands of the truth (grey) and of each sample (its colour)
    shaded); the bins span the truth's whole range (:func:`histogram_bins`); log x-axis for
    singular observables."""
    bins, logx = histogram_bins(truth, list(samples.values()), log)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    t_counts, _ = np.histogram(truth, bins, weights=truth_weights)
    t_raw, _ = np.histogram(truth, bins)
    widths = np.diff(np.log(bins)) if logx else np.diff(bins)  # log axes: density per unit ln x
    t_density = t_counts / max(t_counts.sum(), 1e-300) / widths
    centres = np.sqrt(bins[:-1] * bins[1:]) if logx else 0.5 * (bins[:-1] + bins[1:])
    top.stairs(t_density, bins, fill=True, color="0.8", label="truth")
    rel_err = np.where(t_raw > 0, 1 / np.sqrt(np.maximum(t_raw, 1)), np.nan)  # no band where truth is empty
    bottom.fill_between(centres, 1 - rel_err, 1 + rel_err, color="0.8", step="mid")
    ratios, ratio_errors = {}, {}
    for colour, (name, values) in zip(_COLOURS, samples.items()):
        weights = None if sample_weights is None else sample_weights.get(name)
        counts, _ = np.histogram(values, bins, weights=weights)
        squares, _ = np.histogram(values, bins, weights=None if weights is None else weights * weights)
        density = counts / max(counts.sum(), 1e-300) / widths
        top.stairs(density, bins, color=colour, label=name, linewidth=1.4)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[name] = np.where(t_density > 0, density / t_density, np.nan)
            ratio_errors[name] = ratios[name] * np.sqrt(squares) / counts  # the sample's own statistics
    low, high = ratio_limits(list(ratios.values()))
    bottom.set_yscale("log")
    bottom.set_ylim(low, high)
    bottom.yaxis.set_major_locator(mticker.LogLocator(base=2.0 if high < 20 else 10.0))
    bottom.yaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
    bottom.yaxis.set_minor_formatter(mticker.NullFormatter())
    for colour, ratio, error in zip(_COLOURS, ratios.values(), ratio_errors.values()):
        shown = ratio > 0
        bottom.fill_between(centres, np.where(shown, np.maximum(ratio - error, low), np.nan),
                            np.where(shown, np.minimum(ratio + error, high), np.nan), color=colour, alpha=0.2,
                            step="mid", linewidth=0)
        bottom.plot(centres, np.where(shown, ratio, np.nan), drawstyle="steps-mid", color=colour, linewidth=1.2)
        empty = ratio == 0  # the model has nothing where the truth has events: mark at the bottom edge
        bottom.plot(centres[empty], np.full(int(empty.sum()), low), "v", color=colour, markersize=4, clip_on=False)
    bottom.axhline(1, color="k", linewidth=0.8)
    bottom.set_ylabel("model / truth")
    bottom.set_xlabel(label)
    top.set_ylabel("density per unit ln x" if logx else "normalised density")
    top.legend(fontsize=8)
    if logx:
        top.set_xscale("log")
    return _save(fig, path)


def trajectory_histograms(
    states: list[np.ndarray],
    times: np.ndarray,
    label: str,
    path: str | os.PathLike[str],
    *,
    truth: np.ndarray | None = None,
    log: bool = False,
) -> Path:
    """One observable at every recorded state of a reverse run, coloured from the noise end
    (t = 1, uniform phase space) to the data end, with truth in black."""
    bins, logx = histogram_bins(truth if truth is not None else states[-1], states, log)
    fig, ax = plt.subplots(figsize=(6, 4))
    cmap = plt.get_cmap("viridis")
    widths = np.diff(np.log(bins)) if logx else np.diff(bins)

    def density(values: np.ndarray) -> np.ndarray:
        counts, _ = np.histogram(values, bins)
        return counts / max(counts.sum(), 1) / widths

    for k, (values, t) in enumerate(zip(states, times)):
        ax.stairs(density(values), bins, color=cmap(k / max(1, len(states) - 1)), linewidth=1.1,
                  label=f"t = {t:.2f}")
    if truth is not None:
        ax.stairs(density(truth), bins, color="k", linewidth=1.8, linestyle="--", label="truth")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("density per unit ln x" if logx else "normalised density")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def conservation_histograms(
    truth: tuple[np.ndarray, np.ndarray],
    samples: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike[str],
) -> Path:
    """Per-event energy and momentum violations (in units of the event's median energy, as
    :func:`event_violations` returns them) of truth and each sample, on log axes from exact zero
    (drawn at 1e-19) to order one, with float64 rounding marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    everything = [np.maximum(v, _FLOOR) for pair in (truth, *samples.values()) for v in pair]
    bins = np.geomspace(_FLOOR / 2, max(10.0, *(float(v.max()) for v in everything)) * 2, 61)
    for k, (ax, label) in enumerate(zip(axes, ("|ΣE − √s| / median E", "|Σp| / median E"))):
        ax.hist(np.maximum(truth[k], _FLOOR), bins, color="0.8", label="truth")
        for colour, (name, pair) in zip(_COLOURS, samples.items()):
            ax.hist(np.maximum(pair[k], _FLOOR), bins, histtype="step", color=colour, linewidth=1.4, label=name)
        ax.axvline(_ROUNDING, color="k", linestyle=":", linewidth=1, label="float64 rounding")
        ax.set_xscale("log")
        ticks = [t for t in (1e-16, 1e-12, 1e-8, 1e-4, 1.0) if t < bins[-1]]
        ax.set_xticks([_FLOOR, *ticks], ["0", *(f"$10^{{{round(np.log10(t))}}}$" for t in ticks)])
        ax.set_xlabel(label + " per event")
    axes[0].set_ylabel("events")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def conservation_along_trajectory(
    times: np.ndarray, energy: np.ndarray, momentum: np.ndarray, path: str | os.PathLike[str]
) -> Path:
    """Mean energy and momentum violation (units of the median energy) at every recorded state
    of a reverse run, from the noise end (t = 1) to the data end (t = 0)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(times, np.maximum(energy, _FLOOR), marker="o", label="mean |ΣE − √s| / median E")
    ax.plot(times, np.maximum(momentum, _FLOOR), marker="s", label="mean |Σp| / median E")
    ax.axhline(_ROUNDING, color="k", linestyle=":", linewidth=1, label="float64 rounding")
    ax.set_yscale("log")
    ax.set_ylim(_FLOOR / 2, max(1.0, float(np.max(energy)), float(np.max(momentum))) * 2)
    ax.set_xlim(max(times.max(), 1.0), min(times.min(), 0.0))
    ax.set_xlabel("t (reverse process: noise end left, data end right)")
    ax.set_ylabel("violation")
    ax.legend(fontsize=8)
    return _save(fig, path)
