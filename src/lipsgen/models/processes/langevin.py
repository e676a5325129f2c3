"""The paper's q-space Langevin diffusion with implicit score matching (DESIGN §5.1).

Forward: ``Q_{k+1} = Q_k + g_k s_ref(Q_k) + sqrt(2 g_k) Z`` for k = 0..K-1, whose stationary law
is the RAMBO prior (s_ref its score, or the eps-regularised drift), so the noise end is uniform
phase space. No closed-form kernel: each epoch simulates the chains of all training events once
and keeps one state per event at a random step (a cache of forward trajectories).

The model's score is ``s_theta = s_ref + r_theta`` (the network r_theta starts at zero, so an
untrained model samples the prior). Loss: implicit score matching
``w_k (|s_theta|^2 / 2 + div s_theta)``, written without its theta-independent part as
``w_k (|r|^2 / 2 + s_ref·r + div r)``, ``w_k = sigma_k^2 = 2 sum_{j<k} g_j``; the divergence is
exact (3N backward passes) or Hutchinson's estimate with Rademacher probes.
Reverse: ``Q_{k-1} = Q_k - g s_ref + 2 g s_theta + sqrt(v) Z`` with ``v = 2g`` or
``2 g sigma_{k-1}^2 / sigma_k^2``, noiseless last step. The chain runs in float64 (the singular
schedule's first steps, g ~ 5e-8, vanish in float32 rounding); the network sees float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Process, Trajectory, record_indices

__all__ = ["LangevinDiffusion", "langevin_schedule"]


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
    solvers = ("langevin",)

    def __init__(self, schedule: str = "smooth", drift: str = "score", eps: float = 0.2,
                 divergence: str = "exact", probes: int = 1, variance: str = "2g") -> None:
        if drift not in ("score", "regularised"):
            raise ValueError(f"drift must be 'score' or 'regularised', got {drift!r}")
        if divergence not in ("exact", "hutchinson"):
            raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
        if variance not in ("2g", "ratio"):
            raise ValueError(f"variance must be '2g' or 'ratio', got {variance!r}")
        self.g = langevin_schedule(schedule)
        self.n_steps = len(self.g)
        self.default_steps = self.n_steps
        # sigma2[k] = 2 sum_{j<k} g_j for k = 0..K
        self.sigma2 = torch.cat([torch.zeros(1, dtype=torch.float64), 2 * torch.cumsum(self.g, 0)])
        self.drift, self.eps, self.divergence, self.probes, self.variance = drift, eps, divergence, probes, variance

    def reference(self, q: Tensor) -> Tensor:
        """s_ref(q): the prior score ``-(1 + 1/|q|) q̂`` or ``-q̂ - q/(|q|^2 + eps^2)``."""
        r2 = (q * q).sum(dim=-1, keepdim=True)
        r = torch.sqrt(r2).clamp(min=1e-30)
        if self.drift == "score":
            return -(1 + 1 / r) * q / r
        return -q / r - q / (r2 + self.eps**2)

    def _forward_step(self, x: Tensor, j: int, generator: torch.Generator) -> Tensor:
        g = float(self.g[j])
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + g * self.reference(x) + (2 * g) ** 0.5 * z

    def prepare_epoch(self, x0: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Simulate every event's chain once; keep its state at a uniformly drawn step k in 1..K."""
        x = x0.to(torch.float64)
        k = torch.randint(1, self.n_steps + 1, (x.shape[0],), generator=generator, device=x.device)
        kept = torch.empty_like(x)
        for j in range(self.n_steps):
            x = self._forward_step(x, j, generator)
            here = k == j + 1
            kept[here] = x[here]
        return {"x": kept.float(), "k": k}

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        x = x0.to(torch.float64)
        for j in range(round(t * self.n_steps)):
            x = self._forward_step(x, j, generator)
        return x

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator) -> Tensor:
        x = batch["x"].detach().requires_grad_(True)
        k = batch["k"]
        residual = net(x, k.float() / self.n_steps)
        flat = residual.flatten(1)
        if self.divergence == "exact":
            div = torch.zeros(x.shape[0], device=x.device)
            for i in range(flat.shape[1]):
                (grad,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)
                div = div + grad.flatten(1)[:, i]
        else:
            div = torch.zeros(x.shape[0], device=x.device)
            for _ in range(self.probes):
                v = torch.randint(0, 2, x.shape, generator=generator, device=x.device).float() * 2 - 1
                (grad,) = torch.autograd.grad((residual * v).sum(), x, create_graph=True)
                div = div + (grad * v).flatten(1).sum(dim=1) / self.probes
        reference = self.reference(x.detach())
        per_event = 0.5 * flat.square().sum(1) + (reference.flatten(1) * flat).sum(1) + div
        weight = self.sigma2[k].to(per_event)
        return (weight * per_event).mean()

    @torch.no_grad()
    def sample(self, net, x, *, steps, solver, generator, t_start=1.0, n_record=0):
        self.check_solver(solver)
        if steps != self.n_steps:
            raise ValueError(f"this Langevin model's schedule fixes {self.n_steps} steps; got --steps {steps}")
        k_start = round(t_start * self.n_steps)
        x = x.to(torch.float64)
        trajectory = Trajectory()
        keep = record_indices(k_start, n_record)
        if 0 in keep:
            trajectory.add(k_start / self.n_steps, x)
        for position, k in enumerate(range(k_start, 0, -1), start=1):
            g = float(self.g[k - 1])
            t = torch.full((x.shape[0],), k / self.n_steps, device=x.device)
            reference = self.reference(x)
            residual = net(x.float(), t).to(torch.float64)
            x = x + g * reference + 2 * g * residual  # = x - g s_ref + 2 g (s_ref + r)
            if k > 1:
                v = 2 * g if self.variance == "2g" else 2 * g * float(self.sigma2[k - 1] / self.sigma2[k])
                x = x + v**0.5 * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            if position in keep:
                trajectory.add((k - 1) / self.n_steps, x)
        return x, trajectory
