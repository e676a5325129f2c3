"""Fidelity table: every model at its cpu preset on muon, qqg (ycut 1e-3), SARGE (N 10, xi_max 30) and Pythia jets.

Runs the CLI exactly as a user would (data, train, sample, evaluate), times each step, and writes
the table to docs/results.md (plus the full metrics and reports under --work).

Usage: python bench/fidelity.py [--work DIR] [--targets muon qqg sarge z3 z4] [--models ...] [--evaluate-only]

z3 and z4 are Pythia 8 events at the Z pole (hadron level) clustered to 3 and 4 Durham jets; they
need the pythia extra. The default --targets are the paper's three.

The hand-written analysis after the tables (from "## Reading the table" on) is kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402

MODELS = ["langevin", "zdiff", "fm-q", "fm-z", "fm-fitted", "pddpm", "pfm"]
TARGETS = {
    "muon": (["muon"], 100_000, 20_000),
    "qqg": (["qqg", "--ycut", "1e-3"], 100_000, 20_000),
    "sarge": (["sarge", "--particles", "10", "--xi-max", "30"], 100_000, 10_000),
    # Pythia 8 at the Z pole, hadron level, clustered to 3 and 4 Durham jets (extra: lipsgen[pythia])
    "z3": (["pythia", "--jets", "3", "--workers", "2"], 100_000, 20_000),
    "z4": (["pythia", "--jets", "4", "--workers", "2"], 100_000, 20_000),
}


def run(command: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("a") as f:
        f.write("$ " + " ".join(command) + "\n")
        f.flush()
        subprocess.run(command, check=True, stdout=f, stderr=f)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("fidelity-runs"))
    parser.add_argument("--targets", nargs="+", default=["muon", "qqg", "sarge"], choices=list(TARGETS))
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--results", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--evaluate-only", action="store_true",
                        help="re-run only the evaluation on the samples and timings of an earlier run in --work")
    args = parser.parse_args()
    lipsgen = [sys.executable, "-m", "lipsgen"]
    for target in args.targets:
        data_args, n_train, n_samples = TARGETS[target]
        work = args.work / target
        work.mkdir(parents=True, exist_ok=True)
        log = work / "log.txt"
        train_file, truth_file = work / "train.h5", work / "truth.h5"
        if args.evaluate_only:
            samples = [arg for model in args.models for arg in ("--samples", str(work / f"{model}.h5"))]
            run(lipsgen + ["evaluate", "--truth", str(truth_file), *samples, "--out", str(work / "report"),
                           "--force"], log)
            write_results(args.results, args)
            continue
        run(lipsgen + ["data", *data_args, "--events", str(n_train), "--out", str(train_file), "--seed", "1",
                       "--force"], log)
        run(lipsgen + ["data", *data_args, "--events", str(2 * n_samples), "--out", str(truth_file),
                       "--seed", "2", "--force"], log)
        samples = []
        timing_file = work / "timing.json"
        timing = json.loads(timing_file.read_text()) if timing_file.exists() else {}
        for model in args.models:
            run_dir = work / model
            trained_before = (run_dir / "model.pt").exists()
            t_train = run(lipsgen + ["train", "--data", str(train_file), "--model", model, "--out", str(run_dir),
                                     "--seed", "0"] + (["--resume"] if (run_dir / "checkpoint.pt").exists() else []),
                          log)
            out = work / f"{model}.h5"
            t_sample = run(lipsgen + ["sample", str(run_dir / "model.pt"), "--events", str(n_samples),
                                      "--out", str(out), "--seed", "3", "--force"], log)
            samples += ["--samples", str(out)]
            # a finished run is only reloaded: keep the training time measured when it ran
            timing[model] = (timing.get(model, (t_train,))[0] if trained_before else t_train, t_sample)
            timing_file.write_text(json.dumps(timing, indent=2))
        run(lipsgen + ["evaluate", "--truth", str(truth_file), *samples, "--out", str(work / "report"), "--force"],
            log)
        write_results(args.results, args)


def _w1(value: list[float], key: str) -> str:
    return f"{value[0]:.4f}" if key == "eec" else f"{value[0]:.4f} ± {value[1]:.4f}"


def write_results(path: Path, args: argparse.Namespace) -> None:
    """Tables for every target evaluated under --work, then the kept hand-written analysis."""
    rows = {}
    for target in TARGETS:
        report, timing = args.work / target / "report" / "metrics.json", args.work / target / "timing.json"
        if report.exists():
            rows[target] = (json.loads(report.read_text()),
                            json.loads(timing.read_text()) if timing.exists() else {})
    old = path.read_text() if path.exists() else ""
    marker = "\n## Reading the table"
    analysis = old[old.index(marker):] if marker in old else ""
    lines = [
        "# Fidelity of every model at its cpu preset",
        "",
        f"Machine: {machine()}. Produced by `python bench/fidelity.py` (which runs `lipsgen data`, `lipsgen "
        "train --model M` with the default `cpu` preset and seed 0, `lipsgen sample` at the default step count "
        "and `lipsgen evaluate` against an independent truth sample); logs with every command are in "
        f"`{args.work}/TARGET/log.txt`. Training sets: 100k events. AUC: gradient-boosting classifier on the "
        "observables, held-out half; floor: truth against independent truth. Conservation: the paper's metric "
        "(mean over events of |ΣE − √s| / median E and |Σp| / median E). W1: mean ± spread over 5 batches "
        "(the EEC, a pair-weighted distribution, over the full samples). Wall times are those of the whole "
        "command on the 2-core machine.",
        "",
    ]
    for target in TARGETS:
        if target not in rows:  # not evaluated in this --work: keep its section as it was
            if f"## {target}\n" in old:
                lines += ["## " + old.split(f"## {target}\n", 1)[1].split("\n## ", 1)[0].rstrip("\n")
                          .join([f"{target}\n", ""]), ""]
            continue
        metrics, timing = rows[target]
        present = next(iter(metrics["samples"].values()))["wasserstein"]
        keys = [k for k in ("x_1", "x_3", "x_sorted_1", "y_sorted_1", "log10_min_y", "log10_y23", "log10_y34",
                            "thrust", "eec") if k in present]
        cut = target == "qqg"  # the only target here with a hard cut on phase space
        lines += [f"## {target}", "", f"{metrics['n_particles']} particles, truth {metrics['n_truth']} events, "
                  f"classifier floor AUC {metrics['floor_auc']:.3f}.", "",
                  "| model | exact | AUC | energy | momentum | " + ("below ycut | AUC above ycut | " if cut else "")
                  + " | ".join(f"W1 {k}" for k in keys) + " | train (s) | sample (s) |",
                  "|---|---|---:|---:|---:|" + "---:|" * (len(keys) + 2 * cut) + "---:|---:|"]
        kept = _previous_rows(old, target, set(metrics["samples"]))
        for name in [m for m in MODELS if m in metrics["samples"] or m in kept]:
            if name in kept:
                lines.append(kept[name])
                continue
            m = metrics["samples"][name]
            t_train, t_sample = timing.get(name, (float("nan"), float("nan")))
            lines.append(
                f"| {name} | {'yes' if m['exact'] else 'no'} | {m['auc']:.3f} | {m['conservation']['energy']:.1e} | "
                f"{m['conservation']['momentum']:.1e} | "
                + (f"{m['outside_support']:.1%} | {m['auc_in_support']:.3f} | " if cut else "")
                + " | ".join(_w1(m["wasserstein"][k], k) for k in keys)
                + f" | {t_train:.0f} | {t_sample:.0f} |")
        if kept:
            lines += ["", "† Row kept from the previous run of this script: that model was not re-run (`--models`)."]
        lines += ["", *_tail_table(metrics, [k for k in keys if k != "eec"] + ["c_parameter"]), ""]
    path.write_text("\n".join(lines) + analysis)


def _tail_table(metrics: dict, tail_keys: list[str]) -> list[str]:
    """Tails of the models evaluated in this run: the largest |ln(model/truth)| over 40
    equal-population truth bins holding >= 50 truth events, the W1 distance of the outer 5% on
    each side, and the chi2/ndf against the target's analytic spectra (with the truth's own)."""
    spectra = list(metrics.get("truth_spectra", {}))
    header = ([f"max ln r {k}" for k in tail_keys] + [f"W1 tails {k}" for k in tail_keys]
              + [f"χ²/ndf {k}" for k in spectra])
    lines = ["Tails (this run's models): max ln r = largest |ln(model/truth)| over 40 equal-population truth bins "
             "with ≥ 50 truth events; W1 tails = W1 of the outer 5% quantiles on each side"
             + ("; χ²/ndf against the analytic spectrum (truth: " + ", ".join(
                 f"{k} {v['chi2_ndf']:.2f}" for k, v in metrics["truth_spectra"].items()) + ")" if spectra else "")
             + ".", "", "| model | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for name, m in metrics["samples"].items():
        cells = ([f"{m['tails'][k]['max_log_ratio']:.2f}" for k in tail_keys]
                 + [f"{m['tails'][k]['w1_tails']:.4f}" for k in tail_keys]
                 + [f"{m['spectra'][k]['chi2_ndf']:.1f}" for k in spectra])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _previous_rows(old: str, target: str, rerun: set[str]) -> dict[str, str]:
    """Table rows of ``target`` in the previous results (models not in ``rerun``), marked with †."""
    if f"## {target}\n" not in old:
        return {}
    section = old.split(f"## {target}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1].rstrip(" †") in MODELS and cells[1].rstrip(" †") not in rerun:
            name = cells[1].rstrip(" †")
            rows[name] = line.replace(f"| {cells[1]} |", f"| {name} † |", 1)
    return rows


if __name__ == "__main__":
    main()
