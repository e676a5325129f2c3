"""Exact model densities and event weights: against closed forms, against exact expectations, and
through the command line.

Closed form: with a network linear in the state, every solver step is affine, so the sampler's
output from N(0, I) is Gaussian with moments known by probing the step's map (no Jacobians); its
log-density must equal the one the sampler reports through its Jacobians. Exact expectation: for
any model with an exact density g and any normalised target m, the weights have mean 1 (the
integral of m): a wrong Jacobian sign, a missing step or a wrong fibre factor moves the mean.
"""

from __future__ import annotations

import math
import re
import warnings

import h5py
import numpy as np
import pylhe
import pytest
import torch
from torch import Tensor, nn

from conftest import run_cli
from lipsgen.coordinates.zspace import standard_normal_log_prob
from lipsgen.io import read_events, read_weights
from lipsgen.kinematics import phase_space_volume
from lipsgen.models.flows import SplineFlow
from lipsgen.models.model import GenerativeModel, ModelConfig
from lipsgen.models.processes import FlowMatching, LangevinDiffusion, VPDiffusion, jacobian_step
from lipsgen.targets import Antenna, MuonDecay, make_target
from lipsgen.targets.density import CallableDensity, checked_log_density, load_density
from lipsgen.targets.uniform import uniform_phase_space
from lipsgen.weights import log_event_weights, reduced_maximum, summarise_weights, unweight


def ok(*args: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr


def fails(match: str, *args: str) -> None:
    """The command fails with a one-line message matching ``match``."""
    result = run_cli(*args)
    assert result.returncode != 0 and re.search(match, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


class Linear(nn.Module):
    """A "network" ``a(t) x + b`` with fixed per-coordinate b: every solver step is affine."""

    def __init__(self, a, b: Tensor) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the sampler a device

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.a(t.view(-1, 1, 1).to(x.dtype)) * x + self.b.to(x.dtype)


B = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]])


def standard_normal(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randn((n, 2, 3), generator=generator, device=device, dtype=torch.float64)


def affine_cases():
    vp = VPDiffusion(final_denoise=True)
    return [
        ("flow-euler", FlowMatching(standard_normal), Linear(lambda t: 0.8 - 0.5 * t, B), "euler", 12),
        ("flow-heun", FlowMatching(standard_normal), Linear(lambda t: 0.8 - 0.5 * t, B), "heun", 7),
        ("flow-heun-power", FlowMatching(standard_normal, time_power=2.0), Linear(lambda t: 0.8 - 0.5 * t, B),
         "heun", 7),
        ("vp-heun", vp, Linear(lambda t: 0.6 * vp.alpha_sigma(t)[1], B), "heun", 9),
        ("langevin-ode", LangevinDiffusion("linear:0.01:0.03:15"), Linear(lambda t: -0.7 + 0.2 * t, B), "ode", 15),
    ]


@pytest.mark.parametrize("name, process, net, solver, steps", affine_cases(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_sampler_density_equals_the_gaussian_closed_form(name, process, net, solver, steps):
    net = net.double()
    g = torch.Generator().manual_seed(3)
    x0 = standard_normal(400, g, torch.device("cpu"))
    x, log_det = process.sample_with_log_det(net, x0, steps=steps, solver=solver, generator=g)
    got = standard_normal_log_prob(x0) - log_det
    # the composed affine map x -> c x + d (c per step is the same for every coordinate), probed
    step = process.step(net, solver, g)
    times = process.time_grid(steps, 1.0)
    zeros, ones = torch.zeros((1, 2, 3), dtype=torch.float64), torch.ones((1, 2, 3), dtype=torch.float64)
    c, d = torch.ones((2, 3), dtype=torch.float64), torch.zeros((2, 3), dtype=torch.float64)
    for i in range(len(times) - 1):
        last = i + 2 == len(times)
        at0, at1 = step(zeros, times[i], times[i + 1], last)[0], step(ones, times[i], times[i + 1], last)[0]
        c, d = (at1 - at0) * c, (at1 - at0) * d + at0
    expected = (-0.5 * ((x - d) / c).square() - torch.log(c.abs()) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    assert torch.allclose(x, c * x0 + d, atol=1e-10)
    assert torch.allclose(got, expected, atol=1e-9), (got - expected).abs().max()


def test_jacobian_step_matches_autograd_per_event():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 6)).double()

    def step(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
        return x + 0.3 * mlp(x.flatten(1)).view_as(x) * x.roll(1, dims=-1)

    x = torch.randn((7, 2, 3), dtype=torch.float64)
    _, log_det = jacobian_step(step, max_rows=13)(x, 1.0, 0.5, False)  # small blocks: the splitting too
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: step(v.view(1, 2, 3), 1.0, 0.5, False).flatten(),
                                                 x[i].flatten())
        assert float(log_det[i]) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), abs=1e-10)


def test_a_folding_step_is_reported_and_a_reflection_is_not():
    """x -> x^3 - x folds R (its slope changes sign at |x| = 1/sqrt(3)): densities through it are not
    exact and the sampler says so; a reflection, negative everywhere, is a bijection and is silent."""

    def cubic(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
        return x.pow(3) - x

    def reflection(x: Tensor, t: float, t_next: float, last: bool) -> Tensor:
        return -x

    inside, outside = torch.full((1, 1, 1), 0.1, dtype=torch.float64), torch.full((1, 1, 1), 2.0, dtype=torch.float64)
    with pytest.warns(UserWarning, match="folds"):
        jacobian_step(cubic)(torch.cat([inside, outside]), 1.0, 0.5, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jacobian_step(cubic)(torch.cat([outside, 2 * outside]), 1.0, 0.5, False)  # one side of the fold
        # three coordinates: det(-I_3) = -1 for every event, one orientation everywhere
        jacobian_step(reflection)(torch.randn((5, 1, 3), dtype=torch.float64), 1.0, 0.5, False)


def perturbed_model(kind: str, scale: float, seed: int = 1, **options) -> GenerativeModel:
    """An untrained model with random weights of size ``scale`` added (and a fitted prior set by hand)."""
    torch.manual_seed(seed)
    model = GenerativeModel(ModelConfig(kind, 3, width=32, depth=2, **options))
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kind, scale, options, steps", [
    ("fm-z", 0.05, {}, 16), ("fm-q", 0.05, {}, 16), ("nf", 0.02, {}, None),
    ("langevin", 0.05, {"schedule": "linear:0.002:0.01:40"}, None),
])
@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_weights_of_a_normalised_target_average_to_one(kind, scale, options, steps, sqrt_s):
    """E_g[w] = 1 for uniform phase space and for muon decay, for models far from both. (Not fm-fitted:
    a Gaussian's tails are lighter than the fibre's exponential ones, so its weights have infinite
    variance; its density is checked in closed form below.)"""
    model = perturbed_model(kind, scale, sqrt_s=sqrt_s, **options)
    out = model.sample(20_000, seed=2, density=True, steps=steps)
    assert float(out.log_density.std()) > 0.02  # the model is not uniform: the density matters
    for target in (make_target("uniform", n_particles=3, sqrt_s=sqrt_s), MuonDecay(sqrt_s=sqrt_s)):
        w = log_event_weights(target.log_density(out.events), out.log_density, n_particles=3, sqrt_s=sqrt_s).exp()
        summary = summarise_weights(w)
        assert abs(summary.integral - 1) < 4 * summary.integral_error, (target.name, summary)
        assert summary.integral_error < 0.02


def test_weighted_events_reproduce_the_michel_spectrum():
    """A model far from muon decay, reweighted: the x_3 histogram against the analytic anti-nu_e CDF."""
    model = perturbed_model("fm-q", 0.05)
    out = model.sample(40_000, seed=5, density=True, steps=16)
    w = log_event_weights(MuonDecay().log_density(out.events), out.log_density, n_particles=3).exp()
    x3 = (2 * out.events[:, 2, 0]).numpy()
    edges = np.linspace(0, 1, 11)
    cdf = MuonDecay().spectra()["x_3"]
    expected = np.diff(cdf(edges)) * float(w.sum())
    got = np.histogram(x3, edges, weights=w.numpy())[0]
    variance = np.histogram(x3, edges, weights=(w**2).numpy())[0]
    chi2 = float(((got - expected) ** 2 / variance).sum())
    assert chi2 < 30, chi2  # 10 bins: chi2 > 30 has p < 1e-3
    unweighted = np.histogram(x3, edges)[0] / len(x3)
    assert float(((unweighted * float(w.sum()) - expected) ** 2 / variance).sum()) > 300  # the model alone is off


def test_fitted_gaussian_log_prob():
    model = GenerativeModel(ModelConfig("fm-fitted", 3, width=8, depth=1))
    data = torch.randn((5000, 3, 3)) * torch.linspace(0.5, 2, 9).view(3, 3) + 0.3
    model.fitted.fit(data)
    x = torch.randn((20, 3, 3))
    reference = torch.distributions.MultivariateNormal(model.fitted.mean.double(),
                                                       scale_tril=model.fitted.chol.double())
    assert torch.allclose(model.noise_log_prob(x), reference.log_prob(x.flatten(1).double()), atol=1e-9)


def test_untrained_flow_is_uniform_phase_space_and_its_density_is_consistent():
    flow = SplineFlow(3, transforms=2, width=16)
    z = torch.randn((100, 3, 3))
    x, log_det = flow.from_noise(z)
    assert torch.allclose(x, z, atol=1e-5) and float(log_det.detach().abs().max()) < 1e-5
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, log_det = flow.from_noise(z)
    assert float((x - z).detach().abs().max()) > 0.01
    assert torch.allclose(flow.log_prob(x).double(), standard_normal_log_prob(z) - log_det, atol=1e-4)


# ---- target densities ---------------------------------------------------------------------------

def test_antenna_density_by_hand():
    target = Antenna(4, ycut=1e-3)
    events = make_target("uniform", n_particles=4).sample(50, seed=1)
    p = events
    dot = lambda a, b: a[:, 0] * b[:, 0] - (a[:, 1:] * b[:, 1:]).sum(1)  # noqa: E731
    y = lambda i, j: 2 * dot(p[:, i], p[:, j])  # noqa: E731
    one = -torch.log(y(0, 1) * y(1, 2) * y(2, 3) * y(3, 0))
    got = target.log_density(events)
    inside = target.in_support(events)
    assert inside.sum() > 20 and (~inside).sum() >= 0
    assert torch.allclose(got[inside], one[inside], rtol=1e-12)
    assert bool(torch.isneginf(got[~inside]).all())
    every = Antenna(4, ycut=1e-3, orderings="all").log_density(events)
    orders = [(0, 1, 2, 3), (0, 1, 3, 2), (0, 2, 1, 3)]  # the 3 cyclic orders of 4 up to reversal
    total = sum(1 / torch.stack([y(o[k], o[(k + 1) % 4]) for k in range(4)]).prod(0) for o in orders)
    assert torch.allclose(every[inside], torch.log(total[inside]), rtol=1e-12)


def test_antenna_refuses_bad_parameters_and_sampling():
    with pytest.raises(ValueError, match="n_particles"):
        Antenna(11)
    with pytest.raises(ValueError, match="ycut"):
        Antenna(5, ycut=0.2)
    with pytest.raises(ValueError, match="orderings"):
        Antenna(7, orderings="all")
    with pytest.raises(Exception, match="no exact event sampler"):
        Antenna(5).sample(10, seed=0)


@pytest.mark.parametrize("name, options", [("muon", {}), ("qqg", {"ycut": 0.05}), ("uniform", {"n_particles": 4})])
def test_closed_form_densities_are_normalised(name, options):
    """E_uniform[m V_N] = 1: flat phase space as the model (log_density 0)."""
    target = make_target(name, **options)
    events = make_target("uniform", n_particles=target.n_particles).sample(400_000, seed=3)
    w = log_event_weights(target.log_density(events), torch.zeros(len(events)), n_particles=target.n_particles).exp()
    summary = summarise_weights(w)
    assert abs(summary.integral - 1) <= 4 * summary.integral_error + 1e-12 and summary.integral_error < 0.01


def test_bad_densities_are_refused_by_name():
    events = make_target("uniform", n_particles=3).sample(5, seed=0)
    for function, match in ((lambda e: torch.full((5,), float("nan")), "NaN"),
                            (lambda e: torch.full((5,), math.inf), r"\+inf|inf at event 0"),
                            (lambda e: torch.zeros(4), "shape")):
        with pytest.raises(ValueError, match=match):
            checked_log_density(CallableDensity(function, "mine"), events)
    assert bool(torch.isneginf(checked_log_density(CallableDensity(lambda e: torch.full((5,), -math.inf), "zero"),
                                                   events)).all())
    with pytest.raises(ValueError, match="no closed-form density"):
        checked_log_density(make_target("sarge", n_particles=4), events[:, :3].new_zeros((5, 4, 4)) + 0.25)
    for spec, match in (("nocolon", "module:function"), ("no_such_module_xyz:f", "cannot import"),
                        ("math:no_such_function", "no function")):
        with pytest.raises(ValueError, match=match):
            load_density(spec)


# ---- weight metrics and unweighting ---------------------------------------------------------------

def test_weight_summary_and_reduced_maximum():
    w = torch.tensor([0.0, 1.0, 1.0, 2.0, 4.0])
    s = summarise_weights(w)
    assert s.integral == pytest.approx(1.6) and s.zero_fraction == pytest.approx(0.2)
    assert s.unweighting_efficiency == pytest.approx(0.4)
    assert s.ess_per_event == pytest.approx(64 / 22 / 5)
    assert s.relative_std == pytest.approx(float(w.std()) / 1.6)
    assert reduced_maximum(w, 0.0) == 4.0
    # w_ref = 2 leaves an excess of 2 = 25% of the total 8; w_ref = 1 leaves 1 + 3 = 50%
    assert reduced_maximum(w, 0.25) == 2.0 and reduced_maximum(w, 0.2) == 4.0 and reduced_maximum(w, 0.5) == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        summarise_weights(torch.tensor([1.0, -1.0]))


def test_unweighting_is_unbiased_with_overweights():
    """Output weight (times w_ref) sums to the input's within 4 sigma of the accept-reject noise,
    with 1e6 heavy-tailed weights (w = U^-0.4: finite variance, overweights at 1% tolerance)."""
    g = torch.Generator().manual_seed(0)
    w = torch.rand(1_000_000, generator=g, dtype=torch.float64) ** -0.4
    reference = reduced_maximum(w, 0.01)
    assert reference < float(w.max())
    keep, new = unweight(w, reference, g)
    ratio = w / reference
    sigma = float((ratio.clamp(max=1) * (1 - ratio.clamp(max=1))).sum().sqrt())
    assert abs(float(new.sum()) - float(ratio.sum())) < 4 * sigma < 0.01 * float(ratio.sum())  # sees a 1% bias
    assert bool((new >= 1).all()) and int((new > 1).sum()) == int((w > reference).sum())
    assert torch.equal(new[new > 1], ratio[w > reference])


# ---- command line ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def muon_model(tmp_path_factory):
    work = tmp_path_factory.mktemp("weights")
    ok("data", "muon", "--events", "3000", "--out", str(work / "muon.h5"), "--seed", "1")
    ok("train", "--data", str(work / "muon.h5"), "--model", "fm-z", "--max-steps", "30", "--out",
            str(work / "fmz"))
    return work


def test_sample_weights_unweight_and_lhe(muon_model):
    work = muon_model
    model = str(work / "fmz" / "model.pt")
    ok("sample", model, "--events", "600", "--steps", "8", "--weights", "--out", str(work / "w.h5"))
    with h5py.File(work / "w.h5") as f:
        w, log_model, log_target = (torch.from_numpy(f[k][...]) for k in ("weights", "log_model_density",
                                                                           "log_target_density"))
        assert f.attrs["weighted"] and f.attrs["density"] == "muon" and f.attrs["solver"] == "euler"
        integral = float(f.attrs["weight_integral"])
    events, _ = read_events(work / "w.h5")
    assert torch.allclose(log_target, MuonDecay().log_density(events))
    assert torch.allclose(w, (log_target + math.log(phase_space_volume(3)) - log_model).exp())
    assert integral == pytest.approx(float(w.mean()))
    ok("sample", model, "--events", "600", "--steps", "8", "--weights", "--out", str(work / "w.lhe"))
    lhe_w = read_weights(work / "w.lhe")
    assert lhe_w is not None and torch.allclose(lhe_w, w, rtol=1e-15)  # same seed, same events, same weights
    ok("unweight", str(work / "w.h5"), "--out", str(work / "u.h5"), "--overweight-tolerance", "0.01")
    unweighted, attributes = read_events(work / "u.h5")
    assert 0 < len(unweighted) < 600 and attributes["integral"] == pytest.approx(integral)
    out_w = read_weights(work / "u.h5")
    assert float(out_w.mean()) == pytest.approx(integral)  # in units of the integral
    assert int((out_w > out_w.min() * (1 + 1e-12)).sum()) == round(attributes["overweight_fraction"] * len(out_w))
    kept_rows = [int(np.argmin(((events - e) ** 2).sum((1, 2)).numpy())) for e in unweighted[:5]]
    assert torch.equal(events[kept_rows], unweighted[:5])  # whole events, unchanged
    ok("unweight", str(work / "w.h5"), "--out", str(work / "u0.lhe"), "--overweight-tolerance", "0")
    assert read_weights(work / "u0.lhe") is None  # unit weights: IDWTUP 3
    process = pylhe.LHEFile.fromfile(work / "u0.lhe").init.procInfo[0]
    assert float(process.xSection) == pytest.approx(integral, rel=1e-9)
    assert float(process.error) == pytest.approx(attributes["integral_error"], rel=1e-9) and process.error > 0


def test_weights_refused_where_they_do_not_exist(muon_model, tmp_path):
    work = muon_model
    ok("train", "--data", str(work / "muon.h5"), "--model", "pfm", "--max-steps", "5", "--out", str(tmp_path / "pfm"))
    fails("no density on phase space", "sample", str(tmp_path / "pfm" / "model.pt"), "--events", "10",
          "--weights", "--out", str(tmp_path / "p.h5"))
    assert not (tmp_path / "p.h5").exists()
    fails("not available", "sample", str(work / "fmz" / "model.pt"), "--events", "10", "--weights",
          "--solver", "sde", "--out", str(tmp_path / "s.h5"))
    with pytest.raises(ValueError, match="no tractable density"):
        perturbed_model("zdiff", 0.0).sample(5, seed=0, density=True, solver="sde")
    fails("unweighted", "unweight", str(work / "muon.h5"), "--out", str(tmp_path / "u.h5"))
    fails("add --weights", "sample", str(work / "fmz" / "model.pt"), "--events", "10", "--density", "math:exp",
          "--out", str(tmp_path / "d.h5"))
    fails("trains on events only", "train", "--target", "qqg", "--model", "fm-z", "--max-steps", "2", "--out",
          str(tmp_path / "x"))
    fails("tolerance.*must be in", "unweight", str(work / "w.h5"), "--out", str(tmp_path / "u.h5"),
          "--overweight-tolerance", "1.5")
    fails("--ycut.*go with --target", "train", "--data", str(work / "muon.h5"), "--ycut", "0.1", "--model", "nf",
          "--out", str(tmp_path / "y"))
    fails("returned shape", "sample", str(work / "fmz" / "model.pt"), "--events", "10", "--weights", "--density",
          "torch:ones_like", "--out", str(tmp_path / "bad.h5"))
    assert not any(tmp_path.glob("*.h5"))  # nothing half-written


def test_flow_trains_from_a_users_density_alone(tmp_path, monkeypatch):
    """A user's density (module:function): nf training without events, weighted sampling, the
    integral of an unnormalised |M|^2 = 1 + x_1 (its exact integral over phase space: V_3 (1 + 2/3))."""
    (tmp_path / "my_matrix_element.py").write_text(
        "import torch\n\ndef log_me(events):\n    return torch.log1p(2 * events[:, 0, 0])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ok("train", "--density", "my_matrix_element:log_me", "--particles", "3", "--model", "nf",
            "--max-steps", "20", "--batch-size", "256", "--out", str(tmp_path / "nf"))
    ok("sample", str(tmp_path / "nf" / "model.pt"), "--events", "20000", "--weights", "--out",
            str(tmp_path / "w.h5"))
    with h5py.File(tmp_path / "w.h5") as f:
        integral, error = float(f.attrs["weight_integral"]), float(f.attrs["weight_integral_error"])
        assert f.attrs["density"] == "my_matrix_element:log_me" and not f.attrs["density_normalised"]
    exact = phase_space_volume(3) * (1 + 2 / 3)  # E_uniform[x_1] = 2/3 (Beta(2, 1))
    assert abs(integral - exact) < 4 * error and error < 0.01 * exact


# ---- evaluation of weighted events ----------------------------------------------------------------

@pytest.fixture(scope="module")
def reweighted_uniform():
    """Uniform phase space weighted to muon decay (exact weights m V_3), and a muon truth sample."""
    events = make_target("uniform", n_particles=3).sample(60_000, seed=11)
    weights = log_event_weights(MuonDecay().log_density(events), torch.zeros(len(events)), n_particles=3).exp()
    return events, weights, MuonDecay().sample(60_000, seed=12)


def test_weighted_metrics_see_the_target_not_the_proposal(reweighted_uniform):
    from lipsgen.evaluation.metrics import classifier_auc
    from lipsgen.evaluation.tails import chi2_per_ndf, max_log_ratio, w1_tails
    events, w, truth = reweighted_uniform
    x3, truth_x3 = (2 * events[:, 2, 0]).numpy(), (2 * truth[:, 2, 0]).numpy()
    cdf = MuonDecay().spectra()["x_3"]
    assert chi2_per_ndf(x3, cdf, weights=w.numpy())[0] < 2
    assert chi2_per_ndf(x3, cdf)[0] > 50  # unweighted: uniform phase space
    distorted = (w * (1 + 0.25 * torch.from_numpy(x3))).numpy()  # a tilt of up to 25%
    assert chi2_per_ndf(x3, cdf, weights=distorted)[0] > 3
    assert max_log_ratio(truth_x3, x3, sample_weights=w.numpy()) < 0.15 < max_log_ratio(truth_x3, x3)
    assert w1_tails(truth_x3, x3, sample_weights=w.numpy()) < 0.3 * w1_tails(truth_x3, x3)
    assert w1_tails(truth_x3, x3, sample_weights=np.ones(len(x3))) == pytest.approx(w1_tails(truth_x3, x3))
    features = lambda ev: (2 * ev[..., 0]).numpy()  # noqa: E731
    assert classifier_auc(features(events), features(truth), 0, w.numpy()) < 0.52
    assert classifier_auc(features(events), features(truth), 0) > 0.55


def test_evaluate_reports_weighted_samples(reweighted_uniform, tmp_path):
    from lipsgen.io import write_events
    events, w, truth = reweighted_uniform
    write_events(tmp_path / "truth.h5", truth[:20_000], {"target": "muon", "sqrt_s": 1.0})
    write_events(tmp_path / "weighted.h5", events[:20_000], {"target": "uniform", "sqrt_s": 1.0}, weights=w[:20_000])
    ok("evaluate", "--truth", str(tmp_path / "truth.h5"), "--samples", str(tmp_path / "weighted.h5"), "--out",
       str(tmp_path / "report"))
    import json
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["samples"]["weighted"]
    assert metrics["weights"]["integral"] == pytest.approx(1.0, abs=0.03)
    assert metrics["auc"] < 0.53 and metrics["spectra"]["x_3"]["chi2_ndf"] < 2.5


def test_antenna_from_the_command_line(tmp_path):
    """The antenna target: no events (a clear error), but nf trains on its density and weights to it."""
    fails("no exact event sampler", "data", "antenna", "--particles", "5", "--events", "10", "--out",
          str(tmp_path / "a.h5"))
    assert not (tmp_path / "a.h5").exists()
    ok("train", "--target", "antenna", "--particles", "5", "--ycut", "0.01", "--model", "nf", "--max-steps", "5",
       "--batch-size", "256", "--out", str(tmp_path / "nf"))
    ok("sample", str(tmp_path / "nf" / "model.pt"), "--events", "3000", "--weights", "--out", str(tmp_path / "w.h5"))
    with h5py.File(tmp_path / "w.h5") as f:
        assert f.attrs["density"] == "antenna" and not f.attrs["density_normalised"]
        w = f["weights"][...]
        assert 0 < f.attrs["weight_zero_fraction"] < 1 and np.isfinite(w).all() and w.max() > 0


def test_weights_need_a_target_density(tmp_path):
    ok("data", "sarge", "--particles", "4", "--events", "200", "--out", str(tmp_path / "s.h5"), "--seed", "1")
    ok("train", "--data", str(tmp_path / "s.h5"), "--model", "fm-z", "--max-steps", "2", "--out", str(tmp_path / "m"))
    fails("sarge: no closed-form density", "sample", str(tmp_path / "m" / "model.pt"), "--events", "10", "--weights",
          "--out", str(tmp_path / "w.h5"))
    assert not (tmp_path / "w.h5").exists()


@pytest.mark.parametrize("kind, scale, sqrt_s, options", [
    ("nf", 0.02, 1.0, {}), ("nf", 0.02, 91.19, {}), ("nf", 0.02, 91.19, {"base": "chain"}),
    ("fm-z", 0.05, 91.19, {}), ("fm-z", 0.05, 91.19, {"base": "chain"}),
])
def test_log_prob_of_given_events_is_an_unbiased_density(kind, scale, sqrt_s, options):
    """E_uniform[r(p)] = 1 for the model's density r over uniform phase space, with the fibre (RAMBO's
    boost and scale, or the chart's spare coordinates) drawn afresh: one draw is unbiased already.
    For ODE models the density comes from the sampler's run inverted step by step."""
    model = perturbed_model(kind, scale, sqrt_s=sqrt_s, **options)
    n, steps = (20_000, None) if kind == "nf" else (16_000, 8)
    events = uniform_phase_space(n, 3, seed=5, sqrt_s=sqrt_s)
    log_r = model.log_prob(events, seed=6, draws=1, steps=steps)
    assert float(log_r.std()) > 0.05  # far from uniform: the test has something to see
    summary = summarise_weights(log_r.exp())
    assert abs(summary.integral - 1) < 4 * summary.integral_error and summary.integral_error < 0.015, summary
    averaged = model.log_prob(events[:1000], seed=6, draws=16, steps=steps)
    assert float((averaged - log_r[:1000]).std()) < float(log_r.std())  # averaging the fibre steadies it


def test_log_prob_is_refused_where_there_is_no_density():
    events = uniform_phase_space(10, 3, seed=5)
    with pytest.raises(ValueError, match="no density on phase space"):
        perturbed_model("pfm", 0.0).log_prob(events)
    with pytest.raises(ValueError, match="no tractable density"):
        perturbed_model("fm-z", 0.0).log_prob(events, solver="midpoint")


@pytest.mark.parametrize("kind, scale, options, steps", [
    ("fm-z", 0.1, {}, 12), ("fm-q", 0.05, {}, 12), ("zdiff", 0.1, {}, 12),
    ("langevin", 0.1, {"schedule": "linear:0.002:0.01:40"}, None),
])
def test_the_inverted_run_recovers_the_noise_and_the_log_determinant(kind, scale, options, steps):
    """``invert_with_log_det`` undoes ``sample_with_log_det`` (every discrete step, the VP model's
    final Tweedie step and the Langevin probability-flow ODE included) to the states' rounding."""
    # (larger perturbations make some discrete steps fold: no longer one-to-one, they have no density)
    model = perturbed_model(kind, scale, sqrt_s=91.19, **options)
    steps = model.process.default_steps if steps is None else steps
    solver = model.process.density_solvers[0]
    generator = torch.Generator().manual_seed(3)
    x_noise = model.noise_prior(500, generator, torch.device("cpu"))
    y, log_det = model.process.sample_with_log_det(model.net, x_noise, steps=steps, solver=solver, generator=generator)
    back, log_det_back = model.process.invert_with_log_det(model.net, y, steps=steps, solver=solver,
                                                           generator=generator)
    assert float(log_det.abs().mean()) > 0.01  # the run is not volume-preserving: the sum is seen
    torch.testing.assert_close(back, x_noise, rtol=0, atol=2e-4, check_dtype=False)
    # float32 Jacobians: a steep event (q -> 0) differs in its 3rd digit where the states agree to 1e-4
    error = (log_det_back - log_det).abs()
    assert float(error.quantile(0.99)) < 2e-3 and float(error.max()) < 2e-2, error.max()


def test_density_trained_flows_objective_is_the_cross_entropy_to_its_target():
    """The importance-weighted loss of training from a density estimates -E_T[log g] (forward KL up
    to the target's entropy). For the target N(0, I) (uniform phase space in z-space) that is the
    flow's mean log-density under direct N(0, I) draws: both from 10^5 draws (the direct one to
    0.01; a flipped log-det in the importance weights puts the loss 1.0 off)."""
    model = perturbed_model("nf", 0.05)
    loss = model.process.density_loss(model.net, standard_normal_log_prob, 100_000,
                                      torch.Generator().manual_seed(1), torch.device("cpu"))
    z = torch.randn((100_000, 3, 3), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        direct = -model.net.log_prob(z).double()
    assert abs(float(loss.detach()) - float(direct.mean())) < 0.05, (float(loss), float(direct.mean()))
    assert float(direct.std()) / math.sqrt(len(direct)) < 0.01


def test_a_zero_target_density_weighs_zero_whatever_the_models():
    log_target = torch.tensor([-math.inf, -math.inf, 0.0, 0.0], dtype=torch.float64)
    log_model = torch.tensor([math.nan, -math.inf, math.nan, 0.5], dtype=torch.float64)
    w = log_event_weights(log_target, log_model, n_particles=3, sqrt_s=91.19).exp()
    assert w[0] == 0 and w[1] == 0 and math.isnan(w[2])  # an undefined model density where it matters stays seen
    assert float(w[3]) == pytest.approx(phase_space_volume(3, 91.19) * math.exp(-0.5))


@pytest.mark.parametrize("kind", ["fm-z", "fm-q"])
def test_a_flow_that_contracts_keeps_exact_weights(kind):
    """A velocity field v = 0.1 x shrinks every state by (1 - 0.1 h) per Euler step, a log-det of
    3N log(1 - 0.1 h) per step: E_model[w] = 1 for uniform phase space needs that log-det with its
    sign (a perturbed network's log-det is too small to tell)."""

    class Contracting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros(()))  # the sampler finds the device through it

        def forward(self, x, t):
            return 0.1 * x + self.unused

    model = perturbed_model(kind, 0.0, sqrt_s=91.19)
    model.net = Contracting()
    out = model.sample(20_000, seed=3, density=True, steps=16)
    target = make_target("uniform", n_particles=3, sqrt_s=91.19)
    summary = summarise_weights(
        log_event_weights(target.log_density(out.events), out.log_density, n_particles=3, sqrt_s=91.19).exp())
    assert abs(summary.integral - 1) < 4 * summary.integral_error and summary.integral_error < 0.02, summary
    assert summary.relative_std > 0.1  # the contraction shows in the weights


def test_density_command_writes_the_models_log_prob_and_weights(tmp_path):
    """``lipsgen density`` on a trained model (sqrt_s 91.19): the log-densities are log_prob's, the
    weights V_N f / r with the muon density; bad inputs are refused without output."""
    from lipsgen.io import write_events
    from lipsgen.training import load_model

    ok("data", "muon", "--events", "500", "--sqrt-s", "91.19", "--out", str(tmp_path / "d.h5"), "--seed", "1")
    ok("train", "--data", str(tmp_path / "d.h5"), "--model", "fm-z", "--max-steps", "3", "--out", str(tmp_path / "m"))
    events = uniform_phase_space(300, 3, seed=4, sqrt_s=91.19)
    write_events(tmp_path / "u.h5", events, {"target": "uniform", "sqrt_s": 91.19})
    model_path, out = tmp_path / "m" / "model.pt", tmp_path / "r.h5"
    ok("density", str(model_path), str(tmp_path / "u.h5"), "--out", str(out), "--weights", "--steps", "6",
       "--draws", "2", "--seed", "7")
    model, _ = load_model(model_path)
    expected = model.log_prob(events, seed=7, draws=2, steps=6)
    with h5py.File(out) as f:
        log_r, weights = torch.from_numpy(f["log_model_density"][...]), torch.from_numpy(f["weights"][...])
    torch.testing.assert_close(log_r, expected, rtol=0, atol=1e-9)
    log_w = MuonDecay(sqrt_s=91.19).log_density(events) + math.log(phase_space_volume(3, 91.19)) - expected
    torch.testing.assert_close(weights, log_w.exp(), rtol=1e-9, atol=0)
    fails("--density is the target density", "density", str(model_path), str(tmp_path / "u.h5"), "--out",
          str(tmp_path / "x.h5"), "--density", "m:f")
    write_events(tmp_path / "four.h5", uniform_phase_space(10, 4, seed=4, sqrt_s=91.19), {"sqrt_s": 91.19})
    fails("4 particles, the model has 3", "density", str(model_path), str(tmp_path / "four.h5"), "--out",
          str(tmp_path / "x.h5"))
    write_events(tmp_path / "w.h5", events, {"target": "uniform", "sqrt_s": 91.19}, weights=torch.ones(300))
    fails("carry weights already", "density", str(model_path), str(tmp_path / "w.h5"), "--out", str(tmp_path / "x.h5"),
          "--weights")
    write_events(tmp_path / "at1.h5", uniform_phase_space(10, 3, seed=4), {"target": "uniform", "sqrt_s": 1.0})
    fails("sqrt_s|energy", "density", str(model_path), str(tmp_path / "at1.h5"), "--out", str(tmp_path / "x.h5"))
    assert not (tmp_path / "x.h5").exists()
