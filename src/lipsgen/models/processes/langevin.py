"""The paper's q-space Langevin diffusion with implicit score matching (docs/design.md, Models).

Forward: ``Q_{k+1} = Q_k + g_k s_ref(Q_k) + sqrt(2 g_k) Z`` for k = 0..K-1, whose stationary law
is the RAMBO prior (s_ref its score, or the eps-regularised drift), so the noise end is uniform
phase space. No closed-form kernel: the chains of all training events are simulated once per
epoch and ``states_per_chain`` states are kept per chain, at steps drawn independently from the
time law (a cache of forward trajectories; an epoch is one pass over all kept states).

The model's score is ``s_theta = s_ref + r_theta`` (the network r_theta starts at zero, so an
untrained model samples the prior). Loss: implicit score matching
``w_k (|s_theta|^2 / 2 + div s_theta)``, written without its theta-independent part as
``w_k (|r|^2 / 2 + s_ref·r + div r)``; the divergence is exact (3N backward passes) or
Hutchinson's estimate with Rademacher probes.

Time law and loss weight (docs/design.md, "Langevin training"): ``paper`` draws k in 1..K with
P(k) ∝ (1 - k/K + 0.01)^2 and weighs by (1 - k/K + 0.01), putting the loss on the low-noise steps
(the paper's muon code, right for the exact lift, where the residual score stays O(1));
``uniform`` with ``sigma2`` (w_k = sigma_k^2 = 2 sum_{j<k} g_j) suits the fixed lift, whose data lie
on a slice and whose score grows like 1/sigma_k near k = 0.

Reverse: ``Q_{k-1} = Q_k - g s_ref + 2 g s_theta + sqrt(v) Z`` with ``v = 2g`` or
``2 g sigma_{k-1}^2 / sigma_k^2``, noiseless last step. The chain runs in float64 (the singular
schedule's first steps, g ~ 5e-8, vanish in float32 rounding); the network sees float32.

The ``ode`` solver follows the probability flow of the same chain instead: the forward chain
discretises ``dQ = s_ref dtau + sqrt(2) dW`` (tau = sum g), whose marginals also follow
``dQ/dtau = s_ref - grad log p_tau``, so ``Q_{k-1} = Q_k + g_k r_theta(Q_k, k)``: deterministic, with
an exact density through its Jacobians (exact event weights).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...catalogue import Divergence, Drift, LossWeight, ReverseVariance, TimeLaw
from ...coordinates.qspace import prior_score, regularised_drift
from ...distributed import SINGLE_PROCESS, World
from .base import BatchDraws, Process, batch_draws
from .solver import Step

__all__ = ["LangevinDiffusion", "langevin_schedule", "TIME_LAWS", "LOSS_WEIGHTS"]

TIME_LAWS: tuple[TimeLaw, ...] = ("paper", "uniform")
LOSS_WEIGHTS: tuple[LossWeight, ...] = ("paper", "sigma2")
_PAPER_OFFSET = 0.01
# chains simulated with one random stream: the unit of work shared between ranks
CHAIN_BLOCK = 16384


def langevin_schedule(name: str) -> Tensor:
    """Step sizes g_k (K,) float64: ``smooth`` = 500 linear steps 0.002 -> 0.01; ``singular`` = 137
    geometric steps ``5e-8 * 1.08^k`` then 1000 linear steps 0.002 -> 0.02 (the paper's)."""
    if name == "smooth":
        return torch.linspace(0.002, 0.01, 500, dtype=torch.float64)
    if name == "singular":
        geometric = 5e-8 * 1.08 ** torch.arange(137, dtype=torch.float64)
        return torch.cat([geometric, torch.linspace(0.002, 0.02, 1000, dtype=torch.float64)])
    if name.startswith("linear:"):  # linear:g0:g1:K, for experiments and quick tests
        _, g0, g1, k = name.split(":")
        return torch.linspace(float(g0), float(g1), int(k), dtype=torch.float64)
    raise ValueError(f"unknown Langevin schedule {name!r}; use smooth, singular or linear:g0:g1:K")


class LangevinDiffusion(Process):
    solvers = ("langevin", "ode")
    density_solvers = ("ode",)

    def __init__(self, schedule: str = "smooth", drift: Drift = "score", eps: float = 0.2,
                 divergence: Divergence = "exact", probes: int = 1, variance: ReverseVariance = "2g",
                 time_law: TimeLaw = "paper", loss_weight: LossWeight = "paper", states_per_chain: int = 4) -> None:
        for name, value, allowed in (("drift", drift, ("score", "regularised")),
                                     ("divergence", divergence, ("exact", "hutchinson")),
                                     ("variance", variance, ("2g", "ratio")),
                                     ("time_law", time_law, TIME_LAWS), ("loss_weight", loss_weight, LOSS_WEIGHTS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if not isinstance(states_per_chain, int) or states_per_chain < 1:
            raise ValueError(f"states_per_chain must be a positive integer, got {states_per_chain!r}")
        self.g = langevin_schedule(schedule)
        self.n_steps = len(self.g)
        self.default_steps = self.n_steps
        # sigma2[k] = 2 sum_{j<k} g_j for k = 0..K
        self.sigma2 = torch.cat([torch.zeros(1, dtype=torch.float64), 2 * torch.cumsum(self.g, 0)])
        self.drift, self.eps, self.divergence, self.probes, self.variance = drift, eps, divergence, probes, variance
        self.time_law, self.loss_weight = time_law, loss_weight
        self.items_per_event = states_per_chain

    def reference(self, q: Tensor) -> Tensor:
        """s_ref(q): the prior score or the eps-regularised drift (:mod:`lipsgen.coordinates.qspace`)."""
        # unchecked: the states come from this process; a check per step would cost a GPU sync
        return prior_score(q, check=False) if self.drift == "score" else regularised_drift(q, self.eps, check=False)

    def step_probabilities(self) -> Tensor:
        """P(k) for k = 1..K, shape (K,) float64: the time law of training."""
        k = torch.arange(1, self.n_steps + 1, dtype=torch.float64)
        if self.time_law == "uniform":
            return torch.full_like(k, 1 / self.n_steps)
        law = (1 - k / self.n_steps + _PAPER_OFFSET) ** 2
        return law / law.sum()

    def step_weights(self, k: Tensor) -> Tensor:
        """Loss weight w_k of the steps k (any shape, integers in 1..K), float64 on k's device."""
        if self.loss_weight == "sigma2":
            return self.sigma2.to(k.device)[k]
        return 1 - k.to(torch.float64) / self.n_steps + _PAPER_OFFSET

    def _forward_step(self, x: Tensor, j: int, noise: torch.Generator | Tensor) -> Tensor:
        """One step of the forward chain; ``noise``: the standard normal draws, or a generator."""
        g = float(self.g[j])
        z = noise if isinstance(noise, Tensor) else torch.randn(x.shape, generator=noise, dtype=x.dtype,
                                                                 device=x.device)
        return x + g * self.reference(x) + (2 * g) ** 0.5 * z

    def prepare_epoch(self, x0: Tensor, generator: torch.Generator, world: World = SINGLE_PROCESS) -> dict[str, Tensor]:
        """Simulate every event's chain once; keep ``states_per_chain`` states per chain, at steps
        drawn independently from the time law. Returns ``x`` (S n, N, 3) float32 and ``k`` (S n,).

        The chains run in blocks of ``CHAIN_BLOCK`` events, each with its own generator seeded from
        ``generator``, so ranks of a distributed run simulate the blocks b = rank mod K only and
        sum their (disjoint) results: the same items as in one process, for any K."""
        n = x0.shape[0]
        probabilities = self.step_probabilities().to(x0.device)
        k = torch.multinomial(probabilities, n * self.items_per_event, replacement=True, generator=generator) + 1
        n_blocks = -(-n // CHAIN_BLOCK)
        seeds = torch.randint(0, 2**62, (n_blocks,), generator=generator, device=x0.device).tolist()
        mine = list(range(world.rank, n_blocks, world.size))
        generators = [torch.Generator(device=x0.device).manual_seed(int(seeds[b])) for b in mine]
        chains = torch.cat([torch.arange(b * CHAIN_BLOCK, min(n, (b + 1) * CHAIN_BLOCK), device=x0.device)
                            for b in mine]) if mine else torch.zeros(0, dtype=torch.long, device=x0.device)
        sizes = [min(n, (b + 1) * CHAIN_BLOCK) - b * CHAIN_BLOCK for b in mine]
        # this rank's items (all S states of its chains), ordered by the step they are taken at
        position = torch.full((n,), -1, dtype=torch.long, device=x0.device)
        position[chains] = torch.arange(len(chains), device=x0.device)
        item_chain = position[torch.arange(n * self.items_per_event, device=x0.device) % n]
        items = torch.nonzero(item_chain >= 0)[:, 0]
        order = items[torch.argsort(k[items], stable=True)]
        bounds = torch.cumsum(torch.bincount(k[items], minlength=self.n_steps + 1), 0).tolist()
        kept = torch.zeros((len(k), *x0.shape[1:]), dtype=torch.float32, device=x0.device)
        x = x0[chains].to(torch.float64)
        for j in range(self.n_steps):
            noise = [torch.randn((size, *x0.shape[1:]), generator=g, dtype=x.dtype, device=x.device)
                     for size, g in zip(sizes, generators)]
            x = self._forward_step(x, j, torch.cat(noise) if noise else torch.zeros_like(x))
            taken = order[bounds[j]:bounds[j + 1]]
            if len(taken):
                kept[taken] = x[item_chain[taken]].float()
        if world.distributed:  # every item was filled by exactly one rank, zeros elsewhere: an exact sum
            torch.distributed.all_reduce(kept)
        return {"x": kept, "k": k}

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        x = x0.to(torch.float64)
        for j in range(round(t * self.n_steps)):
            x = self._forward_step(x, j, generator)
        return x

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | BatchDraws) -> Tensor:
        x = batch["x"].detach().requires_grad_(True)
        draws = batch_draws(generator, x.shape[0])
        k = batch["k"]
        residual = net(x, k.float() / self.n_steps)
        flat = residual.flatten(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if self.divergence == "exact":
            for i in range(flat.shape[1]):
                (grad,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)
                div = div + grad.flatten(1)[:, i]
        else:
            for _ in range(self.probes):
                v = draws(lambda m: torch.randint(0, 2, (m, *x.shape[1:]), generator=draws.generator,
                                                  device=x.device)).to(x.dtype) * 2 - 1
                (grad,) = torch.autograd.grad((residual * v).sum(), x, create_graph=True)
                div = div + (grad * v).flatten(1).sum(dim=1) / self.probes
        reference = self.reference(x.detach())
        per_event = 0.5 * flat.square().sum(1) + (reference.flatten(1) * flat).sum(1) + div
        return (self.step_weights(k).to(per_event) * per_event).mean()

    def time_grid(self, steps: int, t_start: float) -> list[float]:
        if steps != self.n_steps:
            raise ValueError(f"this Langevin model's schedule fixes {self.n_steps} steps; got {steps}")
        k_start = round(t_start * self.n_steps)
        return [k / self.n_steps for k in range(k_start, -1, -1)]

    def partial_steps(self, steps: int, t_start: float) -> int:
        """The schedule fixes the steps; a partial run visits only those below ``t_start``."""
        return steps

    def step(self, net: nn.Module, solver: str, generator: torch.Generator) -> Step:
        def step(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
            k = round(t * self.n_steps)
            g = float(self.g[k - 1])
            x = x.to(torch.float64)
            tt = torch.full((x.shape[0],), t, device=x.device)
            residual = net(x.float(), tt).to(torch.float64)
            if solver == "ode":  # probability flow: dQ/dtau = s_ref - s_theta = -r
                return x + g * residual
            x = x + g * self.reference(x) + 2 * g * residual  # = x - g s_ref + 2 g (s_ref + r)
            if not last:
                v = 2 * g if self.variance == "2g" else 2 * g * float(self.sigma2[k - 1] / self.sigma2[k])
                x = x + v**0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            return x

        return step
