"""The colour-ordered antenna (Parke-Taylor denominator) of N gluons: a singular density without an
exact event sampler, for weighted generation and integration (docs/design.md, "Exact event weights")."""

from __future__ import annotations

import itertools
import math
from functools import cached_property

import torch
from torch import Tensor

from ..errors import LipsgenError
from ..kinematics import min_pair_invariant, scaled_pair_invariants
from .base import Target

__all__ = ["Antenna", "ORDERINGS"]

ORDERINGS = ("one", "all")
_MAX_PARTICLES, _MAX_PARTICLES_SUMMED = 10, 6


class Antenna(Target):
    """Labelled gluons 1..N with density ``1 / (y_12 y_23 ... y_N1)`` on phase space (``y_ij =
    2 p_i.p_j / s``; the Parke-Taylor denominator ``1/(p_1.p_2 ... p_N.p_1)`` up to ``(2/s)^N``),
    zero unless ``min_ij y_ij > ycut`` over all pairs. Unnormalised: weighted samples estimate
    its integral. ``orderings="all"`` sums the antenna over the (N-1)!/2 distinct cyclic orderings
    (N <= 6), the colour sum's leading term for unlabelled gluons.

    No exact event sampler exists here: events come from a model's weighted samples (``lipsgen
    sample --weights``), unweighted if needed (``lipsgen unweight``)."""

    name = "antenna"
    labelled = True
    density_normalised = False
    singular = True
    particle_id = 21

    def __init__(self, n_particles: int = 5, ycut: float = 1e-3, orderings: str = "one", *,
                 sqrt_s: float = 1.0) -> None:
        super().__init__(n_particles, sqrt_s=sqrt_s)
        if not 3 <= n_particles <= _MAX_PARTICLES:
            raise ValueError(f"antenna: n_particles must be in 3..{_MAX_PARTICLES}, got {n_particles}")
        if not (isinstance(ycut, (int, float)) and 0 < ycut < 2 / (n_particles * (n_particles - 1))):
            # the N(N-1)/2 invariants sum to 1, so min y_ij < 2 / (N (N - 1))
            raise ValueError(f"antenna: ycut must be in (0, {2 / (n_particles * (n_particles - 1)):.3g}) for "
                             f"{n_particles} particles, got {ycut!r}")
        if orderings not in ORDERINGS:
            raise ValueError(f"antenna: orderings must be one of {', '.join(ORDERINGS)}, got {orderings!r}")
        if orderings == "all" and n_particles > _MAX_PARTICLES_SUMMED:
            raise ValueError(f"antenna: the sum over orderings is offered up to {_MAX_PARTICLES_SUMMED} particles "
                             f"((N-1)!/2 terms), got {n_particles}")
        self.ycut, self.orderings = float(ycut), orderings

    def parameters(self) -> dict:
        return {"n_particles": self.n_particles, "ycut": self.ycut, "orderings": self.orderings,
                "sqrt_s": self.sqrt_s}

    @cached_property
    def _cycles(self) -> Tensor:
        """(C, N) particle orders: the identity, or every cyclic order up to rotation and reversal."""
        n = self.n_particles
        if self.orderings == "one":
            return torch.arange(n).unsqueeze(0)
        rest = [p for p in itertools.permutations(range(1, n)) if p[0] < p[-1]]  # fix 0 first; drop reversals
        return torch.tensor([(0, *p) for p in rest])

    def in_support(self, events: Tensor) -> Tensor:
        """Mask (n,): ``min_ij y_ij > ycut`` over all pairs."""
        return min_pair_invariant(self.check_shape(events), self.sqrt_s) > self.ycut

    def log_density(self, events: Tensor) -> Tensor:
        """``log sum_orderings prod_i 1/y_{i,i+1}`` (n,) (unnormalised); -inf outside the cut."""
        y = scaled_pair_invariants(self.check_shape(events), self.sqrt_s)
        cycles = self._cycles.to(y.device)
        nxt = cycles.roll(-1, dims=1)
        log_y = torch.log(y[:, cycles, nxt])  # (n, C, N)
        value = torch.logsumexp(-log_y.sum(dim=2), dim=1)
        return torch.where(self.in_support(events), value, torch.full_like(value, -math.inf))

    def sample_chunk(self, n_events: int, generator: torch.Generator, dtype: torch.dtype,
                     device: torch.device) -> Tensor:
        raise LipsgenError("antenna: no exact event sampler; draw weighted events from a model trained on the "
                           "density (lipsgen train --target antenna --model nf) with lipsgen sample --weights, "
                           "then lipsgen unweight")
