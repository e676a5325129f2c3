"""Teachers against their distilled students: speed and fidelity side by side, in one run.

A work folder holds one sub-folder per target with ``teacher/model.pt`` (an fm-z or zdiff model),
``truth.h5`` (independent target events) and students made by ``lipsgen distill``, each in a
sub-folder of its own (any name; rows in name order). For each target, in this one process: plain
and weighted events per second (median of --repeats runs, --threads torch threads; the teacher's
weighted rate from a tenth of the events), the share of runs that cross a folding step and each
student's RMS distance to its teacher's map (per coordinate of the states, 4000 noise draws), then
``lipsgen sample`` (plain; with --weights for targets with a density, then ``lipsgen unweight``)
and one ``lipsgen evaluate`` against the truth. Prints a Markdown table (docs/results.md,
"Distilled students") and keeps the files under --work.

Usage: python bench/distill_bench.py --work DIR [--targets muon qqg sarge] [--events N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from fidelity import run  # noqa: E402
from lipsgen.models.processes.solver import step_jacobians  # noqa: E402
from lipsgen.training import load_model  # noqa: E402

WEIGHTED_TARGETS = ("muon", "qqg")  # closed-form densities with the weights of docs/results.md


def events_per_second(path: Path, n: int, density: bool, repeats: int) -> float:
    model, _ = load_model(path)
    model.sample(min(n, 256), seed=0, density=density)  # warm-up
    seconds = []
    for r in range(repeats):
        start = time.perf_counter()
        model.sample(n, seed=r + 1, density=density)
        seconds.append(time.perf_counter() - start)
    return n / statistics.median(seconds)


@torch.no_grad()
def folded_fraction(path: Path, n: int = 2000) -> float:
    """The share of n runs from the noise end that cross a step with a negative Jacobian
    determinant (a fold; the continuous flow has none) at the model's default steps; 0 for a flow."""
    model, _ = load_model(path)
    if model.config.model == "nf":
        return 0.0
    generator = torch.Generator().manual_seed(0)
    x = model.noise_prior(n, generator, torch.device("cpu"))
    step = model.process.step(model.net, model.default_solver(density=True), generator)
    times = model.process.time_grid(model.default_steps, 1.0)
    folded = torch.zeros(n, dtype=torch.bool)
    for i in range(len(times) - 1):
        with torch.enable_grad():
            x, jacobians = step_jacobians(step, x, times[i], times[i + 1], i + 2 == len(times))
        folded |= torch.linalg.slogdet(jacobians)[0] < 0
    return float(folded.double().mean())


@torch.no_grad()
def map_error(teacher_path: Path, student_path: Path, n: int = 4000) -> float:
    """RMS distance per coordinate between the student's and the teacher's states from the same n
    noise draws (the teacher at its default steps and deterministic solver)."""
    teacher, _ = load_model(teacher_path)
    student, _ = load_model(student_path)
    z = teacher.noise_prior(n, torch.Generator().manual_seed(0), torch.device("cpu"))
    ends = []
    for model in (teacher, student):
        solver = model.default_solver(density=True)
        x, _ = model.process.sample(model.net, z, steps=model.default_steps, solver=solver,
                                    generator=torch.Generator().manual_seed(1))
        ends.append(x)
    return float((ends[0] - ends[1]).square().mean().sqrt())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--targets", nargs="+", default=["muon", "qqg", "sarge"])
    parser.add_argument("--events", type=int, default=20_000, help="events per sample file")
    parser.add_argument("--speed-events", type=int, default=20_000, help="events per timed plain run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true", help="reuse the speeds of an earlier run, if any")
    parser.add_argument("--skip-samples", action="store_true", help="reuse the sample files of an earlier run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lipsgen = [sys.executable, "-m", "lipsgen"]
    print(f"Machine: {machine()}\n")
    for target in args.targets:
        work = args.work / target
        log = work / "distill_bench_log.txt"
        students = sorted(d.name for d in work.iterdir() if d.name != "teacher" and (d / "model.pt").exists())
        names = ["teacher", *students]
        weighted = target in WEIGHTED_TARGETS
        speed_file = work / "speeds.json"
        speeds: dict[str, dict[str, float]] = {}
        if args.skip_speed and speed_file.exists():
            speeds = json.loads(speed_file.read_text())
        for name in names:
            checkpoint = work / name / "model.pt"
            if not args.skip_speed:
                n = args.speed_events // (10 if name == "teacher" else 1)
                speeds[name] = {"plain": events_per_second(checkpoint, n, False, args.repeats)}
                if weighted:
                    speeds[name]["weighted"] = events_per_second(checkpoint, n // 4, True, args.repeats)
                    speeds[name]["folded"] = folded_fraction(checkpoint)
                if name != "teacher":
                    speeds[name]["map_error"] = map_error(work / "teacher" / "model.pt", checkpoint)
            if args.skip_samples and (work / f"{name}.h5").exists():
                continue
            run(lipsgen + ["sample", str(checkpoint), "--events", str(args.events), "--out", str(work / f"{name}.h5"),
                           "--seed", "3", "--force"], log)
            if weighted:
                run(lipsgen + ["sample", str(checkpoint), "--events", str(args.events), "--weights", "--out",
                               str(work / f"{name}_weighted.h5"), "--seed", "4", "--force"], log)
                run(lipsgen + ["unweight", str(work / f"{name}_weighted.h5"), "--out",
                               str(work / f"{name}_unweighted.h5"), "--seed", "5", "--force"], log)
        if not args.skip_speed:
            speed_file.write_text(json.dumps(speeds, indent=1))
        kinds = ("", "_weighted", "_unweighted") if weighted else ("",)
        samples = [a for name in names for k in kinds for a in ("--samples", str(work / f"{name}{k}.h5"))]
        report = work / "report_distill"
        run(lipsgen + ["evaluate", "--truth", str(work / "truth.h5"), *samples, "--out", str(report), "--force"], log)
        metrics = json.loads((report / "metrics.json").read_text())
        truth_spectra = metrics.get("truth_spectra", {})
        spectra = sorted(truth_spectra)
        print(f"### {target}: truth {metrics['n_truth']} events, classifier floor AUC {metrics['floor_auc']:.3f}"
              + "".join(f", truth chi2/ndf {k} {v['chi2_ndf']:.2f}" for k, v in truth_spectra.items())
              + "\n")
        print("| model | steps | map error | events | AUC | below cut | mean weight | ESS / event | unweighting eff. "
              "| folded | "
              + "".join(f"chi2/ndf {k} | " for k in spectra) + "plain ev/s | weighted ev/s |")
        print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(spectra) + "---:|---:|")
        for name in names:
            steps = load_model(work / name / "model.pt")[0].default_steps
            for kind in kinds:
                m = metrics["samples"][f"{name}{kind}"]
                w = m["weights"] if kind == "_weighted" else None
                outside = "" if m["outside_support"] is None else f"{m['outside_support']:.2%}"
                speed = speeds.get(name, {})
                weights = ["", "", "", ""] if w is None else [
                    f"{w['integral']:.4f} ± {w['integral_error']:.4f}", f"{w['ess_per_event']:.3f}",
                    f"{w['unweighting_efficiency']:.3f}", f"{speed['folded']:.2%}" if "folded" in speed else ""]
                chi2 = [f"{m['spectra'][k]['chi2_ndf']:.1f}" if k in m["spectra"] else "" for k in spectra]
                rate = [f"{speed['plain']:.0f}" if kind == "" and speed else "",
                        f"{speed['weighted']:.0f}" if kind == "_weighted" and speed else ""]
                error = f"{speed['map_error']:.3f}" if kind == "" and "map_error" in speed else ""
                print(f"| {name} | {steps} | {error} | {kind.strip('_') or 'plain'} ({m['n_events']}) | "
                      f"{m['auc']:.3f} | {outside} | " + " | ".join(weights + chi2 + rate) + " |")
        print()


if __name__ == "__main__":
    main()
