import math
import signal
from dataclasses import replace

import h5py
import pytest
import torch

import lipsgen
from conftest import run_cli
from lipsgen.cli.main import main
from lipsgen.errors import Terminated
from lipsgen.io import read_events, write_events
from lipsgen.models import MODEL_KINDS, GenerativeModel, ModelConfig, TransformerBackbone
from lipsgen.models.networks import pair_log_angles
from lipsgen.models.processes import FlowMatching, LangevinDiffusion
from lipsgen.targets import QQG, MuonDecay
from lipsgen.training import CheckpointError, TrainConfig, derived_generator, load_model, resolve_preset, train

TINY = dict(width=32, depth=2, heads=2, time_dim=16, schedule="linear:0.002:0.01:40")
QUICK = TrainConfig(steps=12, batch_size=64, warmup_steps=2, checkpoint_every=6, seed=3)
EXACT_MODELS = [m for m, (space, _, _) in MODEL_KINDS.items() if space != "p"]


def conservation(events, sqrt_s=1.0):
    total = events.sum(dim=-2)
    return max(float((total[..., 0] - sqrt_s).abs().max()), float(total[..., 1:].abs().max())) / sqrt_s


@pytest.fixture(scope="module")
def muon():
    return MuonDecay().sample(600, seed=1)


@pytest.fixture(scope="module")
def uniform4():
    return lipsgen.uniform_phase_space(600, 4, seed=2)


@pytest.mark.parametrize("model", list(MODEL_KINDS))
@pytest.mark.parametrize("data", ["muon", "uniform4"])
def test_every_model_trains_and_samples(model, data, request, tmp_path):
    events = request.getfixturevalue(data)
    backbone = "mlp" if data == "muon" else "transformer"
    config = ModelConfig(model=model, n_particles=events.shape[1], target=data, backbone=backbone, **TINY)
    result = train(events, config, QUICK, tmp_path, progress=False)
    assert result.steps == 12 and (tmp_path / "model.pt").exists()
    loaded, _ = load_model(result.model_path)
    steps = loaded.process.default_steps if model == "langevin" else 8
    out = loaded.sample(50, generator=derived_generator(0, "sample"), steps=steps, trajectory=5)
    assert out.events.shape == (50, events.shape[1], 4) and out.events.dtype == torch.float64
    recorded = 2 if model == "nf" else 5  # a flow's run has one step: its start and its end
    assert out.trajectory.shape == (recorded, 50, events.shape[1], 4)
    assert out.times[0] > out.times[-1]  # noise end first
    if model in EXACT_MODELS:
        assert conservation(out.events) <= 1e-12
        assert conservation(out.trajectory) <= 1e-12  # every state of every trajectory
    else:
        assert conservation(out.events) > 1e-4  # the ambient baselines measurably are not exact


def test_training_is_deterministic_and_resume_is_exact(muon, tmp_path):
    config = ModelConfig(model="fm-z", n_particles=3, target="muon", **TINY)
    settings = replace(QUICK, steps=20, checkpoint_every=5)
    a = train(muon, config, settings, tmp_path / "a", progress=False)
    b = train(muon, config, settings, tmp_path / "b", progress=False)
    partial = train(muon, config, settings, tmp_path / "c", progress=False, stop_after=7)
    assert partial.steps == 7 and not (tmp_path / "c" / "model.pt").exists()
    resumed = train(muon, config, settings, tmp_path / "c", progress=False, resume=True)
    assert resumed.steps == 20
    states = [torch.load(r.model_path, weights_only=True) for r in (a, b, resumed)]
    for key in states[0]["ema"]:
        assert torch.equal(states[0]["ema"][key], states[1]["ema"][key])
        assert torch.equal(states[0]["ema"][key], states[2]["ema"][key])
        assert torch.equal(states[0]["net"][key], states[2]["net"][key])


def test_ema_weights_average_the_trajectory_of_the_weights(muon, tmp_path):
    """The EMA weights after step s are ``d_s ema + (1 - d_s) w_s`` with ``d_s = min(decay, (1 + s) /
    (10 + s))`` (s from 0), starting from the initial weights: recomputed from the net weights of
    every step (a run stopped and resumed one step at a time, which is exact)."""
    config = ModelConfig(model="fm-z", n_particles=3, target="muon", **TINY)
    settings = replace(QUICK, steps=4, ema_decay=0.5, checkpoint_every=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        expected = {k: v.double() for k, v in GenerativeModel(config).net.state_dict().items()}
    for step in range(settings.steps):
        result = train(muon, config, settings, tmp_path, progress=False, stop_after=1, resume=step > 0)
        state = torch.load(result.model_path, weights_only=True)
        decay = min(0.5, (1 + step) / (10 + step))
        expected = {k: decay * v + (1 - decay) * state["net"][k].double() for k, v in expected.items()}
        assert not all(torch.equal(state["ema"][k], state["net"][k]) for k in expected)
        for key, value in expected.items():
            torch.testing.assert_close(state["ema"][key].double(), value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_checkpoints_and_resumes_exactly(muon, tmp_path, monkeypatch, signum):
    """A signal mid-run (Ctrl-C, or SIGTERM from kill / timeout / a batch system) is held until
    the optimiser step ends; the run then checkpoints and stops, and resuming it gives the
    uninterrupted result bit for bit."""
    config = ModelConfig(model="fm-z", n_particles=3, target="muon", **TINY)
    settings = replace(QUICK, steps=12, checkpoint_every=100)
    whole = train(muon, config, settings, tmp_path / "whole", progress=False)
    original_loss, calls = FlowMatching.loss, []

    def loss_then_signal(self, net, batch, generator):
        calls.append(1)
        if len(calls) == 5:
            signal.raise_signal(signum)  # arrives in the middle of step 5
        return original_loss(self, net, batch, generator)

    monkeypatch.setattr(FlowMatching, "loss", loss_then_signal)
    expected = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(expected):
        train(muon, config, settings, tmp_path / "cut", progress=False)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 5
    monkeypatch.setattr(FlowMatching, "loss", original_loss)
    resumed = train(muon, config, settings, tmp_path / "cut", progress=False, resume=True)
    a, b = (torch.load(r.model_path, weights_only=True) for r in (whole, resumed))
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    with pytest.raises(CheckpointError, match=r"different training settings \(lr: 0.001 in the checkpoint, 0.002 now"):
        train(muon, config, replace(settings, lr=2e-3), tmp_path / "cut", progress=False, resume=True)


def test_checkpoint_round_trip_reproduces_samples(muon, tmp_path):
    config = ModelConfig(model="zdiff", n_particles=3, target="muon", **TINY)
    train(muon, config, QUICK, tmp_path, progress=False)
    model, state = load_model(tmp_path / "model.pt")
    again, _ = load_model(tmp_path / "model.pt")
    x = model.sample(40, generator=derived_generator(1, "sample"), steps=10).events
    y = again.sample(40, generator=derived_generator(1, "sample"), steps=10).events
    assert torch.equal(x, y)
    assert state["model_config"]["model"] == "zdiff" and state["train_config"]["seed"] == 3
    assert state["schedule"]["process"] == "VPDiffusion"


def test_mismatched_checkpoints_are_refused(muon, tmp_path):
    config = ModelConfig(model="fm-q", n_particles=3, target="muon", **TINY)
    train(muon, config, QUICK, tmp_path, progress=False)
    other = replace(config, model="fm-z")
    with pytest.raises(CheckpointError, match="model: 'fm-z' != 'fm-q'"):
        load_model(tmp_path / "model.pt", expect=other)
    with pytest.raises(CheckpointError, match="cannot resume a different model"):
        train(muon, replace(config, width=64), QUICK, tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="target: 'qqg' != 'muon'"):
        load_model(tmp_path / "model.pt", expect=replace(config, target="qqg"))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((tmp_path / "model.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"not a readable lipsgen checkpoint, truncated or damaged \([^\n]*\)$"):
        load_model(corrupt)
    flipped = bytearray((tmp_path / "model.pt").read_bytes())
    flipped[len(flipped) // 2] ^= 0x10  # one bit, inside the weights
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        load_model(corrupt)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_model(tmp_path / "missing.pt")
    for garbage in (b"hello, this is a text file\n", b"e"):  # unpickling these raised KeyError, IndexError
        corrupt.write_bytes(garbage)
        with pytest.raises(CheckpointError, match="not a readable lipsgen checkpoint"):
            load_model(corrupt)


def test_transformer_is_permutation_equivariant():
    torch.manual_seed(0)
    net = TransformerBackbone(6, width=32, depth=2, heads=4, time_dim=16).double()
    torch.nn.init.normal_(net.out.weight)  # the zero-initialised output would hide everything
    x = torch.randn(8, 6, 3, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64)
    perm = torch.randperm(6)
    out = net(x, t)
    assert out.abs().max() > 0.1
    torch.testing.assert_close(net(x[:, perm], t), out[:, perm], rtol=0, atol=1e-12)


def test_relative_output_is_equivariant_and_moves_particles_along_their_offsets():
    torch.manual_seed(0)
    n, heads = 6, 4
    net = TransformerBackbone(n, width=32, depth=2, heads=heads, time_dim=16, relative_output=True).double()
    x = torch.randn(8, n, 3, dtype=torch.float64)
    t = torch.rand(8, dtype=torch.float64)
    assert net(x, t).abs().max() == 0  # starts as the reference field, as without it
    torch.nn.init.normal_(net.relative.coefficients.weight)
    perm = torch.randperm(n)
    out = net(x, t)
    assert out.abs().max() > 0.1
    torch.testing.assert_close(net(x[:, perm], t), out[:, perm], rtol=0, atol=1e-12)
    # uniform attention and constant coefficients: the mean offset to the others, and the mean turn
    # towards their directions at particle i's own radius
    relative = net.relative
    with torch.no_grad():
        for layer in (relative.qk, relative.pair_bias, relative.coefficients):
            layer.weight.zero_()
            layer.bias.zero_()
        # summed over the heads: offsets x 1, turns x -2, radial steps x 3, own direction x 0.5
        for channel, total in enumerate((1.0, -2.0, 3.0, 0.5)):
            relative.coefficients.bias[channel * heads:(channel + 1) * heads] = total / heads
    h = torch.randn(8, n, 32, dtype=torch.float64)
    pairs = torch.randn(8, n, n, 16, dtype=torch.float64)
    r = x.norm(dim=-1, keepdim=True)
    u = x / r

    def others(v):
        return (v.sum(1, keepdim=True) - v) / (n - 1)

    expected = (others(x) - x) - 2 * r * (others(u) - u) + 3 * u * (others(r) - r) + 0.5 * u
    torch.testing.assert_close(relative(h, x, pairs), expected, rtol=1e-12, atol=1e-12)


def test_relative_updates_move_the_particles_and_the_pair_angles_follow_them():
    torch.manual_seed(1)
    n, heads = 5, 2
    net = TransformerBackbone(n, width=16, depth=1, heads=heads, time_dim=8, relative_output=True,
                              relative_updates=True).double()
    x = torch.randn(6, n, 3, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64)
    assert net(x, t).abs().max() == 0  # starts as the reference field
    for relative in (net.relative, net.updates[0]):
        torch.nn.init.normal_(relative.coefficients.weight)
    perm = torch.randperm(n)
    out = net(x, t)
    assert out.abs().max() > 0.1
    torch.testing.assert_close(net(x[:, perm], t), out[:, perm], rtol=0, atol=1e-12)
    # the block's update: uniform attention, offsets x 1, so every particle moves to the mean of the others;
    # the output: the displacement, plus the mean offset among the moved particles under attention from
    # their recomputed pair angles (the pair bias alone)
    update, relative = net.updates[0], net.relative
    with torch.no_grad():
        for layer in (update.qk, update.pair_bias, update.coefficients, relative.qk, relative.coefficients):
            layer.weight.zero_()
            layer.bias.zero_()
        update.coefficients.bias[:heads] = 1.0 / heads
        relative.coefficients.bias[:heads] = 1.0 / heads
    moved = (x.sum(1, keepdim=True) - x) / (n - 1)
    with torch.no_grad():
        bias = relative.pair_bias(net.pair_embed(pair_log_angles(moved).unsqueeze(-1))).permute(0, 3, 1, 2)
        weights = bias.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf")).softmax(dim=-1)
        offsets = torch.einsum("bhij,bjc->bhic", weights, moved) - moved.unsqueeze(1)
        expected = (moved - x) + offsets.mean(dim=1)
        torch.testing.assert_close(net(x, t), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="needs relative_output"):
        TransformerBackbone(n, width=16, depth=1, heads=heads, relative_updates=True)
    with pytest.raises(ValueError, match="set relative_output too"):
        ModelConfig(model="fm-z", n_particles=3, backbone="transformer", relative_updates=True)


def test_token_updates_add_the_moved_particles_features_to_their_tokens():
    from lipsgen.models.networks import token_features

    torch.manual_seed(2)
    n, heads, width = 5, 2, 16
    net = TransformerBackbone(n, width=width, depth=1, heads=heads, time_dim=8, relative_output=True,
                              relative_updates=True, token_updates=True).double()
    x = torch.randn(6, n, 3, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64)
    assert net(x, t).abs().max() == 0  # starts as the reference field
    update, embed = net.updates[0], net.token_updates[0]
    with torch.no_grad():
        torch.nn.init.normal_(net.out.weight)
        torch.nn.init.normal_(embed.weight)
        torch.nn.init.normal_(embed.bias)
        for layer in (update.qk, update.pair_bias, update.coefficients):
            layer.weight.zero_()
            layer.bias.zero_()
        update.coefficients.bias[:heads] = 1.0 / heads  # every particle moved to the mean of the others
    perm = torch.randperm(n)
    torch.testing.assert_close(net(x[:, perm], t), net(x, t)[:, perm], rtol=0, atol=1e-12)
    # the tokens the output reads: the block's, plus the linear embedding of the moved particles' features
    seen = []
    handle = net.norm.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        net(x, t)
        handle.remove()
        pairs = net.pair_embed(pair_log_angles(x).unsqueeze(-1))
        block = net.blocks[0](net.embed(token_features(x)), net.time(t), pairs)
        moved = (x.sum(1, keepdim=True) - x) / (n - 1)
        torch.testing.assert_close(seen[0], block + embed(token_features(moved)), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="needs relative_updates"):
        TransformerBackbone(n, width=16, depth=1, heads=heads, relative_output=True, token_updates=True)
    with pytest.raises(ValueError, match="set relative_updates too"):
        ModelConfig(model="fm-z", n_particles=3, backbone="transformer", relative_output=True, token_updates=True)


def test_relative_output_is_refused_where_there_are_no_particle_tokens():
    for bad in (dict(model="fm-z", backbone="mlp"), dict(model="nf", backbone="transformer"),
                dict(model="fm-z", backbone="transformer", base="chain")):
        with pytest.raises(ValueError, match="relative_output"):
            ModelConfig(n_particles=3, relative_output=True, **bad)
    assert ModelConfig(model="fm-q", n_particles=3, backbone="transformer", relative_output=True).relative_output


def test_pair_log_angles_match_the_opening_angles():
    x = torch.randn(5, 4, 3, dtype=torch.float64) * torch.rand(5, 4, 1, dtype=torch.float64)
    x[0, 1] = x[0, 0] * 3 + 1e-4 * torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)  # nearly collinear
    logs = pair_log_angles(x)
    n = x / x.norm(dim=-1, keepdim=True)
    theta = torch.acos((n.unsqueeze(2) * n.unsqueeze(1)).sum(-1).clamp(-1, 1))
    off = ~torch.eye(4, dtype=torch.bool)
    torch.testing.assert_close(logs[:, off], torch.log(torch.sin(theta / 2) ** 2)[:, off], rtol=1e-6, atol=1e-6)
    assert logs[0, 0, 1] < -15  # small angles stay resolved (acos would lose them)
    assert torch.all(logs[:, ~off] == 0)
    torch.testing.assert_close(logs, logs.transpose(1, 2), rtol=0, atol=0)


@pytest.mark.parametrize("backbone", ["mlp", "transformer"])
def test_pair_features_reach_the_output(backbone):
    torch.manual_seed(0)
    kwargs = dict(backbone=backbone, width=32, depth=2, time_dim=16)
    net = GenerativeModel(ModelConfig(model="fm-q", n_particles=4, **kwargs)).net
    without = GenerativeModel(ModelConfig(model="fm-q", n_particles=4, pair_features=False, **kwargs)).net
    assert sum(p.numel() for p in net.parameters()) > sum(p.numel() for p in without.parameters())
    torch.nn.init.normal_(net.out.weight)
    x, t = torch.randn(16, 4, 3), torch.rand(16)
    before = net(x, t)
    with torch.no_grad():  # cut the pair pathway: the output must change
        if backbone == "mlp":
            net.hidden[0].weight[:, -6:] = 0  # the 6 pair columns follow the token and time inputs
        else:
            for block in net.blocks:
                block.pair_bias.weight.zero_()
                block.pair_bias.bias.zero_()
    assert (net(x, t) - before).abs().max() > 1e-3


def test_cpu_preset_sizes():
    mlp, mlp_train = resolve_preset("cpu", ModelConfig(model="fm-z", n_particles=3, target="qqg"))
    langevin, langevin_train = resolve_preset("cpu", ModelConfig(model="langevin", n_particles=3, target="qqg"))
    sarge, sarge_train = resolve_preset("cpu", ModelConfig(model="langevin", n_particles=10, target="sarge",
                                                           backbone="transformer"))
    flow, flow_train = resolve_preset("cpu", ModelConfig(model="fm-z", n_particles=10, backbone="transformer"))
    assert (mlp.width, mlp.depth, mlp_train.steps) == (256, 4, 15_000)
    assert (langevin.schedule, langevin.divergence, langevin_train.steps) == ("smooth", "exact", 12_000)
    assert (langevin.drift, langevin.eps, sarge.drift) == ("regularised", 0.2, "regularised")
    assert (sarge.width, sarge.divergence, sarge_train.steps) == (64, "hutchinson", 3000)
    assert (flow.width, flow.depth, flow_train.steps, flow_train.batch_size) == (64, 2, 6000, 256)
    paper, _ = resolve_preset("paper-singular", ModelConfig(model="langevin", n_particles=3))
    assert (paper.schedule, paper.drift, paper.divergence) == ("singular", "regularised", "hutchinson")


def test_hutchinson_divergence_is_unbiased_for_the_exact_one():
    torch.manual_seed(0)
    config = ModelConfig(model="langevin", n_particles=3, **TINY)
    model = GenerativeModel(config)
    torch.nn.init.normal_(model.net.out.weight, std=0.1)
    x = lipsgen.sample_prior(64, 3, seed=4).float()
    batch = {"x": x, "k": torch.randint(1, 41, (64,), generator=torch.Generator().manual_seed(1))}
    exact = LangevinDiffusion("linear:0.002:0.01:40", divergence="exact").loss(
        model.net, batch, torch.Generator()).detach()
    hutch = LangevinDiffusion("linear:0.002:0.01:40", divergence="hutchinson", probes=2000).loss(
        model.net, batch, torch.Generator().manual_seed(2)).detach()
    assert hutch.item() == pytest.approx(exact.item(), rel=0.05, abs=1e-3)


def test_langevin_reverse_variants_and_step_check():
    config = ModelConfig(model="langevin", n_particles=3, variance="ratio", drift="regularised", **TINY)
    model = GenerativeModel(config)
    out = model.sample(30, generator=torch.Generator().manual_seed(0), trajectory=3)
    assert conservation(out.trajectory) <= 1e-12
    with pytest.raises(ValueError, match="fixes 40 steps"):
        model.sample(5, generator=torch.Generator(), steps=10)
    with pytest.raises(ValueError, match="solver 'heun' is not available"):
        model.sample(5, generator=torch.Generator(), solver="heun")


def test_cli_train_sample_trajectory_and_partial(tmp_path, muon):
    data = tmp_path / "muon.h5"
    write_events(data, muon, {"target": "muon", "sqrt_s": 1.0})
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "fm-z", "--max-steps", "10", "--out", str(run)]) == 0
    out = tmp_path / "s.h5"
    assert main(["sample", str(run / "model.pt"), "--events", "120", "--out", str(out), "--steps", "6",
                 "--solver", "heun", "--trajectory", "4", "--batch-size", "50"]) == 0
    events, attributes = read_events(out)
    assert events.shape == (120, 3, 4) and attributes["model"] == "fm-z" and attributes["target"] == "muon"
    import h5py
    with h5py.File(out) as f:
        trajectory = torch.from_numpy(f["trajectory"][...])
        times = f["trajectory_times"][...]
    assert trajectory.shape == (4, 120, 3, 4) and times[0] == 1.0 and times[-1] == 0.0
    assert conservation(trajectory) <= 1e-12
    partial = tmp_path / "p.h5"
    assert main(["sample", str(run / "model.pt"), "--events", "100", "--out", str(partial),
                 "--from-data", str(data), "--t", "0.2", "--steps", "4"]) == 0
    assert read_events(partial)[1]["t"] == 0.2


def test_cli_bad_input(tmp_path, muon):
    data = tmp_path / "muon.h5"
    write_events(data, muon, {"target": "muon", "sqrt_s": 1.0})
    result = run_cli("train", "--data", str(tmp_path / "none.h5"), "--model", "zdiff", "--out", str(tmp_path / "r"))
    assert result.returncode == 1 and "no such event file" in result.stderr
    result = run_cli("train", "--data", str(data), "--model", "gan", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "invalid choice: 'gan'" in result.stderr
    result = run_cli("train", "--data", str(data), "--model", "zdiff", "--preset", "huge", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "invalid choice: 'huge'" in result.stderr
    nan = muon.clone()
    nan[5, 1, 2] = float("nan")
    bad = tmp_path / "nan.npz"
    write_events(bad, nan, {"target": "muon", "sqrt_s": 1.0})
    result = run_cli("train", "--data", str(bad), "--model", "zdiff", "--out", str(tmp_path / "r"))
    assert result.returncode == 1 and "event 5, particle 1 has a NaN" in result.stderr
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "zdiff", "--max-steps", "4", "--out", str(run)]) == 0
    assert main(["train", "--data", str(data), "--model", "zdiff", "--max-steps", "4", "--out", str(run)]) == 1
    other = tmp_path / "four.h5"
    write_events(other, lipsgen.uniform_phase_space(50, 4, seed=1), {"target": "uniform", "sqrt_s": 1.0})
    result = run_cli("sample", str(run / "model.pt"), "--events", "10", "--out", str(tmp_path / "x.h5"),
                     "--from-data", str(other), "--t", "0.5")
    assert result.returncode == 1 and "4 particles, the model has 3" in result.stderr
    assert not (tmp_path / "x.h5").exists()
    result = run_cli("sample", str(run / "model.pt"), "--events", "10", "--out", str(tmp_path / "x.h5"),
                     "--from-data", str(data))
    assert result.returncode == 1 and "needs both from_data and t" in result.stderr
    result = run_cli("sample", str(tmp_path / "none.pt"), "--events", "10", "--out", str(tmp_path / "x.h5"))
    assert result.returncode == 1 and "no such checkpoint" in result.stderr


def test_conservation_metric_and_sample_attributes(tmp_path, muon):
    from lipsgen.evaluation import conservation_metric, event_violations

    exact = conservation_metric(muon)
    assert exact.energy < 1e-13 and exact.momentum < 1e-13
    shifted = muon.clone()
    shifted[:, 0, 0] += 0.01  # energy off by 0.01 in every event
    shifted[:5, 1, 3] += 0.02  # and p_z by 0.02 in the first five
    metric = conservation_metric(shifted)
    median = shifted[..., 0].median(dim=-1).values
    energy, momentum = event_violations(shifted)
    assert energy.shape == momentum.shape == (len(muon),)
    assert torch.allclose(energy, 0.01 / median, rtol=1e-9)
    assert torch.allclose(momentum[:5], 0.02 / median[:5], rtol=1e-9) and momentum[5:].max() < 1e-13
    assert metric.energy == pytest.approx(float((0.01 / median).mean()), rel=1e-9)
    assert metric.max_energy == pytest.approx(0.01, rel=1e-9)
    data = tmp_path / "muon.h5"
    write_events(data, muon, {"target": "muon", "sqrt_s": 1.0})
    for model in ("pfm", "fm-z"):
        run = tmp_path / model
        assert main(["train", "--data", str(data), "--model", model, "--max-steps", "5", "--out", str(run)]) == 0
        out = tmp_path / f"{model}.h5"
        assert main(["sample", str(run / "model.pt"), "--events", "50", "--out", str(out), "--steps", "5"]) == 0
        attributes = read_events(out)[1]
        if model == "pfm":
            assert attributes["conservation_energy"] > 1e-3 and not attributes["exact"]
        else:
            assert attributes["conservation_max_energy"] < 1e-12 and attributes["exact"]


def test_sampling_applies_the_training_targets_cuts(tmp_path):
    target = QQG(ycut=0.05)  # a large cut, so an untrained model leaks across it
    data = tmp_path / "qqg.h5"
    write_events(data, target.sample(400, seed=1), {"target": "qqg", "ycut": 0.05, "sqrt_s": 1.0, "n_particles": 3})
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "fm-z", "--max-steps", "5", "--out", str(run)]) == 0
    assert torch.load(run / "model.pt", weights_only=True)["data"]["ycut"] == 0.05
    plain, cut = tmp_path / "plain.h5", tmp_path / "cut.h5"
    assert main(["sample", str(run / "model.pt"), "--events", "300", "--out", str(plain), "--steps", "5"]) == 0
    assert main(["sample", str(run / "model.pt"), "--events", "300", "--out", str(cut), "--steps", "5",
                 "--apply-cuts", "--trajectory", "3", "--batch-size", "128"]) == 0
    leaked = 1 - float(target.in_support(read_events(plain)[0]).double().mean())
    assert leaked > 0.1
    events, attributes = read_events(cut)
    assert len(events) == 300 and bool(target.in_support(events).all())
    assert attributes["support_acceptance"] == pytest.approx(1 - leaked, abs=0.1)
    assert '"ycut": 0.05' in attributes["cuts"]
    conservation = lipsgen.evaluation.conservation_metric(events)
    assert conservation.max_energy < 1e-13 and conservation.max_momentum < 1e-13
    with h5py.File(cut) as f:  # the kept trajectories are those of the kept events
        assert f["trajectory"].shape == (3, 300, 3, 4)
        assert (f["trajectory"][-1] == f["momenta"][...]).all()
    # a checkpoint without the training data's attributes cannot know the cuts
    state = torch.load(run / "model.pt", weights_only=True)
    del state["data"]
    torch.save(state, tmp_path / "old.pt")
    result = run_cli("sample", str(tmp_path / "old.pt"), "--events", "10", "--out", str(tmp_path / "x.h5"),
                     "--apply-cuts")
    assert result.returncode == 1 and "cuts of its target are unknown" in result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_a_finished_run_can_be_extended(tmp_path, muon):
    data = tmp_path / "muon.h5"
    write_events(data, muon, {"target": "muon", "sqrt_s": 1.0})
    run = tmp_path / "run"
    args = ("train", "--data", str(data), "--model", "fm-z", "--out", str(run))
    assert run_cli(*args, "--max-steps", "4").returncode == 0
    result = run_cli(*args, "--resume", "--max-steps", "9")
    assert result.returncode == 0 and "9 steps" in result.stderr
    assert torch.load(run / "model.pt", weights_only=True)["step"] == 9
    result = run_cli(*args, "--resume", "--max-steps", "3")
    assert result.returncode == 1 and "at step 9, beyond the 3 steps asked for" in result.stderr


def test_training_leaves_the_callers_global_random_stream_alone(tmp_path):
    events = MuonDecay().sample(300, seed=1)
    config = ModelConfig(model="fm-z", n_particles=3, width=16, depth=1, time_dim=8)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = train(events, config, QUICK, tmp_path / "a")
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(999)  # a different caller state: the same model from the same seed
    second = train(events, config, QUICK, tmp_path / "b")
    a, b = (torch.load(r.model_path, weights_only=False)["net"] for r in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_flow_matching_time_power_draws_training_times_towards_the_data_end():
    """time_power p: training times t = u^p, u uniform, so E[t] = 1 / (p + 1) (1/3 at p = 2: towards
    the data end, t = 0)."""
    for bad in (dict(model="fm-z", time_power=0.0), dict(model="fm-z", time_power=float("inf")),
                dict(model="zdiff", time_power=2.0)):
        with pytest.raises(ValueError, match="time_power"):
            ModelConfig(n_particles=3, **bad)
    model = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, width=8, depth=1, time_power=2.0))
    seen: list[torch.Tensor] = []

    class Recorder(torch.nn.Module):
        def forward(self, x, t):
            seen.append(t.detach().clone())
            return torch.zeros_like(x)

    x0 = torch.randn((20_000, 3, 3), generator=torch.Generator().manual_seed(1))
    model.process.loss(Recorder(), {"x0": x0}, torch.Generator().manual_seed(2))
    t = torch.cat(seen).double()
    assert abs(float(t.mean()) - 1 / 3) < 4 * float(t.std()) / math.sqrt(len(t))
    # the sampler's steps follow the same law, t_k = (1 - k / K)^2; a partial run from t takes the full grid's
    # steps below t
    assert model.process.time_grid(4, 1.0) == pytest.approx([1.0, 9 / 16, 1 / 4, 1 / 16, 0.0], abs=1e-15)
    full = model.process.time_grid(100, 1.0)
    steps = model.process.partial_steps(100, 0.25)
    assert steps == 50 and model.process.time_grid(steps, 0.25) == pytest.approx(full[-51:], abs=1e-15)


def test_a_diverged_sampler_run_is_named_as_such():
    model = GenerativeModel(ModelConfig("fm-z", 3, width=16, depth=1))
    with torch.no_grad():
        next(model.net.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="the sampler diverged: 5 of 5 runs"):
        model.sample(5, seed=1, steps=2)
    with pytest.raises(FloatingPointError, match="diverged|singular"):
        model.sample(5, seed=1, steps=2, density=True)
