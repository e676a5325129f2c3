"""Every process and solver against closed-form answers: Gaussian data, analytic "networks".

For data x0 ~ N(m, s^2 I) the optimal flow-matching velocity, the optimal noise prediction of the
VP diffusion and the score of every forward marginal are closed-form. Plugged in as the network,
each sampler must reproduce the data distribution, and each loss must be stationary there (its
gradient along a perturbation vanishes) and not at a perturbed answer. For the q-space Langevin
chain the reference drift is swapped for the Gaussian one, -x, so that every forward marginal of the
*discrete* chain is Gaussian and known by recursion; the reverse chain is then linear-Gaussian too,
and its exact output moments follow from a recursion written here independently of the code.

Mutation check (2026-11-23, each applied alone to a copy of src/ and this module run against it;
every one made at least one test here fail):
1. flipped score sign in the VP probability-flow ODE (``x + score`` -> ``x - score``);
2. flipped score sign in the VP reverse SDE (``+ beta * score`` -> ``- beta * score``);
3. reversed flow-matching loss target (``x1 - x0`` -> ``x0 - x1``);
4. broken Heun step (``0.5 * dt * (v + v_next)`` -> ``dt * v_next``);
5. flipped Langevin residual in the reverse step (``+ 2 * g * residual`` -> ``- 2 * g * residual``);
6. inverted ratio variance (``sigma2[k - 1] / sigma2[k]`` -> ``sigma2[k] / sigma2[k - 1]``);
7. (added with the ``ode`` solver) the Langevin probability-flow step ``x + g r`` -> ``x + 2 g r``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from lipsgen.models.processes import FlowMatching, LangevinDiffusion, VPDiffusion

N_PARTICLES = 2
MEAN = torch.tensor([0.8, -0.5, 0.3]).repeat(N_PARTICLES, 1)  # (N, 3): a non-zero mean tells signs apart
STD = 0.5
N_SAMPLES = 100_000


def gaussian_data(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return MEAN + STD * torch.randn((n, N_PARTICLES, 3), generator=g)


def standard_normal(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randn((n, N_PARTICLES, 3), generator=generator, device=device)


class Field(nn.Module):
    """A "network" given by a closed form ``f(x, t)``, plus ``c`` times a constant unit field: the
    direction along which a loss must be stationary at c = 0."""

    def __init__(self, f) -> None:
        super().__init__()
        self.f = f
        self.c = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.f(x, t.view(-1, 1, 1).to(x.dtype)) + self.c


def optimal_velocity(x: Tensor, t: Tensor) -> Tensor:
    """E[x1 - x0 | x_t = x] on the path x_t = (1 - t) x0 + t x1, x1 ~ N(0, I)."""
    a = 1 - t
    var = a * a * STD**2 + t * t
    return (t - a * STD**2) * (x - a * MEAN) / var - MEAN


def vp_optimal_eps(process: VPDiffusion):
    def eps(x: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = process.alpha_sigma(t)
        return sigma * (x - alpha * MEAN) / (alpha**2 * STD**2 + sigma**2)

    return eps


def assert_gaussian(x: Tensor, mean_tol: float, std_rtol: float, mean: Tensor = MEAN,
                    std: float | Tensor = STD) -> None:
    """Per-coordinate moments of samples x (n, N, 3) against N(mean, std^2)."""
    x = x.to(torch.float64)
    got_mean, got_std = x.mean(0), x.std(0)
    assert torch.allclose(got_mean, mean.to(torch.float64), atol=mean_tol), (got_mean, mean)
    assert torch.allclose(got_std, torch.as_tensor(std, dtype=torch.float64).expand_as(got_std),
                          rtol=std_rtol), got_std


def loss_slope(process, net: Field, batch: dict[str, Tensor], seed: int) -> float:
    """d loss / d c at the net's current c."""
    net.zero_grad()
    process.loss(net, batch, torch.Generator().manual_seed(seed)).backward()
    return float(net.c.grad)


# ---- flow matching -------------------------------------------------------------------------------

@pytest.mark.parametrize("solver, steps, mean_tol, std_rtol", [("heun", 50, 0.01, 0.01), ("euler", 400, 0.01, 0.015)])
def test_flow_sampler_reproduces_gaussian_data(solver, steps, mean_tol, std_rtol):
    process = FlowMatching(standard_normal)
    g = torch.Generator().manual_seed(1)
    x1 = standard_normal(N_SAMPLES, g, torch.device("cpu"))
    x, _ = process.sample(Field(optimal_velocity), x1, steps=steps, solver=solver, generator=g)
    assert_gaussian(x, mean_tol, std_rtol)


def test_heun_is_second_order():
    """Halving the step count cuts Heun's error by ~4 (Euler's by ~2): the same start, the exact
    flow from a fine Heun run as reference."""
    process = FlowMatching(standard_normal)
    x1 = standard_normal(2000, torch.Generator().manual_seed(2), torch.device("cpu")).double()
    net = Field(optimal_velocity).double()
    run = lambda steps, solver: process.sample(net, x1, steps=steps, solver=solver,  # noqa: E731
                                               generator=torch.Generator())[0]
    reference = run(2000, "heun")
    for solver, order in (("heun", 2), ("euler", 1)):
        coarse, fine = ((run(k, solver) - reference).abs().max() for k in (10, 20))
        assert 2 ** (order - 0.5) < float(coarse / fine) < 2 ** (order + 0.5), (solver, coarse / fine)


def test_flow_loss_is_stationary_at_the_optimal_velocity():
    process = FlowMatching(standard_normal)
    batch = {"x0": gaussian_data(500_000, 3)}
    net = Field(optimal_velocity)
    assert abs(loss_slope(process, net, batch, 4)) < 0.02
    with torch.no_grad():
        net.c.fill_(0.1)
    # d/dc E|v* + c - (x1 - x0)|^2 = 2 c * (3N) at the optimum's neighbour c
    assert loss_slope(process, net, batch, 4) == pytest.approx(2 * 0.1 * 3 * N_PARTICLES, abs=0.03)


# ---- variance-preserving diffusion ---------------------------------------------------------------

@pytest.mark.parametrize("solver, steps, mean_tol, std_rtol", [("heun", 50, 0.01, 0.01), ("euler", 300, 0.01, 0.02),
                                                                ("sde", 500, 0.015, 0.03)])
def test_vp_samplers_reproduce_gaussian_data(solver, steps, mean_tol, std_rtol):
    process = VPDiffusion()
    g = torch.Generator().manual_seed(5)
    x1 = standard_normal(N_SAMPLES // (2 if solver == "sde" else 1), g, torch.device("cpu"))
    x, _ = process.sample(Field(vp_optimal_eps(process)), x1, steps=steps, solver=solver, generator=g)
    assert_gaussian(x, mean_tol, std_rtol)


def test_vp_final_denoise_removes_the_t_min_noise():
    """Without Tweedie's step the run ends at t_min = 0.05 (large on purpose), whose marginal is
    N(alpha m, alpha^2 s^2 + sigma^2); with it, at the data."""
    g = torch.Generator().manual_seed(6)
    x1 = standard_normal(N_SAMPLES, g, torch.device("cpu"))
    for final_denoise in (False, True):
        process = VPDiffusion(t_min=0.05, final_denoise=final_denoise)
        x, trajectory = process.sample(Field(vp_optimal_eps(process)), x1, steps=100, solver="heun", generator=g,
                                       trajectory=2)
        alpha, sigma = (float(v) for v in process.alpha_sigma(torch.tensor(0.05)))
        if final_denoise:
            assert trajectory.times[-1] == 0.0
            # Tweedie's estimate is the posterior mean: its spread is s^2 minus the posterior variance
            posterior_var = STD**2 * sigma**2 / (alpha**2 * STD**2 + sigma**2)
            assert_gaussian(x, 0.01, 0.01, std=math.sqrt(STD**2 - posterior_var))
        else:
            assert trajectory.times[-1] == pytest.approx(0.05)
            assert_gaussian(x, 0.01, 0.01, mean=alpha * MEAN, std=math.sqrt(alpha**2 * STD**2 + sigma**2))


def test_vp_loss_is_stationary_at_the_optimal_noise_prediction():
    process = VPDiffusion()
    batch = {"x0": gaussian_data(500_000, 7)}
    net = Field(vp_optimal_eps(process))
    assert abs(loss_slope(process, net, batch, 8)) < 0.02
    with torch.no_grad():
        net.c.fill_(0.1)
    assert loss_slope(process, net, batch, 8) == pytest.approx(2 * 0.1 * 3 * N_PARTICLES, abs=0.03)


# ---- q-space Langevin chain, with a Gaussian reference ---------------------------------------------

class GaussianReferenceLangevin(LangevinDiffusion):
    """The Langevin process with the Ornstein-Uhlenbeck reference drift -x (stationary law N(0, I))."""

    def reference(self, q: Tensor) -> Tensor:
        return -q

    def marginals(self) -> tuple[Tensor, Tensor]:
        """Mean factor a_k and variance v_k (K + 1,) of the discrete forward chain's marginal at step
        k: x_k ~ N(a_k m, a_k^2 s^2 + b_k), from x_{k+1} = (1 - g_k) x_k + sqrt(2 g_k) z."""
        a, b = [1.0], [0.0]
        for g in self.g.tolist():
            a.append(a[-1] * (1 - g))
            b.append(b[-1] * (1 - g) ** 2 + 2 * g)
        a_t, b_t = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
        return a_t, a_t**2 * STD**2 + b_t

    def optimal_residual(self):
        """r*(x, k) = score of the marginal at k minus the reference: -(x - a_k m)/v_k + x."""
        a, v = self.marginals()

        def residual(x: Tensor, t: Tensor) -> Tensor:
            k = torch.round(t.to(torch.float64) * self.n_steps).long().view(-1, 1, 1)
            a_k, v_k = a[k].to(x.dtype), v[k].to(x.dtype)
            return -(x - a_k * MEAN.to(x.dtype)) / v_k + x

        return residual


def reverse_chain_moments(process: GaussianReferenceLangevin, start_mean: Tensor,
                          start_var: float) -> tuple[Tensor, float]:
    """Exact output moments of the reverse chain with the optimal residual, by recursion: each step
    is x -> x + g (-x) + 2 g r*(x) + sqrt(v) z = c x + d + noise, linear in x."""
    a, var = process.marginals()
    mean, variance = start_mean.to(torch.float64), start_var
    for k in range(process.n_steps, 0, -1):
        g = float(process.g[k - 1])
        c = 1 - g + 2 * g * (1 - 1 / float(var[k]))
        d = 2 * g * float(a[k]) * MEAN.to(torch.float64) / float(var[k])
        mean, variance = c * mean + d, c * c * variance
        if k > 1:
            ratio = float(process.sigma2[k - 1] / process.sigma2[k])
            variance += 2 * g * (ratio if process.variance == "ratio" else 1.0)
    return mean, variance


@pytest.mark.parametrize("variance", ["2g", "ratio"])
def test_langevin_reverse_chain_matches_its_exact_moments(variance):
    process = GaussianReferenceLangevin(schedule="linear:0.02:0.02:300", variance=variance)
    g = torch.Generator().manual_seed(9)
    x = standard_normal(N_SAMPLES // 2, g, torch.device("cpu")).double()
    out, _ = process.sample(Field(process.optimal_residual()).double(), x, steps=process.n_steps,
                            solver="langevin", generator=g)
    mean, var = reverse_chain_moments(process, torch.zeros_like(MEAN), 1.0)
    assert_gaussian(out, 0.012, 0.015, mean=mean, std=math.sqrt(var))
    if variance == "2g":  # and, with the time-reversal's own noise, close to the data themselves
        assert_gaussian(out, 0.03, 0.05)


def test_langevin_probability_flow_matches_its_exact_moments():
    """The deterministic ``ode`` solver, x -> x + g r*(x): affine per step, so its output moments
    follow by recursion; with small steps they approach the data law (same marginals as the chain)."""
    process = GaussianReferenceLangevin(schedule="linear:0.01:0.01:600")
    g = torch.Generator().manual_seed(12)
    x = standard_normal(N_SAMPLES // 2, g, torch.device("cpu")).double()
    out, _ = process.sample(Field(process.optimal_residual()).double(), x, steps=process.n_steps, solver="ode",
                            generator=g)
    a, var = process.marginals()
    mean, scale = torch.zeros_like(MEAN, dtype=torch.float64), 1.0
    for k in range(process.n_steps, 0, -1):
        step = float(process.g[k - 1])
        c = 1 + step - step / float(var[k])
        mean, scale = c * mean + step * float(a[k]) * MEAN.double() / float(var[k]), c * scale
    assert_gaussian(out, 0.01, 0.01, mean=mean, std=scale)
    assert_gaussian(out, 0.03, 0.06)


def test_langevin_forward_chain_reaches_the_q_space_prior():
    """The real process (prior-score reference): lifted Gaussian blobs relax to the RAMBO prior,
    |q| ~ Gamma(2): E|q| = 2, E|q|^2 = 6, isotropic."""
    process = LangevinDiffusion(schedule="linear:0.01:0.01:1000")
    x0 = gaussian_data(20_000, 10).double() * 0.2 + 1.0
    x = process.noise(x0, 1.0, torch.Generator().manual_seed(11))
    r = torch.linalg.vector_norm(x, dim=-1)
    assert float(r.mean()) == pytest.approx(2.0, rel=0.02)
    assert float(r.square().mean()) == pytest.approx(6.0, rel=0.04)
    assert float((x / r.unsqueeze(-1)).mean(0).abs().max()) < 0.02


def test_langevin_loss_is_stationary_at_the_optimal_residual():
    process = GaussianReferenceLangevin(schedule="linear:0.01:0.01:100", states_per_chain=4)
    batch = process.prepare_epoch(gaussian_data(200_000, 12), torch.Generator().manual_seed(13))
    net = Field(process.optimal_residual())
    slope = loss_slope(process, net, batch, 14)
    with torch.no_grad():
        net.c.fill_(0.1)
    # d/dc E[w (|r* + c|^2/2 + s_ref.(r* + c))] = c E[w] (3N) at c, zero at c = 0 (E[score] = 0)
    expected = 0.1 * 3 * N_PARTICLES * float(process.step_weights(batch["k"]).mean())
    assert abs(slope) < 0.02 * expected / 0.1
    assert loss_slope(process, net, batch, 14) == pytest.approx(expected, rel=0.05)


def test_vp_time_grid_has_the_steps_it_is_asked_for():
    """K steps from t = 1 to t_min (and Tweedie's estimate to 0 if final_denoise): K + 1 times."""
    from lipsgen.models.processes import VPDiffusion

    for final in (True, False):
        process = VPDiffusion(final_denoise=final)
        grid = process.time_grid(7, 1.0)
        assert len(grid) == 7 + 1 + final and grid[0] == 1.0 and grid[7] == pytest.approx(process.t_min)
        assert grid[-1] == (0.0 if final else pytest.approx(process.t_min))
