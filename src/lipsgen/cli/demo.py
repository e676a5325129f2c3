"""``lipsgen demo``: the README's main job on built-in defaults.

For now: sample uniform phase-space events, write them to an event file, and print a check of the
two facts every later step relies on: exact conservation and the known flat-phase-space marginals.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from ..io.hdf5 import read_events_h5, write_events_h5
from ..kinematics import phase_space_volume
from ..targets import Uniform
from .options import particle_count, positive_int, non_negative_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="run the end-to-end demo on built-in defaults",
        description="Sample uniform phase-space events, write them, and check them against the "
        "exact facts of flat massless phase space.",
    )
    parser.add_argument("--out", type=Path, default=Path("lipsgen-demo"), help="output folder")
    parser.add_argument("--events", type=positive_int, default=200_000, help="events (default 200000)")
    parser.add_argument("--particles", type=particle_count, default=10, help="particles (default 10)")
    parser.add_argument("--seed", type=non_negative_int, default=2604, help="random seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    target = Uniform(args.particles)
    path = args.out / "uniform.h5"
    start = time.perf_counter()
    write_events_h5(path, target.stream(args.events, seed=args.seed), n_events=args.events,
                    n_particles=args.particles,
                    attributes={"target": target.name, "seed": args.seed, **target.parameters()})
    elapsed = time.perf_counter() - start
    events, _ = read_events_h5(path)
    print(summarise_uniform(events, target.sqrt_s))
    print(f"{args.events} events written to {path} in {elapsed:.2f} s")
    return 0


def summarise_uniform(events: torch.Tensor, sqrt_s: float) -> str:
    """A short text check of events against exact properties of uniform massless phase space."""
    n, n_particles = events.shape[:2]
    total = events.sum(dim=1)
    violation = max(float((total[:, 0] - sqrt_s).abs().max()), float(total[:, 1:].norm(dim=-1).max()))
    fractions = (2 * events[..., 0] / sqrt_s).reshape(-1).numpy()
    lines = [
        f"uniform massless phase space: {n} events x {n_particles} particles, sqrt_s = {sqrt_s:g}",
        f"  phase-space volume V_N            {phase_space_volume(n_particles, sqrt_s):.6g}",
        f"  max |sum p - P| / sqrt_s          {violation / sqrt_s:.2e}  (exact: rounding only)",
    ]
    if n_particles > 2:
        beta = stats.beta(2, n_particles - 2)
        one_particle = fractions[::n_particles]  # one particle per event: independent draws
        ks = stats.kstest(one_particle, beta.cdf)
        lines += [
            f"  mean energy fraction x = 2E/sqrt_s {np.mean(fractions):.5f}  (exact {beta.mean():.5f})",
            f"  KS test of x against Beta(2, {n_particles - 2})     p-value {ks.pvalue:.3f}",
        ]
    return "\n".join(lines)
