import math

import numpy as np
import pytest
import torch
from scipy import stats

import lipsgen
from conftest import P_THRESHOLD, assert_matches_cdf


@pytest.mark.parametrize("n_particles", [3, 4, 10, 30])
def test_energy_fraction_is_beta(n_particles):
    events = lipsgen.uniform_phase_space(250_000, n_particles, sqrt_s=2.0, seed=11)
    x = 2 * events[:, 0, 0] / 2.0  # one particle per event: independent draws
    assert_matches_cdf(x, stats.beta(2, n_particles - 2).cdf)


def test_two_body_is_back_to_back_with_isotropic_axis():
    events = lipsgen.uniform_phase_space(50_000, 2, seed=1)
    torch.testing.assert_close(events[:, 0, 0], torch.full((50_000,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(events[:, 0, 1:], -events[:, 1, 1:], rtol=0, atol=1e-13)
    cos_theta = (events[:, 0, 3] / events[:, 0, 0]).numpy()
    assert_matches_cdf(cos_theta + 2, stats.uniform(1, 2).cdf)  # shifted so a 1% rescale shows


def test_three_body_dalitz_plot_is_flat():
    events = lipsgen.uniform_phase_space(400_000, 3, seed=3)
    x1, x2 = (2 * events[:, 0, 0]).numpy(), (2 * events[:, 1, 0]).numpy()
    assert np.all(x1 + x2 >= 1 - 1e-12)
    # Equal-area cells of the triangle x1 + x2 >= 1, x1, x2 <= 1: bin (1 - x1, 1 - x2) on a grid.
    bins = 20
    u, v = 1 - x1, 1 - x2  # u, v >= 0, u + v <= 1
    i, j = np.minimum((u * bins).astype(int), bins - 1), np.minimum((v * bins).astype(int), bins - 1)
    counts = np.zeros((bins, bins))
    np.add.at(counts, (i, j), 1)
    # Exact area of each cell inside the triangle u + v <= 1.
    area = np.zeros((bins, bins))
    for a in range(bins):
        for b in range(bins):
            if a + b + 2 <= bins:
                area[a, b] = 1
            elif a + b + 1 == bins:
                area[a, b] = 0.5
    area /= area.sum()
    keep = area > 0
    expected = area[keep] * len(u)
    chi2 = ((counts[keep] - expected) ** 2 / expected).sum()
    p = stats.chi2(keep.sum() - 1).sf(chi2)
    assert p > P_THRESHOLD
    assert counts[~keep].sum() == 0


@pytest.mark.parametrize("n_particles", [3, 10])
def test_directions_are_isotropic(n_particles):
    events = lipsgen.uniform_phase_space(100_000, n_particles, seed=5)
    p = events[:, 1]
    cos_theta = (p[:, 3] / p[:, 0]).numpy()
    phi = torch.atan2(p[:, 2], p[:, 1]).numpy()
    assert stats.kstest(cos_theta, stats.uniform(-1, 2).cdf).pvalue > P_THRESHOLD
    assert stats.kstest(phi, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > P_THRESHOLD


def test_conservation_and_masslessness_at_scale():
    for n_particles in (2, 3, 10, 30):
        events = lipsgen.uniform_phase_space(20_000, n_particles, sqrt_s=91.2, seed=n_particles)
        total = events.sum(dim=1)
        assert float((total[:, 0] - 91.2).abs().max()) <= 1e-12 * 91.2
        assert float(total[:, 1:].abs().max()) <= 1e-12 * 91.2
        mass = (events[..., 0] - events[..., 1:].norm(dim=-1)).abs() / events[..., 0]
        assert float(mass.max()) <= 1e-12


def test_reproducible_and_device_dtype_arguments():
    a = lipsgen.uniform_phase_space(1000, 4, seed=42)
    b = lipsgen.uniform_phase_space(1000, 4, seed=42)
    assert torch.equal(a, b)
    assert not torch.equal(a, lipsgen.uniform_phase_space(1000, 4, seed=43))
    gen = torch.Generator().manual_seed(42)
    assert torch.equal(a, lipsgen.uniform_phase_space(1000, 4, generator=gen))
    f32 = lipsgen.uniform_phase_space(100, 4, seed=1, dtype=torch.float32, device="cpu")
    assert f32.dtype == torch.float32 and f32.device.type == "cpu"
    assert lipsgen.uniform_phase_space(0, 4, seed=1).shape == (0, 4, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_particles"):
        lipsgen.uniform_phase_space(10, 1)
    with pytest.raises(ValueError, match="n_events"):
        lipsgen.uniform_phase_space(-1, 3)
    with pytest.raises(ValueError, match="sqrt_s"):
        lipsgen.uniform_phase_space(10, 3, sqrt_s=float("nan"))
