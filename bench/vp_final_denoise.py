"""The VP sampler's final Tweedie step, measured: the same trained model sampled with and without it.

Samples each checkpoint twice (same seed; ``final_denoise`` on and off), evaluates both against
the truth file with ``lipsgen evaluate`` and prints AUC and W1 per observable.

Usage: python bench/vp_final_denoise.py --truth TRUTH.h5 --work DIR CHECKPOINT [CHECKPOINT ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lipsgen.evaluation import EvaluationInputs, evaluate
from lipsgen.sampling import sample_to_file
from lipsgen.training import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    samples = []
    for checkpoint in args.checkpoints:
        model, _ = load_model(checkpoint)
        for final in (True, False):
            model.process.final_denoise = final  # type: ignore[attr-defined]
            out = args.work / f"{model.config.model}-{'tweedie' if final else 'tmin'}.h5"
            sample_to_file(model, args.events, out, seed=3, progress=False)
            samples.append(out)
    metrics = evaluate(EvaluationInputs(args.truth, samples), args.work / "report")
    keys = ("x_1", "x_3", "log10_min_y", "thrust")
    print(f"floor AUC {metrics['floor_auc']:.3f}\n")
    print("| sample | AUC | " + " | ".join(f"W1 {k}" for k in keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for name, m in metrics["samples"].items():
        print(f"| {name} | {m['auc']:.3f} | " + " | ".join(f"{m['wasserstein'][k][0]:.4f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
