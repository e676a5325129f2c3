"""Pictures of emergence (PNG): quantities along t with their bootstrap bands, and the speciation estimate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .plots import _save, plt
from .speciation import Speciation
from .uturn import Curve

__all__ = ["curves_plot", "correlation_pairs_plot", "speciation_plot"]


def _colour(k: int) -> tuple[float, ...]:
    """Ten distinct colours (tab10); curves beyond ten change their line style instead."""
    return tuple(plt.get_cmap("tab10")(k % 10))


def _mark_times(ax: plt.Axes, marks: dict[str, float]) -> None:
    for k, (label, t) in enumerate(marks.items()):
        ax.axvline(t, color="grey", ls=(0, (1 + k, 2)), lw=1, label=label)


def curves_plot(curves: dict[str, Curve], path: str | os.PathLike[str], *, ylabel: str, title: str,
                marks: dict[str, float] | None = None, limits: bool = False, log: bool = False,
                floors: dict[str, Curve] | None = None) -> Path:
    """Each curve against t with its band; ``limits`` also draws each curve's independent-events value
    (dotted) and marks its half-way crossing; ``marks``: vertical lines at named times (speciation);
    ``floors``: the same quantity between independent samples (dotted), by name."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    linestyles = ["-", "--", "-.", ":"]
    for k, (name, c) in enumerate(curves.items()):
        colour, ls = _colour(k), linestyles[(k // 10) % len(linestyles)]
        ax.plot(c.times, c.value, color=colour, ls=ls, marker=".", label=name)
        ax.fill_between(c.times, c.low, c.high, color=colour, alpha=0.2, lw=0)
        if floors and name in floors:
            ax.plot(floors[name].times, floors[name].value, color=colour, ls=":", lw=0.8)
        if limits and c.limit is not None:
            ax.axhline(c.limit, color=colour, ls=":", lw=0.8)
        if limits and c.crossing is not None and np.isfinite(c.crossing[0]):
            level = 0.5 * (1 + (c.limit or 0.0))
            ax.plot([c.crossing[0]], [level], marker="o", mfc="none", color=colour, ms=8)
            if np.isfinite(c.crossing[1]):
                ax.errorbar([c.crossing[0]], [level], xerr=[[c.crossing[0] - c.crossing[1]],
                                                            [c.crossing[2] - c.crossing[0]]], color=colour, capsize=3)
    _mark_times(ax, marks or {})
    ax.set_xlabel("t (0: data, 1: noise end)")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="best")
    return _save(fig, path)


def correlation_pairs_plot(pairs: dict[str, tuple[Curve, Curve]], path: str | os.PathLike[str], *,
                           title: str) -> Path:
    """Correlation of observable pairs along the reverse run (solid) and the forward process (dashed)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for k, (name, (reverse, forward)) in enumerate(pairs.items()):
        colour = _colour(k)
        ax.plot(reverse.times, reverse.value, color=colour, marker=".", label=f"{name}, reverse run")
        ax.fill_between(reverse.times, reverse.low, reverse.high, color=colour, alpha=0.2, lw=0)
        ax.plot(forward.times, forward.value, color=colour, ls="--", label=f"{name}, forward")
        ax.fill_between(forward.times, forward.low, forward.high, color=colour, alpha=0.1, lw=0)
    ax.set_xlabel("t (0: data, 1: noise end)")
    ax.set_ylabel("correlation")
    ax.set_xlim(0, 1)
    ax.set_title(f"correlations along the reverse run, {title}", fontsize=10)
    ax.legend(fontsize=6, ncol=2, loc="best")
    return _save(fig, path)


def speciation_plot(speciation: Speciation, path: str | os.PathLike[str], *, title: str) -> Path:
    """Left: the covariance spectrum relative to the noise end. Right: a_e(t)^2 lambda_e of the leading
    directions; each crosses 1 at its speciation time."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    values = speciation.eigenvalues
    left.plot(np.arange(1, len(values) + 1), values, "o", ms=3)
    if values.min() > 0 and values.max() / values.min() > 10:
        left.set_yscale("log")
    left.axhline(1, color="grey", ls=":")
    left.set_xlabel("eigen-direction")
    left.set_ylabel("lambda (data / noise-end variance)")
    for k, a in enumerate(speciation.retention):
        right.semilogy(speciation.grid, np.clip(a * a * values[k], 1e-6, None), color=_colour(k),
                       label=f"direction {k + 1} (lambda {values[k]:.3g})")
        right.fill_between(speciation.grid, np.clip(speciation.ratio_low[k], 1e-6, None),
                           np.clip(speciation.ratio_high[k], 1e-6, None), color=_colour(k), alpha=0.2, lw=0)
        if np.isfinite(speciation.times[k]):
            right.axvline(speciation.times[k], color=_colour(k), ls="--", lw=0.8)
            if np.isfinite(speciation.times_low[k]):
                right.axvspan(speciation.times_low[k], speciation.times_high[k], color=_colour(k), alpha=0.1)
    right.axhline(1, color="grey", ls=":")
    right.set_xlabel("t")
    right.set_ylabel("a(t)^2 lambda")
    right.legend(fontsize=8)
    fig.suptitle(f"speciation estimate, {title}", fontsize=10)
    return _save(fig, path)
