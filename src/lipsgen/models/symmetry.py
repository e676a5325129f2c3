"""Relabelling symmetries: a model symmetrised over a group of particle permutations.

A target density that is invariant under relabelling its particles by a group G (the antenna
``1 / (y_12 y_23 ... y_N1)`` under the N rotations and the reflection of its colour loop) is better
proposed by the symmetrised model than by the model itself (docs/design.md, "Relabelling
symmetry")::

    r_G(p) = (1 / |G|) sum_{g in G} r(g p),        (g p)_j = p_{g(j)},

drawn by drawing p from the model and relabelling it by a uniformly drawn g. A chain base carries
the poles of one chain; the symmetrised model carries those of every relabelled chain, so an event
the model reaches poorly in one labelling (the antenna's loop-closing pole 1/y_N1, which no chain
through 1..N carries) is proposed by the labelling that puts it on the chain. Its density costs |G|
evaluations of the model's.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from ..catalogue import SYMMETRY_HELP

__all__ = ["SYMMETRIES", "relabelling_group"]

SYMMETRIES = tuple(SYMMETRY_HELP)
# the full symmetric group costs N! model evaluations per density
MAX_ALL_PARTICLES = 6


def relabelling_group(name: str, n_particles: int) -> Tensor:
    """The permutations (|G|, N) long of the group ``name``, the identity first: ``none`` (the identity
    alone), ``cyclic`` (the N rotations of 0..N-1), ``dihedral`` (rotations and their reversals, 2N for
    N >= 3) or ``all`` (the N! permutations, N <= 6)."""
    if name not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {name!r}; choose from {', '.join(SYMMETRIES)}")
    if not isinstance(n_particles, int) or n_particles < 2:
        raise ValueError(f"a relabelling symmetry needs at least 2 particles, got {n_particles!r}")
    identity = list(range(n_particles))
    if name == "all":
        if n_particles > MAX_ALL_PARTICLES:
            raise ValueError(f"the symmetry 'all' costs {math.factorial(n_particles)} model evaluations per density "
                             f"for {n_particles} particles; it is offered up to {MAX_ALL_PARTICLES}")
        perms = [list(p) for p in itertools.permutations(identity)]
    else:
        perms = [identity] if name == "none" else [identity[k:] + identity[:k] for k in range(n_particles)]
        if name == "dihedral":
            perms += [p[::-1] for p in perms]
    return torch.tensor(list(dict.fromkeys(tuple(p) for p in perms)), dtype=torch.long)
