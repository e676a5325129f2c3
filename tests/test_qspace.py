import math

import pytest
import torch
from scipy import stats

from conftest import assert_matches_cdf
from lipsgen.coordinates import prior_log_prob, prior_score, regularised_drift, sample_prior


def test_prior_magnitudes_are_gamma2_and_directions_isotropic(generator):
    q = sample_prior(250_000, 3, generator=generator)
    r = q.norm(dim=-1)
    assert_matches_cdf(r[:, 0], stats.gamma(2).cdf)
    cos_theta = (q[:, 1, 2] / r[:, 1]).numpy()
    assert stats.kstest(cos_theta, stats.uniform(-1, 2).cdf).pvalue > 1e-3
    phi = torch.atan2(q[:, 2, 1], q[:, 2, 0]).numpy()
    assert stats.kstest(phi, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3


def test_log_prob_is_normalised_per_particle_in_3d():
    # Radial integral of exp(-r)/(4 pi r) * 4 pi r^2 dr = 1.
    r = torch.linspace(1e-6, 60, 200_001, dtype=torch.float64)
    q = torch.stack([r, torch.zeros_like(r)], dim=1).unsqueeze(-1) * torch.tensor([1.0, 0, 0], dtype=torch.float64)
    density = torch.exp(prior_log_prob(q[:, :1].expand(-1, 2, 3).contiguous()) / 2)
    integral = torch.trapezoid(density * 4 * math.pi * r**2, r)
    assert float(integral) == pytest.approx(1.0, abs=1e-6)


def test_score_is_gradient_of_log_prob(generator):
    q = sample_prior(200, 4, generator=generator).requires_grad_(True)
    (grad,) = torch.autograd.grad(prior_log_prob(q).sum(), q)
    torch.testing.assert_close(prior_score(q.detach()), grad, rtol=1e-12, atol=1e-12)


def test_regularised_drift_is_bounded_and_matches_score_far_out(generator):
    q = sample_prior(500, 3, generator=generator)
    # |drift| = 1 + r / (r^2 + eps^2) <= 1 + 1 / (2 eps) at every scale, unlike the score.
    for scale in (1e-8, 1e-2, 0.2, 1.0, 1e2):
        assert float(regularised_drift(q * scale, eps=0.2).norm(dim=-1).max()) <= 1 + 1 / 0.4 + 1e-12
    assert float(prior_score(q * 1e-8).norm(dim=-1).max()) > 1e6
    far = q / q.norm(dim=-1, keepdim=True) * 100
    torch.testing.assert_close(regularised_drift(far, eps=0.2), prior_score(far), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(regularised_drift(torch.zeros(1, 2, 3, dtype=torch.float64))).all()
    with pytest.raises(ValueError, match="eps"):
        regularised_drift(q, eps=0.0)


def test_zero_vector_is_refused_by_density_and_score():
    q = torch.ones(2, 3, 3, dtype=torch.float64)
    q[1, 2] = 0
    with pytest.raises(ValueError, match="event 1, particle 2 is the zero vector"):
        prior_log_prob(q)
    with pytest.raises(ValueError, match="event 1, particle 2 is the zero vector"):
        prior_score(q)


def test_same_seed_same_samples():
    assert torch.equal(sample_prior(100, 5, seed=7), sample_prior(100, 5, seed=7))
    assert not torch.equal(sample_prior(100, 5, seed=7), sample_prior(100, 5, seed=8))
    with pytest.raises(ValueError, match="seed or generator"):
        sample_prior(10, 3, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        sample_prior(10, 3, seed=-1)
    with pytest.raises(ValueError, match="n_particles"):
        sample_prior(10, 1)
