"""Tail metrics and chi^2 against analytic spectra: right on exact samples, loud on distorted ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lipsgen.evaluation import EvaluationInputs, evaluate
from lipsgen.evaluation.observables import thrust
from lipsgen.evaluation.tails import chi2_per_ndf, max_log_ratio, w1_tails
from lipsgen.io import write_events
from lipsgen.targets import QQG, MuonDecay


def test_chi2_is_pearsons_on_a_hand_computed_case():
    values = np.array([0.1] * 30 + [0.3] * 20 + [0.6] * 25 + [0.9] * 25)
    value, ndf = chi2_per_ndf(values, lambda x: np.clip(x, 0, 1), n_bins=4)
    assert ndf == 4 and value == pytest.approx((5**2 + 5**2 + 0 + 0) / 25 / 4)


@pytest.fixture(scope="module")
def muon_fractions():
    events = MuonDecay().sample(100_000, seed=11)
    return (2 * events[..., 0]).numpy()


def test_muon_spectra_chi2_is_one_on_truth_and_large_when_distorted(muon_fractions):
    spectra = MuonDecay().spectra()
    for k in range(3):
        value, ndf = chi2_per_ndf(muon_fractions[:, k], spectra[f"x_{k + 1}"])
        assert ndf >= 35 and 0.5 < value < 1.8, (k, value)  # chi^2/ndf of exact truth: 1 +- 0.23
    # a sample pulled towards uniform phase space where the truth vanishes (the models' failure
    # mode): 10% of events replaced by uniform phase space energy fractions
    x = muon_fractions[:, 2].copy()
    rng = np.random.default_rng(1)
    x[: len(x) // 10] = rng.beta(2, 1, len(x) // 10)  # flat phase space: x ~ Beta(2, 1) for N = 3
    assert chi2_per_ndf(x, spectra["x_3"])[0] > 5
    # and a swapped spectrum (the Michel law for anti-nu_e) is far off
    assert chi2_per_ndf(muon_fractions[:, 2], spectra["x_1"])[0] > 50


def test_tail_metrics_see_an_excess_where_the_truth_is_thin():
    rng = np.random.default_rng(2)
    truth, same = rng.normal(size=100_000), rng.normal(size=100_000)
    assert max_log_ratio(truth, same) < 0.25
    assert w1_tails(truth, same) < 0.01
    tail = same.copy()
    low = tail < np.quantile(truth, 0.02)
    tail = np.concatenate([tail, tail[low]])  # twice the events in the lowest 2%
    assert max_log_ratio(truth, tail) > np.log(2) - 0.2
    assert w1_tails(truth, tail) > 3 * w1_tails(truth, same)
    assert w1_tails(truth, tail) <= stats.wasserstein_distance(truth, tail) + 1e-12
    high = same > np.quantile(truth, 0.98)
    upper = np.concatenate([same, same[high]])  # and the same in the highest 2%
    assert max_log_ratio(truth, upper) > np.log(2) - 0.2
    assert w1_tails(truth, upper) > 3 * w1_tails(truth, same)
    # a truth of 1500 events (fewer than 40 bins x 50) still gets a finite verdict from 30 bins of 50
    # (bins of 50: fluctuations of 0.14 each, about 0.4 at most over 30 bins)
    lowest = same[same < np.quantile(truth, 0.03)]
    small, tripled = truth[:1500], np.concatenate([same, lowest, lowest])
    assert max_log_ratio(small, same) < 0.55
    assert max_log_ratio(small, tripled) > 0.8
    assert np.isnan(max_log_ratio(truth[:40], same))  # fewer truth events than one bin needs


def test_evaluate_reports_tails_and_spectra(tmp_path):
    truth, sample = tmp_path / "t.h5", tmp_path / "s.h5"
    write_events(truth, MuonDecay().sample(20_000, seed=1), {"target": "muon", "sqrt_s": 1.0})
    write_events(sample, MuonDecay().sample(10_000, seed=2), {"target": "muon", "sqrt_s": 1.0})
    metrics = evaluate(EvaluationInputs(truth, [sample]), tmp_path / "r", n_batches=2)
    assert set(metrics["truth_spectra"]) == {"x_1", "x_2", "x_3"}
    m = metrics["samples"]["s"]
    assert 0.3 < m["spectra"]["x_3"]["chi2_ndf"] < 2.5
    assert {"max_log_ratio", "w1_tails"} <= set(m["tails"]["x_3"])
    assert "chi2/ndf x_3" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("ycut", [1e-3, 1e-2])
def test_qqg_spectra_are_exact(ycut):
    """The qqg energy fractions and thrust (O(alpha_s), inside the cut) against exact samples:
    chi^2/ndf near 1, and large for a 1% rescaling (x_3, spread over [0, 1]: a 3% squeeze of
    1 - x_3 instead); thrust of three partons is max x_i."""
    target = QQG(ycut=ycut)
    events = target.sample(100_000, seed=21)
    x = (2 * events[..., 0]).numpy()
    t = thrust(events)
    assert np.abs(t - x.max(axis=1)).max() < 1e-12
    spectra = target.spectra()
    for name, values in (("x_1", x[:, 0]), ("x_2", x[:, 1]), ("x_3", x[:, 2]), ("thrust", t)):
        value, ndf = chi2_per_ndf(values, spectra[name])
        assert ndf >= 10 and value < 2, (name, value)
        distorted = 1 - 0.97 * (1 - values) if name == "x_3" else 0.99 * values
        assert chi2_per_ndf(distorted, spectra[name])[0] > 3, name
    assert spectra["thrust"](np.array([2 / 3 - 1e-9, 1 - ycut])).tolist() == pytest.approx([0.0, 1.0], abs=1e-9)


def test_weighted_chi2_uses_the_bins_own_variance():
    """Hand-computed: weights rescaled to sum to n, variance sum w^2 per bin."""
    values = np.array([0.1] * 20 + [0.3] * 20 + [0.6] * 30 + [0.9] * 30)
    weights = np.array([1.75] * 20 + [1.0] * 20 + [1.0] * 30 + [0.5] * 30)  # sum 100 = n already
    value, ndf = chi2_per_ndf(values, lambda x: np.clip(x, 0, 1), n_bins=4, weights=weights)
    observed, variance = np.array([35, 20, 30, 15]), np.array([61.25, 20, 30, 7.5])
    assert ndf == 4 and value == pytest.approx(np.sum((observed - 25) ** 2 / variance) / 4)
