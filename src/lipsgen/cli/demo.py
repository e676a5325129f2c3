"""``lipsgen demo``: the README's main job on built-in defaults.

Muon-decay data (a training set and an independent held-out truth set), the ``cpu`` preset of the
z-space diffusion, samples, a trajectory and exactly weighted samples (the probability-flow ODE with
its exact density), then the evaluation report. About 5 minutes on 2 quiet cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .options import add_force_option, positive_int, seed_value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="run the end-to-end demo on built-in defaults",
        description="Make muon-decay data, train the cpu preset of the z-space diffusion, sample it "
        "(with a trajectory, and weighted events with exact weights), evaluate against held-out truth and write "
        "the report into OUT.",
    )
    parser.add_argument("--out", type=Path, default=Path("lipsgen-demo"), help="output folder (default lipsgen-demo)")
    parser.add_argument("--events", type=positive_int, default=100_000, help="training events (default 100000)")
    parser.add_argument("--samples", type=positive_int, default=20_000, help="events to sample (default 20000)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="cap on optimiser steps")
    parser.add_argument("--seed", type=seed_value, default=2604, help="random seed (default 2604)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_force_option(parser)
    parser.set_defaults(run=run)


# what a demo run writes into OUT: a second run refuses to replace them without --force
DEMO_OUTPUTS = ("muon_train.h5", "muon_truth.h5", "zdiff", "zdiff_samples.h5", "zdiff_trajectory.h5",
                "zdiff_weighted.h5", "report")


def _say(message: str) -> None:
    print(f"[lipsgen demo] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..evaluation import EvaluationInputs, evaluate
    from ..io.hdf5 import write_events_h5
    from ..models.model import ModelConfig
    from ..sampling import sample_to_file
    from ..targets import MuonDecay
    from ..training import load_model, resolve_preset, train
    # everything that can be wrong with the arguments is found before minutes of work
    if args.samples < 40:
        raise ValueError(f"--samples {args.samples}: the evaluation needs at least 40 held-out events")
    if args.events < 2:
        raise ValueError(f"--events {args.events}: training needs at least 2 events")
    resolve_device(args.device)
    out: Path = args.out
    existing = [name for name in DEMO_OUTPUTS if (out / name).exists()]
    if existing and not args.force:
        raise FileExistsError(f"{out} already holds a demo run ({', '.join(existing)}); pass --force to replace it "
                              f"or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    target = MuonDecay()
    files = {}
    for name, n, seed in (("train", args.events, args.seed), ("truth", args.samples, args.seed + 1)):
        files[name] = out / f"muon_{name}.h5"
        write_events_h5(files[name], target.stream(n, seed=seed), n_events=n, n_particles=3,
                        attributes={"target": "muon", "seed": seed, **target.parameters()})
    _say(f"wrote {args.events} training and {args.samples} held-out muon-decay events")
    events = target.sample(args.events, seed=args.seed)  # the same events as muon_train.h5
    config, settings = resolve_preset("cpu", ModelConfig(model="zdiff", n_particles=3, target="muon"))
    if args.max_steps is not None:
        settings.steps = min(settings.steps, args.max_steps)
        settings.warmup_steps = min(settings.warmup_steps, max(1, settings.steps // 10))
        settings.checkpoint_every = min(settings.checkpoint_every, settings.steps)
    settings.seed = args.seed
    _say(f"training zdiff (cpu preset, {settings.steps} steps)")
    result = train(events, config, settings, out / "zdiff", device=args.device)
    model, _ = load_model(result.model_path, args.device)
    _say(f"trained in {result.seconds:.0f} s; sampling")
    samples = sample_to_file(model, args.samples, out / "zdiff_samples.h5", seed=args.seed)
    trajectory = sample_to_file(model, min(args.samples, 5000), out / "zdiff_trajectory.h5", seed=args.seed + 1,
                                trajectory=8)
    # weights cost ~20x per event (a 9 x 9 Jacobian per step): fewer events, fewer ODE steps
    weighted = sample_to_file(model, min(args.samples, 5000), out / "zdiff_weighted.h5", seed=args.seed + 2,
                              steps=25, density=target)
    _say("evaluating")
    metrics = evaluate(EvaluationInputs(files["truth"], [samples, weighted], trajectory), out / "report")
    m = metrics["samples"]["zdiff_samples"]
    _say(f"done in {time.perf_counter() - start:.0f} s: classifier AUC {m['auc']:.3f} (truth-vs-truth floor "
         f"{metrics['floor_auc']:.3f}); energy-momentum violation {m['conservation']['max_energy']:.1e} "
         f"(energy), {m['conservation']['max_momentum']:.1e} (momentum), in units of sqrt_s")
    mw = metrics["samples"]["zdiff_weighted"]
    w = mw["weights"]
    _say(f"weighted events: AUC {mw['auc']:.3f}; integral of the (normalised) muon density {w['integral']:.4f} +- "
         f"{w['integral_error']:.4f}, weight relative std {w['relative_std']:.3f}, ESS per event "
         f"{w['ess_per_event']:.3f}, unweighting efficiency {w['unweighting_efficiency']:.3f}")
    print(f"report: {out / 'report' / 'report.html'}")
    return 0
