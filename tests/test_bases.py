"""Bases (lipsgen.bases): the chain map's measure, inverse, cut and fit; models in a base's chart."""

from __future__ import annotations

import math

import h5py
import pytest
import torch

from conftest import assert_matches_cdf, run_cli
from lipsgen.bases import ChainMap, ChannelMixture, PhaseSpaceMap, chain_orderings, colour_orderings, make_base
from lipsgen.kinematics import min_pair_invariant, phase_space_volume, scaled_pair_invariants
from lipsgen.models.model import GenerativeModel, ModelConfig
from lipsgen.targets import QQG
from lipsgen.targets.uniform import uniform_phase_space
from lipsgen.training import load_model
from lipsgen.validation import check_events

POWERS = dict(invariant_powers=(0.3, 0.6), angle_power=0.5)


def _uniform_u(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.rand((n, dim), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mean_and_error(values: torch.Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / len(values) ** 0.5)


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
@pytest.mark.parametrize("n_particles", [3, 4, 5])
def test_chain_weight_integrates_to_the_phase_space_volume_and_moments(n_particles, sqrt_s):
    """E_u[w] = V_N and E_u[w y_01] / V_N = 2 / (N (N - 1)), E_u[w x_k] / V_N = 2 / N (uniform phase space)."""
    # milder poles than POWERS: weights of a flat target stay bounded enough for a 1% check at N = 5
    base = ChainMap(n_particles, sqrt_s, order=list(reversed(range(n_particles))), invariant_powers=(0.15, 0.3),
                    angle_power=0.25)
    events, log_g = base.forward(_uniform_u(400_000, base.dim, 1))
    check_events(events, sqrt_s=sqrt_s)
    w = (-log_g).exp() / phase_space_volume(n_particles, sqrt_s)
    y = scaled_pair_invariants(events, sqrt_s)
    x = 2 * events[:, 0, 0] / sqrt_s
    for values, expected in ((w, 1.0), (w * y[:, 0, 1], 2 / (n_particles * (n_particles - 1))),
                             (w * x, 2 / n_particles)):
        mean, error = _mean_and_error(values)
        assert error < 0.004 * expected, "too few events to see a 1% error"
        assert abs(mean - expected) < 4 * error, (mean, expected, error)


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_chain_with_a_cut_covers_exactly_the_cut_region(sqrt_s):
    """N = 3, ycut = 0.05: every event has min y_ij > ycut and the support's volume is (1 - 3 ycut)^2 V_3."""
    ycut = 0.05
    base = ChainMap(3, sqrt_s, ycut=ycut, **POWERS)
    events, log_g = base.forward(_uniform_u(400_000, base.dim, 2))
    y = scaled_pair_invariants(events, sqrt_s)
    assert float(torch.stack([y[:, 0, 1], y[:, 0, 2], y[:, 1, 2]]).min()) > ycut * (1 - 1e-12)
    mean, error = _mean_and_error((-log_g).exp() / phase_space_volume(3, sqrt_s))
    assert abs(mean - (1 - 3 * ycut) ** 2) < 4 * error and error < 0.003
    outside = QQG(1e-4, sqrt_s=sqrt_s).sample(2000, seed=3)
    u, log_g_back = base.inverse(outside)
    below = (scaled_pair_invariants(outside, sqrt_s)[:, [0, 0, 1], [1, 2, 2]].min(1).values <= ycut)
    assert bool(below.any()) and bool(torch.isnan(u[below]).all()) and bool((log_g_back[below] == -math.inf).all())
    assert bool(torch.isfinite(u[~below]).all())


@pytest.mark.parametrize("n_particles, sqrt_s", [(4, 1.0), (5, 91.19)])
def test_chain_with_a_cut_contains_the_cut_region_for_more_particles(n_particles, sqrt_s):
    """N > 3: the support contains every event above the cut (E_u[w 1(cut)] = V_N P_uniform(cut),
    which falls short if any of the cut region is missing), its events bound the chain's invariants,
    and it holds more of its events above the cut than the same chain without the cut."""
    ycut = 0.01
    base = ChainMap(n_particles, sqrt_s, ycut=ycut, invariant_powers=(0.15, 0.3), angle_power=0.25)
    events, log_g = base.forward(_uniform_u(400_000, base.dim, 4))
    check_events(events, sqrt_s=sqrt_s)
    inside = min_pair_invariant(events, sqrt_s) > ycut
    w = (-log_g).exp() / phase_space_volume(n_particles, sqrt_s)
    mean, error = _mean_and_error(w * inside)
    uniform = uniform_phase_space(400_000, n_particles, seed=5, sqrt_s=sqrt_s)
    share = float((min_pair_invariant(uniform, sqrt_s) > ycut).double().mean())
    share_error = math.sqrt(share * (1 - share) / len(uniform))
    assert error < 0.01 * share and abs(mean - share) < 4 * math.hypot(error, share_error), (mean, share, error)
    unfolded, _ = ChainMap(n_particles, sqrt_s, invariant_powers=(0.15, 0.3), angle_power=0.25).forward(
        _uniform_u(400_000, base.dim, 4))
    assert float(inside.double().mean()) > 1.2 * float((min_pair_invariant(unfolded, sqrt_s) > ycut).double().mean())
    y = scaled_pair_invariants(events, sqrt_s)
    assert float(y[:, 0, 1].min()) > ycut * (1 - 1e-9)  # s_1 = s_01: bounded by the chain
    above = uniform[min_pair_invariant(uniform, sqrt_s) > ycut][:2000]
    u, log_g_back = base.inverse(above)
    assert bool(torch.isfinite(u).all()) and bool(torch.isfinite(log_g_back).all())
    back, _ = base.forward(u)
    assert float((back - above).abs().max()) < 1e-9 * sqrt_s


@pytest.mark.parametrize("n_particles, sqrt_s", [(3, 91.19), (4, 1.0), (7, 91.19)])
def test_chain_inverse_round_trips(n_particles, sqrt_s):
    base = ChainMap(n_particles, sqrt_s, order=torch.randperm(n_particles, generator=torch.Generator().manual_seed(4))
                    .tolist(), **POWERS)
    u = _uniform_u(20_000, base.dim, 5).clamp(1e-6, 1 - 1e-6)
    events, log_w = base.forward(u)
    u_back, log_w_back = base.inverse(events)
    error = (u_back - u).abs().max(1).values
    assert float(error.median()) < 1e-13 and float(torch.quantile(error, 0.999)) < 1e-7
    assert float((log_w_back - log_w).abs().median()) < 1e-11
    again, _ = base.forward(u_back)
    moved = (again - events).abs().amax(dim=(1, 2)) / sqrt_s
    assert float(torch.quantile(moved, 0.999)) < 1e-10 and float(moved.max()) < 1e-6


def _lower_half_probability(a0: float, a1: float) -> float:
    """p0 of a two-sided power map on [0, 1]: the density is continuous at 1/2,
    p0 (1 - a0) 2^a0 / (1/2)^(1 - a0) = (1 - p0) (1 - a1) 2^a1 / (1/2)^(1 - a1)."""
    c0, c1 = (1 - a0) * 2**a0 / 0.5 ** (1 - a0), (1 - a1) * 2**a1 / 0.5 ** (1 - a1)
    return c1 / (c0 + c1)


def test_chain_marginals_follow_their_power_laws():
    """N = 3, identity order: y_01 = rho has P(rho < 0.1) = p0 (0.1 / 0.5)^(1 - a0), and
    v = y_12 / (1 - y_01) (equal poles: p0 = 1/2) has P(v < 0.1) = (0.1 / 0.5)^(1 - b) / 2."""
    base = ChainMap(3, 91.19, **POWERS)
    events, _ = base.forward(_uniform_u(200_000, base.dim, 6))
    y = scaled_pair_invariants(events, 91.19)
    rho, v = y[:, 0, 1], y[:, 1, 2] / (1 - y[:, 0, 1])
    for values, expected in ((rho, _lower_half_probability(0.3, 0.6) * 0.2 ** (1 - 0.3)), (v, 0.5 * 0.2 ** 0.5)):
        assert abs(float((values < 0.1).double().mean()) - expected) < 0.005


def test_power_map_density_is_continuous_in_the_middle():
    """No step at x = 1/2 (a step is structure a model would have to learn away)."""
    from lipsgen.bases.power import PowerEnds, power_forward

    ends = PowerEnds(-0.9, 0.7)
    grid = torch.linspace(1e-6, 1 - 1e-6, 200_001, dtype=torch.float64)
    x, _, log_jac = power_forward(grid, torch.full_like(grid, 1e-3), torch.full_like(grid, 1 - 2e-3), ends)
    middle = torch.argmin((x - 0.5).abs())
    assert abs(float(log_jac[middle - 1] - log_jac[middle + 1])) < 1e-3
    assert bool((x[1:] >= x[:-1]).all()) and float(x[0]) >= 1e-3 and float(x[-1]) <= 1 - 2e-3


def test_fit_recovers_the_powers_of_its_own_samples():
    truth = ChainMap(3, 1.0, ycut=1e-3, invariant_powers=(-0.4, 0.7), angle_power=0.6)
    events, _ = truth.forward(_uniform_u(40_000, truth.dim, 7))
    fitted = ChainMap(3, 1.0, ycut=1e-3)
    fitted.fit(events)
    found = fitted.parameters()
    assert found["invariant_powers"] == pytest.approx([-0.4, 0.7], abs=0.04)
    assert found["angle_power"] == pytest.approx(0.6, abs=0.04)


def test_bad_bases_are_refused():
    with pytest.raises(ValueError, match=r"ycut must lie in \[0, 0.1\) for 5 particles"):
        ChainMap(5, ycut=0.1)
    with pytest.raises(ValueError, match="permutation"):
        ChainMap(3, order=[0, 0, 1])
    with pytest.raises(ValueError, match=r"must lie in \[-0.95, 0.95\]"):
        ChainMap(3, invariant_powers=(1.0, 0.0))
    with pytest.raises(ValueError, match="unknown base 'bogus'"):
        make_base("bogus", 3, 1.0)
    with pytest.raises(ValueError, match="needs a z-space model"):
        ModelConfig(model="fm-q", n_particles=3, base="chain")
    # features through a mixture's jumps made the flow's steps discontinuous: weights off by 1.2%
    with pytest.raises(ValueError, match="decodes discontinuously"):
        ModelConfig(model="fm-z", n_particles=3, base="chains", invariant_features=True)
    assert not ModelConfig(model="fm-z", n_particles=3, base="colour").invariant_features


def _chart_model(ycut: float, sqrt_s: float, seed: int = 0) -> GenerativeModel:
    torch.manual_seed(seed)
    return GenerativeModel(ModelConfig(model="fm-z", n_particles=3, sqrt_s=sqrt_s, base="chain", base_ycut=ycut,
                                       width=32, depth=2, time_dim=16))


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_every_trajectory_state_is_exact_and_inside_the_cut(sqrt_s):
    model = _chart_model(0.01, sqrt_s)
    torch.nn.init.normal_(model.net.out.weight, std=0.3)  # an untrained model would stand still
    out = model.sample(2000, seed=1, steps=8, trajectory=9)
    assert out.trajectory is not None
    for state in out.trajectory:
        check_events(state, sqrt_s=sqrt_s)
        y = scaled_pair_invariants(state, sqrt_s)[:, [0, 0, 1], [1, 2, 2]]
        assert float(y.min()) > 0.01 * (1 - 1e-12)


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_weights_of_a_perturbed_model_in_a_chart_average_to_one(sqrt_s):
    """The exact event weights m V_N / (model density) include the base's Jacobian: mean 1 for any model."""
    target = QQG(1e-3, sqrt_s=sqrt_s)
    model = _chart_model(1e-3, sqrt_s, seed=2)
    model.fit_data(target.sample(20_000, seed=3), torch.Generator().manual_seed(0))
    torch.nn.init.normal_(model.net.out.weight, std=0.2)
    out = model.sample(20_000, seed=4, steps=6, density=True)
    assert out.log_density is not None
    log_w = target.log_density(out.events) + math.log(phase_space_volume(3, sqrt_s)) - out.log_density
    mean, error = _mean_and_error(log_w.exp())
    assert error < 0.01 and abs(mean - 1) < 4 * error, (mean, error)


def test_chart_encoding_round_trips_and_reference_density_is_uniform_phase_space():
    sqrt_s = 91.19
    model = _chart_model(1e-3, sqrt_s)
    data = QQG(1e-3, sqrt_s=sqrt_s).sample(5000, seed=5)
    model.fit_data(data, torch.Generator().manual_seed(0))
    x = model.space.encode(data, torch.Generator().manual_seed(1))
    assert x.shape == (5000, 3, 3)
    assert float((model.space.decode(x) - data).abs().max()) < 1e-5 * sqrt_s  # float32 states
    # uniform phase space lifted into the chart, over the base's density: E_base[rho_0 / N(x)] = P(cut);
    # mild poles keep the ratio's variance small enough for a 1% check
    model.space.load_state({"base": {"invariant_powers": [0.2, 0.3], "angle_power": 0.3}})
    z = torch.randn((800_000, 3, 3), generator=torch.Generator().manual_seed(2))
    ratio = (model.reference_log_prob(z) - model.noise_log_prob(z)).exp()
    mean, error = _mean_and_error(ratio)
    assert abs(mean - (1 - 3e-3) ** 2) < 4 * error and error < 0.005


def test_base_parameters_are_fitted_saved_and_restored(tmp_path):
    data = tmp_path / "qqg.h5"
    made = run_cli("data", "qqg", "--ycut", "1e-3", "--events", "4000", "--out", str(data), "--seed", "1")
    assert made.returncode == 0
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--base", "chain", "--out", str(tmp_path / "r"),
                     "--max-steps", "20")
    assert result.returncode == 0, result.stderr
    assert "base chain" in result.stderr
    model, _ = load_model(tmp_path / "r" / "model.pt")
    parameters = model.space.state()["base"]
    assert parameters["ycut"] == 1e-3 and parameters["angle_power"] > 0.3  # the collinear poles were found
    out = tmp_path / "w.h5"
    result = run_cli("sample", str(tmp_path / "r" / "model.pt"), "--events", "300", "--out", str(out), "--weights",
                     "--steps", "4")
    assert result.returncode == 0, result.stderr
    with h5py.File(out) as f:
        assert f.attrs["base"] == "chain" and "angle_power" in f.attrs["base_parameters"]
        assert abs(float(f["weights"][:].mean()) - 1) < 0.2
    refused = run_cli("train", "--data", str(data), "--model", "fm-q", "--base", "chain", "--out", str(tmp_path / "q"))
    assert refused.returncode == 1 and "needs a z-space model" in refused.stderr
    refused = run_cli("train", "--data", str(data), "--model", "fm-z", "--base", "nope", "--out", str(tmp_path / "q"))
    assert refused.returncode == 2 and "invalid choice 'nope'" in refused.stderr


def test_a_users_base_through_the_protocol(tmp_path, monkeypatch):
    (tmp_path / "my_base.py").write_text(
        "from lipsgen.bases import ChainMap\n"
        "def reversed_chain(n_particles, sqrt_s, ycut):\n"
        "    return ChainMap(n_particles, sqrt_s, ycut=ycut, order=list(reversed(range(n_particles))))\n"
        "def not_a_map(n_particles, sqrt_s, ycut):\n"
        "    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base = make_base("my_base:reversed_chain", 3, 91.19, ycut=1e-3)
    assert isinstance(base, PhaseSpaceMap) and base.parameters()["order"] == [2, 1, 0]
    with pytest.raises(TypeError, match="not a PhaseSpaceMap"):
        make_base("my_base:not_a_map", 3, 1.0)
    data = tmp_path / "qqg.h5"
    run_cli("data", "qqg", "--ycut", "1e-3", "--events", "2000", "--out", str(data), "--seed", "1")
    result = run_cli("train", "--data", str(data), "--model", "nf", "--base", "my_base:reversed_chain",
                     "--out", str(tmp_path / "r"), "--max-steps", "5")
    assert result.returncode == 0, result.stderr
    assert load_model(tmp_path / "r" / "model.pt")[0].space.state()["base"]["order"] == [2, 1, 0]


def test_density_training_fits_the_base_from_the_target():
    model = GenerativeModel(ModelConfig(model="nf", n_particles=3, base="chain", base_ycut=1e-3, width=16, depth=1))
    target = QQG(1e-3)
    model.fit_target(target.log_density, torch.Generator().manual_seed(0))
    assert model.space.state()["base"]["angle_power"] > 0.3


def _mixture(sqrt_s: float, ycut: float = 0.0) -> ChannelMixture:
    orders = chain_orderings(3)
    channels = [ChainMap(3, sqrt_s, ycut=ycut, order=o, invariant_powers=(0.2 * i, 0.5), angle_power=0.4)
                for i, o in enumerate(orders)]
    return ChannelMixture(channels, weights=[0.5, 0.3, 0.2])


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_mixture_density_is_normalised_with_every_channel(sqrt_s):
    """E_base[1 / (V_N g)] = 1: the density sums every channel, weighted (E_uniform[V_N g] = 1 too, but
    its poles make that estimate too noisy for a 1% check)."""
    mixture = _mixture(sqrt_s)
    assert chain_orderings(3) == [[0, 1, 2], [0, 2, 1], [1, 2, 0]] and mixture.dim == 6
    volume = phase_space_volume(3, sqrt_s)
    events, log_g = mixture.forward(_uniform_u(200_000, mixture.dim, 8))
    check_events(events, sqrt_s=sqrt_s)
    mean, error = _mean_and_error((-log_g).exp() / volume)
    assert abs(mean - 1) < 4 * error and error < 0.004


def test_mixture_inverse_draws_the_channel_from_its_posterior():
    """Encoding the base's own events gives back uniform u (the joint law of channel and coordinates)."""
    mixture = _mixture(91.19, ycut=1e-3)
    u = _uniform_u(50_000, mixture.dim, 10)
    events, log_g = mixture.forward(u)
    u_back, log_g_back = mixture.inverse(events, torch.Generator().manual_seed(11))
    assert float((log_g_back - log_g).abs().max()) < 1e-8
    assert float((mixture.forward(u_back)[0] - events).abs().max()) < 1e-8 * 91.19
    for column in (0, 3, mixture.dim - 1):
        assert_matches_cdf(u_back[:, column], lambda x: x.clip(0, 1), scale_check=False)
    # the channel of the largest posterior instead of a draw: the last coordinate is no longer uniform
    joint = mixture._channel_log_densities(events)[1] + mixture.weights.log().unsqueeze(1)
    argmax_share = torch.bincount(joint.argmax(0), minlength=3).double() / len(events)
    assert float((argmax_share - mixture.weights).abs().max()) > 0.02


def test_mixture_fit_and_a_model_on_it_keep_exact_weights():
    target = QQG(1e-3, sqrt_s=91.19)
    torch.manual_seed(3)
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, sqrt_s=91.19, base="chains", base_ycut=1e-3,
                                        width=32, depth=2, time_dim=16))
    model.fit_data(target.sample(6000, seed=12), torch.Generator().manual_seed(0))
    parameters = model.space.state()["base"]
    assert len(parameters["channels"]) == 3 and sum(parameters["channel_weights"]) == pytest.approx(1)
    torch.nn.init.normal_(model.net.out.weight, std=0.2)
    out = model.sample(20_000, seed=13, steps=4, density=True)
    assert out.log_density is not None
    log_w = target.log_density(out.events) + math.log(phase_space_volume(3, 91.19)) - out.log_density
    mean, error = _mean_and_error(log_w.exp())
    assert error < 0.01 and abs(mean - 1) < 4 * error, (mean, error)
    with pytest.raises(ValueError, match="offered up to 5 particles"):
        make_base("chains", 6, 1.0)


def test_mixture_gives_no_density_outside_its_channels_support():
    mixture = _mixture(1.0, ycut=0.05)
    events = QQG(1e-4).sample(3000, seed=14)
    u, log_g = mixture.inverse(events, torch.Generator().manual_seed(15))
    below = scaled_pair_invariants(events, 1.0)[:, [0, 0, 1], [1, 2, 2]].min(1).values <= 0.05
    assert bool(below.any()) and bool((log_g[below] == -math.inf).all()) and bool(torch.isnan(u[below]).all())
    assert bool(torch.isfinite(log_g[~below]).all()) and bool(torch.isfinite(u[~below]).all())


def test_colour_orderings_follow_the_loop():
    assert sorted(colour_orderings(3)) == sorted(chain_orderings(3))
    orders = colour_orderings(5)
    assert len(orders) == 10 and [0, 1, 2, 3, 4] in orders and [0, 4, 3, 2, 1] in orders
    neighbours = lambda a, b: (b - a) % 5 in (1, 4)
    for order in orders:  # the chain's pairs are neighbours on the loop (the first two in either order)
        assert neighbours(order[0], order[1]) and (neighbours(order[0], order[2]) or neighbours(order[1], order[2]))
        assert all(neighbours(a, b) for a, b in zip(order[2:], order[3:]))
    assert make_base("colour", 10, 1.0).dim == 27


def test_fit_chooses_the_likelier_chain_direction_and_keeps_it():
    truth = ChainMap(4, 91.19, order=[3, 2, 1, 0], invariant_powers=(-0.6, 0.5), angle_power=0.5)
    events, _ = truth.forward(_uniform_u(30_000, truth.dim, 8))
    fitted = ChainMap(4, 91.19, fit_direction=True)
    fitted.fit(events)
    found = fitted.parameters()
    assert found["order"] == [3, 2, 1, 0]
    assert found["invariant_powers"] == pytest.approx([-0.6, 0.5], abs=0.05)
    restored = ChainMap(4, 91.19, fit_direction=True)
    restored.load_parameters(found)
    assert restored.order == [3, 2, 1, 0]
    with pytest.raises(ValueError, match="neither"):
        restored.load_parameters({**found, "order": [1, 0, 2, 3]})
    channel = ChainMap(4, 91.19)  # a mixture's channel keeps its order
    channel.fit(events)
    assert channel.order == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="order"):
        channel.load_parameters(found)


def _symmetrised_qqg_log_density(target: QQG, events: torch.Tensor) -> torch.Tensor:
    """The density of qqg events with their particle order shuffled: the mean over the 3! orders."""
    import itertools

    terms = [target.log_density(events[:, list(p)]) for p in itertools.permutations(range(3))]
    return torch.logsumexp(torch.stack(terms), dim=0) - math.log(6)


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_energy_ordered_chart_keeps_exact_weights_for_unlabelled_particles(sqrt_s):
    """Unlabelled particles meet a chain in decreasing energy; the target's density of the ordered
    events is 3! f where ordered, 0 elsewhere, and the weights of any model then average to 1."""
    from lipsgen.targets.base import random_permutations

    target = QQG(1e-3, sqrt_s=sqrt_s)
    torch.manual_seed(3)
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, sqrt_s=sqrt_s, base="chain", base_ycut=1e-3,
                                        order_by_energy=True, width=32, depth=2, time_dim=16))
    data = random_permutations(target.sample(20_000, seed=3), torch.Generator().manual_seed(1))
    model.fit_data(data, torch.Generator().manual_seed(0))
    x = model.space.encode(data[:500], torch.Generator().manual_seed(2))
    decoded = model.space.decode(x)
    assert bool((decoded[:, :-1, 0] >= decoded[:, 1:, 0] - 1e-6 * sqrt_s).all())  # the events in energy order
    torch.nn.init.normal_(model.net.out.weight, std=0.2)
    out = model.sample(20_000, seed=4, steps=6, density=True)
    assert out.log_density is not None
    log_target = model.space.represented_log_density(_symmetrised_qqg_log_density(target, out.events), out.events)
    log_w = log_target + math.log(phase_space_volume(3, sqrt_s)) - out.log_density
    mean, error = _mean_and_error(log_w.exp())
    assert error < 0.02 and abs(mean - 1) < 4 * error, (mean, error)
    with pytest.raises(ValueError, match="needs no order"):
        ModelConfig(model="fm-z", n_particles=3, order_by_energy=True)


def test_unlabelled_data_train_a_chain_in_energy_order(tmp_path):
    data = tmp_path / "sarge.h5"
    assert run_cli("data", "sarge", "--particles", "4", "--events", "2000", "--out", str(data)).returncode == 0
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--base", "chain", "--out", str(tmp_path / "r"),
                     "--max-steps", "5")
    assert result.returncode == 0, result.stderr
    assert "learns them in decreasing energy" in result.stderr
    assert load_model(tmp_path / "r" / "model.pt")[0].config.order_by_energy
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--base", "chains", "--out", str(tmp_path / "s"),
                     "--max-steps", "5")
    assert result.returncode == 0, result.stderr
    assert not load_model(tmp_path / "s" / "model.pt")[0].config.order_by_energy
