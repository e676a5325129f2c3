"""Relabelling symmetries (lipsgen.models.symmetry): groups, relabelled states, symmetrised densities."""

from __future__ import annotations

import itertools
import math

import h5py
import pytest
import torch

from conftest import run_cli
from lipsgen.kinematics import phase_space_volume
from lipsgen.models.model import GenerativeModel, ModelConfig
from lipsgen.models.symmetry import relabelling_group
from lipsgen.training import load_model


@pytest.mark.parametrize("n_particles", [3, 4, 5, 6])
@pytest.mark.parametrize(("name", "size"), [("none", lambda n: 1), ("cyclic", lambda n: n),
                                            ("dihedral", lambda n: 2 * n), ("all", math.factorial)])
def test_relabelling_groups_are_groups_with_the_identity_first(name, size, n_particles):
    group = relabelling_group(name, n_particles)
    assert group.shape == (size(n_particles), n_particles)
    assert group[0].tolist() == list(range(n_particles))
    members = {tuple(p) for p in group.tolist()}
    assert len(members) == len(group)
    for a, b in itertools.product(group, repeat=2):  # closed under composition
        assert tuple(a[b].tolist()) in members


def test_bad_symmetries_are_refused():
    with pytest.raises(ValueError, match="unknown symmetry"):
        relabelling_group("rotations", 4)
    with pytest.raises(ValueError, match="offered up to 6"):
        relabelling_group("all", 7)


def _chart_model(n_particles: int, sqrt_s: float, ycut: float, seed: int = 0) -> GenerativeModel:
    """fm-z on a chain base with poles, so that relabelling changes the base's density a lot."""
    torch.manual_seed(seed)
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=n_particles, sqrt_s=sqrt_s, base="chain",
                                        base_ycut=ycut, width=32, depth=2, time_dim=16))
    model.space.load_state({"base": {"invariant_powers": [0.4, 0.3], "angle_power": 0.3}})
    return model


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
@pytest.mark.parametrize("base", ["uniform", "chain"])
def test_relabelled_states_decode_to_the_relabelled_events_in_the_same_fibre(base, sqrt_s):
    model = (_chart_model(4, sqrt_s, 1e-3) if base == "chain"
             else GenerativeModel(ModelConfig(model="fm-z", n_particles=4, sqrt_s=sqrt_s, width=32, depth=2)))
    x = model.noise_prior(3000, torch.Generator().manual_seed(1), torch.device("cpu")).double()
    events = model.space.decode(x)
    for perm in relabelling_group("dihedral", 4)[1:]:
        relabelled, inside, log_reference = model.space.relabel(x, perm)
        assert relabelled.dtype == x.dtype and 0.5 < float(inside.double().mean())
        assert torch.allclose(log_reference[inside], model.reference_log_prob(relabelled)[inside], rtol=0, atol=1e-6)
        assert torch.allclose(model.space.decode(relabelled)[inside], events[inside][:, perm], rtol=0,
                              atol=1e-10 * sqrt_s)
        assert torch.equal(relabelled[~inside], x[~inside])
        if base == "chain":  # the chart's spare coordinates (its fibre) are kept
            dim = model.space.base.dim
            assert torch.equal(relabelled.flatten(1)[:, dim:], x.flatten(1)[:, dim:])
        else:
            assert bool(inside.all())


def _log_base_density(model: GenerativeModel, events: torch.Tensor) -> torch.Tensor:
    """log(V_N g) (n,) of the base alone at events (n, N, 4), -inf outside its support."""
    log_g = model.space.base.inverse(events)[1]
    return log_g + math.log(phase_space_volume(model.config.n_particles, model.config.sqrt_s))


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_symmetrised_density_of_a_base_is_the_group_average_of_its_density(sqrt_s):
    """An untrained fm-z model stands still: its density is its base's, so the symmetrised density is
    the mean of the base's density over the relabelled events (zero where one falls outside its cut)."""
    model = _chart_model(4, sqrt_s, 1e-3)
    group = relabelling_group("dihedral", 4)
    out = model.sample(3000, seed=2, steps=2, density=True, symmetry="dihedral")
    assert out.log_density is not None
    each = torch.stack([_log_base_density(model, out.events[:, perm]) for perm in group])
    assert bool(torch.isinf(each).any()) and bool(torch.isfinite(each).all(0).any())  # the mask is exercised
    expected = torch.logsumexp(each, dim=0) - math.log(len(group))
    # an event drawn at the very edge of the folded cut can be outside it by the inverse's rounding (the
    # sampled density is the forward map's; 4 in 3000 here): allow one in a hundred
    assert float(((out.log_density - expected).abs() > 1e-4).double().mean()) < 1e-2
    assert float((model.log_prob(out.events, seed=3, draws=1, steps=2, symmetry="dihedral")
                  - expected).abs().max()) < 1e-4


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_weights_of_a_perturbed_symmetrised_model_average_to_one(sqrt_s):
    """The symmetrised chain base's density weighted by the symmetrised density of a perturbed flow on that
    base: mean 1, to a standard error of a few per mille."""
    torch.manual_seed(3)
    model = GenerativeModel(ModelConfig(model="nf", n_particles=4, sqrt_s=sqrt_s, base="chain", width=32, depth=2))
    model.space.load_state({"base": {"invariant_powers": [0.4, 0.3], "angle_power": 0.3}})
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    out = model.sample(40_000, seed=4, density=True, symmetry="cyclic")
    assert out.log_density is not None and float(out.log_density.std()) > 0.1  # far from uniform
    group = relabelling_group("cyclic", 4)
    log_target = torch.logsumexp(torch.stack([_log_base_density(model, out.events[:, perm]) for perm in group]),
                                 dim=0) - math.log(len(group))  # log(f V_N), f normalised
    weights = (log_target - out.log_density).exp()
    mean, error = float(weights.mean()), float(weights.std()) / len(weights) ** 0.5
    assert error < 0.0025 and abs(mean - 1) < 4 * error, (mean, error)


def test_symmetrised_samples_are_symmetric():
    """Under the cyclic group every particle is the hardest equally often; the plain model is not."""
    model = _chart_model(4, 1.0, 0.0)
    n = 40_000
    for symmetry, symmetric in (("none", False), ("cyclic", True)):
        events = model.sample(n, seed=5, steps=2, symmetry=symmetry).events
        counts = torch.bincount(events[..., 0].argmax(1), minlength=4).double()
        chi2 = float(((counts - n / 4) ** 2 / (n / 4)).sum())
        assert (chi2 < 16.3) == symmetric, (symmetry, counts.tolist())  # chi2(3) at p = 0.001


def test_trajectories_are_relabelled_with_their_events():
    model = _chart_model(4, 1.0, 0.0)
    torch.nn.init.normal_(model.net.out.weight, std=0.3)
    out = model.sample(500, seed=6, steps=4, trajectory=3, symmetry="dihedral")
    assert out.trajectory is not None
    assert torch.allclose(out.trajectory[-1], out.events, atol=1e-12)


def test_relabelling_is_refused_where_it_is_not_a_symmetry_of_the_chart():
    with pytest.raises(ValueError, match="bijective base"):
        GenerativeModel(ModelConfig(model="fm-z", n_particles=4, base="colour", width=16, depth=1)).sample(
            10, seed=0, steps=1, symmetry="cyclic")
    with pytest.raises(ValueError, match="bijective base"):  # at once, for a model symmetrised by its config
        GenerativeModel(ModelConfig(model="nf", n_particles=4, base="colour", symmetry="cyclic"))
    with pytest.raises(ValueError, match="unknown symmetry"):
        ModelConfig(model="nf", n_particles=4, symmetry="rotations")
    unlabelled = GenerativeModel(ModelConfig(model="fm-z", n_particles=4, base="chain", order_by_energy=True,
                                             width=16, depth=1))
    with pytest.raises(ValueError, match="unlabelled"):
        unlabelled.sample(10, seed=0, steps=1, symmetry="cyclic")


@pytest.fixture(scope="module")
def antenna_flow(tmp_path_factory):
    out = tmp_path_factory.mktemp("antenna_flow")
    result = run_cli("train", "--target", "antenna", "--particles", "4", "--ycut", "0.01", "--sqrt-s", "91.19",
                     "--model", "nf", "--base", "chain", "--symmetry", "dihedral", "--max-steps", "20",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out / "model.pt"


def test_cli_samples_and_evaluates_the_symmetrised_model(antenna_flow, tmp_path):
    sample = tmp_path / "sym.h5"
    result = run_cli("sample", str(antenna_flow), "--events", "3000", "--out", str(sample), "--weights",
                     "--seed", "1")  # the model's own symmetry, recorded by train --symmetry
    assert result.returncode == 0, result.stderr
    with h5py.File(sample) as f:
        assert f.attrs["symmetry"] == "dihedral"
        events = torch.from_numpy(f["momenta"][...])
        log_model = torch.from_numpy(f["log_model_density"][...])
    assert bool(torch.isfinite(log_model).all())
    density_out = tmp_path / "density.h5"
    result = run_cli("density", str(antenna_flow), str(sample), "--out", str(density_out), "--draws", "4",
                     "--seed", "5")
    assert result.returncode == 0, result.stderr
    with h5py.File(density_out) as f:
        assert f.attrs["density_symmetry"] == "dihedral"
        estimated = torch.from_numpy(f["log_model_density"][...])
    model, _ = load_model(antenna_flow)
    assert model.config.symmetry == "dihedral"
    expected = model.log_prob(events, generator=torch.Generator().manual_seed(5), draws=4, symmetry="dihedral")
    assert torch.allclose(estimated, expected, rtol=0, atol=1e-9)
    # relabelled events may lie outside the plain model's support
    inside = torch.isfinite(model.space.encode_with_reference(events, torch.Generator())[1])
    assert 0 < float(inside.double().mean()) < 1
    plain = model.log_prob(events[inside], generator=torch.Generator().manual_seed(5), draws=4, symmetry="none")
    assert float((plain - estimated[inside]).abs().median()) > 0.05  # the symmetrised density is another


def test_cli_samples_the_plain_model_when_asked(antenna_flow, tmp_path):
    sample = tmp_path / "plain.h5"
    result = run_cli("sample", str(antenna_flow), "--events", "500", "--out", str(sample), "--symmetry", "none")
    assert result.returncode == 0, result.stderr
    with h5py.File(sample) as f:
        assert f.attrs["symmetry"] == "none"
        events = torch.from_numpy(f["momenta"][...])
    model, _ = load_model(antenna_flow)
    # not relabelled: inside the chain's own folded cut
    assert bool(torch.isfinite(model.space.encode_with_reference(events, torch.Generator())[1]).all())


def test_symmetrised_training_density_is_the_symmetrised_model_density():
    """The differentiable density the symmetrised flow trains on is the density it samples with."""
    torch.manual_seed(4)
    model = GenerativeModel(ModelConfig(model="nf", n_particles=4, sqrt_s=91.19, base="chain", base_ycut=1e-3,
                                        width=32, depth=2, symmetry="dihedral"))
    model.space.load_state({"base": {"invariant_powers": [0.4, 0.3], "angle_power": 0.3}})
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x = model.noise_prior(2000, torch.Generator().manual_seed(5), torch.device("cpu"))
    with torch.no_grad():
        x = model.net.from_noise(x)[0]
    trained = model.symmetrised_flow_log_prob(x) - model.reference_log_prob(x)
    assert trained.requires_grad
    group = relabelling_group("dihedral", 4)
    generator = torch.Generator()
    sampled = model._symmetrised_log_density(x, model.net.log_prob(x).double() - model.reference_log_prob(x),
                                             group, lambda states: model._state_log_prob(states, 1, "flow", generator))
    assert torch.allclose(trained.detach(), sampled, rtol=0, atol=1e-9)
    plain = model.net.log_prob(x).double() - model.reference_log_prob(x)
    assert float((trained.detach() - plain).abs().median()) > 0.1


def test_cli_refuses_a_symmetry_that_is_not_offered(antenna_flow, tmp_path):
    result = run_cli("sample", str(antenna_flow), "--events", "10", "--out", str(tmp_path / "x.h5"),
                     "--symmetry", "rotations")
    assert result.returncode == 2 and "--symmetry" in result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_uniform_model_symmetrised_stays_uniform():
    """fm-z without a base, untrained: uniform phase space, symmetric already: log density 0."""
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=5, sqrt_s=91.19, width=16, depth=1))
    out = model.sample(500, seed=7, steps=2, density=True, symmetry="dihedral")
    assert out.log_density is not None and float(out.log_density.abs().max()) < 1e-5


def test_partial_runs_are_not_relabelled():
    """A partial run maps given states one to one: a symmetrised model leaves its events in place."""
    torch.manual_seed(0)
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=4, base="chain", width=16, depth=1,
                                        symmetry="dihedral"))
    start = model.noise_prior(200, torch.Generator().manual_seed(1), torch.device("cpu"))
    out = model.sample(200, seed=2, steps=2, start=start, t_start=0.5)
    assert torch.allclose(out.events, model.space.decode(start), atol=1e-12)  # untrained: stands still
    with pytest.raises(ValueError, match="one to one"):
        model.sample(200, seed=2, steps=2, start=start, t_start=0.5, symmetry="cyclic")


def test_massive_particles_are_relabelled_only_among_equal_masses():
    """An untrained z-space model on massive phase space samples uniform massless phase space put on the
    mass shells, a density symmetric in equal masses: symmetrised, it is unchanged (the massive map's
    weight enters every relabelled term)."""
    sqrt_s = 91.19
    equal = GenerativeModel(ModelConfig(model="fm-z", n_particles=4, sqrt_s=sqrt_s, width=16, depth=1,
                                        masses=[5.0] * 4, symmetry="dihedral"))
    symmetrised = equal.sample(500, seed=8, steps=2, density=True).log_density
    plain = equal.sample(500, seed=8, steps=2, density=True, symmetry="none").log_density
    assert symmetrised is not None and plain is not None and float(plain.std()) > 0.05
    assert torch.allclose(symmetrised, plain, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="different masses"):
        GenerativeModel(ModelConfig(model="fm-z", n_particles=4, sqrt_s=sqrt_s, width=16, depth=1,
                                    masses=[5.0, 5.0, 5.0, 0.0], symmetry="cyclic"))
