"""The q-space Langevin process: its time law and loss weight, the forward-chain cache, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree

from lipsgen.models import GenerativeModel, ModelConfig
from lipsgen.models.processes import LangevinDiffusion
from lipsgen.training import resolve_preset


def early_fraction(process: LangevinDiffusion, fraction: float = 0.2) -> float:
    """Share of the expected loss weight, P(k) w_k, on the first ``fraction`` of the steps."""
    k = torch.arange(1, process.n_steps + 1)
    share = process.step_probabilities() * process.step_weights(k)
    return float(share[: round(fraction * process.n_steps)].sum() / share.sum())


def test_paper_time_law_and_weight_put_the_loss_on_early_steps():
    """The paper's muon loss puts 59% of the loss on k <= 100 of 500; uniform steps with a sigma^2
    weight put 2% there (and most of it on the noisiest half)."""
    paper = LangevinDiffusion("smooth", time_law="paper", loss_weight="paper")
    assert early_fraction(paper) == pytest.approx(0.586, abs=0.005)
    legacy = LangevinDiffusion("smooth", time_law="uniform", loss_weight="sigma2")
    assert early_fraction(legacy) == pytest.approx(0.022, abs=0.002)
    assert 1 - early_fraction(legacy, 0.5) == pytest.approx(0.82, abs=0.01)
    k = torch.tensor([1, 250, 500])
    assert paper.step_weights(k).tolist() == pytest.approx([1.008, 0.51, 0.01])
    probabilities = paper.step_probabilities()
    assert float(probabilities.sum()) == pytest.approx(1.0)
    assert float(probabilities[0] / probabilities[-1]) == pytest.approx((1.008 / 0.01) ** 2)


def test_config_pairs_the_weighting_with_the_lift():
    assert (ModelConfig("langevin", 3).time_law, ModelConfig("langevin", 3).loss_weight) == ("paper", "paper")
    fixed = ModelConfig("langevin", 3, lift="fixed")
    assert (fixed.time_law, fixed.loss_weight) == ("uniform", "sigma2")
    for preset in ("paper-muon", "paper-singular"):
        config, _ = resolve_preset(preset, ModelConfig("langevin", 3))
        assert (config.time_law, config.loss_weight) == ("paper", "paper")
    with pytest.raises(ValueError, match="time_law"):
        LangevinDiffusion(time_law="late")


def test_forward_cache_keeps_states_at_steps_drawn_from_the_time_law():
    process = LangevinDiffusion("linear:0.01:0.01:50", states_per_chain=3)
    x0 = torch.full((20_000, 2, 3), 1.0)
    data = process.prepare_epoch(x0, torch.Generator().manual_seed(1))
    assert data["x"].shape == (60_000, 2, 3) and data["k"].shape == (60_000,)
    counts = torch.bincount(data["k"], minlength=51)[1:].numpy()
    expected = process.step_probabilities().numpy() * len(data["k"])
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    # the kept state at step k is that chain's state after k steps: from x0 = (1, 1, 1) the chain's
    # mean relaxes towards 0 as k grows; each chain contributes its three states (same chain, rows i,
    # i + n, i + 2n) at their own steps
    early, late = data["x"][data["k"] <= 5], data["x"][data["k"] >= 45]
    assert float(early.mean()) > float(late.mean()) + 0.2
    assert len(torch.unique(data["k"].view(3, -1), dim=0)) == 3


def test_loss_applies_the_weight_of_each_events_step():
    """A constant residual c (divergence 0): per event w_k (c^2 |1|^2 / 2 + c sum s_ref)."""
    process = LangevinDiffusion("linear:0.01:0.01:50")
    x = torch.randn(64, 3, 3, generator=torch.Generator().manual_seed(2))
    k = torch.randint(1, 51, (64,), generator=torch.Generator().manual_seed(3))

    class Constant(torch.nn.Module):
        def forward(self, x, t):
            return torch.full_like(x, 0.3) + 0 * x

    got = process.loss(Constant(), {"x": x, "k": k}, torch.Generator())
    per_event = 0.5 * 0.09 * 9 + 0.3 * process.reference(x.double()).flatten(1).sum(1)
    weight = 1 - k.double() / 50 + 0.01
    assert float(got.detach()) == pytest.approx(float((weight * per_event).mean()), rel=1e-5)


class DeviceMixingDetector(TorchFunctionMode):
    """Fails any torch call that mixes tensors of different devices (0-dim CPU scalars aside): on a
    CPU machine with the model on the meta device, this finds every CPU table indexed by, or
    combined with, a device tensor, which on a GPU would crash or copy."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        leaves = _pytree.tree_leaves((args, kwargs or {}))
        devices = {t.device.type for t in leaves if isinstance(t, torch.Tensor) and t.dim() > 0}
        if len(devices) > 1:
            raise AssertionError(f"{getattr(func, '__name__', func)} mixes devices {sorted(devices)}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("loss_weight", ["paper", "sigma2"])
def test_langevin_loss_and_step_stay_on_the_models_device(loss_weight):
    config = ModelConfig("langevin", 3, width=16, depth=1, time_dim=8, schedule="linear:0.01:0.01:20",
                         loss_weight=loss_weight, time_law="uniform")
    model = GenerativeModel(config).to("meta")
    process = model.process
    batch = {"x": torch.randn(8, 3, 3, device="meta"), "k": torch.randint(1, 21, (8,), device="meta")}
    with DeviceMixingDetector():
        loss = process.loss(model.net, batch, torch.Generator())
        assert loss.device.type == "meta"
        # the last step of the reverse chain (no noise draw: a meta device has no generator)
        x, _ = process.sample(model.net, torch.randn(8, 3, 3, device="meta"), steps=20, solver="langevin",
                              generator=torch.Generator(), t_start=1 / 20)
        assert x.device.type == "meta"
    # and the detector does detect: a CPU table indexed by a meta index
    with pytest.raises(AssertionError, match="mixes devices"), DeviceMixingDetector():
        process.sigma2[batch["k"]]


def test_every_trajectory_state_is_exact_with_large_random_network_outputs():
    """Untrained, zero-output networks keep states at the prior; here every network returns large
    random fields (scale 1e2), so the states wander far, and every one must still decode exactly."""

    class Wild(torch.nn.Module):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(9, 9, generator=torch.Generator().manual_seed(seed)))

        def forward(self, x, t):
            return 100.0 * torch.sin(x.flatten(1) @ self.weight * (1 + t.view(-1, 1))).view_as(x)

    rng = np.random.default_rng(5)
    for model_name in ("langevin", "zdiff", "fm-q", "fm-z", "fm-fitted"):
        for _ in range(2):
            seed = int(rng.integers(1 << 30))
            config = ModelConfig(model_name, 3, width=16, depth=1, time_dim=8, schedule="linear:0.001:0.01:15")
            model = GenerativeModel(config)
            model.net = Wild(seed)
            out = model.sample(200, generator=torch.Generator().manual_seed(seed), steps=15, trajectory=16)
            states = out.trajectory
            assert states is not None and torch.isfinite(states).all()
            total = states.sum(dim=-2)
            assert float((total[..., 0] - 1).abs().max()) < 1e-12, model_name
            assert float(total[..., 1:].abs().max()) < 1e-12, model_name
            mass2 = states[..., 0] ** 2 - states[..., 1:].square().sum(-1)
            assert float((mass2.abs() / states[..., 0] ** 2).max()) < 1e-12, model_name


def test_every_reverse_step_uses_its_own_step_size():
    """The step from t = k/n to (k-1)/n, t as the time grid computes it, moves by g_k (the schedule's
    k-th step): x + g_k s_ref(x) for a zero residual and no noise (the last step)."""
    process = LangevinDiffusion("singular")
    grid = process.time_grid(process.n_steps, 1.0)

    class Zero(torch.nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)

    step = process.step(Zero(), "langevin", torch.Generator())
    x = torch.randn((1, 3, 3), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    drift = process.reference(x)
    used = torch.stack([((step(x, t, t_next, True) - x) / drift).mean() for t, t_next in zip(grid, grid[1:])])
    assert torch.allclose(used, process.g.flip(0).to(used), rtol=1e-9)
