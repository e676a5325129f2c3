"""What every training target provides: exact, seeded, chunked sampling of events on phase space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..catalogue import DEFAULT_CHUNK_SIZE
from ..random import make_generator
from ..validation import check_events

__all__ = ["Target", "DEFAULT_CHUNK_SIZE", "RangedSpectrum", "fill_by_rejection", "random_permutations"]


@dataclass(frozen=True)
class RangedSpectrum:
    """An analytic CDF with the range [low, high] its chi^2 is taken over, for observables not on
    [0, 1] (the range of the energy fractions, which plain CDFs use)."""

    cdf: Callable[[np.ndarray], np.ndarray]
    low: float
    high: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.cdf(x)



def random_permutations(events: Tensor, generator: torch.Generator) -> Tensor:
    """Shuffle the particle order of each event (n, N, 4) independently and uniformly."""
    n, n_particles = events.shape[:2]
    keys = torch.rand((n, n_particles), generator=generator, dtype=torch.float64, device=events.device)
    order = keys.argsort(dim=1)
    return events.gather(1, order.unsqueeze(-1).expand(-1, -1, events.shape[-1]))


# Largest proposal round, and the acceptance below which rejection is refused as hopeless.
_MAX_ROUND = 1 << 22
_MIN_ACCEPTANCE, _MIN_PROPOSALS = 1e-7, 10**7


def fill_by_rejection(n_events: int, draw_accepted: Callable[[int], Tensor], name: str = "target",
                      overdraw: float = 1.5) -> Tensor:
    """Call ``draw_accepted(m)`` (the accepted events among ``m`` proposals) until ``n_events``
    events are collected; returns exactly ``n_events`` of them, in order.

    A round proposes ``overdraw * need + 16``; once the acceptance seen is far below
    ``1 / overdraw``, rounds are sized by it instead (up to 2^22 proposals), so a tiny acceptance
    costs few large rounds, not millions of small ones. Below an acceptance of 1e-7 (after 1e7
    proposals) it stops with an error that says so."""
    accepted: list[Tensor] = []
    have, proposed, passed = 0, 0, 0
    while have < n_events:
        need = n_events - have
        size = int(need * overdraw) + 16
        if proposed and passed < proposed / (4 * overdraw):  # acceptance far below what overdraw expects
            rate = max(passed, 1) / proposed
            size = min(_MAX_ROUND, max(size, int(1.2 * need / rate)))
        events = draw_accepted(size)
        proposed, passed = proposed + size, passed + len(events)
        if proposed >= _MIN_PROPOSALS and passed < _MIN_ACCEPTANCE * proposed:
            raise ValueError(f"{name}: rejection sampling accepted {passed} of {proposed} proposals; "
                             f"these parameters leave almost no phase space")
        accepted.append(events[:need])
        have += len(accepted[-1])
    return torch.cat(accepted)


class Target(ABC):
    """A distribution of events (n, N, 4) in the CM frame at ``sqrt_s``, massless unless ``masses`` is set.

    Subclasses set ``name`` and ``labelled`` (whether particle order carries meaning) and implement
    :meth:`sample_chunk`. Sampling is exact: no approximations and no weights.
    """

    name: str = ""
    labelled: bool = False
    density_normalised: bool | None = None  # None: no closed-form density
    # Soft/collinear poles cut off at small invariants: the density spreads over decades there, which
    # calls for the Langevin model's singular schedule and regularised drift (docs/design.md, Models).
    singular: bool = False
    # PDG ids of the outgoing particles in order (labelled targets), or one id for all of them
    particle_ids: tuple[int, ...] | None = None
    particle_id: int = 22
    # Masses (N,) of the outgoing particles, in the unit of sqrt_s; None: all massless
    masses: tuple[float, ...] | None = None

    @classmethod
    def pdg_ids_for(cls, n_particles: int) -> tuple[int, ...]:
        """PDG ids (N,) of the outgoing particles of an event with ``n_particles`` particles."""
        if cls.particle_ids is not None and len(cls.particle_ids) == n_particles:
            return cls.particle_ids
        return (cls.particle_id,) * n_particles

    def __init__(self, n_particles: int, *, sqrt_s: float = 1.0) -> None:
        if not isinstance(n_particles, int) or n_particles < 2:
            raise ValueError(f"{self.name}: n_particles must be an integer >= 2, got {n_particles!r}")
        if not (isinstance(sqrt_s, (int, float)) and 1e-60 <= sqrt_s <= 1e60):
            # invariants scale like s^2: beyond these, float64 over- or underflows
            raise ValueError(f"{self.name}: sqrt_s must be a number in [1e-60, 1e60] (choose the energy unit "
                             f"accordingly), got {sqrt_s!r}")
        self.n_particles = n_particles
        self.sqrt_s = float(sqrt_s)

    @abstractmethod
    def sample_chunk(
        self, n_events: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device
    ) -> Tensor:
        """Draw ``n_events`` events (n_events, n_particles, 4) with ``generator``."""

    def check_shape(self, events: Tensor) -> Tensor:
        """Refuse events that cannot be this target's: not (n, N, 4) with N = ``n_particles``, NaN or
        infinite components, negative energies (names the first bad event). Kinematics are not
        checked here, so densities can be evaluated on the (rescaled) output of non-exact models."""
        check_events(events, massless=False)
        if events.shape[1] != self.n_particles:
            raise ValueError(f"{self.name}: events have {events.shape[1]} particles, the target has {self.n_particles}")
        return events

    def log_density(self, events: Tensor) -> Tensor:
        """Log-density (n,) on phase space, where known in closed form (see ``density_normalised``)."""
        raise NotImplementedError(f"{self.name}: no closed-form density on phase space")

    def spectra(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """Analytic CDFs of one-dimensional observables (named as in
        :func:`lipsgen.evaluation.event_observables`), where the target has them in closed form."""
        return {}

    def observables(self, events: Tensor) -> dict[str, Tensor]:
        """Target-specific observables (n,) of events (n, N, 4) by name, beside the standard ones
        (e.g. a resonance's line shape); the keys of :meth:`spectra` may name them."""
        return {}

    def in_support(self, events: Tensor) -> Tensor:
        """Mask (n,) of events (n, N, 4) inside the target's generation cuts; all of phase space
        unless a subclass cuts it."""
        return torch.ones(events.shape[0], dtype=torch.bool, device=events.device)

    def parameters(self) -> dict[str, Any]:
        """The target's parameters, as recorded in event-file attributes."""
        return {"n_particles": self.n_particles, "sqrt_s": self.sqrt_s}

    def stream(
        self,
        n_events: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        permute: bool = False,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> Iterator[Tensor]:
        """Yield chunks of at most ``chunk_size`` events, ``n_events`` in all.

        ``permute`` shuffles the particle order of every event (for models of unlabelled
        particles). The same seed, chunk size and options give the same events on the same device.
        """
        if not isinstance(n_events, int) or n_events < 0:
            raise ValueError(f"n_events must be a non-negative integer, got {n_events!r}")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        device = torch.device(device)
        gen = make_generator(seed, generator, device)
        done = 0
        while done < n_events:
            size = min(chunk_size, n_events - done)
            chunk = self.sample_chunk(size, gen, dtype, device)
            yield random_permutations(chunk, gen) if permute else chunk
            done += size

    def sample(
        self,
        n_events: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        permute: bool = False,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Draw ``n_events`` events (n_events, n_particles, 4) in one tensor."""
        chunks = list(self.stream(n_events, seed=seed, generator=generator, permute=permute,
                                  dtype=dtype, device=device))
        if not chunks:
            return torch.empty((0, self.n_particles, 4), dtype=dtype, device=device)
        return torch.cat(chunks) if len(chunks) > 1 else chunks[0]
