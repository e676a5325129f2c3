"""A generative model = a space (q, z or p) + a process + a backbone, built from one config."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..catalogue import MODEL_KINDS, Backbone, Coupling, Divergence, Drift, Lift, LossWeight, ReverseVariance, TimeLaw
from ..coordinates.massive import check_masses, massive_from_massless
from ..coordinates.qspace import sample_prior
from ..coordinates.rambo import rambo_map
from ..random import make_generator
from ..validation import check_known_fields
from .couplings import align_particles
from .flows import SplineFlow
from .networks import MLPBackbone, TransformerBackbone
from .processes import FlowMatching, LangevinDiffusion, NormalizingFlowProcess, Process, VPDiffusion
from .spaces import BASE_FIT_EVENTS, ChartSpace, MassiveSpace, Space, make_space
from .symmetry import relabelling_group

__all__ = ["ModelConfig", "GenerativeModel", "MODEL_KINDS", "SampleOutput", "FittedGaussian"]

# Mixture bases: their decoding jumps between channels, so no network input may go through it.
DISCONTINUOUS_BASES = ("chains", "colour")


@dataclass
class ModelConfig:
    """Everything that defines a model; stored in checkpoints and compared on loading."""

    model: str
    n_particles: int
    target: str = "uniform"
    sqrt_s: float = 1.0
    backbone: Backbone = "mlp"
    width: int = 256
    depth: int = 4
    heads: int = 4
    time_dim: int = 64
    # show the backbone log pair angles of the states, or the decoded event's y_ij and x_k (see
    # models.networks); None: pair angles in q- and z-space, the event's invariants in a base's chart
    # (whose coordinates are not momenta)
    pair_features: bool | None = None
    invariant_features: bool | None = None
    # transformer: add an output from the particles' relative vectors (models.networks._RelativeOutput)
    relative_output: bool = False
    # with it: move the particles by such a field after every block (models.networks.TransformerBackbone)
    relative_updates: bool = False
    # with them: re-embed every moved particle's token features into its token after every block
    token_updates: bool = False
    time_power: float = 1.0  # flow matching: training times t = u^time_power, u uniform (> 1: data end)
    # flow matching from the space's prior: or "fibre" (Space.align_fibre), or "particles" for unlabelled
    # particles (models.couplings.align_particles)
    coupling: Coupling = "independent"
    lift: Lift = "exact"
    # noise end: "uniform" (RAMBO's z-space) or a base map (lipsgen.bases; z-space models only), with
    # the cut folded into it (min y_ij > base_ycut; 0: none)
    base: str = "uniform"
    base_ycut: float = 0.0
    # massive particles (N,) in the unit of sqrt_s: the space's events are mapped onto these mass shells
    # (models.spaces.MassiveSpace); None: massless
    masses: list[float] | None = None
    # unlabelled particles: learn the events in decreasing energy (a base's chain positions are not
    # exchangeable as RAMBO's are; models.spaces.ChartSpace)
    order_by_energy: bool = False
    # q-space Langevin
    schedule: str = "smooth"
    drift: Drift = "score"
    eps: float = 0.2
    divergence: Divergence = "exact"
    probes: int = 1
    variance: ReverseVariance = "2g"
    time_law: TimeLaw | None = None  # paper or uniform; None: paper for the exact lift, uniform for fixed
    loss_weight: LossWeight | None = None  # paper or sigma2; None: paper for the exact lift, sigma2 for fixed
    states_per_chain: int = 4  # forward-chain states kept per event and epoch
    # variance-preserving diffusion
    beta_min: float = 0.1
    beta_max: float = 20.0
    final_denoise: bool = True  # end the VP reverse run with Tweedie's estimate at t = 0
    # normalizing flow (width and depth size each layer's masked MLP)
    flow_transforms: int = 6
    spline_bins: int = 8
    # the flow's direction of one network pass per layer (the other takes three): "density" for
    # maximum likelihood, "sampling" for a distilled student (models.flows)
    flow_direction: str = "density"
    # the sampler's defaults when a run names none (a distilled few-step student records its own);
    # None: the process's
    sampler_steps: int | None = None
    sampler_solver: str | None = None
    # the relabelling group the model is symmetrised over (models.symmetry): its samples, densities and,
    # for a flow trained from a density, its training loss
    symmetry: str = "none"

    def __post_init__(self) -> None:
        if self.model not in MODEL_KINDS:
            raise ValueError(f"unknown model {self.model!r}; choose from {', '.join(MODEL_KINDS)}")
        if self.backbone not in ("mlp", "transformer"):
            raise ValueError(f"unknown backbone {self.backbone!r}; choose mlp or transformer")
        if self.lift not in ("exact", "fixed"):
            raise ValueError(f"lift must be 'exact' or 'fixed', got {self.lift!r}")
        if self.coupling not in ("independent", "fibre", "particles"):
            raise ValueError(f"coupling must be 'independent', 'fibre' or 'particles', got {self.coupling!r}")
        space, process, prior = MODEL_KINDS[self.model]
        in_chart = self.base != "uniform"
        if self.coupling != "independent" and (space == "p" or process != "flow" or prior != "space" or in_chart):
            raise ValueError(f"coupling {self.coupling!r} needs flow matching from the RAMBO prior (fm-q, fm-z; "
                             f"no base), not {self.model}" + (f" on base {self.base!r}" if in_chart else ""))
        if not (isinstance(self.time_power, (int, float)) and math.isfinite(self.time_power) and self.time_power > 0):
            raise ValueError(f"time_power must be a positive number, got {self.time_power!r}")
        if self.time_power != 1.0 and process != "flow":
            raise ValueError(f"time_power draws flow matching's training times; {self.model} is not flow matching")
        if self.coupling == "particles" and self.symmetry != "none":
            raise ValueError("coupling 'particles' is for unlabelled particles; a relabelling symmetry is for "
                             "labelled ones")
        if self.base in DISCONTINUOUS_BASES and self.invariant_features:
            raise ValueError(f"base {self.base!r} decodes discontinuously (its channel changes across the channel "
                             f"coordinate): event features through it would make the network's field "
                             f"discontinuous, and the sampler's densities inexact; use invariant_features=False")
        if self.pair_features is None:
            self.pair_features = not in_chart
        if self.invariant_features is None:
            # through a smooth chart only: a user's base may not be differentiable or continuous
            self.invariant_features = self.base == "chain" and process != "nf"
        if self.relative_output and (self.backbone != "transformer" or process == "nf" or in_chart):
            raise ValueError("relative_output is an output of the transformer over particles (no nf, no base's "
                             f"chart, whose coordinates are not particles); not {self.model} with backbone "
                             f"{self.backbone!r}" + (f" on base {self.base!r}" if in_chart else ""))
        if self.relative_updates and not self.relative_output:
            raise ValueError("relative_updates moves the particles for the relative output: set relative_output too")
        if self.token_updates and not self.relative_updates:
            raise ValueError("token_updates re-embeds the particles that relative_updates move: "
                             "set relative_updates too")
        if self.invariant_features and process == "nf":
            raise ValueError("invariant_features is an input of the mlp and transformer backbones; nf has neither")
        if self.order_by_energy and not in_chart:
            raise ValueError("order_by_energy orders unlabelled particles for a base's chart; uniform phase space "
                             "needs no order")
        if self.base != "uniform" and space != "z":
            raise ValueError(f"base {self.base!r} needs a z-space model (fm-z, zdiff, nf), not {self.model}: a "
                             f"base's chart replaces z-space")
        if self.flow_direction not in ("density", "sampling"):
            raise ValueError(f"flow_direction must be 'density' or 'sampling', got {self.flow_direction!r}")
        if self.sampler_steps is not None and (not isinstance(self.sampler_steps, int) or self.sampler_steps < 1):
            raise ValueError(f"sampler_steps must be a positive integer or None, got {self.sampler_steps!r}")
        if not isinstance(self.n_particles, int) or self.n_particles < 2:
            raise ValueError(f"n_particles must be an integer >= 2, got {self.n_particles!r}")
        relabelling_group(self.symmetry, self.n_particles)  # a known group of a size on offer
        if self.masses is not None:
            masses = check_masses(self.masses, self.n_particles, self.sqrt_s)
            self.masses = list(masses) if any(masses) else None
        if self.coupling == "particles" and self.masses is not None and len(set(self.masses)) > 1:
            raise ValueError("coupling 'particles' relabels particles, which needs them exchangeable; these have "
                             f"different masses {self.masses}")
        # The paper's early-step emphasis pairs with the exact lift, sigma_k^2 with the fixed one
        # (docs/design.md, "Langevin training"); resolved here so checkpoints record the choice.
        if self.time_law is None:
            self.time_law = "paper" if self.lift == "exact" else "uniform"
        if self.loss_weight is None:
            self.loss_weight = "paper" if self.lift == "exact" else "sigma2"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        check_known_fields(cls, values, "checkpoint config")
        return cls(**values)


class FittedGaussian(nn.Module):
    """A full-covariance Gaussian fitted to flattened states (n, N, 3): the paper's fallback prior."""

    mean: Tensor
    chol: Tensor

    def __init__(self, n_particles: int) -> None:
        super().__init__()
        dim = 3 * n_particles
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("chol", torch.eye(dim))

    def fit(self, x: Tensor) -> None:
        flat = x.flatten(1).to(torch.float64)
        mean = flat.mean(0)
        cov = torch.cov(flat.T) + 1e-6 * torch.eye(flat.shape[1], dtype=torch.float64)
        self.mean.copy_(mean.float())
        self.chol.copy_(torch.linalg.cholesky(cov).float())

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        z = torch.randn((n, self.mean.shape[0]), generator=generator, device=device)
        return (self.mean + z @ self.chol.T).view(n, -1, 3)

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density (n,) float64 of states x (n, N, 3)."""
        gaussian = torch.distributions.MultivariateNormal(self.mean.double(), scale_tril=self.chol.double(),
                                                          validate_args=False)
        return gaussian.log_prob(x.flatten(1).double())


@dataclass
class SampleOutput:
    """Events (n, N, 4) float64 and, if asked for, the trajectory: events (K, n, N, 4) at
    ``times`` (K,), noise end first, or the model's density: ``log_density`` (n,) float64 is
    ``log(g / rho_0)`` at the sampled state, the model's density relative to uniform phase space
    lifted with the exact fibre law (0 for a model that samples uniform phase space; the same in
    q- and z-space, as the coordinate Jacobians cancel). The weight of an event for a target
    density m relative to uniform, ``m V_N``, is ``exp(log(m V_N) - log_density)``."""

    events: Tensor
    trajectory: Tensor | None = None
    times: Tensor | None = None
    log_density: Tensor | None = None


class GenerativeModel(nn.Module):
    """Holds the network (``net``), its space and its process; see :class:`ModelConfig`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        space_name, process_name, prior = MODEL_KINDS[config.model]
        base = None
        if config.base != "uniform":
            from ..bases import make_base

            base = make_base(config.base, config.n_particles, config.sqrt_s, ycut=config.base_ycut)
        self.space: Space = make_space(space_name, config.n_particles, config.sqrt_s, config.lift, base,
                                       order_by_energy=config.order_by_energy,
                                       masses=None if config.masses is None else tuple(config.masses))
        self._relabelling_group(config.symmetry)  # refuse a group the space cannot relabel now, not at sampling
        self.net: nn.Module
        if process_name == "nf":
            self.net = SplineFlow(config.n_particles, transforms=config.flow_transforms, width=config.width,
                                  depth=config.depth, bins=config.spline_bins, direction=config.flow_direction)
        else:
            backbone = MLPBackbone if config.backbone == "mlp" else TransformerBackbone
            kwargs: dict[str, Any] = dict(width=config.width, depth=config.depth, time_dim=config.time_dim,
                                          pair_features=bool(config.pair_features),
                                          event_momenta=self.space.event_momenta if config.invariant_features else None)
            if config.backbone == "transformer":
                kwargs.update(heads=config.heads, relative_output=config.relative_output,
                              relative_updates=config.relative_updates, token_updates=config.token_updates)
            self.net = backbone(config.n_particles, **kwargs)
        self.fitted = FittedGaussian(config.n_particles) if prior == "fitted" else None
        self.process = self._make_process(process_name, prior)
        if config.sampler_solver is not None:
            self.process.check_solver(config.sampler_solver)

    @property
    def default_steps(self) -> int:
        """The sampler's steps when a run names none: the config's, else the process's."""
        return self.config.sampler_steps or self.process.default_steps

    def default_solver(self, density: bool = False) -> str:
        """The solver when a run names none: the config's if it has a density (when one is asked
        for), else the process's first (with a density)."""
        solvers = self.process.density_solvers if density else self.process.solvers
        chosen = self.config.sampler_solver
        return chosen if chosen is not None and chosen in solvers else solvers[0]

    def _make_process(self, name: str, prior: str) -> Process:
        c = self.config
        if name == "langevin":
            return LangevinDiffusion(c.schedule, c.drift, c.eps, c.divergence, c.probes, c.variance,
                                     c.time_law or "paper", c.loss_weight or "paper", c.states_per_chain)
        if name == "vp":
            return VPDiffusion(c.beta_min, c.beta_max, final_denoise=c.final_denoise)
        if name == "nf":
            return NormalizingFlowProcess()
        couple = {"fibre": self.space.align_fibre, "particles": align_particles}.get(c.coupling)
        return FlowMatching(self.noise_prior, couple, c.time_power)

    def noise_prior(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """The noise end (n, N, 3) the sampler starts from: the space's prior, or the fitted Gaussian."""
        if self.fitted is not None:
            return self.fitted.sample(n, generator, device)
        return self.space.prior(n, generator, device)

    def check_density(self) -> None:
        """Refuse models without an exact density, saying why."""
        if not self.space.exact:
            raise ValueError(f"model {self.config.model} has no density on phase space: it works on momenta "
                             f"directly and does not conserve energy-momentum")
        if not self.process.density_solvers:
            raise ValueError(f"model {self.config.model} has no sampler with a tractable density")

    def reference_log_prob(self, x: Tensor) -> Tensor:
        """``log rho_0`` (n,) float64 of states x (n, N, 3): uniform phase space lifted with the
        exact fibre law, in this model's space (:meth:`Space.reference_log_prob`)."""
        return self.space.reference_log_prob(x)

    def noise_log_prob(self, x: Tensor) -> Tensor:
        """Log-density (n,) float64 of the sampler's noise end at states x (n, N, 3)."""
        if self.fitted is not None:
            return self.fitted.log_prob(x)
        return self.space.prior_log_prob(x)

    def fit_data(self, events: Tensor, generator: torch.Generator) -> None:
        """Fit data-dependent state: the p-space scale, the base's parameters, the fitted Gaussian prior."""
        if hasattr(self.space, "fit"):
            self.space.fit(events)
        if self.fitted is not None:
            self.fitted.fit(self.space.encode(events, generator))

    def fit_target(self, log_density: Callable[[Tensor], Tensor], generator: torch.Generator) -> None:
        """Fit a base's parameters from a target's log-density (events (n, N, 4) -> (n,)) alone:
        maximum likelihood on uniform events weighted by the density (no events to fit on)."""
        chart = self.space.inner if isinstance(self.space, MassiveSpace) else self.space
        if not isinstance(chart, ChartSpace):
            return
        q = sample_prior(BASE_FIT_EVENTS, self.config.n_particles, generator=generator)
        events = rambo_map(q, sqrt_s=self.config.sqrt_s).p
        if isinstance(self.space, MassiveSpace):  # the chart sees massless images, of density m(p) W
            mapped = massive_from_massless(events, self.space.masses, self.config.sqrt_s)
            log_m = log_density(mapped.events) + mapped.log_weight
        else:
            log_m = log_density(events)
        chart.fit(events, torch.softmax(log_m.nan_to_num(nan=-torch.inf), dim=0))

    def extra_state(self) -> dict[str, Any]:
        return {"space": self.space.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.space.load_state(state.get("space", {}))

    @torch.no_grad()
    def log_prob(self, events: Tensor, *, seed: int | None = None, generator: torch.Generator | None = None,
                 draws: int = 16, steps: int | None = None, solver: str | None = None,
                 symmetry: str | None = None) -> Tensor:
        """The model's density of given events (n, N, 4), in the convention of
        ``SampleOutput.log_density``: ``log r(p)`` with ``r = V_N x`` the density on phase space, so
        that weights are ``V_N f / r``.

        In its own space the density is exact: one pass of the flow (nf), or, for an ODE sampler
        (``steps`` and ``solver`` as in :meth:`sample`, default the density solver), the sampler's
        run walked backwards with every discrete step inverted to rounding and its exact
        Jacobian: the density of the sampler as run, the same as ``sample(density=True)`` gives
        its own samples. SDE samplers have none. Where the lift into the model's space has a fibre
        (RAMBO's boost and scale in z-space, a base chart's spare coordinates, a mixture's
        channel) ``r`` is the fibre average of that density over the reference's; it is estimated
        from ``draws`` draws of the exact fibre law: ``exp(log_prob)`` is unbiased for ``r`` (the
        log is not: Jensen). ``symmetry``: the density of the model symmetrised over that relabelling
        group (:mod:`lipsgen.models.symmetry`; default the model's own, ``config.symmetry``), the
        same for every relabelling of an event."""
        self.check_density()
        if self.config.lift != "exact":
            raise ValueError("log_prob averages over the exact fibre law; this model lifts with a fixed fibre")
        if not isinstance(draws, int) or draws < 1:
            raise ValueError(f"draws must be a positive integer, got {draws!r}")
        events = events.to(torch.float64)
        if events.ndim != 3 or events.shape[1:] != (self.config.n_particles, 4):
            raise ValueError(f"events must have shape (n, {self.config.n_particles}, 4), got {tuple(events.shape)}")
        device = next(self.net.parameters()).device
        generator = make_generator(seed, generator, device)
        steps = self.default_steps if steps is None else steps
        solver = self.default_solver(density=True) if solver is None else solver
        group = self._relabelling_group(symmetry)
        # each relabelling lifted on its own: an unbiased estimate of every r(g p), where g p may lie
        # outside the space's support (a base's folded cut) when p does not
        terms = torch.full((draws, len(group), len(events)), -math.inf, dtype=torch.float64, device=device)
        with _evaluation_mode(self.net):
            for draw in range(draws):
                for g, perm in enumerate(group):
                    x, log_reference = self.space.encode_with_reference(events[:, perm], generator)
                    rows = torch.isfinite(log_reference).to(device)
                    terms[draw, g, rows] = (self._state_log_prob(x.to(device)[rows], steps, solver, generator)
                                            - log_reference.to(device)[rows])
                outside = torch.isneginf(terms[draw]).all(0)
                if bool(outside.any()):
                    raise ValueError(f"{int(outside.sum())} of {len(events)} events lie outside the model's support "
                                     f"in every labelling of its relabelling group (first: event "
                                     f"{int(torch.nonzero(outside)[0])})")
        return torch.logsumexp(terms.flatten(0, 1), dim=0) - math.log(draws * len(group))

    def _relabelling_group(self, symmetry: str | None) -> Tensor:
        """The permutations (|G|, N) of ``symmetry`` (None: the model's), checked against its space."""
        group = relabelling_group(self.config.symmetry if symmetry is None else symmetry, self.config.n_particles)
        if len(group) > 1:
            self.space.check_relabelling(group)
        return group

    def _symmetrised_log_density(self, x: Tensor, log_density: Tensor, group: Tensor,
                                 state_log_prob: Callable[[Tensor], Tensor]) -> Tensor:
        """``log r_G`` (n,) at states x (n, N, 3), given the model's ``log r`` (n,) there (relative to
        the reference): the mean of r over the states of x relabelled by every permutation of
        ``group`` (|G|, N), the identity first, each in x's fibre; ``state_log_prob`` is the model's
        log-density of states (differentiable, for training). The reference density (uniform phase
        space times the fibre law) is invariant under relabelling, so the ratios average."""
        if len(group) == 1:
            return log_density
        terms = [log_density]
        for perm in group[1:]:
            x_g, inside, log_reference = self.space.relabel(x, perm)
            term = state_log_prob(x_g) - log_reference
            terms.append(term.masked_fill(~inside.to(term.device), -math.inf))
        return torch.logsumexp(torch.stack(terms), dim=0) - math.log(len(group))

    def symmetrised_flow_log_prob(self, x: Tensor) -> Tensor:
        """The normalizing flow's log-density (n,) at states x (n, N, 3), symmetrised over the model's
        relabelling group, differentiable in the flow's parameters (a training loss's, given draws x)."""
        flow = self.net
        if not isinstance(flow, SplineFlow):
            raise TypeError("a differentiable symmetrised density is a normalizing flow's (nf)")
        with torch.no_grad():
            # where the reference is undefined (a draw the base cannot place, whose target density is
            # zero) the loss drops the draw; a finite stand-in keeps nan out of the backward pass
            log_reference = self.reference_log_prob(x).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
        log_relative = self._symmetrised_log_density(x, flow.log_prob(x).double() - log_reference,
                                                     self._relabelling_group(None),
                                                     lambda states: flow.log_prob(states).double())
        return log_reference + log_relative

    def _state_log_prob(self, x: Tensor, steps: int, solver: str, generator: torch.Generator) -> Tensor:
        """log g (n,) float64 of states x (n, N, 3) in the model's space."""
        if isinstance(self.net, SplineFlow):
            return self.net.log_prob(x).double()
        x_noise, log_det = self.process.invert_with_log_det(self.net, x, steps=steps, solver=solver,
                                                            generator=generator)
        return self.noise_log_prob(x_noise) - log_det

    @torch.no_grad()
    def sample(
        self,
        n_events: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        solver: str | None = None,
        trajectory: int = 0,
        start: Tensor | None = None,
        t_start: float = 1.0,
        density: bool = False,
        symmetry: str | None = None,
    ) -> SampleOutput:
        """Draw events with ``seed`` or ``generator``; ``trajectory = K`` also records K evenly spaced
        states of every run; ``start`` (n, N, 3) replaces the prior draw for partial runs at ``t_start``;
        ``density`` also returns each event's exact model density (``log_density``; the solver
        defaults to the first of ``process.density_solvers``), at about 3N times the cost.
        ``symmetry`` draws from the model symmetrised over that relabelling group
        (:mod:`lipsgen.models.symmetry`; default the model's own, ``config.symmetry``): every event
        (and its trajectory) relabelled by a uniformly drawn permutation, its density averaged over
        the group (|G| times the cost). Partial runs (``start``) map states one to one: not relabelled."""
        device = next(self.net.parameters()).device
        generator = make_generator(seed, generator, device)
        steps = self.default_steps if steps is None else steps
        if density:
            self.check_density()
            if trajectory or start is not None:
                raise ValueError("densities are computed for full runs from the noise end, without trajectories")
        if solver is None:
            solver = self.default_solver(density)
        if start is not None and symmetry not in (None, "none"):
            raise ValueError("a partial run (start) maps given states one to one; it cannot relabel them")
        group = self._relabelling_group("none" if start is not None else symmetry)
        x = self.noise_prior(n_events, generator, device) if start is None else start.to(device)
        with _evaluation_mode(self.net):
            if density:
                log_start = self.noise_log_prob(x)
                x, log_det = self.process.sample_with_log_det(self.net, x, steps=steps, solver=solver,
                                                              generator=generator)
                _check_finite_states(x, solver, steps)
                log_density = self._symmetrised_log_density(
                    x, log_start - log_det - self.reference_log_prob(x), group,
                    lambda states: self._state_log_prob(states, steps, solver, generator))
                return SampleOutput(_relabelled(self.space.decode(x), group, generator), log_density=log_density)
            x, recorded = self.process.sample(self.net, x, steps=steps, solver=solver, generator=generator,
                                              t_start=t_start, trajectory=trajectory)
        _check_finite_states(x, solver, steps)
        events = self.space.decode(x)
        if not trajectory:
            return SampleOutput(_relabelled(events, group, generator))
        states = torch.stack([self.space.decode(s) for s in recorded.states])
        choice = _relabelling_choice(len(events), group, generator)
        return SampleOutput(_relabelled(events, group, generator, choice),
                            _relabelled(states, group, generator, choice),
                            torch.tensor(recorded.times, dtype=torch.float64))


def _relabelling_choice(n: int, group: Tensor, generator: torch.Generator) -> Tensor:
    """A permutation (n, N) per event, drawn uniformly from ``group`` (|G|, N)."""
    index = torch.randint(len(group), (n,), generator=generator, device=generator.device).cpu()
    return group[index]


def _relabelled(events: Tensor, group: Tensor, generator: torch.Generator, choice: Tensor | None = None) -> Tensor:
    """Events (..., n, N, 4) each relabelled by a permutation drawn from ``group`` (or by ``choice``
    (n, N)); unchanged, with no draw, for the trivial group."""
    if len(group) == 1:
        return events
    n = events.shape[-3]
    choice = _relabelling_choice(n, group, generator) if choice is None else choice
    rows = torch.arange(n).unsqueeze(1)
    return events[..., rows.to(events.device), choice.to(events.device), :]


@contextmanager
def _evaluation_mode(net: nn.Module) -> Iterator[None]:
    """The network in eval mode for the block, then back in the mode it was in."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)


def _check_finite_states(x: Tensor, solver: str, steps: int) -> None:
    """Refuse a reverse run that diverged (states (n, N, 3) with NaN or inf), saying so."""
    bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
    if bool(bad.any()):
        raise FloatingPointError(f"the sampler diverged: {int(bad.sum())} of {len(x)} runs ended in a non-finite "
                                 f"state (first: event {int(bad.nonzero()[0])}; solver {solver}, {steps} steps); the "
                                 f"model's field is unstable there: more or smaller steps, or a better-trained model")
