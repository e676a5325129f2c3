"""``lipsgen distill``: a fast student of a trained flow model."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..catalogue import DISTILL_FLOW_SIZE, DISTILL_METHODS, DISTILL_PAIRS, DISTILL_TRAIN
from .options import positive_float, positive_int, run_in_world, seed_value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "distill", help="distil a trained flow model into a one-pass or few-step student",
        description="Distil a trained fm-z or zdiff model (TEACHER.pt) into a student that samples in one pass "
        "(with an exact density) or a few steps, from the teacher's own runs. The student is an ordinary model: "
        "OUT/model.pt works with sample (--weights), unweight, evaluate and refine. The teacher's runs are kept "
        "in OUT/teacher_pairs.pt, the resumable state in OUT/checkpoint.pt. Runs under torchrun like train.",
    )
    parser.add_argument("teacher", type=Path, help="the teacher's checkpoint (model.pt of lipsgen train)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--method", choices=list(DISTILL_METHODS), default="flow", metavar="METHOD",
                        help="the student: " + "; ".join(f"{k}: {v}" for k, v in DISTILL_METHODS.items())
                        + " (default flow)")
    parser.add_argument("--steps", type=positive_int, default=2,
                        help="few-step: the student's Euler steps, 1 to 4 (default 2)")
    parser.add_argument("--pairs", type=positive_int, default=DISTILL_PAIRS,
                        help=f"teacher runs to learn from (default {DISTILL_PAIRS})")
    for flag, field, text in (("--width", "width", "hidden units per layer"),
                              ("--depth", "depth", "hidden layers per transform"),
                              ("--transforms", "flow_transforms", "spline coupling transforms")):
        parser.add_argument(flag, type=positive_int, default=None,
                            help=f"flow: the student's {text} (default {DISTILL_FLOW_SIZE[field]})")
    parser.add_argument("--teacher-steps", type=positive_int, default=None,
                        help="the teacher's sampler steps (default: its own; rounded up to a multiple of --steps)")
    parser.add_argument("--teacher-solver", default=None, help="the teacher's ODE solver (default: its own)")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="optimiser steps (default: " + ", ".join(f"{k} {v['steps']}" for k, v in
                                                                   DISTILL_TRAIN.items())
                        + "); with --resume the new total")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="pairs per optimiser step (default 512)")
    parser.add_argument("--lr", type=positive_float, default=None,
                        help="learning rate (default: " + ", ".join(f"{k} {v['lr']:g}" for k, v in
                                                                   DISTILL_TRAIN.items()) + ")")
    parser.add_argument("--seed", type=seed_value, default=0,
                        help="random seed of the pairs and the training (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--stop-after", type=positive_int, default=None,
                        help="end this run after this many steps, checkpointed (continue with --resume)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_in_world(args, _distill)


def _distill(args: argparse.Namespace, world: Any, device: Any) -> int:
    from ..training import TrainConfig
    from ..training.checkpoint import read_checkpoint
    from ..training.distillation import DistillConfig, distill
    from ..training.trainer import CHECKPOINT
    from .train import only_run_in

    if not args.teacher.is_file():
        raise FileNotFoundError(f"{args.teacher}: no such teacher checkpoint")
    config = DistillConfig(method=args.method, steps=args.steps, pairs=args.pairs, teacher_steps=args.teacher_steps,
                           teacher_solver=args.teacher_solver, width=args.width, depth=args.depth,
                           transforms=args.transforms)
    with only_run_in(args.out, world.is_main):
        if (args.out / CHECKPOINT).exists() and not args.resume:
            raise FileExistsError(f"{args.out} already holds a distillation run; pass --resume or choose another --out")
        overrides = {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr)) if v is not None}
        settings = dict(DISTILL_TRAIN[args.method], seed=args.seed, **overrides)
        if args.max_steps is not None:
            settings.update(steps=args.max_steps, checkpoint_every=min(settings["checkpoint_every"], args.max_steps),
                            warmup_steps=min(settings["warmup_steps"], max(1, args.max_steps // 10)))
        train_config = TrainConfig(**settings)
        if args.resume:  # the recorded schedule to the new total; a changed setting is refused by the trainer
            recorded = TrainConfig.from_dict(read_checkpoint(args.out / CHECKPOINT)["train_config"])
            train_config = replace(recorded, steps=args.max_steps or recorded.steps, seed=args.seed, **overrides)
        result = distill(args.teacher, args.out, config, train_config, resume=args.resume, device=device,
                         stop_after=args.stop_after, world=world)
    if world.is_main:
        shape = "one-pass flow" if args.method == "flow" else f"{args.steps}-step"
        print(f"distilled {args.teacher} into a {shape} student from {args.pairs} teacher runs: {result.steps} steps "
              f"in {result.seconds:.1f} s, final loss {result.final_loss:.4g}; model at {result.model_path}",
              file=sys.stderr)
    return 0
