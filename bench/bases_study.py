"""Bases against uniform phase space as the noise end: one harness, the same data, comparable wall clock.

For every target and base: train fm-z (``lipsgen train --base``), draw plain samples and exactly
weighted samples, evaluate them against an independent truth, and report the plain classifier
AUC, the fraction of events below the cut, and for the weighted samples the effective sample size
per event and the unweighting efficiency, defined as in Gao et al. (arXiv:2001.10028: mean weight
over the median, across bootstrap replicas, of the maximum weight) and with the raw maximum.
Steps per base are set so that the training wall clock is about equal (the chain base's decoded
event features cost about a third more per step). Prints a Markdown table (docs/results.md,
"Bases"). Run each target in its own process with OMP_NUM_THREADS=1 when two share the machine.

Usage: python bench/bases_study.py --work DIR [--targets qqg muon] [--bases uniform chain]
       [--events N] [--steps uniform=S chain=S]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402

TARGETS = {"qqg": ["qqg", "--ycut", "1e-3"], "muon": ["muon"]}


def run(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("a") as f:
        f.write("$ " + " ".join(command) + "\n")
        f.flush()
        subprocess.run(command, check=True, stdout=f, stderr=f)
    return time.perf_counter() - start


def unweighting_efficiencies(weights: np.ndarray, replicas: int = 100, seed: int = 0) -> tuple[float, float]:
    """(mean / median over bootstrap replicas of the maximum weight, mean / raw maximum)."""
    rng = np.random.default_rng(seed)
    maxima = [weights[rng.integers(0, len(weights), len(weights))].max() for _ in range(replicas)]
    return float(weights.mean() / np.median(maxima)), float(weights.mean() / weights.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--bases", nargs="+", default=["uniform", "chain"])
    parser.add_argument("--events", type=int, default=200_000, help="training events")
    parser.add_argument("--truth", type=int, default=50_000, help="truth and plain-sample events")
    parser.add_argument("--weighted", type=int, default=20_000, help="weighted events")
    parser.add_argument("--steps", nargs="+", default=["uniform=8000", "chain=6000"],
                        help="training steps per base, BASE=STEPS (default: about equal wall clock)")
    args = parser.parse_args()
    steps = dict(item.split("=") for item in args.steps)
    lipsgen = [sys.executable, "-m", "lipsgen"]
    import h5py

    print(f"Machine: {machine()}\n")
    print("| target | base | steps | train (s) | plain AUC | below ycut | weighted AUC | ESS / event | "
          "unweighting eff. (bootstrap) | unweighting eff. (raw max) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in args.targets:
        work = args.work / target
        work.mkdir(parents=True, exist_ok=True)
        log = work / "log.txt"
        train_file, truth_file = work / "train.h5", work / "truth.h5"
        for path, n, seed in ((train_file, args.events, 1), (truth_file, args.truth, 2)):
            if not path.exists():
                run(lipsgen + ["data", *TARGETS[target], "--events", str(n), "--out", str(path),
                               "--seed", str(seed)], log)
        for base in args.bases:
            out = work / base
            plain, weighted = work / f"{base}_plain.h5", work / f"{base}_weighted.h5"
            train_s = run(lipsgen + ["train", "--data", str(train_file), "--model", "fm-z", "--base", base,
                                     "--out", str(out), "--max-steps", steps[base]], log)
            run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.truth), "--out", str(plain),
                           "--seed", "3", "--force"], log)
            run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.weighted), "--out", str(weighted),
                           "--weights", "--steps", "20", "--seed", "4", "--force"], log)
            report = work / f"{base}_report"
            run(lipsgen + ["evaluate", "--truth", str(truth_file), "--samples", str(plain), "--samples",
                           str(weighted), "--out", str(report), "--force"], log)
            metrics = json.loads((report / "metrics.json").read_text())
            with h5py.File(weighted) as f:
                w = np.asarray(f["weights"])
            boot, raw = unweighting_efficiencies(w)
            ess = float(w.sum() ** 2 / (w**2).sum() / len(w))
            rows = {name: m for name, m in metrics["samples"].items()}
            plain_m, weighted_m = rows[plain.stem], rows[weighted.stem]
            below = plain_m["outside_support"]
            below_text = "-" if below is None else f"{100 * below:.2f}%"
            print(f"| {target} | {base} | {steps[base]} | {train_s:.0f} | {plain_m['auc']:.3f} | "
                  f"{below_text} | {weighted_m['auc']:.3f} | {ess:.3f} | {boot:.3f} | {raw:.3f} |",
                  flush=True)


if __name__ == "__main__":
    main()
