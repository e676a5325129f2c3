"""Plain against refined samples: each model's events, weighted by a density ratio learnt from its data.

For every model in a work folder holding ``train.h5`` and ``truth.h5`` (an independent truth
sample): train at the cpu preset if ``MODEL/model.pt`` is missing (``lipsgen train``), sample a
fitting set and, with another seed, an evaluation set (``lipsgen sample``), learn the density
ratio data / model from the fitting set (``lipsgen refine``), weight the evaluation set
(``lipsgen reweight``) and unweight it (``lipsgen unweight``); then one ``lipsgen evaluate`` of
every file against the truth. Prints a Markdown table (docs/results.md, "Refined samples"); every
command is logged in ``WORK/refine_log.txt``.

With ``--refits K`` the ratio is fitted K times (``--seed 0..K-1``) and ``lipsgen reweight`` averages
the K log ratios (an ensemble; docs/design.md, "Learnt density ratios").

Usage: python bench/refine_study.py --work DIR --models fm-z zdiff [--events 200000] [--fit-events 300000]
       [--refits K] [--train-options '...']
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from fidelity import run  # noqa: E402

KEY_OBSERVABLES = ("x_1", "x_3", "x_sorted_1", "log10_min_y", "log10_y23", "thrust")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder with train.h5 and truth.h5")
    parser.add_argument("--models", nargs="+", default=["fm-z"])
    parser.add_argument("--events", type=int, default=200_000, help="evaluation events per model")
    parser.add_argument("--fit-events", type=int, default=300_000, help="model events to fit the ratio on")
    parser.add_argument("--train-options", default="",
                        help="extra options of lipsgen train, e.g. '--coupling particles --relative-output'")
    parser.add_argument("--refine-options", default="", help="extra options of lipsgen refine, e.g. '--steps 6000'")
    parser.add_argument("--refits", type=int, default=1, help="ratios fitted with seeds 0..K-1 and averaged")
    parser.add_argument("--evaluate-only", action="store_true", help="only evaluate the existing files")
    args = parser.parse_args()
    lipsgen = [sys.executable, "-m", "lipsgen"]
    work, log = args.work, args.work / "refine_log.txt"
    print(f"Machine: {machine()}\n")
    samples, seconds = [], {}
    for model in args.models:
        folder = work / model
        plain, fit, refined, unweighted = (work / f"{model}{s}.h5" for s in ("", "_fit", "_refined", "_unweighted"))
        samples += ["--samples", str(plain), "--samples", str(refined), "--samples", str(unweighted)]
        if args.evaluate_only:
            continue
        if not (folder / "model.pt").exists():
            run(lipsgen + ["train", "--data", str(work / "train.h5"), "--model", model, "--out", str(folder)]
                + args.train_options.split(), log)
        for path, n, seed in ((plain, args.events, 3), (fit, args.fit_events, 7)):
            if not path.exists():
                run(lipsgen + ["sample", str(folder / "model.pt"), "--events", str(n), "--out", str(path),
                               "--seed", str(seed)], log)
        ratios = [folder / ("ratio.pt" if seed == 0 else f"ratio_s{seed}.pt") for seed in range(args.refits)]
        seconds[model] = sum(run(lipsgen + ["refine", "--data", str(work / "train.h5"), "--samples", str(fit),
                                            "--out", str(ratio), "--seed", str(seed), "--force",
                                            *args.refine_options.split()], log)
                             for seed, ratio in enumerate(ratios))
        run(lipsgen + ["reweight", *map(str, ratios), str(plain), "--out", str(refined), "--force"], log)
        run(lipsgen + ["unweight", str(refined), "--out", str(unweighted), "--seed", "5", "--force"], log)
    report = work / "report_refined"
    run(lipsgen + ["evaluate", "--truth", str(work / "truth.h5"), *samples, "--out", str(report), "--force"], log)
    metrics = json.loads((report / "metrics.json").read_text())
    truth_chi2 = {k: v["chi2_ndf"] for k, v in metrics.get("truth_spectra", {}).items()}
    spectra = list(truth_chi2)
    first = metrics["samples"][Path(samples[1]).stem]
    observables = [k for k in KEY_OBSERVABLES if k in first["tails"]]
    print(f"{metrics['target']}: truth {metrics['n_truth']} events, classifier floor AUC {metrics['floor_auc']:.3f}"
          + (", truth chi2/ndf " + ", ".join(f"{k} {v:.2f}" for k, v in truth_chi2.items()) if spectra else "")
          + "\n")
    print("| model | events | AUC | below cut | mean w | ESS / event | "
          + " | ".join([f"χ²/ndf {k}" for k in spectra] + [f"max ln r {k}" for k in observables]) + " | refine (s) |")
    print("|---|---|---:|---:|---:|---:|" + "---:|" * (len(spectra) + len(observables)) + "---:|")
    for model in args.models:
        for suffix, kind in (("", "plain"), ("_refined", "refined"), ("_unweighted", "refined, unweighted")):
            m = metrics["samples"][f"{model}{suffix}"]
            w = m["weights"] if kind == "refined" else None
            outside = "" if m["outside_support"] is None else f"{m['outside_support']:.1%}"
            cells = ["", ""] if w is None else [f"{w['integral']:.3f}", f"{w['ess_per_event']:.3f}"]
            cells += [f"{m['spectra'][k]['chi2_ndf']:.2f}" for k in spectra]
            cells += [f"{m['tails'][k]['max_log_ratio']:.2f}" for k in observables]
            took = f"{seconds[model]:.0f}" if kind == "refined" and model in seconds else ""
            print(f"| {model} | {kind} ({m['n_events']}) | {m['auc']:.3f} | {outside} | " + " | ".join(cells)
                  + f" | {took} |")
    print()


if __name__ == "__main__":
    main()
