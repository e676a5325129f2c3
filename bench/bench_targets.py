"""Target sampling throughput: 10^6 events of each target, median wall time.

Usage: python bench/bench_targets.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import interleaved_medians, machine  # noqa: E402
from lipsgen.targets import QQG, MuonDecay, Sarge  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    targets = {
        "muon": MuonDecay(),
        "qqg (ycut = 1e-4)": QQG(1e-4),
        "sarge (N = 10, xi_max = 40)": Sarge(10, 40.0),
    }
    print(f"machine: {machine()}")
    print(f"{args.events} events per run, median of {args.repeats} interleaved runs, float64\n")
    medians = interleaved_medians(
        {name: (lambda t=t: t.sample(args.events, seed=1)) for name, t in targets.items()}, args.repeats
    )
    print("| target | seconds for 10^6 events | events/s |")
    print("|---|---:|---:|")
    for name, seconds in medians.items():
        scale = 1_000_000 / args.events
        print(f"| {name} | {seconds * scale:.2f} | {args.events / seconds:,.0f} |")


if __name__ == "__main__":
    main()
