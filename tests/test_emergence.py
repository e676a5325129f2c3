"""Emergence along the reverse process: structures, U-turn keep probabilities with known limits,
half-way times, the speciation estimate's closed forms, the reverse run against the forward process,
and the command line."""

import json
import math

import numpy as np
import pytest
import torch

import lipsgen
from conftest import run_cli
from lipsgen.evaluation.emergence import EMERGENCE_FILES, EmergenceSettings, analyse_emergence, emergence_observables
from lipsgen.evaluation.observables import thrust
from lipsgen.evaluation.speciation import covariance_spectrum, speciation_estimate
from lipsgen.evaluation.structures import energy_ordering, event_structures, independent_share, most_collinear_pair
from lipsgen.evaluation.uturn import half_way_time, keep_curve, rank_correlation, uturn_events
from lipsgen.jets.clustering import durham_multiplicity, durham_resolutions
from lipsgen.models import GenerativeModel, ModelConfig
from lipsgen.models.processes import FlowMatching, LangevinDiffusion, VPDiffusion
from lipsgen.targets import MuonDecay
from lipsgen.training import TrainConfig, train

TINY = dict(width=32, depth=2, heads=2, time_dim=16, schedule="linear:0.002:0.01:40")


def untrained(n_particles, sqrt_s=1.0, model="fm-z", target="uniform"):
    """An fm-z model whose network is zero: its reverse run leaves every state where it starts, so a
    U-turn from t returns the forward state at t, and a run from the noise end is uniform phase space."""
    return GenerativeModel(ModelConfig(model=model, n_particles=n_particles, target=target, sqrt_s=sqrt_s, **TINY))


def test_energy_ordering_and_most_collinear_pair_against_brute_force():
    events = lipsgen.uniform_phase_space(200, 5, sqrt_s=91.19, seed=3)
    e = events[..., 0].numpy()
    assert (energy_ordering(events) == np.argsort(-e, axis=1)).all()
    p = events[..., 1:].numpy()
    for k in range(len(events)):
        angles = {(i, j): np.arccos(np.clip(p[k, i] @ p[k, j] / np.linalg.norm(p[k, i]) / np.linalg.norm(p[k, j]),
                                            -1, 1)) for i in range(5) for j in range(i + 1, 5)}
        assert tuple(most_collinear_pair(events[k:k + 1])[0]) == min(angles, key=angles.get)


def test_thrust_hemispheres_maximise_thrust():
    for n_particles in (3, 4, 16):  # 16: the pairwise-normal construction
        events = lipsgen.uniform_phase_space(300, n_particles, sqrt_s=91.19, seed=n_particles)
        from lipsgen.evaluation.observables import thrust_hemispheres

        value, split = thrust_hemispheres(events)
        p = events[..., 1:]
        from_split = (torch.as_tensor(split, dtype=torch.float64)[..., None] * p).sum(1).norm(dim=-1) / p.norm(
            dim=-1).sum(1)
        assert np.allclose(value, from_split.numpy(), atol=1e-12)
        assert np.allclose(value, thrust(events))
        assert (split[:, 0] == 1).all() and (np.abs(split) == 1).all()
    # three massless particles: the hardest alone in its hemisphere
    events = lipsgen.uniform_phase_space(500, 3, seed=9)
    _, split = thrust_hemispheres(events)
    hardest = energy_ordering(events)[:, 0]
    alone = np.array([np.flatnonzero(row == (-1 if (row == -1).sum() == 1 else 1))[0] for row in split])
    assert (alone == hardest).all()


def test_jet_multiplicity_counts_the_resolutions_above_ycut():
    events = lipsgen.uniform_phase_space(2000, 3, sqrt_s=91.19, seed=4)
    ycut = 0.05
    y = durham_resolutions(events, [1, 2])
    # for three particles y_12 >= y_23, so the count of resolutions above ycut is the multiplicity
    assert (y[1] >= y[2]).all()
    expected = 1 + (y[1] > ycut).astype(int) + (y[2] > ycut).astype(int)
    counted = durham_multiplicity(events, ycut)
    assert (counted == expected).all() and len(set(counted.tolist())) >= 2
    assert (durham_multiplicity(events, 1e-12) == 3).all() and (durham_multiplicity(events, 2.0) == 1).all()


def test_independent_share_is_exact():
    a = np.array([[0], [0], [1], [1]])
    b = np.array([[0], [1], [1], [1]])
    assert independent_share(a, b) == pytest.approx(0.5 * 0.25 + 0.5 * 0.75)
    rows = np.array([[0, 1], [1, 0], [0, 1]])
    assert independent_share(rows, rows) == pytest.approx((2 / 3) ** 2 + (1 / 3) ** 2)


def test_half_way_time_interpolates_from_the_t0_limit():
    assert half_way_time(np.array([0.5, 1.0]), np.array([0.6, 0.2]), 1.0, 0.2) == pytest.approx(0.5)
    assert half_way_time(np.array([0.2, 0.4]), np.array([0.8, 0.4]), 1.0, 0.2) == pytest.approx(0.3)
    # the first interval, from (0, 1): level 0.75 reached at a quarter of the way to t = 0.1
    assert half_way_time(np.array([0.1, 1.0]), np.array([0.0, 0.0]), 1.0, 0.5) == pytest.approx(0.025)
    assert math.isnan(half_way_time(np.array([0.5, 1.0]), np.array([0.9, 0.8]), 1.0, 0.5))
    assert math.isnan(half_way_time(np.array([0.5, 1.0]), np.array([1.0, 1.0]), 1.0, 1.0))


@pytest.fixture(scope="module")
def uturn_of_uniform():
    """U-turns of 20000 uniform four-particle events at sqrt_s 91.19 through the zero model."""
    model = untrained(4, sqrt_s=91.19)
    events = lipsgen.uniform_phase_space(20000, 4, sqrt_s=91.19, seed=11)
    times = [1e-3, 0.5, 1.0]
    results = uturn_events(model, events, times, torch.Generator().manual_seed(5), steps=4, progress=False)
    return events, times, results


def test_uturn_keeps_everything_at_t0_and_independent_events_share_by_symmetry(uturn_of_uniform):
    events, times, results = uturn_of_uniform
    n = len(events)
    assert all(r.shape == events.shape for r in results)
    before = event_structures(events, jet_ycut=0.01)
    after = [event_structures(r, jet_ycut=0.01) for r in results]
    kept = {name: [float((before[name] == a[name]).all(axis=1).mean()) for a in after] for name in before}
    for name in ("hardest", "energy_ordering", "most_collinear_pair", "thrust_hemispheres", "jet_multiplicity"):
        assert kept[name][0] > 0.99, name  # t -> 0: the identity
    # t = 1: the results are uniform events independent of the originals; by symmetry of uniform phase
    # space under permutations the shares are 1/N, 1/N! and 1/C(N, 2)
    for name, expected in (("hardest", 1 / 4), ("energy_ordering", 1 / 24), ("most_collinear_pair", 1 / 6)):
        error = math.sqrt(expected * (1 - expected) / n)
        assert abs(kept[name][-1] - expected) < 4 * error, (name, kept[name][-1], expected)
        assert abs(independent_share(before[name], after[-1][name]) - expected) < 4 * error
    # and strictly between at t = 0.5
    assert 0.3 < kept["hardest"][1] < 0.95
    # the results really are the forward states at t: the first particle's energy is uncorrelated at t = 1
    x0 = events[:, 0, 0].numpy()
    assert rank_correlation(x0, results[0][:, 0, 0].numpy()) > 0.99
    assert abs(rank_correlation(x0, results[-1][:, 0, 0].numpy())) < 4 / math.sqrt(n)
    # exact on phase space at sqrt_s 91.19
    for r in results:
        total = r.sum(dim=1)
        assert float((total[:, 0] - 91.19).abs().max()) < 1e-11 and float(total[:, 1:].abs().max()) < 1e-11


def test_keep_curve_limit_band_and_crossing(uturn_of_uniform):
    events, times, results = uturn_of_uniform
    before = event_structures(events, jet_ycut=0.01)["hardest"]
    after = [event_structures(r, jet_ycut=0.01)["hardest"] for r in results]
    curve = keep_curve(before, after, np.array(times), independent=after[-1], replicas=50,
                       rng=np.random.default_rng(0))
    assert curve.limit == pytest.approx(0.25, abs=0.015)
    assert (curve.low <= curve.value + 1e-12).all() and (curve.value <= curve.high + 1e-12).all()
    assert (curve.high - curve.low)[-1] < 0.02
    t, low, high = curve.crossing
    level = 0.5 * (1 + curve.limit)
    assert curve.value[1] < level  # crossed before 0.5: the crossing lies on the first interval
    assert 1e-3 < t < 0.5 and low <= t <= high
    assert t == pytest.approx(half_way_time(np.array(times), curve.value, 1.0, curve.limit))


def test_keep_curve_of_a_known_mixture():
    """Originals 1 with probability 0.8; at time t a result keeps the original with probability 1 - t
    and is otherwise an independent draw, 1 with probability 0.5: keep(t) = 1 - t + t/2 (the independent
    share is 0.5), half-way between 1 and 0.5 at t = 0.5."""
    rng = np.random.default_rng(1)
    n = 40000
    times = np.array([0.25, 0.5, 0.75, 1.0])
    original = (rng.random((n, 1)) < 0.8).astype(np.int64)
    results = []
    for t in times:
        fresh = (rng.random((n, 1)) < 0.5).astype(np.int64)
        results.append(np.where(rng.random((n, 1)) < 1 - t, original, fresh))
    curve = keep_curve(original, results, times, independent=results[-1], replicas=100, rng=np.random.default_rng(2))
    assert curve.limit == pytest.approx(0.5, abs=0.01)
    assert curve.value == pytest.approx(1 - times / 2, abs=0.01)
    t, low, high = curve.crossing
    assert t == pytest.approx(0.5, abs=0.03) and low < t < high and high - low < 0.06


def gaussian_states(n, variances, seed):
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor(variances, dtype=torch.float64).sqrt()
    return (torch.randn((n, len(variances)), generator=g, dtype=torch.float64) * scale).reshape(n, 3, 3)


@pytest.mark.parametrize("process", ["vp", "flow"])
def test_speciation_times_have_the_closed_forms(process):
    """Data N(0, diag(16, 4, 1, ...)) against a N(0, I) noise end: eigenvalues 16 and 4; t_S solves
    alpha(t)^2 lambda = 1: B(t) = log lambda (VP), (1 - t)^2 lambda = 1 (flow matching)."""
    variances = [16.0, 4.0] + [1.0] * 7
    data = gaussian_states(40000, variances, 1).float()
    noise = gaussian_states(40000, [1.0] * 9, 2).float()
    if process == "vp":
        proc = VPDiffusion()
        expected = [(-proc.beta_min + math.sqrt(proc.beta_min**2 + 2 * (proc.beta_max - proc.beta_min) * math.log(v)))
                    / (proc.beta_max - proc.beta_min) for v in (16.0, 4.0)]
    else:
        proc = FlowMatching(lambda n, g, d: torch.randn((n, 3, 3), generator=g, device=d))
        expected = [1 - 1 / math.sqrt(v) for v in (16.0, 4.0)]
    result = speciation_estimate(proc, data, noise, torch.Generator().manual_seed(3), directions=3,
                                 grid=np.linspace(0, 1, 201))
    assert result.eigenvalues[:2] == pytest.approx([16.0, 4.0], rel=0.04)
    assert result.eigenvalues[2] == pytest.approx(1.0, abs=0.06)
    assert result.times[:2] == pytest.approx(expected, abs=0.01)
    assert (result.times_low[:2] <= result.times[:2]).all() and (result.times[:2] <= result.times_high[:2]).all()
    assert (result.times_high - result.times_low)[:2].max() < 0.02
    # the common clock: SNR alpha^2 / sigma^2 (VP: sigma^2 = 1 - alpha^2) or (1 - t)^2 / t^2 (flow matching)
    snr = (lambda a: a * a / (1 - a * a))(float(proc.alpha_sigma(torch.tensor(0.3))[0])) if process == "vp" else (
        0.7**2 / 0.3**2)
    assert result.log_snr_at(0.3) == pytest.approx(math.log10(snr), abs=0.03)
    assert result.log_snr_at(0.3, direction=1) == pytest.approx(math.log10(snr), abs=0.03)
    # the third direction carries the noise end's variance: nothing to decide there
    assert math.isnan(result.times[2]) or result.times[2] < 0.05


def test_covariance_spectrum_is_relative_to_the_noise_end():
    data = gaussian_states(20000, [4.0] * 9, 1)
    noise = gaussian_states(20000, [2.0] * 9, 2)
    values, _ = covariance_spectrum(data, noise)
    assert values.mean() == pytest.approx(2.0, rel=0.015)  # the trace ratio
    assert values == pytest.approx([2.0] * 9, rel=0.08)  # and each eigenvalue, up to the sampling spread


def test_langevin_retention_falls_from_one():
    process = LangevinDiffusion("linear:0.002:0.01:200")
    data = lipsgen.coordinates.qspace.sample_prior(4000, 3, generator=torch.Generator().manual_seed(1)) * 3
    noise = lipsgen.coordinates.qspace.sample_prior(4000, 3, generator=torch.Generator().manual_seed(2))
    result = speciation_estimate(process, data, noise, torch.Generator().manual_seed(3), grid=np.linspace(0, 1, 11))
    a = result.retention[0]
    assert a[0] == pytest.approx(1.0) and (np.diff(a) < 0).all() and a[-1] < 0.95


class ConstantField(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = torch.nn.Parameter(value)

    def forward(self, x, t):
        return self.value.expand_as(x)


def test_reverse_run_is_compared_with_the_forward_process_at_the_same_t():
    """Muon events and a model of constant velocity: its reverse run starts at uniform phase space and
    drifts away from it, the forward process moves the muon events to uniform; the two agree at the
    noise end and differ at the data end."""
    sqrt_s = 91.19
    events = MuonDecay(sqrt_s=sqrt_s).sample(6000, seed=2)
    model = untrained(3, sqrt_s=sqrt_s, target="muon")
    model.net = ConstantField(torch.tensor([[1.5, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.5, 0.0]]))
    settings = EmergenceSettings(events=3000, times=(0.3,), trajectory=3, replicas=20, steps=4, progress=False)
    metrics = analyse_emergence(model, events[:3000], events[3000:], labelled=True, settings=settings)
    reverse = metrics["reverse"]
    assert reverse["t"] == [0.0, 0.5, 1.0]
    w1 = reverse["w1"]["x_3"]
    assert w1["value"][0] > 3 * max(w1["value"][-1], w1["high"][-1] - w1["low"][-1])
    floor = reverse["w1_floor"]["x_3"]  # independent muon events run forward: the same law at every t
    assert max(floor["value"]) < w1["value"][0] / 3
    # the U-turn marginals: the results at t = 1 are uniform events, far from the muon data
    uturn_w1 = metrics["uturn"]["w1"]["x_3"]
    assert metrics["uturn"]["keep"]["hardest"]["t"] == [0.3, 1.0]
    assert uturn_w1["value"][-1] > uturn_w1["value"][0]
    assert set(metrics["uturn"]["keep"]) == {"hardest", "energy_ordering", "most_collinear_pair",
                                             "jet_multiplicity", "thrust_hemispheres"}
    assert "log10_y_12" in emergence_observables(events[:10], labelled=True)
    json.dumps(metrics)  # every number is JSON


@pytest.fixture(scope="module")
def trained_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("emergence")
    data = folder / "muon.h5"
    assert run_cli("data", "muon", "--events", "3000", "--sqrt-s", "91.19", "--out", str(data), "--seed", "1"
                   ).returncode == 0
    events = lipsgen.io.read_events(data)[0]
    config = ModelConfig(model="fm-z", n_particles=3, target="muon", sqrt_s=91.19, **TINY)
    quick = TrainConfig(steps=20, batch_size=128, warmup_steps=2, checkpoint_every=20, seed=3)
    train(events, config, quick, folder / "fmz", progress=False)
    nf = ModelConfig(model="nf", n_particles=3, target="muon", sqrt_s=91.19, width=16, depth=1, flow_transforms=1)
    train(events, nf, quick, folder / "nf", progress=False)
    return folder, data


def test_emergence_command_writes_metrics_and_plots(trained_files, tmp_path):
    folder, data = trained_files
    out = tmp_path / "report"
    result = run_cli("emergence", str(folder / "fmz" / "model.pt"), "--data", str(data), "--out", str(out),
                     "--events", "400", "--times", "0.2,0.6", "--bootstrap", "10", "--steps", "5",
                     "--trajectory", "3")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["times"] == [0.2, 0.6, 1.0] and metrics["target"] == "muon"
    assert sorted(p.name for p in out.iterdir()) == sorted(EMERGENCE_FILES)  # and no temporaries left
    for name in EMERGENCE_FILES:
        assert (out / name).stat().st_size > 0, name
    assert "keep hardest" in (out / "emergence_times.csv").read_text()
    assert "keep hardest: t =" in result.stderr
    # an existing report is kept without --force
    again = run_cli("emergence", str(folder / "fmz" / "model.pt"), "--data", str(data), "--out", str(out))
    assert again.returncode == 1 and "--force" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--times", "0,0.5"], "(0, 1]"),
    (["--times", "a"], "comma-separated"),
    (["--events", "2000"], "4000 requested"),
    (["--solver", "rk4"], "rk4"),
])
def test_emergence_command_refuses_bad_options(trained_files, tmp_path, args, message):
    folder, data = trained_files
    result = run_cli("emergence", str(folder / "fmz" / "model.pt"), "--data", str(data), "--out",
                     str(tmp_path / "r"), *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_emergence_command_refuses_models_without_a_noising_path_and_other_targets(trained_files, tmp_path):
    folder, data = trained_files
    result = run_cli("emergence", str(folder / "nf" / "model.pt"), "--data", str(data), "--out", str(tmp_path / "r"))
    assert result.returncode == 1 and "noising path" in result.stderr
    other = tmp_path / "qqg.h5"
    assert run_cli("data", "qqg", "--events", "100", "--out", str(other), "--seed", "1").returncode == 0
    result = run_cli("emergence", str(folder / "fmz" / "model.pt"), "--data", str(other), "--out",
                     str(tmp_path / "r"), "--events", "20")
    assert result.returncode == 1 and "qqg" in result.stderr
    missing = run_cli("emergence", str(folder / "fmz" / "model.pt"), "--data", str(tmp_path / "none.h5"), "--out",
                      str(tmp_path / "r"))
    assert missing.returncode == 1 and "none.h5" in missing.stderr
