"""Variance-preserving diffusion with closed-form kernels and denoising score matching.

Forward SDE ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dW``, ``beta(t) = beta_min + t (beta_max -
beta_min)``, ``t`` in [0, 1]; kernel ``x_t = alpha(t) x_0 + sigma(t) eps`` with
``alpha = exp(-B(t)/2)``, ``B(t) = int_0^t beta``, ``sigma^2 = 1 - alpha^2``. The network predicts
eps (score ``= -eps/sigma``). Used in z-space (its noise end is uniform phase space) and, as the
p-space DDPM baseline, on scaled 3-momenta.

The reverse run stops at ``t_min`` (the score is singular at t = 0) and, with ``final_denoise``,
ends with Tweedie's estimate ``x_0 = (x - sigma eps_theta) / alpha`` of the data at ``t = 0``,
which removes the noise of scale sigma(t_min) the run would otherwise leave.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import BatchDraws, Process, batch_draws, ode_step
from .solver import Step

__all__ = ["VPDiffusion"]


class VPDiffusion(Process):
    default_steps = 100
    solvers = ("heun", "euler", "sde")
    density_solvers = ("heun", "euler")  # the probability-flow ODE (and the Tweedie step)

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3,
                 final_denoise: bool = True) -> None:
        self.beta_min, self.beta_max, self.t_min = beta_min, beta_max, t_min
        self.final_denoise = final_denoise

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        integral = self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t
        return torch.exp(-0.5 * integral), torch.sqrt(-torch.expm1(-integral))

    def loss(self, net: nn.Module, batch: dict[str, Tensor], generator: torch.Generator | BatchDraws) -> Tensor:
        x0 = batch["x0"]
        draws = batch_draws(generator, x0.shape[0])
        t = self.t_min + (1 - self.t_min) * draws(lambda m: torch.rand((m,), generator=draws.generator,
                                                                       device=x0.device))
        eps = draws(lambda m: torch.randn((m, *x0.shape[1:]), generator=draws.generator, device=x0.device))
        alpha, sigma = (v.view(-1, 1, 1) for v in self.alpha_sigma(t))
        return (net(alpha * x0 + sigma * eps, t) - eps).square().sum(dim=(1, 2)).mean()

    def noise(self, x0: Tensor, t: float, generator: torch.Generator) -> Tensor:
        alpha, sigma = self.alpha_sigma(torch.tensor(t, dtype=x0.dtype, device=x0.device))
        return alpha * x0 + sigma * torch.randn(x0.shape, generator=generator, device=x0.device)

    def time_grid(self, steps: int, t_start: float) -> list[float]:
        if t_start <= self.t_min:  # a partial run from below t_min: only the final estimate is left
            return [t_start, 0.0] if self.final_denoise else [t_start]
        grid = torch.linspace(t_start, self.t_min, steps + 1, dtype=torch.float64).tolist()
        return grid + [0.0] if self.final_denoise else grid

    def partial_steps(self, steps: int, t_start: float) -> int:
        return max(1, math.ceil(steps * (t_start - self.t_min) / (1 - self.t_min) - 1e-9))

    def score(self, net: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        """``grad_x log p_t(x) = -eps_theta(x, t) / sigma(t)``, t (n,)."""
        return -net(x, t) / self.alpha_sigma(t)[1].view(-1, 1, 1)

    def step(self, net: nn.Module, solver: str, generator: torch.Generator) -> Step:
        def velocity(x: Tensor, t: Tensor) -> Tensor:  # probability-flow ODE
            return -0.5 * self.beta(t).view(-1, 1, 1) * (x + self.score(net, x, t))

        ode = ode_step(velocity, solver) if solver != "sde" else None

        def step(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
            tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
            if t_next == 0.0 and self.final_denoise:
                alpha, sigma = (v.view(-1, 1, 1) for v in self.alpha_sigma(tt))
                return (x - sigma * net(x, tt)) / alpha
            if ode is not None:
                return ode(x, t, t_next, last)
            dt = t - t_next  # reverse SDE, Euler-Maruyama
            beta = self.beta(tt).view(-1, 1, 1)
            x = x + (0.5 * beta * x + beta * self.score(net, x, tt)) * dt
            if not last:  # noiseless last step
                x = x + torch.sqrt(beta * dt) * torch.randn(x.shape, generator=generator, device=x.device)
            return x

        return step
