"""``lipsgen train``: train a model on an event file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..catalogue import (
    BASE_HELP,
    MODEL_HELP,
    MODEL_KINDS,
    PRESET_HELP,
    PRESETS,
    TARGET_OPTIONS,
    TARGET_SQRT_S,
    Backbone,
)
from .options import (
    TARGET_FLAGS,
    add_symmetry_option,
    base_name,
    particle_count,
    positive_float,
    positive_int,
    run_in_world,
    seed_value,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train a generative model on an event file",
        description="Train a model on events from an event file (--data), or a normalizing flow (--model nf) "
        "on a target density alone, without events (--target NAME or --density MODULE:FUNCTION). The final EMA "
        "checkpoint is written to OUT/model.pt, the resumable training state to OUT/checkpoint.pt.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="training events (.h5, .npz, .lhe)")
    source.add_argument("--target", choices=list(TARGET_OPTIONS), default=None,
                        help="train from this target's closed-form density, without events (nf only); its "
                        "options: --particles, --ycut, --xi-max, --orderings, --sqrt-s")
    source.add_argument("--density", default=None, metavar="MODULE:FUNCTION",
                        help="train from a Python function of events (n, N, 4) returning log |M|^2 (n,), "
                        "without events (nf only; needs --particles)")
    for key, (flag, kind, text) in TARGET_FLAGS.items():
        parser.add_argument(flag, dest=key, type=particle_count if key == "n_particles" else kind, default=None,
                            help=f"with --target or --density: {text}")
    parser.add_argument("--sqrt-s", type=positive_float, default=None,
                        help="with --target or --density: total energy (default 1)")
    parser.add_argument("--model", choices=list(MODEL_KINDS), required=True, metavar="MODEL",
                        help="model: " + "; ".join(f"{k}: {v}" for k, v in MODEL_HELP.items()))
    parser.add_argument("--backbone", choices=["mlp", "transformer"], default=None,
                        help="network (default: mlp for labelled targets, transformer otherwise)")
    parser.add_argument("--preset", choices=list(PRESETS), default=None, metavar="PRESET",
                        help="settings preset: " + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items())
                        + " (steps, batch and network per model: lipsgen.training.resolve_preset); default cpu, "
                        "or with --resume the checkpoint's")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="cap on optimiser steps (cpu preset: 15000 for MLP models, 6000 for the transformer, "
                        "4000 and 3000 for Langevin); with --resume, the new total, which may extend the run")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="override the preset's batch size")
    parser.add_argument("--lr", type=positive_float, default=None, help="override the preset's learning rate")
    parser.add_argument("--base", type=base_name, default="uniform", metavar="BASE",
                        help="the noise end: " + "; ".join(f"{k}: {v}" for k, v in BASE_HELP.items())
                        + "; or MODULE:FUNCTION, a user's PhaseSpaceMap (lipsgen.bases). Bases other than uniform "
                        "need a z-space model (fm-z, zdiff, nf); the data's ycut is folded into the base where it "
                        "can be (chain bases: exactly for 3 particles, the chain's invariants for more)")
    add_symmetry_option(parser, training=True)
    parser.add_argument("--lift", choices=["exact", "fixed"], default="exact",
                        help="lifting of data to q-space: exact fibre law (default) or the paper's fixed embedding")
    parser.add_argument("--coupling", choices=["independent", "fibre", "particles"], default="independent",
                        help="flow matching's pairs of data and noise (fm-z, fm-q): independent (default); fibre: "
                        "the data lifted into each noise state's RAMBO fibre; particles: unlabelled particles of each "
                        "data event relabelled to match their noise state's (shortest total distance), for "
                        "many identical particles (SARGE's ten gluons: AUC 0.71 -> 0.68; three jets: no gain)")
    parser.add_argument("--relative-output", action="store_true",
                        help="transformer: add an output built from the particles' relative vectors (each particle "
                        "moved along attention-weighted offsets to the others), which resolves nearly collinear "
                        "particles (SARGE's ten gluons: AUC 0.68 -> 0.65); not with nf or a base's chart")
    parser.add_argument("--relative-updates", action="store_true",
                        help="with --relative-output: also move the particles by such a field after every block "
                        "and recompute their pair angles for the next (EGNN's per-layer updates; about 1.5x the "
                        "time per step)")
    parser.add_argument("--token-updates", action="store_true",
                        help="with --relative-updates: also re-embed each moved particle's features (x, x/|x|, "
                        "log|x|) into its token after every block (EGNN's node update; SARGE's ten gluons: AUC "
                        "0.005 lower on average over five seeds, 0.626 -> 0.616 on the hardest, for about 2%% "
                        "more time per step)")
    parser.add_argument("--time-power", type=positive_float, default=1.0,
                        help="flow matching: training times drawn as t = u^P, u uniform, and the sampler's steps "
                        "at t = (1 - k/K)^P (default 1; P > 1 trains and steps more near the data end, where "
                        "nearly collinear particles are resolved: SARGE with --relative-output, P = 2: AUC 0.65 "
                        "-> 0.64 -> 0.62 with the sampler's grid)")
    parser.add_argument("--max-events", type=positive_int, default=None, help="use at most this many events")
    parser.add_argument("--window-events", type=positive_int, default=None,
                        help="stream the --data HDF5 file in shuffled windows of about this many events instead of "
                        "loading it (bounded memory, for files larger than memory; lipsgen.training.streaming)")
    parser.add_argument("--seed", type=seed_value, default=None,
                        help="random seed (default 0, or with --resume the checkpoint's)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--stop-after", type=positive_int, default=None,
                        help="end this run after this many steps, checkpointed (for jobs cut into time slots; "
                        "continue with --resume)")
    parser.set_defaults(run=run)


def _density_source(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The density to train on and the attributes that record it (target name and parameters)."""
    from ..targets import make_target
    from ..targets.density import load_density
    sqrt_s = TARGET_SQRT_S.get(args.target, 1.0) if args.sqrt_s is None else args.sqrt_s
    if args.density:
        if args.n_particles is None:
            raise ValueError("--density needs --particles N")
        return load_density(args.density), {"target": "custom", "density": args.density,
                                            "n_particles": args.n_particles, "sqrt_s": sqrt_s}
    given = {k: getattr(args, k) for k in TARGET_OPTIONS[args.target] if getattr(args, k) is not None}
    target = make_target(args.target, sqrt_s=sqrt_s, **given)
    return target, {"target": target.name, "n_particles": target.n_particles, **target.parameters(),
                    **({"masses": list(target.masses)} if target.masses else {})}


def _data_fingerprint(sample: Any, n_events: int) -> str:
    """A short digest of training events (n, N, 4) and their count: a resumed run refuses other data."""
    import hashlib

    stride = max(1, len(sample) // 4096)
    rows = sample[::stride].contiguous().numpy().tobytes()
    return f"{n_events}:{hashlib.sha256(rows).hexdigest()[:16]}"


def _order_by_energy(base: str, labelled: bool) -> bool:
    """Unlabelled particles meet a base in decreasing energy: a chain's positions are not exchangeable.
    Not for uniform phase space (exchangeable) nor the all-orderings mixture (symmetric by construction)."""
    if labelled or base in ("uniform", "chains"):
        return False
    print(f"note: the particles are unlabelled; base {base} learns them in decreasing energy", file=sys.stderr)
    return True


def _base_cut(base: str, n_particles: int, attributes: dict[str, Any]) -> float:
    """The cut a base folds in: the data's (or target's) declared ycut, min y_ij > ycut; the chain
    bases fold it exactly for 3 particles and as a region that contains the cut region for more
    (docs/design.md, "Bases"), and say so."""
    ycut = float(attributes.get("ycut") or 0.0)
    if base in ("uniform", "resonance") or ycut == 0.0:  # these fold no cut
        return 0.0
    if base in ("chain", "chains", "colour") and n_particles != 3:
        print(f"note: the chain base folds ycut = {ycut:g} into the chain's invariants; with {n_particles} "
              f"particles some pairs may still fall below it (lipsgen sample --apply-cuts applies the cut)",
              file=sys.stderr)
    return ycut


def run(args: argparse.Namespace) -> int:
    return run_in_world(args, _train)


@contextmanager
def only_run_in(out: Path, main: bool) -> Iterator[None]:
    """Hold an exclusive lock on OUT for the whole run (rank 0 of a torchrun job): a second
    ``lipsgen train`` into the same folder is refused instead of overwriting this one's checkpoints.
    A folder this run created and left with nothing but the lock (a refused input) is removed."""
    if not main:
        yield
        return
    import fcntl

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock_path = out / ".lipsgen-train.lock"
    try:
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FileExistsError(f"{out}: another lipsgen train is running into this folder; wait for it or "
                                      f"choose another --out") from None
            yield
    finally:
        if created and [p.name for p in out.iterdir()] == [lock_path.name]:
            lock_path.unlink()
            out.rmdir()


def _train(args: argparse.Namespace, world: Any, device: Any) -> int:
    with only_run_in(args.out, world.is_main):
        return _train_locked(args, world, device)


def _train_locked(args: argparse.Namespace, world: Any, device: Any) -> int:
    from ..io.formats import load_events, recorded_masses
    from ..models.model import ModelConfig
    from ..targets.facts import facts_from_attributes
    from ..training import resolve_preset, train
    from ..training.trainer import CHECKPOINT
    if (args.out / CHECKPOINT).exists() and not args.resume:
        raise FileExistsError(f"{args.out} already holds a training run; pass --resume or choose another --out")
    events: Any = None  # a tensor, or a StreamedEvents
    density = None
    if args.data is not None:
        given = [TARGET_FLAGS[k][0] for k in TARGET_FLAGS if getattr(args, k) is not None]
        if given or args.sqrt_s is not None:
            raise ValueError(f"{', '.join(given + (['--sqrt-s'] if args.sqrt_s is not None else []))}: target "
                             f"options go with --target or --density, not --data (events are trained at their "
                             f"file's energy; to rescale them: lipsgen convert IN OUT --to-cm --sqrt-s E)")
        if args.window_events is not None:
            from ..training.streaming import StreamedEvents

            streamed_events = StreamedEvents(args.data, max_events=args.max_events)
            events, attributes, n_particles = streamed_events, streamed_events.attributes, streamed_events.n_particles
        else:
            events, attributes = load_events(args.data)
            n_particles = int(events.shape[1])
        sample = events.fit_sample() if args.window_events is not None else events
        n_data = events.n_events if args.window_events is not None else len(events)
        attributes = {**attributes, "data_fingerprint": _data_fingerprint(sample, n_data)}
    elif args.window_events is not None:
        raise ValueError("--window-events streams the events of --data; training from a density has none")
    else:
        density, attributes = _density_source(args)
        n_particles = int(attributes["n_particles"])
    target = str(attributes.get("target", "unknown"))
    labelled = facts_from_attributes(attributes, n_particles).labelled
    backbone: Backbone = args.backbone or ("mlp" if labelled else "transformer")
    if args.coupling == "particles" and labelled:
        raise ValueError(f"--coupling particles relabels particles; the {target} events' particles are labelled "
                         "(distinct roles), so their order carries information it would lose")
    model_config = ModelConfig(model=args.model, n_particles=n_particles, target=target,
                               sqrt_s=float(attributes["sqrt_s"]), backbone=backbone, lift=args.lift,
                               base=args.base, base_ycut=_base_cut(args.base, n_particles, attributes),
                               order_by_energy=_order_by_energy(args.base, labelled),
                               masses=recorded_masses(attributes), symmetry=args.symmetry,
                               coupling=args.coupling, relative_output=args.relative_output,
                               relative_updates=args.relative_updates, token_updates=args.token_updates,
                               time_power=args.time_power)
    model_config, train_config = resolve_preset(args.preset or "cpu", model_config)
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed),
                                   ("max_events", args.max_events), ("window_events", args.window_events))
                 if v is not None}
    if args.resume:
        # the checkpoint's settings, with only what this command names changed: the trainer refuses
        # any change but the total step count, so a changed --lr, --batch-size or --seed is never ignored
        from ..training import TrainConfig
        from ..training.checkpoint import read_checkpoint

        recorded = TrainConfig.from_dict(read_checkpoint(args.out / CHECKPOINT)["train_config"])
        chosen = train_config if args.preset is not None else recorded
        train_config = replace(chosen, steps=args.max_steps or recorded.steps,
                               checkpoint_every=recorded.checkpoint_every, warmup_steps=recorded.warmup_steps,
                               **overrides)
    else:
        if args.max_steps is not None:
            overrides["steps"] = steps = min(args.max_steps, train_config.steps)
            overrides["checkpoint_every"] = min(train_config.checkpoint_every, steps)
            overrides["warmup_steps"] = min(train_config.warmup_steps, max(1, steps // 10))
        train_config = replace(train_config, **{"seed": 0, **overrides})
    result = train(events, model_config, train_config, args.out, resume=args.resume, device=device,
                   data_attributes=attributes, density=density, world=world, stop_after=args.stop_after)
    streamed = f" (streamed in windows of {args.window_events})" if args.window_events else ""
    source = f"{result.events} {target} events{streamed}" if events is not None else f"the {target} density"
    ranks = f" on {world.size} ranks" if world.distributed else ""
    if world.is_main:
        network = "spline flow" if args.model == "nf" else backbone
        with_base = f", base {args.base}" if args.base != "uniform" else ""
        print(f"trained {args.model} ({network}{with_base}) on {source}{ranks}: {result.steps} steps in "
              f"{result.seconds:.1f} s, final loss {result.final_loss:.4g}; model at {result.model_path}",
              file=sys.stderr)
    return 0
