"""Where a model lives and how its states become events.

A space encodes events (n, N, 4) into model coordinates x (n, N, 3) and decodes any x back into
events. q- and z-space decode through the RAMBO map (float64), so every decoded state is exactly
on phase space; p-space is the ambient baseline, decoded as massless particles with no
conservation. ``prior`` draws the noise end of the space's standard process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..catalogue import Lift
from ..coordinates.massive import log_massive_weight, massive_from_massless, massless_from_massive
from ..coordinates.qspace import prior_log_prob, sample_prior
from ..coordinates.rambo import inverse_rambo_map, lift_to_qspace, rambo_map
from ..coordinates.zspace import q_to_z, standard_normal_log_prob, z_to_q
from ..kinematics import phase_space_volume, sorted_by_energy, three_to_four

if TYPE_CHECKING:
    from ..bases import PhaseSpaceMap

__all__ = ["Space", "QSpace", "ZSpace", "PSpace", "ChartSpace", "MassiveSpace", "make_space"]


@dataclass
class Space:
    """Base: ``sqrt_s`` and the lifting mode used to encode data (``exact`` or ``fixed``)."""

    n_particles: int
    sqrt_s: float = 1.0
    lift: Lift = "exact"

    exact = True  # decoded events conserve energy and momentum to rounding

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def decode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def prior(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return torch.randn((n, self.n_particles, 3), generator=generator, device=device)

    def event_momenta(self, x: Tensor) -> Tensor:
        """Massless 3-momenta (n, N, 3) whose Lorentz invariants, up to one scale, are those of the
        event that states x (n, N, 3) decode to; differentiable. Default: x itself (q-space, where
        the RAMBO map is a boost and a rescaling; p-space, where the decoded momenta are x)."""
        return x

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """Log-density (n,) float64 of :meth:`prior` at states x (n, N, 3)."""
        return standard_normal_log_prob(x)

    def reference_log_prob(self, x: Tensor) -> Tensor:
        """``log rho_0`` (n,) float64: uniform phase space lifted into this space, at states x
        (n, N, 3). Model densities are reported relative to it (``SampleOutput.log_density``).
        In q- and z-space it is the prior's own density."""
        return self.prior_log_prob(x)

    def represented_log_density(self, log_density: Tensor, events: Tensor) -> Tensor:
        """A target's log-density (n,) at events (n, N, 4), as this space represents the events:
        unchanged but for unlabelled particles put in a canonical order (:class:`ChartSpace`)."""
        return log_density

    def check_relabelling(self, group: Tensor) -> None:
        """Raise unless every permutation of ``group`` (|G|, N) can relabel this space's states."""

    def relabel(self, x: Tensor, perm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """States (n, N, 3) of the events that states x (n, N, 3) decode to, relabelled by ``perm``
        (N,) (particle j of the result is particle ``perm[j]``), in the same fibre as x; a mask (n,)
        of the relabelled events inside this space's support (outside: the state is x itself, to be
        given zero density); and :meth:`reference_log_prob` (n,) at the relabelled states. Default:
        permuting the particles of x, exact where the lift is equivariant (RAMBO's q- and z-space,
        whose fibre is shared by all particles; momenta)."""
        relabelled = x[:, perm]
        return relabelled, torch.ones(len(x), dtype=torch.bool, device=x.device), self.reference_log_prob(relabelled)

    def encode_with_reference(self, events: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """:meth:`encode` and :meth:`reference_log_prob` (n,) at the encoded states; events outside the
        space's support (a base's cut) get a stand-in state and -inf instead of refusal."""
        x = self.encode(events, generator)
        return x, self.reference_log_prob(x)

    def align_fibre(self, x0: Tensor, x1: Tensor) -> Tensor:
        """States (n, N, 3) that decode to the same events as x0 but lie in the fibres of x1 (the
        same boost b and scale of the RAMBO map): x0 re-lifted with x1's fibre coordinates.

        If x1 follows the prior, its fibre follows the exact fibre law independently of its event
        (docs/design.md, RAMBO map), so for data x0 the pairs (result, x1) are a coupling of the
        lifted data and the prior: flow matching on them is still exact, with paths that no longer
        cross between unrelated fibres."""
        raise ValueError(f"{type(self).__name__} has no RAMBO fibre to align")

    def state(self) -> dict:
        """Data-dependent state to keep in checkpoints (none by default)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass


def _refibre(q0: Tensor, q1: Tensor, sqrt_s: float) -> Tensor:
    """q0's events (n, N, 3) lifted with the fibre (b, x) of q1 (n, N, 3); float64."""
    _, b, x = rambo_map(q1, sqrt_s=sqrt_s)
    return inverse_rambo_map(rambo_map(q0, sqrt_s=sqrt_s).p, b, x)


class QSpace(Space):
    """RAMBO q-space; its natural prior is the RAMBO prior (uniform phase space)."""

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        q = lift_to_qspace(events.to(torch.float64), self.lift, sqrt_s=self.sqrt_s, generator=generator)
        return q.float()

    def decode(self, x: Tensor) -> Tensor:
        return rambo_map(x.detach().to(torch.float64), sqrt_s=self.sqrt_s).p

    def prior(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return sample_prior(n, self.n_particles, generator=generator, dtype=torch.float32, device=device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        return prior_log_prob(x.double())

    def align_fibre(self, x0: Tensor, x1: Tensor) -> Tensor:
        return _refibre(x0.double(), x1.double(), self.sqrt_s).to(x0.dtype)


class ZSpace(Space):
    """z-space: the RAMBO prior is N(0, I), so a standard Gaussian noise end is uniform phase space."""

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        q = lift_to_qspace(events.to(torch.float64), self.lift, sqrt_s=self.sqrt_s, generator=generator)
        return q_to_z(q).float()

    def decode(self, x: Tensor) -> Tensor:
        return rambo_map(z_to_q(x.detach().to(torch.float64)), sqrt_s=self.sqrt_s).p

    def event_momenta(self, x: Tensor) -> Tensor:
        return z_to_q(x.to(torch.float64))

    def align_fibre(self, x0: Tensor, x1: Tensor) -> Tensor:
        return q_to_z(_refibre(z_to_q(x0.double()), z_to_q(x1.double()), self.sqrt_s)).to(x0.dtype)


class PSpace(Space):
    """Ambient baseline: 3-momenta divided by a scale fitted to the data (their RMS component)."""

    exact = False
    scale = 0.0

    def fit(self, events: Tensor) -> None:
        self.scale = float(events[..., 1:].to(torch.float64).square().mean().sqrt())

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        if not self.scale > 0:
            raise RuntimeError("PSpace.fit must see the training data before encoding")
        return (events[..., 1:].to(torch.float64) / self.scale).float()

    def decode(self, x: Tensor) -> Tensor:
        return three_to_four(x.detach().to(torch.float64) * self.scale)

    def state(self) -> dict:
        return {"scale": self.scale}

    def load_state(self, state: dict) -> None:
        self.scale = float(state["scale"])


# Chart coordinates are clipped this far inside (0, 1): float64 resolves u near 1 to 1.1e-16.
_U_MARGIN = 1e-16
# Events the base is fitted on (maximum likelihood of its few parameters).
BASE_FIT_EVENTS = 50_000


@dataclass
class ChartSpace(Space):
    """A base's chart (docs/design.md, "Bases"): the base's hypercube u in (0, 1)^d, Gaussianised
    as ``z = Phi^-1(u)``, and 3N - d more standard-normal coordinates so that states keep the shape
    (n, N, 3) of every backbone. N(0, I) is then exactly the base's distribution on phase space;
    data are encoded through the base's inverse, the extra coordinates drawn afresh (a trivial
    fibre, independent of the event, like RAMBO's). Decoding ignores them.

    ``order_by_energy``: the particles are unlabelled, and a base's chain positions are not
    exchangeable; every event is put in decreasing energy before it is encoded or fitted on, so the
    model learns the distribution of energy-ordered events (its density is the one of that labelled
    distribution; docs/design.md, "Bases")."""

    base: PhaseSpaceMap | None = field(default=None, repr=False)
    order_by_energy: bool = False

    def _canonical(self, events: Tensor) -> Tensor:
        return sorted_by_energy(events) if self.order_by_energy else events

    def _map(self) -> PhaseSpaceMap:
        if self.base is None:
            raise RuntimeError("ChartSpace needs a base map")
        return self.base

    def _chart_u(self, x: Tensor) -> Tensor:
        z = x.to(torch.float64).flatten(1)[:, : self._map().dim]
        return torch.special.ndtr(z).clamp(_U_MARGIN, 1 - _U_MARGIN)

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        x, log_reference = self.encode_with_reference(events, generator)
        outside = torch.isneginf(log_reference)
        if bool(outside.any()):
            first = int(torch.nonzero(outside)[0])
            raise ValueError(f"{int(outside.sum())} of {len(x)} events lie outside the base's support (first: "
                             f"event {first}); a base with a cut needs data that pass it")
        return x

    def encode_with_reference(self, events: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        # the base's density from its inverse: no forward map, which loses precision for events
        # deep in a pole (a relabelled event's chain can be far more collinear than the drawn one's)
        base = self._map()
        u, log_g = base.inverse(self._canonical(events.to(torch.float64)), generator)
        outside = ~torch.isfinite(u).all(1)
        z = torch.special.ndtri(u.masked_fill(outside.unsqueeze(1), 0.5).clamp(_U_MARGIN, 1 - _U_MARGIN))
        extra = torch.randn((len(u), 3 * self.n_particles - base.dim), generator=generator, dtype=torch.float64,
                            device=generator.device).to(z.device)
        x = torch.cat([z, extra], dim=1).view(len(u), self.n_particles, 3).float()
        return x, self._reference_from_base(x, log_g).masked_fill(outside.to(x.device), -math.inf)

    def _reference_from_base(self, x: Tensor, log_g: Tensor) -> Tensor:
        """:meth:`reference_log_prob` (n,) at states x (n, N, 3) given the base's ``log g`` (n,) at their events."""
        return standard_normal_log_prob(x) - log_g.to(x.device) - math.log(
            phase_space_volume(self.n_particles, self.sqrt_s))

    def _events(self, x: Tensor) -> Tensor:
        base, u = self._map(), self._chart_u(x)
        events_only = getattr(base, "events", None)
        return events_only(u) if callable(events_only) else base.forward(u)[0]

    def decode(self, x: Tensor) -> Tensor:
        return self._events(x.detach())

    def event_momenta(self, x: Tensor) -> Tensor:
        return self._events(x)[..., 1:]

    def check_relabelling(self, group: Tensor) -> None:
        if self.order_by_energy:
            raise ValueError("this model's particles are unlabelled (put in decreasing energy): a relabelling "
                             "symmetry needs a model of labelled particles")
        if self._map().dim != 3 * self.n_particles - 4:
            raise ValueError(f"a relabelling symmetry keeps a state's fibre through a bijective base (3N - 4 = "
                             f"{3 * self.n_particles - 4} coordinates); this base has {self._map().dim} (a "
                             f"mixture's channel)")

    def relabel(self, x: Tensor, perm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # the chart's fibre is its spare coordinates, independent of the event: kept as they are
        base = self._map()
        flat = x.detach().to(torch.float64).flatten(1)
        u, log_g = base.inverse(self.decode(x)[:, perm.to(x.device)])
        # beyond the chart's margin the model puts no density (decoding clamps u there)
        inside = ((u > _U_MARGIN) & (u < 1 - _U_MARGIN)).all(1) & torch.isfinite(log_g)
        z = torch.special.ndtri(u.clamp(_U_MARGIN, 1 - _U_MARGIN))
        relabelled = torch.where(inside.unsqueeze(1), torch.cat([z, flat[:, base.dim:]], dim=1), flat)
        states = relabelled.view_as(x).to(x.dtype)
        return states, inside, self._reference_from_base(states, log_g.masked_fill(~inside, 0.0))

    def reference_log_prob(self, x: Tensor) -> Tensor:
        # uniform phase space in the chart over the noise end N(0, I) is 1 / (V_N g): N(0, I) is the
        # base, of density g on phase space; for a bijection, u has density w_M / V_N = 1 / (V_N g)
        return self._reference_from_base(x, self._map().forward(self._chart_u(x.detach()))[1])

    def represented_log_density(self, log_density: Tensor, events: Tensor) -> Tensor:
        # energy-ordered events: the N! orderings of an unlabelled event fold onto the one in decreasing
        # energy, so its density is N! f there and zero elsewhere
        if not self.order_by_energy:
            return log_density
        ordered = (events[:, :-1, 0] >= events[:, 1:, 0]).all(dim=1)
        folded = log_density + math.lgamma(self.n_particles + 1)
        return torch.where(ordered, folded, torch.full_like(folded, -math.inf))

    def fit(self, events: Tensor, weights: Tensor | None = None) -> None:
        """Fit the base's parameters (maximum likelihood) on at most ``BASE_FIT_EVENTS`` events."""
        step = max(1, -(-len(events) // BASE_FIT_EVENTS))
        self._map().fit(self._canonical(events[::step].to(torch.float64)), None if weights is None else weights[::step])

    def state(self) -> dict:
        return {"base": self._map().parameters()}

    def load_state(self, state: dict) -> None:
        if "base" in state:
            self._map().load_parameters(state["base"])


class MassiveSpace(Space):
    """Massive particles (docs/design.md, "Massive phase space"): any exact space of massless events,
    its decoded events put on their mass shells by the massive RAMBO map, a bijection between
    massless and massive CM phase space with the weight ``W = dPhi_m / dPhi_0``. Data enter through
    the map's inverse (no solve), so the inner space learns the massless images, whose density is
    ``f(p) W``; every decoded state is on its mass shells and conserves momentum to rounding.

    The reference (uniform massive phase space, lifted) is, in the inner coordinates, the inner
    reference times ``W V_0 / V_m``, so densities relative to it (``SampleOutput.log_density``)
    are ``log(V_m g_p)`` with ``g_p = g_k / W`` the model's density on massive phase space."""

    def __init__(self, inner: Space, masses: tuple[float, ...]) -> None:
        super().__init__(inner.n_particles, inner.sqrt_s, inner.lift)
        self.inner, self.masses = inner, tuple(masses)
        self.exact = inner.exact
        self._log_volume_ratio = math.log(phase_space_volume(self.n_particles, self.sqrt_s)
                                          / phase_space_volume(self.n_particles, self.sqrt_s, self.masses))

    def _massless(self, events: Tensor) -> tuple[Tensor, Tensor]:
        """Massless images (n, N, 4) of massive events and ``log W`` (n,) at them."""
        events = events.to(torch.float64)
        massless, xi = massless_from_massive(events, self.sqrt_s)
        return massless, log_massive_weight(events, xi, self.sqrt_s)

    def encode(self, events: Tensor, generator: torch.Generator) -> Tensor:
        return self.inner.encode(self._massless(events)[0], generator)

    def decode(self, x: Tensor) -> Tensor:
        return massive_from_massless(self.inner.decode(x), self.masses, self.sqrt_s).events

    def prior(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        return self.inner.prior(n, generator, device)

    def event_momenta(self, x: Tensor) -> Tensor:
        return self.inner.event_momenta(x)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        return self.inner.prior_log_prob(x)

    def reference_log_prob(self, x: Tensor) -> Tensor:
        log_weight = massive_from_massless(self.inner.decode(x.detach()), self.masses, self.sqrt_s).log_weight
        return self.inner.reference_log_prob(x) + log_weight + self._log_volume_ratio

    def represented_log_density(self, log_density: Tensor, events: Tensor) -> Tensor:
        return self.inner.represented_log_density(log_density, self._massless(events)[0])

    def align_fibre(self, x0: Tensor, x1: Tensor) -> Tensor:
        return self.inner.align_fibre(x0, x1)

    def encode_with_reference(self, events: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        massless, log_weight = self._massless(events)
        x, log_reference = self.inner.encode_with_reference(massless, generator)
        return x, log_reference + log_weight.to(log_reference.device) + self._log_volume_ratio

    def check_relabelling(self, group: Tensor) -> None:
        for perm in group:
            if any(self.masses[int(j)] != mass for j, mass in zip(perm, self.masses)):
                raise ValueError(f"relabelling by {perm.tolist()} exchanges particles of different masses "
                                 f"{self.masses}")
        self.inner.check_relabelling(group)

    def relabel(self, x: Tensor, perm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # the massive map commutes with relabelling equal masses, its weight is symmetric in them
        relabelled, inside, log_reference = self.inner.relabel(x, perm)
        log_weight = massive_from_massless(self.inner.decode(x.detach()), self.masses, self.sqrt_s).log_weight
        return relabelled, inside, log_reference + log_weight + self._log_volume_ratio

    def fit(self, events: Tensor, weights: Tensor | None = None) -> None:
        fit = getattr(self.inner, "fit", None)
        if not callable(fit):
            return
        massless = self._massless(events)[0]
        if weights is None:
            fit(massless)
        else:
            fit(massless, weights)

    def state(self) -> dict:
        return self.inner.state()

    def load_state(self, state: dict) -> None:
        self.inner.load_state(state)


_SPACES = {"q": QSpace, "z": ZSpace, "p": PSpace}


def make_space(name: str, n_particles: int, sqrt_s: float, lift: Lift, base: PhaseSpaceMap | None = None,
               order_by_energy: bool = False, masses: tuple[float, ...] | None = None) -> Space:
    """The space ``name`` (q, z or p); a z-space model with a ``base`` map lives in its chart (with
    unlabelled particles put in decreasing energy if ``order_by_energy``); with ``masses`` (N,),
    its events are mapped onto those mass shells (:class:`MassiveSpace`)."""
    space: Space
    if base is not None:
        if name != "z":
            raise ValueError("a base's chart replaces z-space: use a z-space model (fm-z, zdiff, nf)")
        space = ChartSpace(n_particles=n_particles, sqrt_s=sqrt_s, lift=lift, base=base,
                           order_by_energy=order_by_energy)
    else:
        space = _SPACES[name](n_particles=n_particles, sqrt_s=sqrt_s, lift=lift)
    if masses:
        if not space.exact:
            raise ValueError("massive particles need an exact model: p-space models work on momenta directly and "
                             "have no mass shells to keep")
        space = MassiveSpace(space, masses)
    return space
