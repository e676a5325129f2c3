"""Event observables (docs/design.md, Evaluation): per-event scalars for histograms, distances and classifiers.

All functions take events (n, N, 4) in the CM frame and return numpy arrays; energies are in
units of sqrt_s (taken per event from the total energy, so ambient-space baselines that do not
conserve energy are still measured on the same scale).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..jets.clustering import durham_resolutions
from ..kinematics import scaled_pair_invariants, sorted_by_energy

__all__ = ["Observable", "event_observables", "jet_observables", "thrust", "thrust_hemispheres", "c_parameter",
           "eec_pairs"]


@dataclass(frozen=True)
class Observable:
    """A named per-event scalar with a hint for plotting: ``log`` axes for singular variables."""

    name: str
    label: str
    values: np.ndarray
    log: bool = False


def _energy_scale(events: Tensor) -> Tensor:
    return events[..., 0].sum(dim=1)


def thrust(events: Tensor, chunk: int = 4096) -> np.ndarray:
    """Thrust ``T = max_n sum|p_i·n| / sum|p_i|`` (n,), exactly (see :func:`thrust_hemispheres`)."""
    return thrust_hemispheres(events, chunk)[0]


def thrust_hemispheres(events: Tensor, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Thrust T (n,) and the hemisphere of every particle (n, N) int8, +1 or -1 with particle 1 in
    +1 (a split and its mirror are one split), from the split that maximises thrust.

    Up to 14 particles: the maximum of ``|sum_i s_i p_i|`` over all hemisphere splits s. Beyond:
    the thrust axis is normal to a plane through two momenta, so the splits by the sign of
    ``p_k·(p_i x p_j)`` over all pairs (i, j), with the four assignments of i and j, contain the
    maximum (O(N^3) per event).
    """
    momenta = events[..., 1:].to(torch.float64)
    norm = torch.linalg.vector_norm(momenta, dim=-1).sum(dim=1)
    n_particles = momenta.shape[1]
    values, splits = [], []
    if n_particles <= 14:
        signs = torch.tensor(list(itertools.product([1.0, -1.0], repeat=n_particles - 1)), dtype=torch.float64)
        signs = torch.cat([torch.ones(len(signs), 1, dtype=torch.float64), signs], dim=1)  # (S, N)
        for start in range(0, len(momenta), chunk):
            combos = torch.einsum("sn,bnk->bsk", signs, momenta[start:start + chunk])
            best = torch.linalg.vector_norm(combos, dim=-1).max(dim=1)
            values.append(best.values)
            splits.append(signs[best.indices])
    else:
        i, j = torch.triu_indices(n_particles, n_particles, offset=1)
        others = torch.ones(len(i), n_particles, dtype=torch.float64)
        others[torch.arange(len(i)), i] = 0
        others[torch.arange(len(i)), j] = 0
        step = max(1, chunk // (4 * len(i)))
        for start in range(0, len(momenta), step):
            p = momenta[start:start + step]
            normal = torch.linalg.cross(p[:, i], p[:, j])  # (b, P, 3)
            signs = torch.sign(torch.einsum("bnk,bPk->bPn", p, normal)) * others
            base = torch.einsum("bPn,bnk->bPk", signs, p)
            best = torch.full((len(p),), -1.0, dtype=torch.float64)
            split = torch.zeros(len(p), n_particles, dtype=torch.float64)
            for a in (1.0, -1.0):
                for b in (1.0, -1.0):
                    candidate = torch.linalg.vector_norm(base + a * p[:, i] + b * p[:, j], dim=-1).max(dim=1)
                    better = candidate.values > best
                    chosen = signs[torch.arange(len(p)), candidate.indices]
                    chosen[torch.arange(len(p)), i[candidate.indices]] = a
                    chosen[torch.arange(len(p)), j[candidate.indices]] = b
                    split = torch.where(better.unsqueeze(1), chosen, split)
                    best = torch.maximum(best, candidate.values)
            values.append(best)
            splits.append(torch.where(split == 0, 1.0, split))  # coplanar: either side, the same thrust
    split = torch.cat(splits)
    split = split * split[:, :1]  # particle 1 in the + hemisphere
    return (torch.cat(values) / norm).numpy(), split.to(torch.int8).numpy()


def _cosines(events: Tensor) -> Tensor:
    p = events[..., 1:].to(torch.float64)
    unit = p / torch.linalg.vector_norm(p, dim=-1, keepdim=True).clamp(min=1e-300)
    return torch.einsum("bik,bjk->bij", unit, unit).clamp(-1, 1)


def c_parameter(events: Tensor) -> np.ndarray:
    """``C = 3/2 sum_{i,j} |p_i||p_j| sin^2(theta_ij) / (sum_i |p_i|)^2`` (n,)."""
    p = torch.linalg.vector_norm(events[..., 1:].to(torch.float64), dim=-1)
    sin2 = 1 - _cosines(events) ** 2
    return (1.5 * torch.einsum("bi,bj,bij->b", p, p, sin2) / p.sum(dim=1) ** 2).numpy()


def eec_pairs(events: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Energy-energy correlator ingredients: ``cos chi_ij`` of every pair i < j and its weight
    ``E_i E_j / (sum E)^2``, flattened over events; histogram with the weights."""
    n_particles = events.shape[1]
    i, j = torch.triu_indices(n_particles, n_particles, offset=1)
    energy = events[..., 0].to(torch.float64)
    weight = energy[:, i] * energy[:, j] / _energy_scale(events).unsqueeze(1) ** 2
    return _cosines(events)[:, i, j].reshape(-1).numpy(), weight.reshape(-1).numpy()


def event_observables(events: Tensor, *, labelled: bool, names: tuple[str, ...] | None = None) -> list[Observable]:
    """The standard per-event observables: energy fractions (per label, or sorted), scaled
    invariants y_ij (per pair, or sorted), log10 min y_ij, thrust and C-parameter."""
    events = events.to(torch.float64)
    n_particles = events.shape[1]
    x = (2 * events[..., 0] / _energy_scale(events).unsqueeze(1)).numpy()
    y_matrix = scaled_pair_invariants(events)
    i, j = torch.triu_indices(n_particles, n_particles, offset=1)
    y = y_matrix[:, i, j].numpy()
    result: list[Observable] = []
    if labelled:
        names = names or tuple(str(k + 1) for k in range(n_particles))
        result += [Observable(f"x_{k + 1}", f"x({names[k]}) = 2E/sqrt(s)", x[:, k]) for k in range(n_particles)]
        result += [Observable(f"y_{a + 1}{b + 1}", f"y({names[a]}, {names[b]})", y[:, m], log=True)
                   for m, (a, b) in enumerate(zip(i.tolist(), j.tolist()))]
    else:
        xs = -np.sort(-x, axis=1)
        ys = -np.sort(-y, axis=1)
        result += [Observable(f"x_sorted_{k + 1}", f"x, {k + 1}. largest", xs[:, k]) for k in range(n_particles)]
        result += [Observable(f"y_sorted_{k + 1}", f"y_ij, {k + 1}. largest", ys[:, k], log=True)
                   for k in range(ys.shape[1])]
    result.append(Observable("log10_min_y", "log10 min y_ij", np.log10(np.clip(y.min(axis=1), 1e-300, None))))
    result.append(Observable("thrust", "thrust T", thrust(events)))
    result.append(Observable("c_parameter", "C-parameter", c_parameter(events)))
    return result


def jet_observables(events: Tensor) -> list[Observable]:
    """What jet physicists look at in N-jet events (n, N, 4): the Durham resolutions log10 y_23 and
    log10 y_34 of the events themselves (N >= 3, 4), and the opening angles between the three most
    energetic jets (cosines)."""
    events = events.to(torch.float64)
    n_particles = events.shape[1]
    resolutions = durham_resolutions(events, [k for k in (2, 3) if k < n_particles])
    result = [Observable(f"log10_y{k}{k + 1}", f"log10 y_{k}{k + 1} (Durham)", np.log10(np.clip(y, 1e-300, None)))
              for k, y in resolutions.items()]
    cosines = _cosines(sorted_by_energy(events))
    for a, b in itertools.combinations(range(min(3, n_particles)), 2):
        result.append(Observable(f"cos_{a + 1}{b + 1}", f"cos angle(jet {a + 1}, jet {b + 1}), by energy",
                                 cosines[:, a, b].numpy()))
    return result
