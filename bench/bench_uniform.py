"""Uniform phase-space sampling throughput: lipsgen against energyflow's RAMBO, same process.

Usage: python bench/bench_uniform.py [--events N] [--repeats R]
Needs the benchmark extra (energyflow); see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import lipsgen  # noqa: E402
from common import interleaved_medians, machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    try:
        from energyflow import gen_massless_phase_space
    except ImportError as err:
        sys.exit(f"energyflow is needed for this benchmark ({err}); see docs/benchmarks.md")

    print(f"machine: {machine()}")
    print(f"events per call: {args.events}, median of {args.repeats} interleaved runs, float64\n")
    print("| N | lipsgen (events/s) | energyflow (events/s) | lipsgen / energyflow |")
    print("|---:|---:|---:|---:|")
    for n_particles in (3, 10, 30):
        n = args.events
        medians = interleaved_medians(
            {
                "lipsgen": lambda n=n, k=n_particles: lipsgen.uniform_phase_space(n, k, seed=1),
                "energyflow": lambda n=n, k=n_particles: gen_massless_phase_space(n, k, seed=1),
            },
            args.repeats,
        )
        ours, theirs = n / medians["lipsgen"], n / medians["energyflow"]
        print(f"| {n_particles} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
