"""Distillation: fast students of a trained flow model, learnt from the teacher's own runs.

A teacher (``fm-z`` or ``zdiff``, whose noise end is N(0, I) in z-space or a base's chart) maps a
noise draw z deterministically (its ODE sampler) to a state x_T(z). A student learns that map:

* ``flow`` (one pass, exact density; RegFlow, arXiv:2506.01158): a spline normalizing flow, an
  ordinary ``nf`` model on the teacher's space, whose map from noise is regressed onto the pairs,
  ``|f(z) - x_T(z)|^2``. Its base is the teacher's noise end, so the pair (z, x_T(z)) is a
  transport the flow can represent; its density is the flow's own, in one pass, exact whatever
  the regression left.
* ``few-step`` (K = 1-4 network evaluations): an ``fm-z`` model sampled with K Euler steps, whose
  rollout from z is regressed onto the teacher's trajectory at the K + 1 grid times,
  ``sum_k |xhat_k - x_T(t_k)|^2 / K`` (knowledge distillation of a trajectory, Luhman & Luhman,
  arXiv:2101.02388, with the intermediate states as in progressive distillation). Started from an
  ``fm-z`` teacher's weights. Its density, where asked for, is the K-step run's, exact like any
  flow-matching model's.

Either student is an ordinary lipsgen checkpoint: ``sample`` (its default steps and solver are
recorded in its config), ``--weights``, ``unweight``, ``evaluate``, ``refine`` work unchanged.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..catalogue import DISTILL_FLOW_SIZE, DISTILL_METHODS, DISTILL_PAIRS, MODEL_KINDS
from ..devices import resolve_device
from ..distributed import SINGLE_PROCESS, World
from ..models.model import GenerativeModel, ModelConfig
from ..models.networks import MLPBackbone, TransformerBackbone
from ..progress import progress_bar
from ..random import derived_generator
from .checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .trainer import TrainingItems, TrainResult, train

__all__ = ["DistillConfig", "check_teacher", "student_config", "teacher_pairs", "regression_loss",
           "rollout_loss", "distill", "distill_model", "PAIRS_FILE"]

PAIRS_FILE = "teacher_pairs.pt"
BACKBONES = (MLPBackbone, TransformerBackbone)
MAX_STUDENT_STEPS = 4


@dataclass(frozen=True)
class DistillConfig:
    """``method`` (``flow`` or ``few-step``), the few-step student's ``steps``, the number of
    teacher ``pairs``, the teacher's sampler (``teacher_steps``, ``teacher_solver``; None: its
    defaults; a few-step student's grid needs a multiple of ``steps``, so they are rounded up) and
    the flow student's ``width``, ``depth`` and ``transforms``."""

    method: str = "flow"
    steps: int = 2
    pairs: int = DISTILL_PAIRS
    teacher_steps: int | None = None
    teacher_solver: str | None = None
    # the flow student's size (None: DISTILL_FLOW_SIZE's); a few-step student is the teacher's network
    width: int | None = None
    depth: int | None = None
    transforms: int | None = None

    def __post_init__(self) -> None:
        if self.method not in DISTILL_METHODS:
            raise ValueError(f"unknown distillation method {self.method!r}; choose from {', '.join(DISTILL_METHODS)}")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STUDENT_STEPS:
            raise ValueError(f"a few-step student takes 1 to {MAX_STUDENT_STEPS} steps, got {self.steps!r}")
        if not isinstance(self.pairs, int) or self.pairs < 2:
            raise ValueError(f"pairs must be an integer >= 2, got {self.pairs!r}")
        if self.method != "flow" and self.flow_size:
            raise ValueError("width, depth and transforms size the flow student; a few-step student is the "
                             "teacher's own network")

    @property
    def flow_size(self) -> dict[str, int]:
        """The flow student's size fields that are set, as ModelConfig fields."""
        named = {"width": self.width, "depth": self.depth, "flow_transforms": self.transforms}
        return {k: v for k, v in named.items() if v is not None}

    @property
    def recorded(self) -> int:
        """States kept per teacher run: noise and sample, or the K + 1 grid states."""
        return 2 if self.method == "flow" else self.steps + 1


def check_teacher(teacher: GenerativeModel) -> None:
    """Refuse a teacher without a deterministic map from N(0, I) noise in z-space, saying why."""
    model = teacher.config.model
    space, process, prior = MODEL_KINDS[model]
    if model == "nf":
        raise ValueError("the teacher is already a one-pass normalizing flow; distil a flow-matching or diffusion "
                         "model (fm-z, zdiff)")
    if space != "z" or process not in ("flow", "vp") or prior not in ("space", ""):
        raise ValueError(f"a teacher must map N(0, I) noise in z-space (or a base's chart) to its samples with an "
                         f"ODE: fm-z or zdiff, not {model} (its noise end is {space}-space's)")


def student_config(teacher: ModelConfig, config: DistillConfig) -> ModelConfig:
    """The student's model config: the teacher's space (target, base, masses, ordering) with an
    ``nf`` flow of ``DISTILL_FLOW_SIZE`` unless ``config`` sizes it (``flow``), or an ``fm-z``
    network like the teacher's sampled with ``config.steps`` Euler steps (``few-step``)."""
    if config.method == "flow":
        size: dict[str, Any] = {**DISTILL_FLOW_SIZE, **config.flow_size}
        return replace(teacher, model="nf", invariant_features=False, pair_features=False, relative_output=False,
                       relative_updates=False, token_updates=False, time_power=1.0, sampler_steps=None,
                       sampler_solver=None, flow_direction="sampling", **size)
    # the teacher's time power: the student's grid is then the times of the teacher's recorded states
    return replace(teacher, model="fm-z", coupling="independent", sampler_steps=config.steps, sampler_solver="euler")


def teacher_grid_steps(teacher: GenerativeModel, config: DistillConfig) -> int:
    """The teacher's steps: its default (or the config's), rounded up to a multiple of the
    student's so that its trajectory passes through the student's grid."""
    steps = config.teacher_steps or teacher.default_steps
    if config.method == "few-step":
        steps = -(-steps // config.steps) * config.steps
    return steps


@torch.no_grad()
def teacher_pairs(teacher: GenerativeModel, n: int, config: DistillConfig, generator: torch.Generator, *,
                  batch_size: int = 4096, progress: bool | None = None) -> Tensor:
    """The teacher's runs from ``n`` noise draws: states (n, R, N, 3) float32 in its space, R =
    ``config.recorded`` evenly spaced along each run, the noise draw first and the sample last."""
    check_teacher(teacher)
    steps = teacher_grid_steps(teacher, config)
    solver = config.teacher_solver or teacher.default_solver(density=True)
    if solver not in teacher.process.density_solvers:
        raise ValueError(f"the teacher's solver {solver!r} is not deterministic; choose from "
                         f"{', '.join(teacher.process.density_solvers)}")
    device = next(teacher.net.parameters()).device
    parts = []
    teacher.net.eval()
    with progress_bar(total=n, unit="pair", desc=f"teacher {teacher.config.model}", enable=progress) as bar:
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            x = teacher.noise_prior(m, generator, device)
            _, recorded = teacher.process.sample(teacher.net, x, steps=steps, solver=solver, generator=generator,
                                                 trajectory=config.recorded)
            states = torch.stack(recorded.states, dim=1)
            if not bool(torch.isfinite(states).all()):
                raise FloatingPointError("the teacher's runs diverged (non-finite states): distil a better-trained "
                                         "teacher or give it more --teacher-steps")
            parts.append(states.float().cpu())
            bar.update(m)
    return torch.cat(parts)


def regression_loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Mean over the batch of ``|f(z) - x_T|^2``: the flow's map of the noise draws
    ``batch["states"][:, 0]`` against the teacher's samples ``[:, -1]`` (n, N, 3)."""
    states = batch["states"]
    return (net(states[:, 0], from_noise=True) - states[:, -1]).square().sum(dim=(1, 2)).mean()


def rollout_loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Mean over the batch of ``sum_k |xhat_k - x_k|^2 / K``: the student's K Euler steps from the
    noise draw ``batch["states"][:, 0]`` over t_k = 1 - k / K against the teacher's states
    ``[:, k]``, gradients through the whole rollout."""
    states = batch["states"]
    n_steps = states.shape[1] - 1
    x, loss = states[:, 0], states.new_zeros(())
    for k in range(n_steps):
        t = torch.full((len(x),), 1 - k / n_steps, dtype=x.dtype, device=x.device)
        x = x - net(x, t) / n_steps
        loss = loss + (x - states[:, k + 1]).square().sum(dim=(1, 2)).mean()
    return loss / n_steps


def _load_or_make_pairs(path: Path, teacher: GenerativeModel, record: dict[str, Any], config: DistillConfig,
                        seed: int, world: World, progress: bool | None) -> Tensor:
    """The teacher's pairs from ``path``, made (by rank 0) and written atomically if absent; pairs
    of another teacher or other settings are refused."""
    if world.is_main and not path.exists():
        states = teacher_pairs(teacher, config.pairs, config, derived_generator(seed, "pairs"), progress=progress)
        save_checkpoint(path, {"kind": "teacher-pairs", "record": record, "states": states})
    world.barrier()
    stored = read_checkpoint(path)
    if stored.get("kind") != "teacher-pairs" or "states" not in stored:
        raise CheckpointError(f"{path}: not a file of teacher pairs")
    if stored["record"] != record:
        differ = [f"{k}: {v!r} there, {record.get(k)!r} now" for k, v in stored["record"].items() if record.get(k) != v]
        raise CheckpointError(f"{path}: pairs of another teacher or settings ({'; '.join(differ)}); choose another "
                              f"--out")
    return stored["states"]


def distill(teacher_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], config: DistillConfig,
            train_config: TrainConfig, *, resume: bool = False, device: str | torch.device = "cpu",
            progress: bool | None = None, stop_after: int | None = None,
            world: World = SINGLE_PROCESS) -> TrainResult:
    """Distil the teacher checkpoint at ``teacher_path`` (:func:`distill_model`; the student's data
    record names it and its training data)."""
    device = resolve_device(device)
    teacher, state = load_model(teacher_path, device)
    if teacher.config.lift != "exact":
        raise ValueError(f"{teacher_path}: the teacher lifts with a fixed fibre; distil a model with the exact lift")
    return distill_model(teacher, out_dir, config, train_config, teacher_digest=str(state.get("digest", "")),
                         attributes={**state.get("data", {}), "distilled_from": str(teacher_path)}, resume=resume,
                         device=device, progress=progress, stop_after=stop_after, world=world)


def distill_model(teacher: GenerativeModel, out_dir: str | os.PathLike[str], config: DistillConfig,
                  train_config: TrainConfig, *, teacher_digest: str = "", attributes: dict[str, Any] | None = None,
                  resume: bool = False, device: str | torch.device = "cpu", progress: bool | None = None,
                  stop_after: int | None = None, world: World = SINGLE_PROCESS) -> TrainResult:
    """Distil ``teacher`` into a student: its runs (``config.pairs`` from generator (seed,
    "pairs"), kept in ``out_dir/teacher_pairs.pt`` with ``teacher_digest`` so that a resumed run
    refuses another teacher's), then training like :func:`lipsgen.training.train` (checkpoints,
    resume, torchrun); the final EMA student is ``out_dir/model.pt``, ``attributes`` its data record."""
    check_teacher(teacher)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = train_config.seed
    record = {"teacher_digest": teacher_digest, "seed": seed, **asdict(config)}
    states = _load_or_make_pairs(out / PAIRS_FILE, teacher, record, config, seed, world, progress)
    student = student_config(teacher.config, config)
    initial: dict[str, Any] = {"extra": teacher.extra_state()}
    if config.method == "few-step" and teacher.config.model == "fm-z" and isinstance(teacher.net, BACKBONES):
        initial["net"] = teacher.net.state_dict()  # the same network: start from the teacher's field
    items = TrainingItems({"states": states}, regression_loss if config.method == "flow" else rollout_loss,
                          initial, fingerprint=f"{teacher_digest[-16:]}:{config.pairs}:{seed}")
    attributes = {**(attributes or {}), "teacher_model": teacher.config.model, "distill_method": config.method,
                  "teacher_steps": teacher_grid_steps(teacher, config)}
    return train(None, student, train_config, out, resume=resume, device=device, progress=progress,
                 stop_after=stop_after, data_attributes=attributes, items=items, world=world)
