import numpy as np
import pytest
import torch
from scipy import stats

import lipsgen
from conftest import P_THRESHOLD, assert_matches_cdf
from lipsgen.coordinates import fixed_embedding_x, lift_to_qspace, rambo_map, sample_fibre, sample_prior


@pytest.mark.parametrize("n_particles", [3, 10])
def test_lifting_uniform_events_reproduces_the_prior(n_particles):
    events = lipsgen.uniform_phase_space(250_000, n_particles, sqrt_s=3.0, seed=21)
    q = lift_to_qspace(events, sqrt_s=3.0, seed=22)
    r = q.norm(dim=-1)
    assert_matches_cdf(r[:, 0], stats.gamma(2).cdf)  # energies Gamma(2)
    assert_matches_cdf(r.sum(dim=1), stats.gamma(2 * n_particles).cdf)  # sum of independent ones
    cos_theta = (q[:, -1, 2] / r[:, -1]).numpy()
    assert stats.kstest(cos_theta, stats.uniform(-1, 2).cdf).pvalue > P_THRESHOLD
    # Independence between particles: no correlation of magnitudes or of directions.
    n = len(r)
    assert abs(np.corrcoef(r[:, 0], r[:, 1])[0, 1]) < 4 / np.sqrt(n)
    unit = q / r.unsqueeze(-1)
    cos_01 = (unit[:, 0] * unit[:, 1]).sum(-1).numpy()
    assert stats.kstest(cos_01, stats.uniform(-1, 2).cdf).pvalue > P_THRESHOLD


def test_fibre_law_matches_the_fibre_of_prior_samples():
    q = sample_prior(400_000, 4, seed=1)
    _, b, x = rambo_map(q)
    b_law, x_law = sample_fibre(400_000, 4, seed=2)
    for observed, drawn in ((b.norm(dim=-1), b_law.norm(dim=-1)), (x, x_law), (b[:, 2], b_law[:, 2])):
        assert stats.ks_2samp(observed.numpy(), drawn.numpy()).pvalue > P_THRESHOLD
    assert stats.ks_2samp(x.numpy(), 1.01 * x_law.numpy()).pvalue < P_THRESHOLD


def test_lift_round_trips_through_the_map():
    events = lipsgen.uniform_phase_space(1000, 5, seed=3)
    q = lift_to_qspace(events, seed=4)
    torch.testing.assert_close(rambo_map(q).p, events, rtol=1e-10, atol=1e-13)
    q_fixed = lift_to_qspace(events, "fixed")
    torch.testing.assert_close(q_fixed, events[..., 1:] / fixed_embedding_x(5))
    torch.testing.assert_close(rambo_map(q_fixed).p, events, rtol=1e-10, atol=1e-13)


def test_fixed_embedding_scales():
    assert fixed_embedding_x(3) == 0.15
    assert fixed_embedding_x(10) == 0.0846
    assert fixed_embedding_x(4, sqrt_s=2.0) == pytest.approx(0.25)


def test_lift_is_fresh_per_call_and_seeded():
    events = lipsgen.uniform_phase_space(100, 3, seed=3)
    assert torch.equal(lift_to_qspace(events, seed=1), lift_to_qspace(events, seed=1))
    assert not torch.equal(lift_to_qspace(events, seed=1), lift_to_qspace(events, seed=2))


def test_lift_refuses_bad_events():
    events = lipsgen.uniform_phase_space(10, 3, seed=3)
    with pytest.raises(ValueError, match="not in its centre-of-momentum frame at sqrt_s = 2"):
        lift_to_qspace(events, sqrt_s=2.0)
    with pytest.raises(ValueError, match="mode must be"):
        lift_to_qspace(events, "random")
    with pytest.raises(ValueError, match="fixed_x"):
        lift_to_qspace(events, "fixed", fixed_x=-1.0)
    bad = events.clone()
    bad[7, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="event 7, particle 1 has a NaN"):
        lift_to_qspace(bad)
