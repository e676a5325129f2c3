"""The fibre and particle couplings of flow matching and the event-invariant network inputs (issues 16, 23)."""

import itertools
import math

import pytest
import torch
from scipy import stats

import lipsgen
from lipsgen.coordinates.rambo import rambo_map
from lipsgen.coordinates.zspace import z_to_q
from lipsgen.kinematics import scaled_pair_invariants
from lipsgen.models import GenerativeModel, ModelConfig
from lipsgen.models.couplings import align_particles
from lipsgen.models.networks import event_invariants
from lipsgen.models.spaces import make_space
from lipsgen.targets import MuonDecay, Sarge
from lipsgen.training import load_model

CPU = torch.device("cpu")


def _fibre(space_name, x):
    q = x.double() if space_name == "q" else z_to_q(x.double())
    result = rambo_map(q)
    return result.p, result.b, result.x


@pytest.mark.parametrize("space_name", ["q", "z"])
def test_align_fibre_keeps_the_event_and_takes_the_other_fibre(space_name):
    space = make_space(space_name, 4, 1.0, "exact")
    events = lipsgen.uniform_phase_space(300, 4, seed=4)
    x0 = space.encode(events, torch.Generator().manual_seed(1)).double()
    x1 = space.prior(300, torch.Generator().manual_seed(2), CPU).double()
    aligned = space.align_fibre(x0, x1)
    p, b, x = _fibre(space_name, aligned)
    _, b1, x1_scale = _fibre(space_name, x1)
    torch.testing.assert_close(p, _fibre(space_name, x0)[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(p, events, rtol=0, atol=1e-6)  # x0 was encoded in float32
    torch.testing.assert_close(b, b1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x, x1_scale, rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="no RAMBO fibre"):
        make_space("p", 4, 1.0, "exact").align_fibre(x0, x1)


def test_fibre_coupling_has_the_lifted_data_as_its_marginal():
    # Uniform events lifted with the fibres of independent prior draws are prior draws themselves:
    # in z-space exactly N(0, I). A fibre taken from anywhere else (the data's own, a fixed one)
    # would not be.
    n = 40_000
    space = make_space("z", 3, 1.0, "exact")
    events = lipsgen.uniform_phase_space(n, 3, seed=5)
    x0 = space.encode(events, torch.Generator().manual_seed(6)).double()
    x1 = space.prior(n, torch.Generator().manual_seed(7), CPU).double()
    aligned = space.align_fibre(x0, x1).flatten(1)
    for column in (0, 4, 8):
        assert stats.kstest(aligned[:, column].numpy(), "norm").pvalue > 1e-3
    assert stats.kstest(aligned.square().sum(1).numpy(), stats.chi2(9).cdf).pvalue > 1e-3
    # and the pairs are coupled: the aligned states sit close to their partners
    independent = (x0.flatten(1) - x1.flatten(1)).square().sum(1).mean()
    coupled = (aligned - x1.flatten(1)).square().sum(1).mean()
    assert coupled < 0.8 * independent


def test_fibre_coupling_is_offered_for_flow_matching_from_the_rambo_prior_only():
    for model in ("fm-q", "fm-z"):
        GenerativeModel(ModelConfig(model=model, n_particles=3, width=16, depth=1, time_dim=8, coupling="fibre"))
    for model in ("fm-fitted", "zdiff", "pfm", "langevin"):
        with pytest.raises(ValueError, match="coupling 'fibre' needs flow matching"):
            GenerativeModel(ModelConfig(model=model, n_particles=3, coupling="fibre"))
    with pytest.raises(ValueError, match="coupling"):
        ModelConfig(model="fm-z", n_particles=3, coupling="optimal")


def test_event_invariants_are_those_of_the_decoded_event():
    space = make_space("z", 5, 1.0, "exact")
    events = lipsgen.uniform_phase_space(200, 5, seed=8)
    q = lipsgen.coordinates.lift_to_qspace(events, generator=torch.Generator().manual_seed(9))
    x = lipsgen.coordinates.q_to_z(q)
    log_y, fractions = event_invariants(space.event_momenta(x))
    y = scaled_pair_invariants(events)
    off = ~torch.eye(5, dtype=torch.bool)
    torch.testing.assert_close(log_y[:, off], torch.log(y[:, off]), rtol=0, atol=1e-9)
    torch.testing.assert_close(fractions, 2 * events[..., 0], rtol=0, atol=1e-12)
    assert torch.all(log_y[:, ~off] == 0)


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_invariant_features_reach_the_output(backbone):
    torch.manual_seed(0)
    config = ModelConfig(model="fm-z", n_particles=4, backbone=backbone, width=32, depth=2, time_dim=16,
                         invariant_features=True)
    net = GenerativeModel(config).net
    torch.nn.init.normal_(net.out.weight)
    x, t = torch.randn(16, 4, 3), torch.rand(16)
    before = net(x, t)
    with torch.no_grad():  # cut the invariant pathway: the output must change
        if backbone == "mlp":
            net.hidden[0].weight[:, -10:] = 0  # 6 log y_ij and 4 x_k follow the other inputs
        else:
            net.embed.weight[:, -1] = 0  # x_k
            net.pair_embed[0].weight[:, -1] = 0  # log y_ij
    assert (net(x, t) - before).abs().max() > 1e-3


def test_the_flow_matching_loss_pairs_data_with_the_prior_through_the_coupling():
    events = lipsgen.uniform_phase_space(2000, 3, seed=10)
    losses = {}
    for coupling in ("independent", "fibre"):
        model = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, width=16, depth=1, time_dim=8,
                                            coupling=coupling))
        x0 = model.space.encode(events, torch.Generator().manual_seed(11))
        # the untrained network returns 0: the loss is the mean |x_prior - x_data|^2 of the pairs
        with torch.no_grad():
            losses[coupling] = float(model.process.loss(model.net, {"x0": x0}, torch.Generator().manual_seed(12)))
    assert losses["fibre"] < 0.8 * losses["independent"]


def test_invariant_features_train_under_implicit_score_matching_and_keep_exact_densities(tmp_path):
    from lipsgen.training import TrainConfig, train

    events = MuonDecay().sample(256, seed=13)
    quick = TrainConfig(steps=3, batch_size=64, warmup_steps=1, checkpoint_every=3, seed=1)
    # Langevin's loss differentiates the network's divergence: second order through the invariants
    langevin = ModelConfig(model="langevin", n_particles=3, width=16, depth=1, time_dim=8,
                           schedule="linear:0.002:0.01:20", invariant_features=True)
    result = train(events, langevin, quick, tmp_path / "langevin")
    assert result.steps == 3 and math.isfinite(result.final_loss)
    # z-space: the exact density differentiates through z -> q inside the network
    fm = ModelConfig(model="fm-z", n_particles=3, width=16, depth=1, time_dim=8, invariant_features=True)
    model = load_model(train(events, fm, quick, tmp_path / "fm").model_path)[0]
    out = model.sample(50, seed=2, steps=4, density=True)
    assert out.log_density is not None and torch.isfinite(out.log_density).all()
    assert out.log_density.std() > 0


def test_align_particles_relabels_each_event_at_the_least_total_distance():
    generator = torch.Generator().manual_seed(20)
    x0, x1 = torch.randn(200, 4, 3, generator=generator), torch.randn(200, 4, 3, generator=generator)
    aligned = align_particles(x0, x1)
    # each event keeps its particles (a permutation of them) ...
    torch.testing.assert_close(aligned.sort(dim=1).values, x0.sort(dim=1).values, rtol=0, atol=0)
    # ... in the order of least total squared distance to its noise state: all 24 orders checked
    costs = torch.stack([(x0[:, list(p)] - x1).square().sum(dim=(1, 2)) for p in itertools.permutations(range(4))])
    torch.testing.assert_close((aligned - x1).square().sum(dim=(1, 2)), costs.min(0).values, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        align_particles(x0, x1[:, :3])


@pytest.mark.parametrize("sqrt_s", [1.0, 91.19])
def test_particle_coupling_keeps_the_data_law_of_unlabelled_particles(sqrt_s):
    # SARGE events (unlabelled, N = 4) lifted to z-space: relabelled to match independent prior draws,
    # every position still has the law of the unlabelled particles (the pooled one) and the decoded
    # events are the data's; the pairs come closer, which is what the coupling is for
    n, space = 30_000, make_space("z", 4, sqrt_s, "exact")
    events = Sarge(4, 30.0, sqrt_s=sqrt_s).sample(n, seed=21)
    x0 = space.encode(events, torch.Generator().manual_seed(22)).double()
    x1 = space.prior(n, torch.Generator().manual_seed(23), CPU).double()
    aligned = align_particles(x0, x1)
    decoded = space.decode(aligned)
    order = torch.argsort(decoded[..., 0], dim=1)  # the same events, particles in another order
    torch.testing.assert_close(torch.take_along_dim(decoded, order.unsqueeze(-1), 1),
                               torch.take_along_dim(events, torch.argsort(events[..., 0], 1).unsqueeze(-1), 1),
                               rtol=0, atol=1e-5 * sqrt_s)
    radius = aligned.norm(dim=-1).numpy()  # |z_i| of each position against the pooled law
    pooled = x0.norm(dim=-1).flatten().numpy()
    for position in range(4):
        assert stats.ks_2samp(radius[:, position], pooled).pvalue > 1e-3, position
    assert (aligned - x1).square().sum(dim=(1, 2)).mean() < 0.8 * (x0 - x1).square().sum(dim=(1, 2)).mean()


def test_particle_coupling_is_offered_for_unlabelled_particles_from_the_rambo_prior_only():
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, width=16, depth=1, time_dim=8,
                                        coupling="particles"))
    assert model.process.couple is align_particles
    for bad in (dict(model="nf"), dict(model="fm-z", base="chain"), dict(model="zdiff")):
        with pytest.raises(ValueError, match="coupling 'particles' needs flow matching"):
            ModelConfig(n_particles=3, coupling="particles", **bad)
    with pytest.raises(ValueError, match="different masses"):
        ModelConfig(model="fm-z", n_particles=3, coupling="particles", masses=[0.1, 0.2, 0.0])
    with pytest.raises(ValueError, match="relabelling symmetry"):
        ModelConfig(model="fm-z", n_particles=3, coupling="particles", symmetry="cyclic")


def test_particle_coupling_and_relative_output_from_the_command_line(tmp_path):
    from conftest import run_cli

    data, labelled = tmp_path / "sarge.h5", tmp_path / "qqg.h5"
    assert run_cli("data", "sarge", "--particles", "4", "--events", "2000", "--sqrt-s", "91.19", "--permute",
                   "--out", str(data), "--seed", "1").returncode == 0
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--coupling", "particles", "--relative-output",
                     "--relative-updates", "--token-updates", "--time-power", "2", "--max-steps", "20", "--out",
                     str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr
    model, _ = load_model(tmp_path / "m" / "model.pt")
    assert model.config.coupling == "particles" and model.process.couple is align_particles
    assert model.config.relative_output and model.net.relative is not None and model.process.time_power == 2
    assert model.config.relative_updates and len(model.net.updates) == model.config.depth
    assert model.config.token_updates and len(model.net.token_updates) == model.config.depth
    # trained, not left at their zero start
    for layer in (*(r.coefficients for r in (model.net.relative, *model.net.updates)), *model.net.token_updates):
        assert layer.weight.abs().max() > 0
    events = model.sample(200, seed=2).events
    total = events.sum(dim=1)
    torch.testing.assert_close(total, torch.tensor([91.19, 0, 0, 0], dtype=torch.float64).expand_as(total),
                               rtol=0, atol=1e-12 * 91.19)
    assert run_cli("data", "qqg", "--events", "500", "--out", str(labelled), "--seed", "1").returncode == 0
    result = run_cli("train", "--data", str(labelled), "--model", "fm-z", "--coupling", "particles", "--max-steps",
                     "5", "--out", str(tmp_path / "q"))
    assert result.returncode == 1 and "labelled" in result.stderr and not (tmp_path / "q" / "model.pt").exists()
    result = run_cli("train", "--data", str(data), "--model", "nf", "--coupling", "particles", "--out",
                     str(tmp_path / "n"))
    assert result.returncode == 1 and "needs flow matching" in result.stderr
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--backbone", "mlp", "--relative-output",
                     "--out", str(tmp_path / "r"))
    assert result.returncode == 1 and "relative_output" in result.stderr and not (tmp_path / "r").exists()
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--relative-updates",
                     "--out", str(tmp_path / "u"))
    assert result.returncode == 1 and "set relative_output too" in result.stderr and not (tmp_path / "u").exists()
    result = run_cli("train", "--data", str(data), "--model", "fm-z", "--relative-output", "--token-updates",
                     "--out", str(tmp_path / "k"))
    assert result.returncode == 1 and "set relative_updates too" in result.stderr and not (tmp_path / "k").exists()
