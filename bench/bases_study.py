"""Bases against uniform phase space as the noise end: one harness, the same data, comparable wall clock.

For every target and base: train fm-z (``lipsgen train --base``), draw plain samples and exactly
weighted samples, evaluate them against an independent truth, and report the plain classifier
AUC, the fraction of events below the cut, and for the weighted samples the effective sample size
per event and the unweighting efficiency, defined as in Gao et al. (arXiv:2001.10028: mean weight
over the median, across bootstrap replicas, of the maximum weight) and with the raw maximum.
Steps per base are set so that the training wall clock is about equal (the chain base's decoded
event features cost about a third more per step). Prints a Markdown table (docs/results.md,
"Bases"). Run each target in its own process with OMP_NUM_THREADS=1 when two share the machine.

Usage: python bench/bases_study.py --work DIR [--targets qqg muon z3 z4] [--models fm-z nf zdiff]
       [--bases uniform chain chains] [--events N] [--steps fm-z/uniform=S fm-z/chain=S ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from fidelity import run  # noqa: E402

TARGETS = {"qqg": ["qqg", "--ycut", "1e-3"], "muon": ["muon"], "sarge": ["sarge"],
           "z3": ["pythia", "--jets", "3", "--workers", "1"], "z4": ["pythia", "--jets", "4", "--workers", "1"]}
DENSITY_TARGETS = ("qqg", "muon")  # targets with a closed-form density, for exact weights
# densities without an event sampler: nf trained from the density alone, judged by its weights only
DENSITY_ONLY = {"antenna5": ["--target", "antenna", "--particles", "5", "--ycut", "1e-3"],
                "antenna10": ["--target", "antenna", "--particles", "10", "--ycut", "1e-3"]}
# Training steps per model and base at about 4 minutes on one thread (the MLP targets; the transformer
# of unlabelled targets takes about twice as long per step); override with --steps MODEL/BASE=S.
DEFAULT_STEPS = {"fm-z/uniform": 8000, "fm-z/chain": 6000, "fm-z/chains": 6000, "zdiff/uniform": 8000,
                 "zdiff/chain": 6000, "zdiff/chains": 6000, "nf/uniform": 2000, "nf/chain": 2000, "nf/chains": 1500}


def unweighting_efficiencies(weights: np.ndarray, replicas: int = 100, seed: int = 0) -> tuple[float, float]:
    """(mean / median over bootstrap replicas of the maximum weight, mean / raw maximum)."""
    rng = np.random.default_rng(seed)
    maxima = [weights[rng.integers(0, len(weights), len(weights))].max() for _ in range(replicas)]
    return float(weights.mean() / np.median(maxima)), float(weights.mean() / weights.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=[*TARGETS, *DENSITY_ONLY])
    parser.add_argument("--models", nargs="+", default=["fm-z"])
    parser.add_argument("--bases", nargs="+", default=["uniform", "chain"])
    parser.add_argument("--events", type=int, default=200_000, help="training events")
    parser.add_argument("--truth", type=int, default=50_000, help="truth and plain-sample events")
    parser.add_argument("--weighted", type=int, default=20_000, help="weighted events")
    parser.add_argument("--train-seed", type=int, default=1, help="seed of the density-only targets' training")
    parser.add_argument("--steps", nargs="+", default=[],
                        help="training steps, MODEL/BASE=STEPS (defaults: about 4 minutes each, DEFAULT_STEPS)")
    args = parser.parse_args()
    steps = {**{k: str(v) for k, v in DEFAULT_STEPS.items()}, **dict(item.split("=") for item in args.steps)}
    lipsgen = [sys.executable, "-m", "lipsgen"]
    import h5py

    print(f"Machine: {machine()}\n")
    print("| target | model | base | steps | train (s) | plain AUC | below ycut | weighted AUC | ESS / event | "
          "unweighting eff. (bootstrap) | unweighting eff. (raw max) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in args.targets:
        work = args.work / target
        work.mkdir(parents=True, exist_ok=True)
        log = work / "log.txt"
        if target in DENSITY_ONLY:
            density_only(target, args, steps, lipsgen, work, log)
            continue
        train_file, truth_file = work / "train.h5", work / "truth.h5"
        for path, n, seed in ((train_file, args.events, 1), (truth_file, args.truth, 2)):
            if not path.exists():
                run(lipsgen + ["data", *TARGETS[target], "--events", str(n), "--out", str(path),
                               "--seed", str(seed)], log)
        for model, base in ((m, b) for m in args.models for b in args.bases):
            name = f"{model}_{base}"
            out = work / name
            plain, weighted = work / f"{name}_plain.h5", work / f"{name}_weighted.h5"
            train_s = run(lipsgen + ["train", "--data", str(train_file), "--model", model, "--base", base,
                                     "--out", str(out), "--max-steps", steps[f"{model}/{base}"]], log)
            run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.truth), "--out", str(plain),
                           "--seed", "3", "--force"], log)
            has_density = target in DENSITY_TARGETS
            if has_density:
                run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.weighted), "--out", str(weighted),
                               "--weights", "--steps", "20", "--seed", "4", "--force"], log)
            report = work / f"{name}_report"
            run(lipsgen + ["evaluate", "--truth", str(truth_file), "--samples", str(plain)]
                + (["--samples", str(weighted)] if has_density else []) + ["--out", str(report), "--force"], log)
            samples = json.loads((report / "metrics.json").read_text())["samples"]
            below = samples[plain.stem]["outside_support"]
            cells = [target, model, base, steps[f"{model}/{base}"], f"{train_s:.0f}",
                     f"{samples[plain.stem]['auc']:.3f}", "-" if below is None else f"{100 * below:.2f}%"]
            if has_density:
                with h5py.File(weighted) as f:
                    w = np.asarray(f["weights"])
                boot, raw = unweighting_efficiencies(w)
                ess = float(w.sum() ** 2 / (w**2).sum() / len(w))
                cells += [f"{samples[weighted.stem]['auc']:.3f}", f"{ess:.3f}", f"{boot:.3f}", f"{raw:.3f}"]
            else:
                cells += ["-"] * 4  # no target density: no exact weights
            print("| " + " | ".join(cells) + " |", flush=True)


def density_only(target: str, args: argparse.Namespace, steps: dict[str, str], lipsgen: list[str], work: Path,
                 log: Path) -> None:
    """nf from the density alone, per base: the weights' ESS, unweighting efficiencies and integral."""
    import h5py

    for base in args.bases:
        out, weighted = work / f"nf_{base}", work / f"nf_{base}_weighted.h5"
        train_s = run(lipsgen + ["train", *DENSITY_ONLY[target], "--model", "nf", "--base", base, "--out", str(out),
                                 "--max-steps", steps[f"nf/{base}"], "--seed", str(args.train_seed)], log)
        run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.weighted), "--out", str(weighted),
                       "--weights", "--seed", "4", "--force"], log)
        with h5py.File(weighted) as f:
            w = np.asarray(f["weights"])
        boot, raw = unweighting_efficiencies(w)
        ess = float(w.sum() ** 2 / (w**2).sum() / len(w))
        integral = f"{w.mean():.4g} ± {w.std() / len(w) ** 0.5:.2g}"
        print(f"| {target} | nf | {base} | {steps[f'nf/{base}']} | {train_s:.0f} | - | - | integral {integral} | "
              f"{ess:.2e} | {boot:.2e} | {raw:.2e} |", flush=True)


if __name__ == "__main__":
    main()
