import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import assert_matches_cdf
from lipsgen.coordinates import log_abs_det_q_to_z, prior_log_prob, q_to_z, sample_prior, z_to_q


def radial_grid(lo: float = 1e-10, hi: float = 50.0, n: int = 400) -> torch.Tensor:
    r = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    direction = torch.randn(n, 2, 3, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    return direction * r.view(-1, 1, 1)


def test_radial_quantiles_match_scipy_over_the_full_range():
    q = radial_grid()
    r = q.norm(dim=-1).numpy().ravel()
    rho = q_to_z(q).norm(dim=-1).numpy().ravel()
    # Compare on the smaller tail so tiny and near-one probabilities are both checked relatively.
    lower = stats.gamma(2).cdf(r) <= 0.5
    chi3 = stats.chi(3)
    gamma2 = stats.gamma(2)
    np.testing.assert_allclose(chi3.logcdf(rho[lower]), gamma2.logcdf(r[lower]), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(chi3.logsf(rho[~lower]), gamma2.logsf(r[~lower]), rtol=1e-12, atol=1e-13)


def test_small_radius_power_law():
    r = torch.tensor([1e-10, 1e-9], dtype=torch.float64)
    q = torch.zeros(2, 2, 3, dtype=torch.float64)
    q[:, :, 0] = r.unsqueeze(-1)
    rho = q_to_z(q)[:, 0, 0]
    assert float(rho[1] / rho[0]) == pytest.approx(10 ** (2 / 3), rel=1e-6)


def test_round_trips():
    q = radial_grid()
    torch.testing.assert_close(z_to_q(q_to_z(q)), q, rtol=1e-10, atol=0)
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(2000, 4, 3, generator=gen, dtype=torch.float64) * 2
    torch.testing.assert_close(q_to_z(z_to_q(z)), z, rtol=1e-10, atol=0)


def test_log_det_matches_autograd_jacobian():
    q = radial_grid(1e-6, 40.0, 12)
    dense = torch.stack([
        torch.autograd.functional.jacobian(lambda v: q_to_z(v.unsqueeze(0))[0], event).reshape(6, 6)
        for event in q
    ])
    expected = torch.linalg.slogdet(dense).logabsdet
    torch.testing.assert_close(log_abs_det_q_to_z(q), expected, rtol=1e-9, atol=1e-9)


def test_change_of_variables_turns_prior_into_standard_normal(generator):
    q = sample_prior(500, 5, generator=generator)
    z = q_to_z(q)
    log_normal = -0.5 * (z**2).sum(dim=(1, 2)) - 0.5 * 15 * math.log(2 * math.pi)
    torch.testing.assert_close(prior_log_prob(q), log_normal + log_abs_det_q_to_z(q), rtol=1e-11, atol=1e-10)


def test_prior_maps_to_standard_normal_samples(generator):
    z = q_to_z(sample_prior(250_000, 2, generator=generator))
    assert_matches_cdf(z[:, 0].norm(dim=-1), stats.chi(3).cdf)
    assert stats.kstest(z[:, 1, 0].numpy(), stats.norm.cdf).pvalue > 1e-3


def test_float32_round_trip_and_gradients():
    q = radial_grid(1e-4, 30.0, 100).float().requires_grad_(True)
    z = q_to_z(q)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z_to_q(z), q, rtol=1e-5, atol=0)
    z.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_zero_and_bad_input():
    q = torch.zeros(1, 2, 3, dtype=torch.float64)
    assert torch.equal(q_to_z(q), q)
    with pytest.raises(ValueError, match="zero vector"):
        log_abs_det_q_to_z(q)
    with pytest.raises(ValueError, match="z: event 0, particle 1 has a NaN"):
        z_to_q(torch.tensor([[[0.0, 1.0, 0.0], [float("nan"), 0.0, 0.0]]]))
