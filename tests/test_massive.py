"""Massive phase space: the massive RAMBO map, its inverse and weight, uniform massive events, volumes."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate

import lipsgen.coordinates.massive as massive_module
from conftest import assert_matches_cdf
from lipsgen.coordinates.massive import massive_from_massless, massless_from_massive
from lipsgen.evaluation.tails import chi2_per_ndf
from lipsgen.kinematics import phase_space_volume, two_body_momentum
from lipsgen.targets import Uniform, uniform_phase_space

SQRT_S = [1.0, 91.19]


def _mass_shell_and_conservation(events: torch.Tensor, masses, sqrt_s: float) -> tuple[float, float]:
    mass = torch.tensor(masses, dtype=torch.float64)
    energy = events[..., 0]
    off_shell = (energy.square() - events[..., 1:].square().sum(-1) - mass.square()).abs() / energy.square()
    total = events.sum(dim=1) - torch.tensor([sqrt_s, 0, 0, 0], dtype=torch.float64)
    return float(off_shell.max()), float(total.abs().max() / sqrt_s)


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_map_is_exact_on_shell_and_inverts(sqrt_s):
    masses = [0.2 * sqrt_s, 0.0, 0.05 * sqrt_s, 0.1 * sqrt_s, 1e-3 * sqrt_s]
    massless = uniform_phase_space(20_000, 5, sqrt_s=sqrt_s, seed=4)
    mapped = massive_from_massless(massless, masses, sqrt_s)
    off_shell, violation = _mass_shell_and_conservation(mapped.events, masses, sqrt_s)
    assert off_shell <= 1e-13 and violation <= 1e-13
    assert bool((mapped.xi > 0).all() and (mapped.xi <= 1).all())
    back, xi = massless_from_massive(mapped.events, sqrt_s)
    torch.testing.assert_close(back, massless, rtol=0, atol=1e-13 * sqrt_s)
    torch.testing.assert_close(xi, mapped.xi, rtol=1e-14, atol=0)


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_particle_near_rest_and_near_threshold(sqrt_s, generator):
    # A massive particle nearly at rest: its massless image is nearly soft.
    massless = uniform_phase_space(2000, 3, sqrt_s=sqrt_s, seed=5)
    soft = torch.tensor([1e-9, 1e-6, 1e-3], dtype=torch.float64).repeat(700)[:2000] * sqrt_s
    direction = massless[:, 0, 1:] / massless[:, 0, :1]
    partner = -massless[:, 1, 1:]  # rebuild a conserving event with particle 0 soft along `direction`
    k0 = soft[:, None] * direction
    k1 = partner * (sqrt_s / 2 - soft / 2)[:, None] / torch.linalg.vector_norm(partner, dim=-1, keepdim=True)
    k2 = -(k0 + k1)
    k = torch.stack([k0, k1, k2], dim=1)
    k = torch.cat([torch.linalg.vector_norm(k, dim=-1, keepdim=True), k], dim=-1)
    k = k * (sqrt_s / k[..., 0].sum(1))[:, None, None]
    for masses in ([0.4 * sqrt_s, 0.0, 0.0], [0.33 * sqrt_s, 0.33 * sqrt_s, 0.33999999 * sqrt_s]):
        mapped = massive_from_massless(k, masses, sqrt_s)
        off_shell, violation = _mass_shell_and_conservation(mapped.events, masses, sqrt_s)
        assert off_shell <= 1e-13 and violation <= 1e-13, masses


def test_bisection_fallback_agrees_with_newton(monkeypatch):
    massless = uniform_phase_space(5000, 4, sqrt_s=91.19, seed=6)
    masses = [30.0, 20.0, 10.0, 30.0]
    newton = massive_from_massless(massless, masses, 91.19)
    monkeypatch.setattr(massive_module, "_NEWTON_STEPS", 1)
    bisection = massive_from_massless(massless, masses, 91.19)
    # xi is fixed only up to the flatness of the energy sum near its root; both conserve energy
    torch.testing.assert_close(bisection.xi, newton.xi, rtol=1e-13, atol=0)
    for mapped in (newton, bisection):
        assert float((mapped.events[..., 0].sum(1) - 91.19).abs().max()) <= 1e-14 * 91.19


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_volumes_closed_forms(sqrt_s):
    assert phase_space_volume(3, sqrt_s, [0.0, 0.0, 0.0]) == phase_space_volume(3, sqrt_s)
    m1, m2 = 0.3 * sqrt_s, 0.45 * sqrt_s
    s = sqrt_s**2
    lam = (s - (m1 + m2) ** 2) * (s - (m1 - m2) ** 2)
    assert phase_space_volume(2, sqrt_s, [m1, m2]) == pytest.approx(math.pi * math.sqrt(lam) / (2 * s), rel=1e-14)
    # One massive particle and two massless ones: V_3 = pi^2 s / 8 (1 - r^2 + 2 r ln r), r = m^2 / s.
    m = 0.3 * sqrt_s
    r = m * m / s
    closed = math.pi**2 * s / 8 * (1 - r * r + 2 * r * math.log(r))
    for order in ([m, 0, 0], [0, m, 0], [0, 0, m]):
        assert phase_space_volume(3, sqrt_s, order) == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_mean_weight_is_the_volume_ratio(sqrt_s):
    """E_uniform massless[W] = V_m / V_0: checks W's formula against the recursive quadrature."""
    masses = [0.2 * sqrt_s, 0.1 * sqrt_s, 0.05 * sqrt_s, 0.0, 0.15 * sqrt_s]
    massless = uniform_phase_space(400_000, 5, sqrt_s=sqrt_s, seed=7)
    weight = massive_from_massless(massless, masses, sqrt_s).log_weight.exp()
    assert float(weight.max()) <= 1.0  # the proven bound W <= xi^(2N-4) <= 1 that rejection needs
    error = float(weight.std()) / math.sqrt(len(weight))
    ratio = phase_space_volume(5, sqrt_s, masses) / phase_space_volume(5, sqrt_s)
    assert abs(float(weight.mean()) - ratio) < 4 * error
    assert 4 * error < 0.006 * ratio  # sized to see a 1% error


def _three_body_energy_cdf(sqrt_s: float, masses) -> callable:
    """CDF of E_1 on uniform massive three-body phase space: density in E_1 is proportional to the
    width of the Dalitz plot at m23^2 = s - 2 sqrt_s E_1 + m1^2, lambda^(1/2)(s, m1^2, m23^2)
    lambda^(1/2)(m23^2, m2^2, m3^2) / m23^2; integrated in E_1 = lo + (hi - lo) sin^2 theta, which
    makes both square-root edges smooth (trapezoid rule on 20001 points)."""
    m1, m2, m3 = masses
    s = sqrt_s**2
    low, high = m1, (s + m1**2 - (m2 + m3) ** 2) / (2 * sqrt_s)
    theta = np.linspace(0.0, np.pi / 2, 20_001)
    energy = low + (high - low) * np.sin(theta) ** 2
    m23 = np.sqrt(np.maximum(s - 2 * sqrt_s * energy + m1**2, 1e-300))

    def momentum(total: np.ndarray, a: float, b: float) -> np.ndarray:
        product = (total - a - b) * (total + a + b) * (total - a + b) * (total + a - b)
        return np.sqrt(np.maximum(product, 0.0)) / (2 * total)

    density = momentum(np.full_like(m23, sqrt_s), m1, m23) * momentum(m23, m2, m3) / m23
    density *= (high - low) * np.sin(2 * theta)  # dE / dtheta
    cumulative = integrate.cumulative_trapezoid(density, theta, initial=0.0)
    cumulative /= cumulative[-1]
    return lambda x: np.interp(x, energy, cumulative)


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_uniform_massive_three_body_energy_spectra(sqrt_s):
    masses = [0.2 * sqrt_s, 0.1 * sqrt_s, 0.05 * sqrt_s]  # acceptance 0.63: 10^6 events in seconds
    events = uniform_phase_space(1_000_000, 3, sqrt_s=sqrt_s, masses=masses, seed=8)
    for i in range(3):
        order = [masses[i]] + [m for j, m in enumerate(masses) if j != i]
        cdf = _three_body_energy_cdf(sqrt_s, order)
        energy = events[:, i, 0].numpy()
        assert_matches_cdf(energy[:200_000], cdf)
        highest = (sqrt_s**2 + order[0] ** 2 - (order[1] + order[2]) ** 2) / (2 * sqrt_s)
        chi2, ndf = chi2_per_ndf(energy, cdf, order[0], highest, n_bins=50)  # the chi2 at 10^6 events
        assert ndf >= 45 and chi2 < 1.5, (i, chi2)


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_uniform_massive_dalitz_plot_is_flat(sqrt_s):
    """Cells of the (m12^2, m23^2) plane entirely inside the Dalitz region get equal counts."""
    masses = [m * sqrt_s / 91.19 for m in (20.0, 10.0, 5.0)]
    events = uniform_phase_space(400_000, 3, sqrt_s=sqrt_s, masses=masses, seed=9)
    m12 = (events[:, 0] + events[:, 1]).numpy()
    m23 = (events[:, 1] + events[:, 2]).numpy()
    x = m12[:, 0] ** 2 - (m12[:, 1:] ** 2).sum(1)
    y = m23[:, 0] ** 2 - (m23[:, 1:] ** 2).sum(1)
    bins = 16
    xe = np.linspace((masses[0] + masses[1]) ** 2, (sqrt_s - masses[2]) ** 2, bins + 1)
    ye = np.linspace((masses[1] + masses[2]) ** 2, (sqrt_s - masses[0]) ** 2, bins + 1)
    counts, _, _ = np.histogram2d(x, y, bins=(xe, ye))
    # A cell is inside when its four corners are: the Dalitz region is convex in these variables.
    s, (a, b, c) = sqrt_s**2, [m**2 for m in masses]

    def inside_region(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        e2 = (u - a + b) / (2 * np.sqrt(u))  # particle 2's energy in the 12 rest frame
        e3 = (s - u - c) / (2 * np.sqrt(u))
        p2, p3 = np.sqrt(np.maximum(e2**2 - b, 0)), np.sqrt(np.maximum(e3**2 - c, 0))
        return ((e2 + e3) ** 2 - (p2 + p3) ** 2 < v) & (v < (e2 + e3) ** 2 - (p2 - p3) ** 2)

    inside = np.ones((bins, bins), dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            u, v = np.meshgrid(xe[dx:bins + dx], ye[dy:bins + dy], indexing="ij")
            inside &= inside_region(u, v)
    cells = counts[inside]
    assert len(cells) > 60
    chi2 = float(((cells - cells.mean()) ** 2 / cells.mean()).sum())
    ndf = len(cells) - 1
    assert chi2 < ndf + 5 * math.sqrt(2 * ndf), (chi2, ndf)


@pytest.mark.parametrize("sqrt_s", SQRT_S)
def test_two_body_massive_is_back_to_back_at_the_two_body_momentum(sqrt_s):
    masses = [80.0 * sqrt_s / 91.19, 4.8 * sqrt_s / 91.19]
    events = uniform_phase_space(20_000, 2, sqrt_s=sqrt_s, masses=masses, seed=10)
    momentum = torch.linalg.vector_norm(events[..., 1:], dim=-1)
    torch.testing.assert_close(momentum, torch.full_like(momentum, two_body_momentum(sqrt_s, *masses)),
                               rtol=1e-13, atol=0)
    cos_theta = (events[:, 0, 3] / momentum[:, 0]).numpy()
    assert_matches_cdf(cos_theta + 2, lambda x: np.clip((x - 1) / 2, 0, 1))


def test_uniform_massive_target_density_and_parameters():
    target = Uniform(3, sqrt_s=91.19, masses=[20.0, 0.0, 5.0])
    assert target.parameters()["masses"] == [20.0, 0.0, 5.0]
    events = target.sample(10, seed=1)
    log_density = target.log_density(events)
    assert torch.allclose(log_density, torch.full_like(log_density,
                                                      -math.log(phase_space_volume(3, 91.19, [20.0, 0.0, 5.0]))))
    assert Uniform(3, masses=[0, 0, 0]).masses is None


@pytest.mark.parametrize("masses, message", [([0.5, 0.6, 0.0], "no phase space"), ([0.1, 0.1], "expected 3 masses"),
                                             ([-0.1, 0.0, 0.0], "finite and >= 0"),
                                             ([float("nan"), 0.0, 0.0], "finite and >= 0")])
def test_bad_masses_are_refused(masses, message):
    with pytest.raises(ValueError, match=message):
        uniform_phase_space(10, 3, masses=masses)
