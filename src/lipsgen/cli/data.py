"""``lipsgen data TARGET``: write events of a training target to an HDF5 file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..catalogue import DEFAULT_CHUNK_SIZE, TARGET_HELP, TARGET_OPTIONS, TARGET_SQRT_S
from . import pythia
from .options import (
    TARGET_FLAGS,
    add_force_option,
    check_output,
    check_output_size,
    positive_float,
    positive_int,
    seed_value,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "data", help="sample a training target into an event file",
        description="Sample events of a target with known truth into an HDF5 event file.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, options in TARGET_OPTIONS.items():
        sub = targets.add_parser(name, help=TARGET_HELP[name], description=TARGET_HELP[name] + ".")
        for key, default in options.items():
            flag, kind, text = TARGET_FLAGS[key]
            shown = "massless" if default == () else default
            sub.add_argument(flag, dest=key, type=kind, required=default is None, default=default,
                             help=text + (" (required)" if default is None else f" (default {shown})"))
        sub.add_argument("--events", type=positive_int, required=True, help="number of events")
        sub.add_argument("--out", type=Path, required=True, help="output event file (.h5, .npz, .lhe, .lhe.gz)")
        add_force_option(sub)
        sub.add_argument("--seed", type=seed_value, default=None,
                         help="random seed (default: fresh, recorded in the file)")
        sub.add_argument("--sqrt-s", type=positive_float, default=TARGET_SQRT_S.get(name, 1.0),
                         help="total energy sqrt_s, in any unit; events are written in that unit "
                         f"(default {TARGET_SQRT_S.get(name, 1.0):g})")
        sub.add_argument("--permute", action="store_true",
                         help="shuffle the particle order of each event (for unlabelled models)")
        sub.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE,
                         help=f"events generated per chunk (default {DEFAULT_CHUNK_SIZE})")
        sub.set_defaults(run=run)
    pythia.add_parser(targets)


def target_parameters(args: argparse.Namespace) -> dict[str, object]:
    """The target's keyword parameters from the command line."""
    return {"sqrt_s": args.sqrt_s, **{key: getattr(args, key) for key in TARGET_OPTIONS[args.target]}}


def run(args: argparse.Namespace) -> int:
    import torch

    from ..io import event_format, write_events
    from ..io.hdf5 import write_events_h5
    from ..random import fresh_seed
    from ..targets import make_target
    fmt = event_format(args.out)
    check_output(args.out, force=args.force)
    target = make_target(args.target, **target_parameters(args))
    check_output_size(args.out, args.events, target.n_particles)
    seed = fresh_seed() if args.seed is None else args.seed
    attributes = {"target": target.name, "seed": seed, "permuted": args.permute,
                  "n_particles": target.n_particles, **target.parameters(),
                  **({"masses": list(target.masses)} if target.masses else {})}
    start = time.perf_counter()
    chunks = target.stream(args.events, seed=seed, chunk_size=args.chunk_size, permute=args.permute)
    if fmt == "hdf5":
        write_events_h5(args.out, chunks, n_events=args.events, n_particles=target.n_particles,
                        attributes=attributes)
    else:
        write_events(args.out, torch.cat(list(chunks)), attributes)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.events} {target.name} events ({target.n_particles} particles, seed {seed}) "
          f"to {args.out} in {elapsed:.1f} s", file=sys.stderr)
    return 0
