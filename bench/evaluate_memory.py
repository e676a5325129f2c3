"""Peak memory of ``lipsgen evaluate`` on a sample file far larger than memory should need.

Writes a truth file and a sample file of uniform phase space (``lipsgen data uniform``), then
runs ``lipsgen evaluate`` on them in a child process per sample size and reports its peak resident
memory (``ru_maxrss`` of the child) and wall time. The reference row is a sample no larger than
``--max-events``, evaluated whole; the large rows are subsampled for the histograms, W1 and the
classifier and streamed for the conservation metric and the physics checks.

Usage: python bench/evaluate_memory.py --work DIR [--particles 10] [--events 10000000 1000000]
       [--truth 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from lipsgen.catalogue import EVALUATED_EVENTS  # noqa: E402


def peak_of_child(command: list[str]) -> tuple[float, float]:
    """(peak resident memory in GiB, wall time in s) of ``command``, run by a fresh Python
    wrapper: ``ru_maxrss`` of RUSAGE_CHILDREN is the largest child a process ever waited for, so
    the wrapper sees this command alone (not the data generation before it)."""
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
               " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", wrapper, *command], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return int(result.stdout.split()[-1]) / 2**20, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--particles", type=int, default=10)
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--truth", type=int, default=100_000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    lipsgen = [sys.executable, "-m", "lipsgen"]
    truth = args.work / "truth.h5"
    if not truth.exists():
        subprocess.run(lipsgen + ["data", "uniform", "--particles", str(args.particles), "--events", str(args.truth),
                                  "--seed", "1", "--out", str(truth)], check=True, stderr=subprocess.DEVNULL)
    print(f"Machine: {machine()}\n")
    print("| sample events | file (GiB) | evaluated | peak memory (GiB) | wall (s) |\n|---:|---:|---:|---:|---:|")
    for n in sorted(args.events):
        sample = args.work / f"sample_{n}.h5"
        if not sample.exists():
            subprocess.run(lipsgen + ["data", "uniform", "--particles", str(args.particles), "--events", str(n),
                                      "--seed", "2", "--out", str(sample)], check=True, stderr=subprocess.DEVNULL)
        peak, wall = peak_of_child(lipsgen + ["evaluate", "--truth", str(truth), "--samples", str(sample),
                                              "--out", str(args.work / f"report_{n}"), "--force"])
        evaluated = min(n, EVALUATED_EVENTS)
        print(f"| {n} | {sample.stat().st_size / 2**30:.2f} | {evaluated} | {peak:.2f} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
