"""Models on massive particles: every state on its mass shells, exact densities and weights, the CLI."""

import math

import pytest
import torch

from conftest import run_cli
from lipsgen.io import load_events, read_events, write_events
from lipsgen.models.model import ModelConfig
from lipsgen.targets import TopDecay, Uniform, uniform_phase_space
from lipsgen.validation import check_events
from lipsgen.weights import log_event_weights, summarise_weights
from test_weights import perturbed_model

MASSES = {1.0: [0.2, 0.0, 0.1], 91.19: [20.0, 0.0, 9.0]}


@pytest.mark.parametrize("kind, options", [("fm-z", {}), ("fm-q", {}), ("zdiff", {}), ("nf", {}),
                                           ("langevin", {"schedule": "linear:0.002:0.01:8"}),
                                           ("fm-z", {"base": "chain"})])
@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_every_trajectory_state_is_on_its_mass_shells(kind, options, sqrt_s):
    model = perturbed_model(kind, 0.05, sqrt_s=sqrt_s, masses=MASSES[sqrt_s], **options)
    out = model.sample(500, seed=1, trajectory=0 if kind == "nf" else 4, steps=None if kind == "nf" else 8)
    states = out.events[None] if out.trajectory is None else torch.cat([out.trajectory, out.events[None]])
    for events in states:
        check_events(events, masses=MASSES[sqrt_s], sqrt_s=sqrt_s, mass_rtol=1e-13, cm_rtol=1e-13)


@pytest.mark.parametrize("kind, scale, sqrt_s", [("nf", 0.02, 1.0), ("nf", 0.02, 91.19), ("fm-z", 0.05, 91.19)])
def test_massive_density_is_normalised_on_massive_phase_space(kind, scale, sqrt_s):
    """E_uniform massive[r] = 1 with r = V_m g the model's density relative to uniform massive phase
    space: needs the map's weight W and the volume ratio V_0 / V_m."""
    model = perturbed_model(kind, scale, sqrt_s=sqrt_s, masses=MASSES[sqrt_s])
    n, steps = (20_000, None) if kind == "nf" else (12_000, 8)
    events = uniform_phase_space(n, 3, sqrt_s=sqrt_s, masses=MASSES[sqrt_s], seed=5)
    log_r = model.log_prob(events, seed=6, draws=1, steps=steps)
    assert float(log_r.std()) > 0.05
    summary = summarise_weights(log_r.exp())
    assert abs(summary.integral - 1) < 4 * summary.integral_error and summary.integral_error < 0.01, summary


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_weights_of_massive_samples_average_to_one(sqrt_s):
    """The model's own samples reweighted to uniform massive phase space and to a massive top decay
    with a wide W: E_g[w] = 1 (the volume in the weights is the massive one)."""
    model = perturbed_model("nf", 0.02, sqrt_s=sqrt_s, masses=MASSES[sqrt_s])
    out = model.sample(20_000, seed=2, density=True)
    scale = sqrt_s / 172.5
    top_like = TopDecay(sqrt_s=sqrt_s, w_mass=80.38 * scale, w_width=40 * scale, b_mass=MASSES[sqrt_s][0])
    for target in (Uniform(3, sqrt_s=sqrt_s, masses=MASSES[sqrt_s]), top_like):
        if target.name == "top":
            model = perturbed_model("nf", 0.02, sqrt_s=sqrt_s, masses=list(target.masses))
            out = model.sample(20_000, seed=2, density=True)
        log_w = log_event_weights(target.log_density(out.events), out.log_density, n_particles=3, sqrt_s=sqrt_s,
                                  masses=target.masses)
        summary = summarise_weights(log_w.exp())
        assert abs(summary.integral - 1) < 4 * summary.integral_error and summary.integral_error < 0.03, summary


def test_model_config_checks_masses():
    with pytest.raises(ValueError, match="no phase space"):
        ModelConfig("fm-z", 3, masses=[0.5, 0.5, 0.1])
    with pytest.raises(ValueError, match="p-space models"):
        perturbed_model("pfm", 0.0, masses=[0.1, 0.0, 0.0])
    assert ModelConfig("fm-z", 3, masses=[0.0, 0.0, 0.0]).masses is None


def test_massive_files_load_exact_and_refuse_wrong_shells(tmp_path):
    events = uniform_phase_space(100, 3, sqrt_s=91.19, masses=MASSES[91.19], seed=1)
    attributes = {"target": "uniform", "sqrt_s": 91.19, "masses": MASSES[91.19]}
    rounded = events.float().double()  # printed at single precision: within the file tolerance
    write_events(tmp_path / "r.h5", rounded, attributes)
    loaded, _ = load_events(tmp_path / "r.h5")
    check_events(loaded, masses=MASSES[91.19], sqrt_s=91.19, mass_rtol=1e-13, cm_rtol=1e-13)
    assert float((loaded - events).abs().max()) < 1e-4
    write_events(tmp_path / "w.h5", events, {**attributes, "masses": [21.0, 0.0, 9.0]})
    with pytest.raises(ValueError, match="off its mass shell"):
        load_events(tmp_path / "w.h5")


def test_train_sample_and_evaluate_massive_events_from_the_cli(tmp_path):
    data, run = tmp_path / "top.h5", tmp_path / "run"
    assert run_cli("data", "top", "--events", "2000", "--out", str(data), "--seed", "1").returncode == 0
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--max-steps", "20", "--out", str(run))
    assert result.returncode == 0, result.stderr
    checkpoint = torch.load(run / "model.pt", weights_only=True)
    assert checkpoint["model_config"]["masses"] == [4.8, 0.0, 0.0]
    sample = tmp_path / "s.h5"
    result = run_cli("sample", str(run / "model.pt"), "--events", "300", "--out", str(sample), "--seed", "2",
                     "--steps", "6", "--weights")
    assert result.returncode == 0, result.stderr
    events, attributes = read_events(sample)
    assert list(attributes["masses"]) == [4.8, 0.0, 0.0]
    check_events(events, masses=[4.8, 0.0, 0.0], sqrt_s=172.5, mass_rtol=1e-13, cm_rtol=1e-13)
    report = tmp_path / "report"
    result = run_cli("evaluate", "--truth", str(data), "--samples", str(sample), "--out", str(report))
    assert result.returncode == 0, result.stderr
    import json

    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["truth_spectra"]) == {"m_enu", "cos_theta_star"}
    assert math.isfinite(metrics["truth_spectra"]["m_enu"]["chi2_ndf"])
    result_of_sample = metrics["samples"]["s"]
    assert {"m_12", "m_13", "m_23", "m_enu"} <= set(result_of_sample["wasserstein"])
    assert len(result_of_sample["mass_shell"]) == 3 and max(result_of_sample["mass_shell"]) < 1e-13
    # a massless sample is refused against a massive truth, naming the mass shell
    massless = tmp_path / "massless.h5"
    write_events(massless, uniform_phase_space(100, 3, sqrt_s=172.5, seed=1), {"sqrt_s": 172.5})
    result = run_cli("evaluate", "--truth", str(data), "--samples", str(massless), "--out", str(tmp_path / "r2"))
    assert result.returncode != 0 and "off its mass shell" in result.stderr


@pytest.mark.parametrize("sqrt_s", [1.0, 172.5])
def test_resonance_base_is_exact_normalised_and_invertible(sqrt_s):
    from lipsgen.bases import ResonanceMap
    from lipsgen.kinematics import phase_space_volume

    base = ResonanceMap(3, sqrt_s, mass=0.466 * sqrt_s, width=0.03 * sqrt_s)
    u = torch.rand((20_000, 5), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    events, log_g = base.forward(u)
    check_events(events, sqrt_s=sqrt_s, mass_rtol=1e-12, cm_rtol=1e-13)
    u_back, log_g_back = base.inverse(events)
    torch.testing.assert_close(u_back, u, rtol=0, atol=1e-9)
    torch.testing.assert_close(log_g_back, log_g, rtol=0, atol=1e-8)
    # the decay's polar angle is the helicity angle: top decay's cos theta* is the chart coordinate 2 u_3 - 1
    from lipsgen.targets import top_observables

    cos_star = top_observables(events)["cos_theta_star"]
    torch.testing.assert_close(cos_star, 2 * u[:, 3] - 1, rtol=0, atol=1e-10)
    # E_uniform[g] V_3 = 1: the density is normalised on phase space (a broad peak: a precise estimate)
    uniform = uniform_phase_space(400_000, 3, sqrt_s=sqrt_s, seed=2)
    broad = ResonanceMap(3, sqrt_s, mass=0.466 * sqrt_s, width=0.3 * sqrt_s)
    values = broad.inverse(uniform)[1].exp() * phase_space_volume(3, sqrt_s)
    error = float(values.std()) / math.sqrt(len(values))
    assert abs(float(values.mean()) - 1) < 4 * error and 4 * error < 0.01
    # the pair mass follows the Breit-Wigner: fitting the base's own events gives back its parameters
    fitted = ResonanceMap(3, sqrt_s)
    fitted.fit(events)
    assert fitted.mass == pytest.approx(base.mass, rel=2e-3) and fitted.width == pytest.approx(base.width, rel=3e-2)


def test_resonance_base_under_massive_top_model():
    """fm-z with the resonance base on top decay: the fitted peak sits at the W, every state on its shells,
    and the model's density normalised on massive phase space."""
    from lipsgen.models.model import GenerativeModel

    model = GenerativeModel(ModelConfig("fm-z", 3, sqrt_s=172.5, width=32, depth=2, base="resonance",
                                        masses=[4.8, 0.0, 0.0]))
    model.fit_data(TopDecay().sample(20_000, seed=3), torch.Generator().manual_seed(4))
    assert model.space.state()["base"]["mass"] == pytest.approx(80.38, abs=0.3)
    # from the density alone (nf --target top): the same peak, fitted on weighted massless images
    from_density = GenerativeModel(ModelConfig("nf", 3, sqrt_s=172.5, width=32, depth=2, base="resonance",
                                               masses=[4.8, 0.0, 0.0]))
    from_density.fit_target(TopDecay().log_density, torch.Generator().manual_seed(5))
    assert from_density.space.state()["base"]["mass"] == pytest.approx(80.38, abs=0.5)
    out = model.sample(400, seed=5, steps=4, trajectory=3)
    for events in torch.cat([out.trajectory, out.events[None]]):
        check_events(events, masses=[4.8, 0.0, 0.0], sqrt_s=172.5, mass_rtol=1e-13, cm_rtol=1e-13)
    # an untrained model samples the base: the W peak is there from the start
    from lipsgen.targets import top_observables

    m = top_observables(out.events)["m_enu"]
    assert float(((m > 80.38 - 3 * 2.09) & (m < 80.38 + 3 * 2.09)).double().mean()) > 0.6
    uniform = uniform_phase_space(12_000, 3, sqrt_s=172.5, masses=[4.8, 0.0, 0.0], seed=6)
    summary = summarise_weights(model.log_prob(uniform, seed=7, draws=1, steps=4).exp())
    assert abs(summary.integral - 1) < 4 * summary.integral_error and summary.integral_error < 0.05, summary


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_mass_shell_violations_measure_each_particle(sqrt_s):
    from lipsgen.conservation import mass_shell_violations

    events = uniform_phase_space(1000, 3, sqrt_s=sqrt_s, masses=MASSES[sqrt_s], seed=8)
    assert max(mass_shell_violations(events, MASSES[sqrt_s])) < 1e-14
    wrong = [MASSES[sqrt_s][0] * 1.01, 0.0, MASSES[sqrt_s][2]]  # particle 1 claimed 1% heavier
    violations = mass_shell_violations(events, wrong)
    assert violations[0] > 1e-3 and violations[1] < 1e-14 and violations[2] < 1e-14
