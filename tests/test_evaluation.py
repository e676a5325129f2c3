import json

import h5py
import numpy as np
import pytest
import torch

import lipsgen
from lipsgen.cli.main import main
from lipsgen.evaluation import (
    EvaluationInputs,
    c_parameter,
    classifier_auc,
    eec_pairs,
    evaluate,
    event_observables,
    feature_matrix,
    thrust,
    wasserstein_batches,
)
from lipsgen.io import EventFileError, write_events
from lipsgen.targets import QQG, MuonDecay, Sarge


@pytest.fixture(scope="module")
def muon_pair():
    return MuonDecay().sample(40_000, seed=1), MuonDecay().sample(40_000, seed=2)


def test_three_body_thrust_and_c_parameter_identities():
    events = QQG(1e-3).sample(3000, seed=3)
    x = (2 * events[..., 0]).numpy()
    np.testing.assert_allclose(thrust(events), x.max(axis=1), rtol=1e-12)
    expected = 6 * np.prod(1 - x, axis=1) / np.prod(x, axis=1)
    np.testing.assert_allclose(c_parameter(events), expected, rtol=1e-9)


def test_thrust_exact_and_iterative_agree_and_bounds():
    events = Sarge(8, 30.0).sample(300, seed=4)
    exact = thrust(events)
    assert np.all((exact >= 0.5 - 1e-12) & (exact <= 1 + 1e-12))
    # The pair-plane search (used above 14 particles) finds the same maximum as all splits.
    from lipsgen.evaluation import observables as module

    padded = torch.cat([events, torch.zeros(300, 8, 4, dtype=torch.float64)], dim=1)  # 16 "particles"
    padded[:, 8:, 0] = 1e-300
    np.testing.assert_allclose(module.thrust(padded), exact, rtol=1e-9)


def test_eec_weights_sum_to_pairwise_energy_share():
    events = lipsgen.uniform_phase_space(100, 5, seed=5)
    cos, w = eec_pairs(events)
    assert cos.shape == w.shape == (100 * 10,)
    # sum_{i<j} E_i E_j / s = (1 - sum E_i^2 / s) / 2 per event
    e = events[..., 0].numpy()
    np.testing.assert_allclose(w.reshape(100, 10).sum(1), (1 - (e**2).sum(1)) / 2, rtol=1e-12)


def test_identical_distributions_look_identical(muon_pair):
    a, b = muon_pair
    oa, ob = event_observables(a, labelled=True), event_observables(b, labelled=True)
    auc = classifier_auc(feature_matrix(oa), feature_matrix(ob), seed=0)
    assert abs(auc - 0.5) < 0.02
    for x, y in zip(oa, ob):
        mean, spread = wasserstein_batches(x.values, y.values)
        scale = np.std(x.values)
        assert mean < 0.03 * scale, x.name


def test_a_two_percent_shift_is_detected(muon_pair):
    a, b = muon_pair
    oa, ob = event_observables(a, labelled=True), event_observables(b, labelled=True)
    x3_a, x3_b = oa[2].values, ob[2].values
    same = wasserstein_batches(x3_a, x3_b, n_batches=1)[0]
    shifted = wasserstein_batches(x3_a, 1.02 * x3_b, n_batches=1)[0]
    assert shifted > 3 * same
    features = feature_matrix(ob)
    features[:, 2] *= 1.02
    assert classifier_auc(feature_matrix(oa), features) > 0.6


def test_evaluate_writes_metrics_plots_and_report(tmp_path, muon_pair):
    a, b = muon_pair
    truth = tmp_path / "truth.h5"
    write_events(truth, a[:8000], {"target": "muon", "sqrt_s": 1.0})
    good = tmp_path / "good.h5"
    write_events(good, b[:4000], {"target": "muon", "sqrt_s": 1.0, "model": "truth-copy"})
    # A stand-in for an ambient baseline: momenta smeared by 1%, energies reset to |p|.
    smeared = b[4000:8000].clone()
    noise = torch.randn(4000, 3, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    smeared[..., 1:] *= 1 + 0.01 * noise
    smeared = lipsgen.three_to_four(smeared[..., 1:])
    bad = tmp_path / "smeared.npz"
    write_events(bad, smeared, {"target": "muon", "sqrt_s": 1.0, "model": "pfm", "exact": False})
    metrics = evaluate(EvaluationInputs(truth, [good, bad]), tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["floor_auc"] == metrics["floor_auc"]
    assert abs(metrics["samples"]["good"]["auc"] - 0.5) < 0.05
    assert metrics["samples"]["good"]["conservation"]["max_energy"] < 1e-12
    assert metrics["samples"]["smeared"]["conservation"]["energy"] > 1e-3
    assert metrics["samples"]["smeared"]["exact"] is False
    assert set(metrics["samples"]["good"]["wasserstein"]) >= {"x_1", "y_12", "thrust", "log_density", "eec"}
    for name in ("conservation.png", "hist_x_1.png", "hist_y_12.png", "hist_eec.png", "hist_log_density.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "![hist_x_1.png](hist_x_1.png)" in report and "smeared" in report
    assert "## Energy-momentum conservation" in report and "![conservation.png](conservation.png)" in report
    assert "<img src='hist_thrust.png'" in (tmp_path / "out" / "report.html").read_text()


def test_every_registered_metric_reaches_metrics_json(tmp_path, muon_pair, monkeypatch):
    """A metric is one row of SAMPLE_METRICS: evaluate computes it for every sample and saves it."""
    from lipsgen.evaluation import comparisons

    a, b = muon_pair
    truth, sample = tmp_path / "truth.h5", tmp_path / "s.h5"
    write_events(truth, a[:2000], {"target": "muon", "sqrt_s": 1.0})
    write_events(sample, b[:1000], {"target": "muon", "sqrt_s": 1.0})
    monkeypatch.setitem(comparisons.SAMPLE_METRICS, "mean_x_1_shift",
                        lambda c: float(c.sample[0].values.mean() - c.truth[0].values.mean()))
    metrics = evaluate(EvaluationInputs(truth, [sample]), tmp_path / "out", n_batches=2)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())["samples"]["s"]
    assert set(comparisons.SAMPLE_METRICS) <= set(saved)
    assert saved["mean_x_1_shift"] == metrics["samples"]["s"]["mean_x_1_shift"]
    assert 0 < abs(saved["mean_x_1_shift"]) < 0.05  # two independent muon samples: a small shift


def test_events_outside_the_cut_are_counted(tmp_path):
    truth = tmp_path / "truth.h5"
    write_events(truth, QQG(ycut=1e-3).sample(2000, seed=1), {"target": "qqg", "ycut": 1e-3, "sqrt_s": 1.0})
    looser = QQG(ycut=1e-4).sample(1000, seed=2)  # the same matrix element leaking below ycut = 1e-3
    y = lipsgen.scaled_pair_invariants(looser)
    expected = float((y[:, [0, 0, 1], [1, 2, 2]].min(dim=1).values < 1e-3).double().mean())
    leaky = tmp_path / "leaky.h5"
    write_events(leaky, looser, {"target": "qqg", "ycut": 1e-4, "sqrt_s": 1.0})
    metrics = evaluate(EvaluationInputs(truth, [leaky, truth]), tmp_path / "out")
    assert expected > 0.05
    assert metrics["samples"]["leaky"]["outside_support"] == pytest.approx(expected, abs=1e-12)
    assert metrics["samples"]["truth"]["outside_support"] == 0.0
    # Inside the cut the leaky sample is the truth's distribution: the classifier sees only the leak.
    leak = metrics["samples"]["leaky"]
    assert abs(leak["auc_in_support"] - 0.5) < 0.06
    assert leak["auc"] - leak["auc_in_support"] > 0.15
    assert metrics["samples"]["truth"]["auc_in_support"] == metrics["samples"]["truth"]["auc"]
    assert "AUC in support" in (tmp_path / "out" / "report.md").read_text()


def test_trajectory_evaluation(tmp_path):
    truth = tmp_path / "truth.h5"
    events = MuonDecay().sample(2000, seed=6)
    write_events(truth, events, {"target": "muon", "sqrt_s": 1.0})
    traj = tmp_path / "traj.h5"
    states = torch.stack([lipsgen.uniform_phase_space(500, 3, seed=7), events[:500]])
    with h5py.File(traj, "w") as f:
        f["momenta"] = events[:500].numpy()
        f["trajectory"] = states.numpy()
        f["trajectory_times"] = np.array([1.0, 0.0])
        f.attrs["target"] = "muon"
    assert main(["evaluate", "--truth", str(truth), "--trajectory", str(traj), "--out", str(tmp_path / "o")]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    w = metrics["trajectory"]["wasserstein"]["log_density"]
    assert w[0] > 3 * w[1]  # uniform start is far from truth, the end close to it
    assert (tmp_path / "o" / "trajectory_x_3.png").stat().st_size > 1000
    assert (tmp_path / "o" / "trajectory_conservation.png").stat().st_size > 1000
    no_traj = tmp_path / "plain.h5"
    write_events(no_traj, events, {"target": "muon", "sqrt_s": 1.0})
    assert main(["evaluate", "--truth", str(truth), "--trajectory", str(no_traj), "--out", str(tmp_path / "p")]) == 1


def test_a_report_replaces_only_its_own_files_and_an_interrupted_one_leaves_the_folder_as_it_was(
        tmp_path, monkeypatch):
    from lipsgen import errors
    from lipsgen.evaluation import report

    truth, out = tmp_path / "truth.h5", tmp_path / "o"
    events = MuonDecay().sample(2000, seed=6)
    write_events(truth, events, {"target": "muon", "sqrt_s": 1.0})
    traj = tmp_path / "traj.h5"
    with h5py.File(traj, "w") as f:
        f["momenta"] = events[:500].numpy()
        f["trajectory"] = torch.stack([lipsgen.uniform_phase_space(500, 3, seed=7), events[:500]]).numpy()
        f["trajectory_times"] = np.array([1.0, 0.0])
    assert main(["evaluate", "--truth", str(truth), "--trajectory", str(traj), "--out", str(out)]) == 0
    (out / "mine.png").write_bytes(b"a user's picture")
    assert main(["evaluate", "--truth", str(truth), "--samples", str(truth), "--out", str(out), "--force"]) == 0
    assert not list(out.glob("trajectory_*.png")) and (out / "hist_x_1.png").exists()  # the earlier report's
    assert (out / "mine.png").read_bytes() == b"a user's picture"
    assert "| truth | - |" in (out / "report.md").read_text()  # a file that names no model
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "histogram_with_ratio", interrupted)
    assert main(["evaluate", "--truth", str(truth), "--samples", str(truth), "--out", str(out), "--force"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary folder, nothing half-new

    def dropped(*args, **kwargs):  # Ctrl-C landing in a callback, where Python prints and drops it
        try:
            errors.request_termination(KeyboardInterrupt)
        except KeyboardInterrupt:
            pass

    monkeypatch.setattr(errors, "_received", None)
    monkeypatch.setattr(report, "histogram_with_ratio", dropped)
    assert main(["evaluate", "--truth", str(truth), "--samples", str(truth), "--out", str(out), "--force"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_mismatched_inputs_are_refused_or_flagged(tmp_path):
    truth = tmp_path / "truth.h5"
    write_events(truth, MuonDecay().sample(500, seed=1), {"target": "muon", "sqrt_s": 1.0})
    other = tmp_path / "uniform.h5"
    write_events(other, lipsgen.uniform_phase_space(500, 3, seed=1), {"target": "uniform", "sqrt_s": 1.0})
    with pytest.warns(UserWarning, match="target 'uniform', the truth is 'muon'; comparing anyway"):
        metrics = evaluate(EvaluationInputs(truth, [other]), tmp_path / "u", n_batches=2)
    assert 0 <= metrics["samples"]["uniform"]["auc"] <= 1  # evaluated, not refused
    empty = tmp_path / "empty.h5"
    write_events(empty, MuonDecay().sample(0, seed=1), {"target": "muon", "sqrt_s": 1.0})
    with pytest.raises(EventFileError, match="0 events; need at least 2"):
        evaluate(EvaluationInputs(truth, [empty]), tmp_path / "e")
    four = tmp_path / "four.h5"
    write_events(four, lipsgen.uniform_phase_space(500, 4, seed=1), {"target": "uniform", "sqrt_s": 1.0})
    with pytest.raises(EventFileError, match="4 particles, the truth has 3"):
        evaluate(EvaluationInputs(truth, [four]), tmp_path / "o")
    assert main(["evaluate", "--truth", str(truth), "--out", str(tmp_path / "o")]) == 1
    # the same physics at another energy is not comparable: refused, with or without the attribute
    boosted = tmp_path / "muon_91.h5"
    write_events(boosted, MuonDecay(sqrt_s=91.19).sample(500, seed=2), {"target": "muon", "sqrt_s": 91.19})
    with pytest.raises(EventFileError, match="events at sqrt_s = 91.19, the truth is at 1"):
        evaluate(EvaluationInputs(truth, [boosted]), tmp_path / "s")
    negative = tmp_path / "negative.h5"
    weights = torch.ones(500, dtype=torch.float64)
    weights[17] = -1.0
    write_events(negative, MuonDecay().sample(500, seed=3), {"target": "muon", "sqrt_s": 1.0}, weights=weights)
    with pytest.raises(EventFileError, match="event 17 has weight -1.0; histograms, W1 and the classifier need"):
        evaluate(EvaluationInputs(str(truth), [str(negative)]), tmp_path / "n")  # strings are paths too
    bare = tmp_path / "bare.npz"
    write_events(bare, MuonDecay(sqrt_s=91.19).sample(500, seed=2), {"target": "muon"})
    with pytest.raises(EventFileError, match="the truth is at 1"):
        evaluate(EvaluationInputs(truth, [bare]), tmp_path / "b")


def test_ratio_panel_shows_every_ratio():
    from lipsgen.evaluation.plots import ratio_limits

    low, high = ratio_limits([np.array([1.0, 7.0, np.nan, 0.0]), np.array([0.9, 1.1])])
    assert low <= 1 / 7 and high >= 7  # a ratio of 7 (and its inverse) is on the axis, not clipped
    low, high = ratio_limits([np.array([0.05, 1.0])])
    assert low <= 0.05 and high >= 20
    assert ratio_limits([np.array([1.01, 0.99])]) == pytest.approx((1 / 2.2, 2.2))


def test_histogram_range_keeps_the_edges_where_models_over_fill():
    from lipsgen.evaluation.plots import SAMPLE_OUTLIER_SHARE, histogram_bins

    x3 = 2 * MuonDecay().sample(20_000, seed=3)[:, 2, 0].numpy()  # density 12 x^2 (1 - x): sparse at both ends
    over_filled = np.concatenate([x3, np.full(40, 0.01)])  # a model's excess in the outermost 0.2%
    edges, logx = histogram_bins(x3, [over_filled], log=False)
    assert not logx and edges[0] <= x3.min() and edges[-1] >= x3.max()  # every truth event is in a bin
    assert edges[0] <= 0.01 and np.histogram(over_filled, edges)[0].sum() == len(over_filled)
    # a sample's far outliers (a share below SAMPLE_OUTLIER_SHARE) do not stretch the axis
    outliers = np.concatenate([x3, np.full(int(SAMPLE_OUTLIER_SHARE * len(x3) / 2), 50.0)])
    assert histogram_bins(x3, [outliers], log=False)[0][-1] < 1.5
    y = 10 ** np.random.default_rng(1).uniform(-6, -1, 1000)
    edges, logx = histogram_bins(y, [y], log=True)
    assert logx and edges[0] == pytest.approx(y.min()) and edges[-1] == pytest.approx(y.max())


def test_report_markdown_and_html_render_their_text(tmp_path):
    truth, samples = tmp_path / "t.h5", tmp_path / "s.h5"
    write_events(truth, MuonDecay().sample(400, seed=1), {"target": "muon", "sqrt_s": 1.0})
    write_events(samples, MuonDecay().sample(400, seed=2), {"target": "muon", "sqrt_s": 1.0})
    evaluate(EvaluationInputs(truth, [samples]), tmp_path / "r", n_batches=2)
    markdown = (tmp_path / "r" / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| sample"))
    separator = markdown.splitlines()[markdown.splitlines().index(header) + 1]
    # every | inside a cell is escaped, so the header has as many cells as the separator row
    assert header.replace("\\|", "").count("|") == separator.count("|")
    page = (tmp_path / "r" / "report.html").read_text()
    assert "`" not in page and f"<code>{truth}</code>" in page


def test_observables_in_chunks_equal_observables_at_once(monkeypatch):
    """Observables are per event: computing them in chunks (bounded memory) changes nothing."""
    from lipsgen.evaluation import inputs

    events = Sarge(6, 30.0).sample(2500, seed=2)
    whole = inputs.observables_of(events, "sarge", False, None, {"n_jets": 6})
    monkeypatch.setattr(inputs, "OBSERVABLE_CHUNK", 1000)
    chunked = inputs.observables_of(events, "sarge", False, None, {"n_jets": 6})
    assert [o.name for o in chunked] == [o.name for o in whole] and len(whole) > 20
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a.values, b.values)


def test_binned_wasserstein_is_within_a_bin_of_the_exact_one():
    from scipy import stats

    from lipsgen.evaluation.metrics import binned_wasserstein

    rng = np.random.default_rng(4)
    a, b = np.tanh(rng.normal(size=200_000)), np.tanh(rng.normal(0.03, 1.1, size=150_000))
    wa, wb = rng.uniform(size=a.size), rng.uniform(size=b.size)
    for grid in ((-1.0, 1.0, 100_000), (-1.0, 1.0, 1000)):
        exact = stats.wasserstein_distance(a, b, wa, wb)
        assert abs(binned_wasserstein(a, b, wa, wb, grid) - exact) <= (grid[1] - grid[0]) / grid[2]
    assert exact > 0.01  # the shift is seen
