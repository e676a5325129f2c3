"""A mixture of channels: several bijective bases, one more hypercube coordinate picks the channel.

With channels ``M_c`` (each a bijection of (0, 1)^d onto the same support, density ``g_c``) and
weights ``alpha_c``, the last coordinate ``u_d`` selects channel c on the interval
``[A_{c-1}, A_c)`` of the cumulative weights and the others feed ``M_c``: uniform u then give
events of density ``g(p) = sum_c alpha_c g_c(p)``, which needs every channel's inverse at p. The
inverse draws the channel from its posterior ``alpha_c g_c(p) / g(p)`` and ``u_d`` uniformly in its
interval, so encoded data follow the same joint law as the base's own draws (docs/design.md,
"Bases"). Weights and channel parameters are fitted by expectation maximisation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .chain import ChainMap
from .protocol import PhaseSpaceMap

__all__ = ["ChannelMixture", "chain_orderings", "colour_orderings", "chain_mixture"]

# EM rounds of a fit and the events it sees (every round refits every channel), and the largest
# particle count whose chain orderings are all used
EM_ROUNDS = 3
EM_EVENTS = 10_000
MAX_MIXTURE_PARTICLES = 5


class ChannelMixture:
    """Channels (bijective :class:`PhaseSpaceMap` s of one dimension) mixed with ``weights``."""

    def __init__(self, channels: Sequence[PhaseSpaceMap], weights: Sequence[float] | None = None) -> None:
        if not channels:
            raise ValueError("a mixture needs at least one channel")
        first = channels[0]
        if any(c.dim != first.dim or c.n_particles != first.n_particles or c.sqrt_s != first.sqrt_s
               for c in channels):
            raise ValueError("the channels of a mixture must have one dimension, particle count and sqrt_s")
        self.channels = list(channels)
        self.n_particles, self.sqrt_s = first.n_particles, first.sqrt_s
        self._set_weights(weights if weights is not None else [1.0] * len(channels))

    def _set_weights(self, weights: Sequence[float]) -> None:
        w = torch.tensor([float(x) for x in weights], dtype=torch.float64)
        if len(w) != len(self.channels) or not bool((w > 0).all()) or not bool(torch.isfinite(w).all()):
            raise ValueError(f"need {len(self.channels)} positive channel weights, got {list(weights)}")
        self.weights = w / w.sum()
        self._edges = torch.cat([torch.zeros(1, dtype=torch.float64), self.weights.cumsum(0)])
        self._edges[-1] = 1.0

    @property
    def dim(self) -> int:
        return self.channels[0].dim + 1

    def _channel_log_densities(self, events: Tensor) -> tuple[Tensor, Tensor]:
        """Every channel's u (C, n, d - 1) and log g_c (C, n) at events (n, N, 4)."""
        us, logs = zip(*(c.inverse(events) for c in self.channels))
        return torch.stack(us), torch.stack(logs)

    def log_density(self, events: Tensor) -> Tensor:
        """log g (n,) of events (n, N, 4): the mixture's density on phase space."""
        logs = self._channel_log_densities(events.to(torch.float64))[1]
        return torch.logsumexp(logs + self.weights.log().unsqueeze(1), dim=0)

    def events(self, u: Tensor) -> Tensor:
        """The events (n, N, 4) of u (n, dim), without their density (which costs every channel's
        inverse): what decoding a state needs."""
        u = u.to(torch.float64)
        if u.ndim != 2 or u.shape[1] != self.dim:
            raise ValueError(f"u must have shape (n, {self.dim}), got {tuple(u.shape)}")
        channel = (torch.searchsorted(self._edges, u[:, -1].contiguous(), right=True) - 1).clamp(
            0, len(self.channels) - 1)
        events = u.new_empty((len(u), self.n_particles, 4))
        for c, base in enumerate(self.channels):
            rows = channel == c
            if bool(rows.any()):
                events[rows] = base.forward(u[rows, :-1])[0]
        return events

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        events = self.events(u)
        return events, self.log_density(events)

    def inverse(self, events: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        events = events.to(torch.float64)
        us, logs = self._channel_log_densities(events)
        joint = logs + self.weights.log().unsqueeze(1)  # (C, n)
        log_g = torch.logsumexp(joint, dim=0)
        inside = torch.isfinite(log_g)
        posterior = torch.softmax(joint.T[inside], dim=1)
        channel = torch.zeros(len(events), dtype=torch.long)
        if bool(inside.any()):
            channel[inside] = torch.multinomial(posterior, 1, generator=generator).squeeze(1)
        within = torch.rand(len(events), generator=generator, dtype=torch.float64)
        last = self._edges[channel] + within * self.weights[channel]
        u = torch.cat([us[channel, torch.arange(len(events))], last.unsqueeze(1)], dim=1)
        return u.masked_fill(~inside.unsqueeze(1), math.nan), log_g

    def parameters(self) -> dict[str, Any]:
        return {"channel_weights": self.weights.tolist(), "channels": [c.parameters() for c in self.channels]}

    def load_parameters(self, values: dict[str, Any]) -> None:
        if len(values["channels"]) != len(self.channels):
            raise ValueError(f"{len(values['channels'])} channels recorded, the mixture has {len(self.channels)}")
        for channel, recorded in zip(self.channels, values["channels"]):
            channel.load_parameters(recorded)
        self._set_weights(values["channel_weights"])

    def fit(self, events: Tensor, weights: Tensor | None = None) -> None:
        """Expectation maximisation on at most ``EM_EVENTS`` of the events: responsibilities
        ``alpha_c g_c / g`` per event, then the weights as their means and every channel fitted on
        its own responsibilities."""
        step = max(1, -(-len(events) // EM_EVENTS))
        events = events[::step].to(torch.float64)
        w = torch.ones(len(events), dtype=torch.float64) if weights is None else weights[::step].to(torch.float64)
        for _ in range(EM_ROUNDS):
            joint = self._channel_log_densities(events)[1] + self.weights.log().unsqueeze(1)
            inside = torch.isfinite(torch.logsumexp(joint, dim=0))
            responsibilities = torch.zeros_like(joint)
            responsibilities[:, inside] = torch.softmax(joint[:, inside], dim=0) * w[inside]
            totals = responsibilities.sum(1)
            self._set_weights((totals / totals.sum()).clamp(min=1e-6).tolist())
            for channel, r in zip(self.channels, responsibilities):
                channel.fit(events, r)


def chain_orderings(n_particles: int) -> list[list[int]]:
    """Every chain order that gives a distinct chain density: all permutations, up to the swap of
    the first two (the last decay's two particles, whose two-sided angle map is symmetric)."""
    return [list(p) for p in itertools.permutations(range(n_particles)) if p[0] < p[1]]


def _canonical(order: Sequence[int]) -> tuple[int, ...]:
    """A chain order with its first two swapped into increasing order (the same density)."""
    first, second, *rest = order
    return (min(first, second), max(first, second), *rest)


def colour_orderings(n_particles: int) -> list[list[int]]:
    """The chain orders along one colour loop 0-1-...-(N-1)-0: its N rotations, both directions
    (up to the swap of the first two), 2N or fewer channels: the leading-colour structure of
    particles labelled in colour order."""
    identity = list(range(n_particles))
    loops = [identity[k:] + identity[:k] for k in range(n_particles)]
    distinct = dict.fromkeys(_canonical(o) for loop in loops for o in (loop, loop[::-1]))
    return [list(o) for o in distinct]


def chain_mixture(n_particles: int, sqrt_s: float, *, ycut: float = 0.0, colour: bool = False) -> ChannelMixture:
    """Chain bases in every ordering (:func:`chain_orderings`), for unlabelled particles, or with
    ``colour`` along the colour loop of labelled particles (:func:`colour_orderings`)."""
    if colour:
        orders = colour_orderings(n_particles)
    elif n_particles > MAX_MIXTURE_PARTICLES:
        raise ValueError(f"the chain mixture uses all {math.factorial(n_particles) // 2} orderings of {n_particles} "
                         f"particles; it is offered up to {MAX_MIXTURE_PARTICLES} particles")
    else:
        orders = chain_orderings(n_particles)
    return ChannelMixture([ChainMap(n_particles, sqrt_s, ycut=ycut, order=order) for order in orders])
