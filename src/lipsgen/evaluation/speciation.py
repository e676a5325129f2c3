"""Speciation times predicted from the data's covariance spectrum (Biroli, Bonnaire, de Bortoli, Mezard,
arXiv:2402.18491), in a model's own coordinates and for its own forward process.

For the Ornstein-Uhlenbeck process ``x_s = e^{-s} x_0 + sqrt(1 - e^{-2s}) z`` the reverse process
commits to one of the data's classes (speciation) at ``s_S = log(Lambda) / 2``, where Lambda is the
largest eigenvalue of the data's covariance: there the data's variance along its principal direction,
shrunk by the forward process, ``e^{-2s} Lambda``, equals the noise end's variance 1. lipsgen's
processes differ in how they shrink the data and in their noise end, so the same criterion is written
generally:

- the eigenvalues are those of the data's covariance relative to the noise end's (the generalised
  problem ``C_data e = lambda C_noise e``; e^T C_noise e = 1), both in the model's coordinates;
- the shrinking factor ``a_e(t) = Cov(e·x_t, e·x_0) / Var(e·x_0)`` of the forward process along e is
  measured by running it on the data (closed form: alpha(t) for variance-preserving diffusion,
  1 - t for flow matching; the Langevin chain toward the RAMBO prior has none);
- ``t_S(e)`` solves ``a_e(t)^2 lambda_e = 1``.

Directions with lambda <= 1 carry no more variance than the noise: they have no speciation time.
Later eigen-directions give later (smaller t) stages (Achilli, Benedetti, Biroli, Mezard, arXiv:2602.04404).
Errors: bootstrap replicas resample the data events (with their forward states) and the noise-end
states, with the directions held fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from ..models.processes import Process
from .uturn import array_of, bootstrap_band, json_list

__all__ = ["Speciation", "covariance_spectrum", "forward_projections", "crossing_times", "speciation_estimate"]


@dataclass(frozen=True)
class Speciation:
    """``eigenvalues`` (d,) descending; for the leading ``k`` directions: ``times`` (k,) t_S (NaN: none)
    with their bootstrap interval ``times_low``/``times_high`` (k,); on the ``grid`` (T,) of t the
    measured ``retention`` a_e(t) (k, T), the ``log_snr`` (k, T) (:meth:`log_snr_at`) and the band
    ``ratio_low``/``ratio_high`` (k, T) of a_e(t)^2 lambda_e."""

    eigenvalues: np.ndarray
    times: np.ndarray
    times_low: np.ndarray
    times_high: np.ndarray
    grid: np.ndarray
    retention: np.ndarray
    log_snr: np.ndarray
    ratio_low: np.ndarray
    ratio_high: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: arrays as lists (rows for (k, T) arrays), NaN as None."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            out[name] = [json_list(row) for row in value] if value.ndim == 2 else json_list(value)
        return out

    def log_snr_at(self, t: float, direction: int = 0) -> float:
        """log10 of the forward process's signal-to-noise ratio ``a_e(t)^2 / v_e(t)`` along a leading
        direction at t (v_e: the variance the process has added, in units of the noise end's),
        interpolated on the grid (below its first positive point: that point's value, a lower bound), a
        clock common to all processes (for Gaussian paths the schedule's alpha^2 / sigma^2, which fixes
        the noised law whatever the time variable)."""
        if not np.isfinite(t):
            return float("nan")
        positive = self.grid > 0
        return float(np.interp(t, self.grid[positive], self.log_snr[direction][positive]))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Speciation:
        def array(value: list) -> np.ndarray:
            if value and isinstance(value[0], list):  # (k, T) rows
                return np.array([array_of(row) for row in value])
            return array_of(value)

        return cls(**{name: array(values[name]) for name in cls.__dataclass_fields__})


def _covariance(x: np.ndarray) -> np.ndarray:
    return np.cov(x, rowvar=False)


def covariance_spectrum(data: Tensor, noise: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (d,) descending and directions (d, d) (columns, ``e^T C_noise e = 1``) of the data
    states' covariance relative to the noise end's; ``data`` (n, ...) and ``noise`` (m, ...) states,
    flattened to d coordinates."""
    x = data.detach().to("cpu", torch.float64).flatten(1).numpy()
    z = noise.detach().to("cpu", torch.float64).flatten(1).numpy()
    if x.shape[1] != z.shape[1]:
        raise ValueError(f"data states have {x.shape[1]} coordinates, noise states {z.shape[1]}")
    values, vectors = scipy.linalg.eigh(_covariance(x), _covariance(z))
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


def forward_projections(process: Process, data: Tensor, directions: np.ndarray, grid: np.ndarray,
                        generator: torch.Generator) -> np.ndarray:
    """``e·x_t`` (T, n, k) for the columns e of ``directions`` (d, k), the data states (n, ...) run
    forward by ``process`` to each t of ``grid`` (T,) (t = 0: the data)."""
    x0 = data.detach()
    e = torch.as_tensor(directions, dtype=torch.float64, device=x0.device)
    out = np.empty((len(grid), len(x0), e.shape[1]))
    for column, t in enumerate(grid):
        xt = x0 if t == 0 else process.noise(x0, float(t), generator)
        out[column] = (xt.to(torch.float64).flatten(1) @ e).cpu().numpy()
    return out


def _retention(projections: np.ndarray, start: np.ndarray) -> np.ndarray:
    """a_e(t) (k, T) from forward projections (T, n, k) and the data's own (n, k)."""
    centred_start = start - start.mean(axis=0)
    centred = projections - projections.mean(axis=1, keepdims=True)
    return ((centred * centred_start).sum(axis=1) / (centred_start**2).sum(axis=0)).T


def _log_snr(projections: np.ndarray, start: np.ndarray, noise_projections: np.ndarray,
             retention: np.ndarray) -> np.ndarray:
    """log10 a^2 / v (k, T): v the variance of e·x_t not explained by e·x_0, in units of the noise
    end's variance along e (+inf at t = 0, where nothing is added)."""
    added = projections.var(axis=1, ddof=1).T - retention**2 * start.var(axis=0, ddof=1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = retention**2 / np.clip(added / noise_projections.var(axis=0, ddof=1)[:, None], 0, None)
        return np.log10(snr)


def crossing_times(eigenvalues: np.ndarray, grid: np.ndarray, retention: np.ndarray) -> np.ndarray:
    """t_S (k,) where ``a(t)^2 lambda`` first falls to 1 along the increasing ``grid`` (T,),
    interpolated linearly in log(a^2 lambda); NaN for lambda <= 1 or no crossing on the grid."""
    times = np.full(len(retention), np.nan)
    for k, (value, a) in enumerate(zip(eigenvalues, retention)):
        if not value > 1:
            continue
        log_ratio = np.log(np.clip(a * a * value, 1e-300, None))
        below = np.nonzero(log_ratio <= 0)[0]
        if not len(below) or below[0] == 0:
            continue
        i = below[0]
        t0, t1, r0, r1 = grid[i - 1], grid[i], log_ratio[i - 1], log_ratio[i]
        times[k] = t0 + (t1 - t0) * r0 / (r0 - r1)
    return times


def speciation_estimate(process: Process, data: Tensor, noise: Tensor, generator: torch.Generator, *,
                        directions: int = 3, grid: np.ndarray | None = None, replicas: int = 100,
                        rng: np.random.Generator | None = None) -> Speciation:
    """The speciation times of the ``directions`` leading eigen-directions of data states (n, ...)
    against noise-end states (m, ...), for ``process``'s forward run (see the module's docstring),
    with ``replicas`` bootstrap replicas."""
    grid = np.union1d([0.0], np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=np.float64))
    rng = np.random.default_rng(0) if rng is None else rng
    values, vectors = covariance_spectrum(data, noise)
    k = min(directions, len(values))
    projections = forward_projections(process, data, vectors[:, :k], grid, generator)  # (T, n, k)
    start = projections[0]  # t = 0: the data
    noise_projections = noise.detach().to("cpu", torch.float64).flatten(1).numpy() @ vectors[:, :k]
    retention = _retention(projections, start)
    log_snr = _log_snr(projections, start, noise_projections, retention)
    times = crossing_times(values[:k], grid, retention)
    replica_times, replica_ratios = [], []
    for _ in range(replicas):
        index = rng.integers(0, len(start), len(start))
        noise_index = rng.integers(0, len(noise_projections), len(noise_projections))
        lam = start[index].var(axis=0, ddof=1) / noise_projections[noise_index].var(axis=0, ddof=1)
        a = _retention(projections[:, index], start[index])
        replica_times.append(crossing_times(lam, grid, a))
        replica_ratios.append(a * a * lam[:, None])
    times_low, times_high = bootstrap_band(np.array(replica_times))
    ratio_low, ratio_high = bootstrap_band(np.array(replica_ratios))
    return Speciation(values, times, times_low, times_high, grid, retention, log_snr,
                      ratio_low, ratio_high)
