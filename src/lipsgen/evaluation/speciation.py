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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from ..models.processes import Process
from .uturn import array_of, json_list

__all__ = ["Speciation", "covariance_spectrum", "signal_retention", "crossing_times", "speciation_estimate"]


@dataclass(frozen=True)
class Speciation:
    """``eigenvalues`` (d,) descending; for the leading ``k`` directions: ``times`` (k,) t_S (NaN:
    none), ``grid`` (T,) and ``retention`` (k, T) the measured a_e(t)."""

    eigenvalues: np.ndarray
    times: np.ndarray
    grid: np.ndarray
    retention: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: arrays as lists, NaN as None."""
        return {"eigenvalues": json_list(self.eigenvalues), "times": json_list(self.times),
                "grid": json_list(self.grid), "retention": [json_list(row) for row in self.retention]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Speciation:
        return cls(array_of(values["eigenvalues"]), array_of(values["times"]), array_of(values["grid"]),
                   np.array([array_of(row) for row in values["retention"]]).reshape(-1, len(values["grid"])))


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


def signal_retention(process: Process, data: Tensor, directions: np.ndarray, grid: np.ndarray,
                     generator: torch.Generator) -> np.ndarray:
    """``a_e(t)`` (k, T) for the columns e of ``directions`` (d, k) at the times ``grid`` (T,): the
    regression coefficient of e·x_t on e·x_0 under the forward process from the data states (n, ...)."""
    x0 = data.detach()
    e = torch.as_tensor(directions, dtype=torch.float64, device=x0.device)
    p0 = x0.to(torch.float64).flatten(1) @ e
    p0 = p0 - p0.mean(dim=0)
    out = np.empty((e.shape[1], len(grid)))
    for column, t in enumerate(grid):
        xt = x0 if t == 0 else process.noise(x0, float(t), generator)
        pt = xt.to(torch.float64).flatten(1) @ e
        pt = pt - pt.mean(dim=0)
        out[:, column] = ((pt * p0).sum(dim=0) / p0.square().sum(dim=0)).cpu().numpy()
    return out


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
                        directions: int = 3, grid: np.ndarray | None = None) -> Speciation:
    """The speciation times of the ``directions`` leading eigen-directions of data states (n, ...)
    against noise-end states (m, ...), for ``process``'s forward run (see the module's docstring)."""
    grid = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=np.float64)
    values, vectors = covariance_spectrum(data, noise)
    k = min(directions, len(values))
    retention = signal_retention(process, data, vectors[:, :k], grid, generator)
    return Speciation(values, crossing_times(values[:k], grid, retention), grid, retention)
