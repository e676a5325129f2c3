"""Pythia 8 jet data throughput: `lipsgen data pythia` with 1 and 2 workers, and where the time goes.

Usage: python bench/bench_pythia.py [--events N] [--jets 3] [--repeats R]

Runs the command line as a user would (interleaved, median of --repeats), then times the three
stages of one block in-process: Pythia's event generation, FastJet's clustering, the projection.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import interleaved_medians, machine  # noqa: E402
from lipsgen.generators.pythia import PythiaJets, _final_state, _import_pythia, block_seed  # noqa: E402
from lipsgen.jets import durham_jets, project_jets  # noqa: E402


def stages(n_jets: int, n_events: int) -> dict[str, float]:
    """Seconds per 1000 events of generation, clustering and projection (one process)."""
    process = PythiaJets(n_jets)
    pythia = _import_pythia().Pythia("", False)
    for line in [*process.settings(), "Random:setSeed = on", f"Random:seed = {block_seed(1, 0)}"]:
        pythia.readString(line)
    pythia.init()
    start = time.perf_counter()
    particles = _final_state(pythia.nextBatch(n_events, "skip"))
    generated = time.perf_counter()
    jets = durham_jets(particles, n_jets)
    clustered = time.perf_counter()
    project_jets(torch.from_numpy(jets), process.sqrt_s)
    projected = time.perf_counter()
    per = 1000 / n_events
    return {"generate": (generated - start) * per, "cluster": (clustered - generated) * per,
            "project": (projected - clustered) * per}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--jets", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as work:
        def command(workers: int):
            return lambda: subprocess.run(
                [sys.executable, "-m", "lipsgen", "data", "pythia", "--jets", str(args.jets), "--events",
                 str(args.events), "--seed", "1", "--workers", str(workers), "--force",
                 "--out", str(Path(work) / f"w{workers}.h5")], check=True, capture_output=True)
        medians = interleaved_medians({"1 worker": command(1), "2 workers": command(2)}, args.repeats)
    print(f"lipsgen data pythia --jets {args.jets} --events {args.events}, median of {args.repeats} "
          "interleaved runs (whole command, start-up included):")
    for name, seconds in medians.items():
        print(f"  {name}: {seconds:.1f} s, {args.events / seconds:.0f} events/s")
    print(f"  speed-up 2 workers / 1 worker: {medians['1 worker'] / medians['2 workers']:.2f}x")
    parts = [stages(args.jets, 5000) for _ in range(args.repeats)]
    print("one process, seconds per 1000 events (median):",
          ", ".join(f"{k} {np.median([p[k] for p in parts]):.3f}" for k in parts[0]))


if __name__ == "__main__":
    main()
