import math

import numpy as np
import pytest
import torch
from scipy import integrate, interpolate, stats

import lipsgen
from conftest import P_THRESHOLD, assert_matches_cdf
from lipsgen.cli.main import main
from lipsgen.io import read_events_h5
from lipsgen.kinematics import minkowski_dot, scaled_pair_invariants
from lipsgen.targets import QQG, MuonDecay, Sarge, antenna, make_target


def conservation(events, sqrt_s=1.0):
    total = events.sum(dim=1)
    return max(float((total[:, 0] - sqrt_s).abs().max()), float(total[:, 1:].abs().max())) / sqrt_s


def numerical_cdf(density, lo, hi, n=4001, log=False):
    """CDF of a 1-D density by cumulative quadrature on a (log-)grid, as an interpolating callable."""
    grid = np.geomspace(lo, hi, n) if log else np.linspace(lo, hi, n)
    pdf = np.array([density(g) for g in grid])
    cdf = integrate.cumulative_trapezoid(pdf, grid, initial=0)
    cdf /= cdf[-1]
    return interpolate.interp1d(grid, cdf, bounds_error=False, fill_value=(0.0, 1.0))


# ---------------------------------------------------------------- muon


def test_muon_energy_spectra_are_exact():
    events = MuonDecay().sample(300_000, seed=1)
    x = (2 * events[..., 0]).numpy()
    assert_matches_cdf(x[:, 2], stats.beta(3, 2).cdf)  # anti-nu_e: x^2 (1 - x)
    michel = lambda v: np.clip(2 * v**3 - v**4, 0, 1)  # density 2 x^2 (3 - 2x)
    assert_matches_cdf(x[:, 0], michel)  # electron
    assert_matches_cdf(x[:, 1], michel)  # nu_mu


def test_muon_density_is_normalised_and_bounded():
    target = MuonDecay(sqrt_s=2.0)
    uniform = lipsgen.uniform_phase_space(400_000, 3, sqrt_s=2.0, seed=3)
    assert float(target.weight(uniform).max()) <= 1
    volume = lipsgen.phase_space_volume(3, 2.0)
    integral = torch.exp(target.log_density(uniform)).mean() * volume
    assert float(integral) == pytest.approx(1.0, abs=3e-3)
    events = target.sample(1000, seed=4)
    assert conservation(events, 2.0) <= 1e-12


# ---------------------------------------------------------------- qqg


def qqg_u_density(ycut):
    def density(u):
        top = 1 - ycut - u
        if top <= ycut:
            return 0.0
        log_ratio = math.log(top / ycut)
        return ((1 - u) ** 2 * log_ratio + log_ratio - 2 * (top - ycut) + (top**2 - ycut**2) / 2) / u
    return density


def qqg_gluon_density(ycut):
    def density(x3):
        if x3 <= 2 * ycut or x3 >= 1 - ycut:
            return 0.0
        f = lambda u: ((1 - u) ** 2 + (1 - (x3 - u)) ** 2) / (u * (x3 - u))
        return integrate.quad(f, ycut, x3 - ycut, limit=200)[0]
    return density


@pytest.mark.parametrize("ycut", [1e-2, 1e-3, 1e-4])
def test_qqg_cut_is_exact_and_events_conserve(ycut):
    events = QQG(ycut).sample(200_000, seed=5)
    y = scaled_pair_invariants(events) + torch.eye(3, dtype=torch.float64)
    assert float(y.flatten(1).min()) > ycut
    assert conservation(events) <= 1e-12


@pytest.mark.parametrize("ycut", [1e-3, 1e-4])
def test_qqg_marginals_match_quadrature(ycut):
    events = QQG(ycut).sample(300_000, seed=6)
    y = scaled_pair_invariants(events)
    u = y[:, 1, 2].numpy()  # y_23 = 1 - x_quark
    v = y[:, 0, 2].numpy()  # y_13 = 1 - x_antiquark
    cdf_u = numerical_cdf(qqg_u_density(ycut), ycut, 1 - 2 * ycut, log=True)
    # Tested in -log(y): the KS statistic is the same, and the power check then rescales the
    # logarithm by 1%, the natural size of an error in a log-distributed variable.
    cdf_log_u = lambda t: 1 - cdf_u(np.exp(-t))
    assert_matches_cdf(-np.log(u), cdf_log_u)
    assert_matches_cdf(-np.log(v), cdf_log_u)
    x3 = (2 * events[:, 2, 0]).numpy()
    cdf_g = numerical_cdf(qqg_gluon_density(ycut), 2 * ycut, 1 - ycut, n=1501, log=True)
    assert_matches_cdf(-np.log(x3), lambda t: 1 - cdf_g(np.exp(-t)))


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_qqg_density_is_normalised(sqrt_s):
    """Two estimators, each at most 0.25% (a 1% error is 4 sigma): the density's integral over
    2 x 10^6 uniform events, and under its own exact sampler (10^6 events) the mean of 1 / (V_N f),
    which is the cut region's share of uniform phase space, (1 - 3 ycut)^2 on the Dalitz triangle."""
    ycut = 0.02
    target = QQG(ycut, sqrt_s=sqrt_s)
    expected = integrate.dblquad(
        lambda v, u: ((1 - u) ** 2 + (1 - v) ** 2) / (u * v), 0.02, 0.96, 0.02, lambda u: 0.98 - u,
        epsrel=1e-10,
    )[0]
    assert target.dalitz_normalisation == pytest.approx(expected, rel=1e-8)
    volume = lipsgen.phase_space_volume(3, sqrt_s)
    uniform = lipsgen.uniform_phase_space(2_000_000, 3, seed=7, sqrt_s=sqrt_s)
    values = torch.exp(target.log_density(uniform)) * volume
    mean, error = float(values.mean()), float(values.std()) / math.sqrt(len(values))
    assert error < 0.0025 and abs(mean - 1) < 4 * error, (mean, error)
    inverse = torch.exp(-target.log_density(target.sample(1_000_000, seed=8))) / volume / (1 - 3 * ycut) ** 2
    mean, error = float(inverse.mean()), float(inverse.std()) / math.sqrt(len(inverse))
    assert error < 0.0025 and abs(mean - 1) < 4 * error, (mean, error)


# ---------------------------------------------------------------- sarge


def test_antenna_construction_hits_its_invariants():
    gen = torch.Generator().manual_seed(8)
    p = lipsgen.uniform_phase_space(1000, 2, sqrt_s=3.0, generator=gen)
    boost = torch.randn(1000, 3, generator=gen, dtype=torch.float64)
    p = lipsgen.kinematics.boost(p, boost)
    xi1 = torch.exp(torch.randn(1000, generator=gen, dtype=torch.float64))
    xi2 = torch.exp(torch.randn(1000, generator=gen, dtype=torch.float64))
    phi = torch.rand(1000, generator=gen, dtype=torch.float64) * 2 * math.pi
    k = antenna(p[:, 0], p[:, 1], xi1, xi2, phi)
    ab = minkowski_dot(p[:, 0], p[:, 1])
    torch.testing.assert_close(minkowski_dot(p[:, 0], k) / ab, xi1, rtol=1e-10, atol=0)
    torch.testing.assert_close(minkowski_dot(p[:, 1], k) / ab, xi2, rtol=1e-10, atol=0)
    assert float((minkowski_dot(k, k).abs() / k[:, 0] ** 2).max()) < 1e-12


@pytest.mark.parametrize("xi_max", [20.0, 40.0])
def test_sarge_xis_are_log_uniform_within_the_cut(xi_max):
    events = Sarge(10, xi_max, shuffle=False).sample(40_000, seed=9)
    assert conservation(events) <= 1e-12
    last = events[:, -1]
    logs = []
    for i in range(1, 9):
        ab = minkowski_dot(events[:, i - 1], last)
        logs.append(torch.log(minkowski_dot(events[:, i - 1], events[:, i]) / ab))
        logs.append(torch.log(minkowski_dot(last, events[:, i]) / ab))
    log_xi = torch.cat(logs).numpy()
    bound = math.log(xi_max)
    assert np.all(np.abs(log_xi) <= bound * (1 + 1e-9))
    # Shifted to [bound, 3 bound] so that the 1% power check rescales a positive variable.
    assert_matches_cdf(logs[0].numpy() + 2 * bound, stats.uniform(bound, 2 * bound).cdf)
    for values in logs[1:]:
        assert stats.kstest(values.numpy(), stats.uniform(-bound, 2 * bound).cdf).pvalue > P_THRESHOLD


def test_sarge_is_permuted_and_observables_are_permutation_invariant():
    shuffled = Sarge(6, 30.0).sample(2000, seed=10)
    ordered = Sarge(6, 30.0, shuffle=False).sample(2000, seed=10)
    torch.testing.assert_close(shuffled[..., 0].sort(dim=1).values, ordered[..., 0].sort(dim=1).values)
    y_shuffled = scaled_pair_invariants(shuffled).flatten(1).sort(dim=1).values
    y_ordered = scaled_pair_invariants(ordered).flatten(1).sort(dim=1).values
    torch.testing.assert_close(y_shuffled, y_ordered, rtol=1e-12, atol=1e-15)
    assert not torch.equal(shuffled, ordered)
    # In the ordered chain the endpoints are the hardest back-to-back pair's images; shuffled,
    # every position has the same energy distribution.
    e = shuffled[..., 0].numpy()
    assert stats.ks_2samp(e[:, 0], e[:, 5]).pvalue > P_THRESHOLD


def test_sarge_deep_chains_conserve_to_rounding():
    events = Sarge(10, 40.0).sample(100_000, seed=11)
    assert conservation(events) <= 1e-12
    mass = (events[..., 0] - events[..., 1:].norm(dim=-1)).abs() / events[..., 0]
    assert float(mass.max()) <= 1e-12


# ---------------------------------------------------------------- common


@pytest.mark.parametrize("name, parameters", [("muon", {}), ("qqg", {"ycut": 1e-3}),
                                              ("sarge", {"n_particles": 5, "xi_max": 20.0})])
def test_targets_are_seeded_and_permutable(name, parameters):
    target = make_target(name, **parameters)
    a = target.sample(500, seed=1)
    assert torch.equal(a, target.sample(500, seed=1))
    assert not torch.equal(a, target.sample(500, seed=2))
    permuted = target.sample(500, seed=1, permute=True)
    torch.testing.assert_close(permuted[..., 0].sort(dim=1).values, a[..., 0].sort(dim=1).values)


def test_make_target_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown target 'higgs'"):
        make_target("higgs")


@pytest.mark.parametrize("args, attrs", [
    (["muon"], {"target": "muon"}),
    (["qqg", "--ycut", "1e-4"], {"target": "qqg", "ycut": 1e-4}),
    (["sarge", "--particles", "6", "--xi-max", "40", "--permute"],
     {"target": "sarge", "n_particles": 6, "xi_max": 40.0, "permuted": True}),
])
def test_cli_writes_every_target(tmp_path, args, attrs):
    out = tmp_path / "t.h5"
    assert main(["data", *args, "--events", "300", "--out", str(out), "--seed", "3"]) == 0
    events, stored = read_events_h5(out)
    for key, value in attrs.items():
        assert stored[key] == value
    assert stored["seed"] == 3 and stored["sqrt_s"] == 1.0
    lipsgen.validation.check_events(events, sqrt_s=1.0)


def test_sarge_has_no_closed_form_density():
    target = Sarge(5, 20.0)
    assert target.density_normalised is None
    with pytest.raises(NotImplementedError, match="no closed-form density"):
        target.log_density(target.sample(3, seed=1))


def test_support_masks():
    looser = QQG(ycut=1e-4).sample(2000, seed=3)
    cut = QQG(ycut=1e-3)
    inside = cut.in_support(looser)
    assert 0.2 < float(inside.double().mean()) < 0.9
    assert torch.equal(inside, torch.isfinite(cut.log_density(looser)))
    y = scaled_pair_invariants(looser)
    assert torch.equal(inside, (y + torch.eye(3, dtype=y.dtype)).flatten(1).min(dim=1).values > 1e-3)
    assert bool(MuonDecay().in_support(MuonDecay().sample(10, seed=1)).all())


@pytest.mark.parametrize("target", [QQG(ycut=1e-3), MuonDecay()])
def test_densities_refuse_events_that_are_not_the_targets(target):
    good = target.sample(5, seed=1)
    assert torch.isfinite(target.log_density(good)).all()
    with pytest.raises(ValueError, match="events have 10 particles, the target has 3"):
        target.log_density(lipsgen.uniform_phase_space(5, 10, seed=1))
    bad = good.clone()
    bad[2, 1, 3] = float("nan")
    with pytest.raises(ValueError, match="event 2, particle 1 has a NaN"):
        target.log_density(bad)
    with pytest.raises(ValueError, match="expected shape"):
        target.log_density(good[..., :3])


def test_rejection_with_vanishing_acceptance_fails_fast_or_adapts():
    events = QQG(ycut=0.333).sample(10, seed=1)  # acceptance ~1e-6: adaptive rounds, about a second
    assert bool(QQG(ycut=0.333).in_support(events).all())
    with pytest.raises(ValueError, match="accepted 0 of .* proposals; these parameters leave almost no phase"):
        QQG(ycut=0.3333).sample(10, seed=1)  # ~1e-8: refused after 1e7 proposals


def test_parameters_float64_cannot_carry_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="leaves float64's range; use fewer particles or a smaller xi_max"):
        Sarge(40, 30.0).sample(200, seed=1)
    for sqrt_s in (1e200, 1e-200, float("nan")):
        with pytest.raises(ValueError, match=r"sqrt_s must be a number in \[1e-60, 1e60\]"):
            MuonDecay(sqrt_s=sqrt_s)
    events = MuonDecay(sqrt_s=1e50).sample(100, seed=1)
    assert torch.isfinite(MuonDecay(sqrt_s=1e50).log_density(events)).all()


def test_antenna_density_is_dimensionless_in_sqrt_s():
    """The antenna is a function of y_ij = s_ij / s: the same events scaled to 91.19 GeV, at
    sqrt_s = 91.19, have the same (unnormalised) density as at sqrt_s = 1."""
    from lipsgen.targets import Antenna

    events = lipsgen.uniform_phase_space(2000, 5, seed=3)
    one, scaled = Antenna(5, 1e-3), Antenna(5, 1e-3, sqrt_s=91.19)
    a, b = one.log_density(events), scaled.log_density(91.19 * events)
    assert bool(torch.isfinite(a).any()) and bool(torch.isinf(a).any())  # both sides of the cut
    assert torch.equal(torch.isfinite(a), torch.isfinite(b))
    assert torch.allclose(a[torch.isfinite(a)], b[torch.isfinite(b)], rtol=1e-12, atol=0)
