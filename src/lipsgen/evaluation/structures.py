"""Discrete structures of events: what a reverse run decides, for keep probabilities (U-turns).

Each structure is an integer array (n, k) per event; two events share it when their rows are
equal. Particles are identified by their position in the event (their label, or for unlabelled
targets their slot, which a reverse run carries from its start to its end).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..catalogue import EMERGENCE_STRUCTURES
from ..jets.clustering import durham_multiplicity
from .observables import thrust_hemispheres

__all__ = ["STRUCTURES", "event_structures", "most_collinear_pair", "energy_ordering",
           "shared_fraction", "independent_share"]

STRUCTURES = EMERGENCE_STRUCTURES


def energy_ordering(events: Tensor) -> np.ndarray:
    """Particle indices by decreasing energy (n, N) int64."""
    return torch.argsort(-events[..., 0], dim=1, stable=True).numpy()


def most_collinear_pair(events: Tensor) -> np.ndarray:
    """The pair (i, j), i < j, with the largest cos theta_ij, (n, 2) int64."""
    p = events[..., 1:].to(torch.float64)
    unit = p / torch.linalg.vector_norm(p, dim=-1, keepdim=True).clamp(min=1e-300)
    n_particles = p.shape[1]
    i, j = torch.triu_indices(n_particles, n_particles, offset=1)
    cosines = (unit[:, i] * unit[:, j]).sum(-1)
    best = cosines.argmax(dim=1)
    return torch.stack([i[best], j[best]], dim=1).numpy()


def event_structures(events: Tensor, *, jet_ycut: float) -> dict[str, np.ndarray]:
    """Every structure of :data:`STRUCTURES` for events (n, N, 4), each (n, k) int64."""
    events = events.detach().to("cpu", torch.float64)
    ordering = energy_ordering(events)
    return {
        "hardest": ordering[:, :1],
        "energy_ordering": ordering,
        "most_collinear_pair": most_collinear_pair(events),
        "jet_multiplicity": durham_multiplicity(events, jet_ycut)[:, None],
        "thrust_hemispheres": thrust_hemispheres(events)[1].astype(np.int64),
    }


def shared_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per event (n,) bool: whether rows of ``a`` and ``b`` (n, k) are equal."""
    return (a == b).all(axis=1)


def independent_share(a: np.ndarray, b: np.ndarray) -> float:
    """P(row of a == row of b) for a and b drawn independently from the two samples (n_a, k),
    (n_b, k): ``sum_s p_a(s) p_b(s)`` over the distinct rows s, exactly from the frequencies."""
    rows, codes = np.unique(np.concatenate([a, b]), axis=0, return_inverse=True)
    codes = codes.reshape(-1)
    p_a = np.bincount(codes[:len(a)], minlength=len(rows)) / len(a)
    p_b = np.bincount(codes[len(a):], minlength=len(rows)) / len(b)
    return float(p_a @ p_b)
