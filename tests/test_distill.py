"""Distilled students (lipsgen.training.distillation): against an analytic teacher, their densities
against autograd, and through the command line like any other model.

The analytic teacher: flow matching from N(0, I) to Gaussian states N(mu, sigma^2) in z-space has
the closed-form velocity v(x, t) = -mu + (t - (1 - t) sigma^2) / s_t^2 (x - (1 - t) mu), s_t^2 =
(1 - t)^2 sigma^2 + t^2, whose flow maps z to mu + sigma z: a student that learnt it has that map
and, for the one-pass flow, the Gaussian's density.
"""

from __future__ import annotations

import math
import re

import h5py
import pytest
import torch
from torch import Tensor, nn

from conftest import run_cli
from lipsgen.coordinates.zspace import standard_normal_log_prob
from lipsgen.io import read_events
from lipsgen.models.model import GenerativeModel, ModelConfig
from lipsgen.targets.uniform import uniform_phase_space
from lipsgen.training import TrainConfig, load_model
from lipsgen.training.checkpoint import CheckpointError
from lipsgen.training.distillation import (
    PAIRS_FILE,
    DistillConfig,
    distill_model,
    rollout_loss,
    student_config,
    teacher_pairs,
)

SQRT_S = 91.19
MU = torch.tensor([[0.4, -0.3, 0.2], [-0.1, 0.5, 0.0], [0.3, 0.1, -0.4]])
SIGMA = 0.6


class GaussianVelocity(nn.Module):
    """The exact flow-matching velocity from N(0, I) (t = 1) to N(MU, SIGMA^2) (t = 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the sampler a device

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = t.view(-1, 1, 1).to(x.dtype)
        variance = (1 - t).square() * SIGMA**2 + t.square()
        mu = MU.to(x.dtype)
        return -mu + (t - (1 - t) * SIGMA**2) / variance * (x - (1 - t) * mu)


def analytic_teacher(sqrt_s: float = SQRT_S) -> GenerativeModel:
    teacher = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, sqrt_s=sqrt_s, width=32, depth=2))
    teacher.net = GaussianVelocity()
    return teacher


def gaussian_log_prob(x: Tensor) -> Tensor:
    return (standard_normal_log_prob((x.double() - MU.double()) / SIGMA) - x[0].numel() * math.log(SIGMA))


def test_teacher_pairs_follow_the_closed_form_map():
    teacher = analytic_teacher()
    states = teacher_pairs(teacher, 2000, DistillConfig(method="few-step", steps=2, teacher_steps=100,
                                                                    teacher_solver="heun"),
                           torch.Generator().manual_seed(0), progress=False)
    assert states.shape == (2000, 3, 3, 3)
    z = states[:, 0].double()
    for k, t in enumerate((1.0, 0.5, 0.0)):  # the path's states at the student's grid times
        scale = math.sqrt((1 - t) ** 2 * SIGMA**2 + t**2)
        assert torch.allclose(states[:, k].double(), (1 - t) * MU.double() + scale * z, atol=1e-3)


def test_a_few_step_students_grid_is_the_times_of_its_teachers_states():
    """A teacher trained with time power 2 steps at t = (1 - k/K)^2; its recorded states are there, and
    the few-step student keeps the power so that it steps at the same times."""
    teacher = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, sqrt_s=SQRT_S, width=32, depth=2,
                                          time_power=2.0))
    teacher.net = GaussianVelocity()
    config = DistillConfig(method="few-step", steps=2, teacher_steps=100, teacher_solver="heun")
    states = teacher_pairs(teacher, 2000, config, torch.Generator().manual_seed(0), progress=False)
    times = GenerativeModel(student_config(teacher.config, config)).process.time_grid(config.steps, 1.0)
    assert times == pytest.approx([1.0, 0.25, 0.0], abs=1e-15)
    z = states[:, 0].double()
    for k, t in enumerate(times):
        scale = math.sqrt((1 - t) ** 2 * SIGMA**2 + t**2)
        assert torch.allclose(states[:, k].double(), (1 - t) * MU.double() + scale * z, atol=1e-3)


@pytest.mark.parametrize("method, steps, tolerance", [("flow", 600, 0.06), ("few-step", 400, 0.03)])
def test_students_of_an_analytic_teacher_reproduce_its_map(tmp_path, method, steps, tolerance):
    teacher = analytic_teacher()
    size = dict(width=32, transforms=3) if method == "flow" else {}
    config = DistillConfig(method=method, steps=1, pairs=4096, teacher_steps=100, **size)
    result = distill_model(teacher, tmp_path, config, TrainConfig(steps=steps, batch_size=256, lr=3e-3,
                                                                   warmup_steps=20, checkpoint_every=steps),
                           progress=False)
    student, state = load_model(result.model_path)
    assert student.config.model == ("nf" if method == "flow" else "fm-z")
    assert student.default_steps == 1 and state["data"]["distill_method"] == method
    g = torch.Generator().manual_seed(5)
    z = student.noise_prior(3000, g, torch.device("cpu"))
    with torch.no_grad():
        if method == "flow":
            x = student.net(z, from_noise=True)
        else:
            x, _ = student.process.sample(student.net, z, steps=1, solver="euler", generator=g)
    error = (x.double() - (MU + SIGMA * z).double()).square().mean().sqrt()
    assert error < tolerance, error
    if method == "flow":  # the flow's exact density is the Gaussian's where it learnt the map
        bulk = z.flatten(1).abs().amax(1) < 2.5
        gap = (student.net.log_prob(x[bulk]).double() - gaussian_log_prob(x[bulk])).abs().median()
        assert gap < 0.15, gap


def test_the_rollout_loss_is_zero_on_the_exact_secants_and_not_otherwise():
    """The K-step rollout of a field that takes the straight secant of each teacher segment has zero
    loss; a field off by the step size does not."""
    g = torch.Generator().manual_seed(1)
    states = torch.randn((64, 4, 3, 3), generator=g)  # K = 3
    secants = {round(1 - k / 3, 6): (states[:, k] - states[:, k + 1]) * 3 for k in range(3)}

    class Secant(nn.Module):
        def __init__(self, factor: float) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            return self.factor * secants[round(float(t[0]), 6)]

    assert float(rollout_loss(Secant(1.0), {"states": states})) < 1e-10
    assert float(rollout_loss(Secant(0.5), {"states": states})) > 0.1


@pytest.mark.parametrize("sqrt_s", [1.0, SQRT_S])
@pytest.mark.parametrize("method", ["flow", "few-step"])
def test_a_students_density_is_its_maps_jacobian(tmp_path, method, sqrt_s):
    """The density ``sample(density=True)`` reports equals the noise density over autograd's
    Jacobian determinant of the student's map, relative to uniform phase space; the events are the
    decoded states at the teacher's energy."""
    teacher = analytic_teacher(sqrt_s)
    config = DistillConfig(method=method, steps=2, pairs=512, **(dict(width=16, transforms=2) if method == "flow"
                                                                 else {}))
    result = distill_model(teacher, tmp_path, config, TrainConfig(steps=30, batch_size=128, warmup_steps=5,
                                                                   checkpoint_every=30), progress=False)
    student, _ = load_model(result.model_path)
    out = student.sample(6, seed=9, density=True)
    # replay the seed: sample() draws the noise first from the same generator
    z = student.noise_prior(6, torch.Generator().manual_seed(9), torch.device("cpu"))

    def student_map(flat: Tensor) -> Tensor:
        x = flat.view(1, 3, 3)
        if method == "flow":
            return student.net(x, from_noise=True).flatten()
        for k in range(2):
            x = x - student.net(x, torch.full((1,), 1 - k / 2, dtype=x.dtype)) / 2
        return x.flatten()

    for i in range(6):
        jacobian = torch.autograd.functional.jacobian(student_map, z[i].flatten())
        x = student_map(z[i].flatten()).view(1, 3, 3)
        expected = (standard_normal_log_prob(z[i:i + 1]) - torch.linalg.slogdet(jacobian)[1]
                    - student.reference_log_prob(x))
        assert torch.allclose(out.log_density[i:i + 1], expected, atol=2e-3), (out.log_density[i], expected)
        assert torch.allclose(out.events[i:i + 1], student.space.decode(x), atol=1e-5 * sqrt_s)
    assert torch.allclose(out.events[..., 0].sum(1), torch.full((6,), sqrt_s, dtype=torch.float64), rtol=1e-12)


@pytest.mark.parametrize("method", ["flow", "few-step"])
def test_a_student_starts_from_its_teachers_fitted_base_and_network(tmp_path, method):
    """The student's space is the teacher's, with the base parameters fitted on the teacher's data;
    a few-step student starts from the teacher's network (one step at a vanishing rate keeps it)."""
    from lipsgen.targets.qqg import QQG

    events = QQG(ycut=1e-3, sqrt_s=SQRT_S).sample(4000, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(7)  # not the student's initial weights (seed 0)
    teacher = GenerativeModel(ModelConfig(model="fm-z", n_particles=3, sqrt_s=SQRT_S, base="chain",
                                          base_ycut=1e-3, width=32, depth=2))
    teacher.fit_data(events, torch.Generator().manual_seed(1))
    fitted = teacher.space.state()
    assert fitted != GenerativeModel(teacher.config).space.state()  # fitting moved the base's parameters
    size = dict(width=16, transforms=2) if method == "flow" else {}
    result = distill_model(teacher, tmp_path, DistillConfig(method=method, steps=2, pairs=256, **size),
                           TrainConfig(steps=1, batch_size=64, lr=1e-12, warmup_steps=1, checkpoint_every=1),
                           progress=False)
    student, _ = load_model(result.model_path, weights="net")
    assert student.space.state() == fitted and student.config.base == "chain"
    if method == "few-step":
        for (name, p), q in zip(student.net.state_dict().items(), teacher.net.state_dict().values(), strict=True):
            assert torch.allclose(p, q, atol=1e-9), name


def test_distillation_resumes_exactly_and_refuses_another_teachers_pairs(tmp_path):
    teacher = analytic_teacher()
    config = DistillConfig(method="few-step", steps=2, pairs=600)
    train_config = TrainConfig(steps=8, batch_size=128, warmup_steps=2, checkpoint_every=8)
    straight = distill_model(teacher, tmp_path / "a", config, train_config, progress=False)
    distill_model(teacher, tmp_path / "b", config, train_config, progress=False, stop_after=3)
    resumed = distill_model(teacher, tmp_path / "b", config, train_config, progress=False, resume=True)
    a, _ = load_model(straight.model_path)
    b, _ = load_model(resumed.model_path)
    for (name, p), q in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    with pytest.raises(CheckpointError, match="another teacher or settings.*steps"):
        distill_model(teacher, tmp_path / "b", DistillConfig(method="few-step", steps=3, pairs=600), train_config,
                      progress=False, resume=True)


@pytest.mark.parametrize("method", ["flow", "few-step"])
def test_a_diffusion_teacher_is_distilled_from_its_probability_flow(tmp_path, method):
    """A zdiff teacher's pairs come from its deterministic probability-flow ODE (the same noise gives
    the same sample); its students are an nf and an fm-z model."""
    torch.manual_seed(2)
    teacher = GenerativeModel(ModelConfig(model="zdiff", n_particles=3, sqrt_s=SQRT_S, width=16, depth=1))
    config = DistillConfig(method=method, steps=2, pairs=64, teacher_steps=4,
                           **(dict(width=16, transforms=2) if method == "flow" else {}))
    first, again = (teacher_pairs(teacher, 64, config, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(first, again)
    result = distill_model(teacher, tmp_path, config, TrainConfig(steps=2, batch_size=32, warmup_steps=1,
                                                                   checkpoint_every=2), progress=False)
    student, _ = load_model(result.model_path)
    assert student.config.model == ("nf" if method == "flow" else "fm-z")
    events = student.sample(50, seed=1).events
    assert torch.allclose(events[..., 0].sum(1), torch.full((50,), SQRT_S, dtype=torch.float64), rtol=1e-12)


def test_distill_refuses_teachers_without_an_ode_from_gaussian_noise():
    for model in ("nf", "fm-q", "langevin"):
        teacher = GenerativeModel(ModelConfig(model=model, n_particles=3, width=16, depth=1))
        with pytest.raises(ValueError, match="teacher"):
            teacher_pairs(teacher, 4, DistillConfig(), torch.Generator())
    with pytest.raises(ValueError, match="1 to 4"):
        DistillConfig(method="few-step", steps=5)
    with pytest.raises(ValueError, match="unknown distillation method"):
        DistillConfig(method="consistency")


def _ok(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_distill_command_students_are_ordinary_models(tmp_path):
    """A teacher trained on muon-like events at sqrt_s = 91.19, distilled both ways from the command
    line; the students sample plainly and with weights, are unweighted and evaluated, at the
    teacher's energy, and record where they come from."""
    events = uniform_phase_space(3000, 3, sqrt_s=SQRT_S, generator=torch.Generator().manual_seed(2))
    from lipsgen.io import write_events

    data = write_events(tmp_path / "data.h5", events, attributes={"target": "uniform", "n_particles": 3,
                                                                   "sqrt_s": SQRT_S})
    _ok("train", "--data", str(data), "--model", "fm-z", "--max-steps", "20", "--out", str(tmp_path / "teacher"))
    teacher = tmp_path / "teacher" / "model.pt"
    for method, extra in (("flow", ["--width", "16", "--transforms", "2"]), ("few-step", ["--steps", "3"])):
        out = tmp_path / method
        _ok("distill", str(teacher), "--out", str(out), "--method", method, *extra, "--pairs", "700",
            "--max-steps", "10", "--batch-size", "128", "--teacher-steps", "10")
        assert (out / PAIRS_FILE).exists()
        weighted = tmp_path / f"{method}_w.h5"
        _ok("sample", str(out / "model.pt"), "--events", "400", "--weights",
            "--out", str(weighted), "--seed", "1")
        _ok("unweight", str(weighted), "--out", str(tmp_path / f"{method}_u.h5"), "--seed", "2")
        plain = tmp_path / f"{method}.h5"
        _ok("sample", str(out / "model.pt"), "--events", "500", "--out", str(plain), "--seed", "3")
        with h5py.File(plain) as f:
            assert f.attrs["steps"] == (1 if method == "flow" else 3)
            assert f.attrs["model"] == ("nf" if method == "flow" else "fm-z")
        sampled, _ = read_events(plain)
        assert torch.allclose(sampled[..., 0].sum(1), torch.full((500,), SQRT_S, dtype=torch.float64), rtol=1e-12)
        _, state = load_model(out / "model.pt")
        assert state["data"]["distilled_from"] == str(teacher) and state["data"]["teacher_steps"] % 3 == 0 \
            if method == "few-step" else state["data"]["teacher_model"] == "fm-z"
    _ok("evaluate", "--truth", str(data), "--samples", str(tmp_path / "flow.h5"), "--samples",
        str(tmp_path / "few-step.h5"), "--out", str(tmp_path / "report"))
    # bad input: a refused method, a missing teacher, an existing run, a non-teacher
    for args, match in (
        (("--method", "reflow"), "invalid choice"),
        (("--steps", "7", "--method", "few-step"), "1 to 4"),
    ):
        result = run_cli("distill", str(teacher), "--out", str(tmp_path / "x"), *args)
        assert result.returncode != 0 and re.search(match, result.stderr), result.stderr
    result = run_cli("distill", str(tmp_path / "none.pt"), "--out", str(tmp_path / "y"))
    assert result.returncode == 1 and "no such teacher checkpoint" in result.stderr
    result = run_cli("distill", str(teacher), "--out", str(tmp_path / "flow"))
    assert result.returncode == 1 and "already holds a distillation run" in result.stderr
    result = run_cli("distill", str(tmp_path / "flow" / "model.pt"), "--out", str(tmp_path / "z"))
    assert result.returncode == 1 and "already a one-pass normalizing flow" in result.stderr


def test_the_flows_spline_is_zukos_and_both_directions_agree():
    """lipsgen's spline (knots by exp / sum) equals zuko's to rounding, values, inverses and
    log-Jacobians; a flow built either way round maps noise to states whose log_prob is the noise
    density minus the map's log-determinant, and inverts."""
    from zuko.transforms import MonotonicRQSTransform

    from lipsgen.models.flows import RationalQuadraticSpline, SplineFlow

    g = torch.Generator().manual_seed(0)
    widths, heights, slopes = (3 * torch.randn(200, 9, k, generator=g, dtype=torch.float64) for k in (8, 8, 7))
    x = 6 * torch.randn(200, 9, generator=g, dtype=torch.float64)  # inside and outside the bound 5
    ours, zukos = RationalQuadraticSpline(widths, heights, slopes), MonotonicRQSTransform(widths, heights, slopes)
    for a, b in zip(ours.call_and_ladj(x), zukos.call_and_ladj(x), strict=True):
        assert torch.allclose(a, b, atol=1e-10)
    assert torch.allclose(ours.inv(x), zukos.inv(x), atol=1e-10)
    for direction in ("density", "sampling"):
        torch.manual_seed(3)
        flow = SplineFlow(3, transforms=3, width=16, direction=direction).double()
        for p in flow.parameters():
            nn.init.normal_(p, std=0.3)
        z = torch.randn((50, 3, 3), generator=g, dtype=torch.float64)
        states, log_det = flow.from_noise(z)
        assert torch.allclose(flow.log_prob(states), standard_normal_log_prob(z) - log_det, atol=1e-8)
        assert log_det.abs().mean() > 0.1  # a map far from the identity: the check has teeth
        back = flow.flow().transform(states.flatten(1)) if direction == "density" else \
            flow.flow().transform.inv(states.flatten(1))
        assert torch.allclose(back.view_as(z), z, atol=1e-8)
