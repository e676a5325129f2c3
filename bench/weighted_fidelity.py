"""Weighted against unweighted fidelity: the same trained models, sampled plainly and with exact weights.

Reuses a ``bench/fidelity.py`` work folder (its truth file, training data and cpu-preset models),
adds ``nf`` trained from the target density alone (no events), and for each model: plain samples
(the fidelity run's), weighted samples (``lipsgen sample --weights``), the same unweighted
(``lipsgen unweight``), all evaluated in one ``lipsgen evaluate`` against the same truth. Prints a
Markdown table (copied into docs/results.md, "Exact weights") and keeps everything under --work.

Usage: python bench/weighted_fidelity.py --work DIR [--targets qqg muon] [--models fm-z zdiff nf]
       [--events N] [--steps S] [--nf-steps S]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from fidelity import TARGETS, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench/fidelity.py work folder")
    parser.add_argument("--targets", nargs="+", default=["qqg", "muon"])
    parser.add_argument("--models", nargs="+", default=["fm-z", "zdiff", "nf"])
    parser.add_argument("--events", type=int, default=20_000, help="weighted events per model")
    parser.add_argument("--steps", type=int, default=50, help="ODE steps of the weighted runs (not nf)")
    parser.add_argument("--nf-steps", type=int, default=3000, help="training steps of nf from the density")
    args = parser.parse_args()
    lipsgen = [sys.executable, "-m", "lipsgen"]
    print(f"Machine: {machine()}\n")
    for target in args.targets:
        work = args.work / target
        log = work / "weighted_log.txt"
        samples, rows = [], {}
        for model in args.models:
            checkpoint = work / model / "model.pt"
            if model == "nf" and not checkpoint.exists():
                start = time.perf_counter()
                run(lipsgen + ["train", "--target", *TARGETS[target][0], "--model", "nf", "--max-steps",
                               str(args.nf_steps), "--out", str(work / model)], log)
                (work / "nf_train_seconds.txt").write_text(f"{time.perf_counter() - start:.0f}\n")
            plain, weighted, unweighted = (work / f"{model}{suffix}.h5" for suffix in ("", "_weighted", "_unweighted"))
            if not plain.exists():
                run(lipsgen + ["sample", str(checkpoint), "--events", str(args.events), "--out", str(plain),
                               "--seed", "3", "--force"], log)
            steps = [] if model == "nf" else ["--steps", str(args.steps)]
            seconds = run(lipsgen + ["sample", str(checkpoint), "--events", str(args.events), "--weights", *steps,
                                     "--out", str(weighted), "--seed", "4", "--force"], log)
            run(lipsgen + ["unweight", str(weighted), "--out", str(unweighted), "--seed", "5", "--force"], log)
            samples += ["--samples", str(plain), "--samples", str(weighted), "--samples", str(unweighted)]
            rows[model] = seconds
        report = work / "report_weighted"
        run(lipsgen + ["evaluate", "--truth", str(work / "truth.h5"), *samples, "--out", str(report), "--force"],
            log)
        metrics = json.loads((report / "metrics.json").read_text())
        truth_chi2 = {k: v["chi2_ndf"] for k, v in metrics.get("truth_spectra", {}).items()}
        print(f"### {target}: truth {metrics['n_truth']} events, classifier floor AUC {metrics['floor_auc']:.3f}"
              + "".join(f", truth chi2/ndf {k} {v:.2f}" for k, v in truth_chi2.items() if k in ("x_3", "thrust"))
              + "\n")
        print("| model | events | AUC | below cut | integral | rel. std | ESS / event | unweighting eff. "
              "| chi2/ndf x_3 | chi2/ndf thrust | weighted sampling (s) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for model, seconds in rows.items():
            for suffix, kind in (("", "plain"), ("_weighted", "weighted"), ("_unweighted", "unweighted")):
                m = metrics["samples"][f"{model}{suffix}"]
                w = m["weights"]
                outside = "" if m["outside_support"] is None else f"{m['outside_support']:.1%}"
                # unweighted files: equal weights but for the overweights, carrying the weighted file's integral
                cells = (["", "", "", ""] if w is None or kind == "unweighted" else
                         [f"{w['integral']:.4f} ± {w['integral_error']:.4f}", f"{w['relative_std']:.2f}",
                          f"{w['ess_per_event']:.3f}", f"{w['unweighting_efficiency']:.3f}"])
                chi2 = [f"{m['spectra'][k]['chi2_ndf']:.2f}" if k in m["spectra"] else "" for k in ("x_3", "thrust")]
                print(f"| {model} | {kind} ({m['n_events']}) | {m['auc']:.3f} | {outside} | "
                      + " | ".join(cells + chi2) + f" | {f'{seconds:.0f}' if kind == 'weighted' else ''} |")
        print()


if __name__ == "__main__":
    main()
