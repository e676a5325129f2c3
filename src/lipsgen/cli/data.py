"""``lipsgen data TARGET``: write events of a training target to an HDF5 file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..io.hdf5 import write_events_h5
from ..random import fresh_seed
from ..targets import DEFAULT_CHUNK_SIZE, Target, Uniform
from .options import particle_count, positive_float, positive_int, non_negative_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "data", help="sample a training target into an event file",
        description="Sample events of a target with known truth into an HDF5 event file.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    uniform = targets.add_parser(
        "uniform", help="uniform massless phase space (RAMBO)",
        description="Uniform massless N-particle phase space, sampled exactly with RAMBO.",
    )
    uniform.add_argument("--particles", type=particle_count, required=True, help="particles per event (>= 2)")
    _add_common(uniform)
    uniform.set_defaults(run=run, make_target=lambda a: Uniform(a.particles, a.sqrt_s))


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=positive_int, required=True, help="number of events")
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 file")
    parser.add_argument("--seed", type=non_negative_int, default=None,
                        help="random seed (default: fresh, recorded in the file)")
    parser.add_argument("--sqrt-s", type=positive_float, default=1.0, help="total energy (default 1)")
    parser.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE,
                        help=f"events generated per chunk (default {DEFAULT_CHUNK_SIZE})")


def run(args: argparse.Namespace) -> int:
    target: Target = args.make_target(args)
    seed = fresh_seed() if args.seed is None else args.seed
    attributes = {"target": target.name, "seed": seed, **target.parameters()}
    start = time.perf_counter()
    chunks = target.stream(args.events, seed=seed, chunk_size=args.chunk_size)
    write_events_h5(args.out, chunks, n_events=args.events, n_particles=target.n_particles,
                    attributes=attributes)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.events} {target.name} events ({target.n_particles} particles, seed {seed}) "
          f"to {args.out} in {elapsed:.1f} s", file=sys.stderr)
    return 0
