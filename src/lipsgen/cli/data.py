"""``lipsgen data TARGET``: write events of a training target to an HDF5 file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..io.hdf5 import write_events_h5
from ..random import fresh_seed
from ..targets import DEFAULT_CHUNK_SIZE, make_target
from .options import non_negative_int, particle_count, positive_float, positive_int

# Per target: the target-specific options it takes and their defaults (None = required).
_TARGET_OPTIONS: dict[str, dict[str, object]] = {
    "uniform": {"particles": None},
    "muon": {},
    "qqg": {"ycut": 1e-3},
    "sarge": {"particles": 10, "xi_max": 30.0},
}
_HELP = {
    "uniform": "uniform massless phase space (RAMBO), any number of particles",
    "muon": "muon decay at rest: e-, nu_mu, anti-nu_e",
    "qqg": "e+e- -> q qbar g at O(alpha_s) with the cut min y_ij > ycut",
    "sarge": "N-gluon QCD antenna events from the SARGE algorithm",
}
_FLAGS = {"particles": "--particles", "ycut": "--ycut", "xi_max": "--xi-max"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "data", help="sample a training target into an event file",
        description="Sample events of a target with known truth into an HDF5 event file.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, options in _TARGET_OPTIONS.items():
        sub = targets.add_parser(name, help=_HELP[name], description=_HELP[name] + ".")
        sub.add_argument("--particles", type=particle_count, default=None,
                         help=_option_help(options, "particles", "particles per event"))
        sub.add_argument("--ycut", type=positive_float, default=None,
                         help=_option_help(options, "ycut", "cut on min y_ij"))
        sub.add_argument("--xi-max", type=positive_float, default=None,
                         help=_option_help(options, "xi_max", "SARGE antenna cutoff xi_m"))
        sub.add_argument("--events", type=positive_int, required=True, help="number of events")
        sub.add_argument("--out", type=Path, required=True, help="output HDF5 file")
        sub.add_argument("--seed", type=non_negative_int, default=None,
                         help="random seed (default: fresh, recorded in the file)")
        sub.add_argument("--sqrt-s", type=positive_float, default=1.0, help="total energy (default 1)")
        sub.add_argument("--permute", action="store_true",
                         help="shuffle the particle order of each event (for unlabelled models)")
        sub.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE,
                         help=f"events generated per chunk (default {DEFAULT_CHUNK_SIZE})")
        sub.set_defaults(run=run)


def _option_help(options: dict[str, object], key: str, text: str) -> str:
    if key not in options:
        return f"{text} (not used by this target)"
    default = options[key]
    return f"{text} (required)" if default is None else f"{text} (default {default:g})"


def target_parameters(args: argparse.Namespace) -> dict[str, object]:
    """The target's keyword parameters from the command line; refuses options that do not apply."""
    options = _TARGET_OPTIONS[args.target]
    parameters: dict[str, object] = {"sqrt_s": args.sqrt_s}
    for key, flag in _FLAGS.items():
        given = getattr(args, key)
        if key not in options:
            if given is not None:
                raise ValueError(f"{flag} does not apply to target {args.target}")
            continue
        if given is None and options[key] is None:
            raise ValueError(f"target {args.target} needs {flag}")
        parameters["n_particles" if key == "particles" else key] = options[key] if given is None else given
    return parameters


def run(args: argparse.Namespace) -> int:
    target = make_target(args.target, **target_parameters(args))
    seed = fresh_seed() if args.seed is None else args.seed
    attributes = {"target": target.name, "seed": seed, "permuted": args.permute,
                  "n_particles": target.n_particles, **target.parameters()}
    start = time.perf_counter()
    chunks = target.stream(args.events, seed=seed, chunk_size=args.chunk_size, permute=args.permute)
    write_events_h5(args.out, chunks, n_events=args.events, n_particles=target.n_particles,
                    attributes=attributes)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.events} {target.name} events ({target.n_particles} particles, seed {seed}) "
          f"to {args.out} in {elapsed:.1f} s", file=sys.stderr)
    return 0
