"""Bases against uniform phase space as the noise end: one harness, the same data, comparable wall clock.

For every target and base: train fm-z (``lipsgen train --base``), draw plain samples and exactly
weighted samples, evaluate them against an independent truth, and report the plain classifier
AUC, the fraction of events below the cut, and for the weighted samples the effective sample size
per event, the unweighting efficiency, defined as in Gao et al. (arXiv:2001.10028: mean weight
over the median, across bootstrap replicas, of the maximum weight) and with the raw maximum, and
unweighted events per second (weighted events per second of ``lipsgen sample --weights``, process
start included, times the bootstrap efficiency).
Steps per base are set so that the training wall clock is about equal (the chain base's decoded
event features cost about a third more per step). Prints a Markdown table (docs/results.md,
"Bases"). Run each target in its own process with OMP_NUM_THREADS=1 when two share the machine.

On targets with a density, the same table also has:
- ``--base-alone``: each trained model's fitted base sampled on its own (no network), weighted;
- ``--symmetries``: flows symmetrised over a relabelling group of the particles (density-only targets);
- ``--peers``: integrators that do not learn the physics, on the same density (bench/integration.py):
  flat RAMBO, VEGAS on RAMBO's chart, madspace's phase-space map with a VEGAS grid, MadNIS on
  RAMBO's chart (pip install -e '.[bench]').

Usage: python bench/bases_study.py --work DIR [--targets qqg muon z3 z4] [--models fm-z nf zdiff]
       [--bases uniform chain chains] [--events N] [--steps fm-z/uniform=S fm-z/chain=S ...]
       [--base-alone] [--peers flat vegas madspace madnis] [--symmetries none dihedral]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import machine  # noqa: E402
from fidelity import run  # noqa: E402
from integration import PEERS, add_peer_options  # noqa: E402
from lipsgen.bases import PhaseSpaceMap  # noqa: E402
from lipsgen.catalogue import SYMMETRY_HELP  # noqa: E402
from lipsgen.kinematics import phase_space_volume  # noqa: E402
from lipsgen.models.spaces import ChartSpace  # noqa: E402
from lipsgen.targets import Target, make_target  # noqa: E402
from lipsgen.training import load_model  # noqa: E402
from lipsgen.weights import log_event_weights, summarise_weights  # noqa: E402

TARGETS = {"qqg": ["qqg", "--ycut", "1e-3"], "muon": ["muon"], "sarge": ["sarge"],
           "z3": ["pythia", "--jets", "3", "--workers", "1"], "z4": ["pythia", "--jets", "4", "--workers", "1"]}
# targets with a closed-form density, for exact weights (the same parameters as their data)
DENSITIES: dict[str, tuple[str, dict[str, Any]]] = {
    "qqg": ("qqg", {"ycut": 1e-3}), "muon": ("muon", {}),
    "antenna5": ("antenna", {"n_particles": 5, "ycut": 1e-3}),
    "antenna10": ("antenna", {"n_particles": 10, "ycut": 1e-3})}
# densities without an event sampler: nf trained from the density alone (lipsgen train --target),
# judged by its weights only
DENSITY_ONLY = {name: ["--target", target, "--particles", str(parameters["n_particles"]),
                       "--ycut", str(parameters["ycut"])]
                for name, (target, parameters) in DENSITIES.items() if target == "antenna"}
# Training steps per model and base at about 4 minutes on one thread (the MLP targets; the transformer
# of unlabelled targets takes about twice as long per step); override with --steps MODEL/BASE=S.
DEFAULT_STEPS = {"fm-z/uniform": 8000, "fm-z/chain": 6000, "fm-z/chains": 6000, "zdiff/uniform": 8000,
                 "zdiff/chain": 6000, "zdiff/chains": 6000, "nf/uniform": 2000, "nf/chain": 2000, "nf/chains": 1500}


def bootstrap_unweighting_efficiency(weights: np.ndarray, replicas: int = 100, seed: int = 0) -> float:
    """Mean weight over the median, across bootstrap replicas, of the maximum weight (Gao et al.)."""
    rng = np.random.default_rng(seed)
    maxima = [weights[rng.integers(0, len(weights), len(weights))].max() for _ in range(replicas)]
    return float(weights.mean() / np.median(maxima))


def weight_cells(weights: np.ndarray, sample_seconds: float) -> list[str]:
    """The integral, ESS per event, both unweighting efficiencies (bootstrap, raw maximum) and
    unweighted events per second of weights (n,) drawn in ``sample_seconds``."""
    summary = summarise_weights(torch.from_numpy(weights))
    boot = bootstrap_unweighting_efficiency(weights)
    return [f"integral {summary.integral:.4g} ± {summary.integral_error:.2g}", f"{summary.ess_per_event:.3g}",
            f"{boot:.3g}", f"{summary.unweighting_efficiency:.3g}", f"{len(weights) * boot / sample_seconds:.3g}"]


def density_of(target: str) -> Target:
    name, parameters = DENSITIES[target]
    return make_target(name, **parameters)


def draw_from_base(base: PhaseSpaceMap, target: Target, n: int, generator: torch.Generator,
                   space: ChartSpace | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n events (n, N, 4) drawn from a base alone and their log weights log f / g (n,), -inf outside
    the target's support; with a model's chart ``space``, f as that space represents the events
    (energy-ordered unlabelled particles)."""
    u = torch.rand((n, base.dim), generator=generator, dtype=torch.float64)
    events, log_g = base.forward(u)
    log_f = target.log_density(events)
    if space is not None:
        log_f = space.represented_log_density(log_f, events)
    # the model convention's log(V_N g): the weight is V_N f / (V_N g)
    log_model = log_g + math.log(phase_space_volume(target.n_particles, target.sqrt_s))
    return events, log_event_weights(log_f, log_model, n_particles=target.n_particles, sqrt_s=target.sqrt_s)


def base_alone_weights(model_path: Path, target: Target, n: int, seed: int = 5) -> tuple[np.ndarray, float]:
    """Weights (n,) of n events drawn from a trained model's fitted base alone (no network) and the
    seconds they took."""
    model, _ = load_model(model_path)
    space = model.space
    if not isinstance(space, ChartSpace) or space.base is None:
        raise ValueError(f"{model_path}: the model has no base (uniform phase space)")
    start = time.perf_counter()
    _, log_w = draw_from_base(space.base, target, n, torch.Generator().manual_seed(seed), space)
    return log_w.exp().numpy(), time.perf_counter() - start


def peer_rows(target: str, args: argparse.Namespace) -> None:
    """One row per peer integrator on the target's density."""
    density = density_of(target)
    for peer in args.peers:
        weights, sample_s, total_s = PEERS[peer](density, args.weighted, args)
        print("| " + " | ".join([target, f"peer: {peer}", "-", "-", f"{total_s:.0f}", "-", "-",
                                 *weight_cells(weights, sample_s)]) + " |", flush=True)


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
    parser.add_argument("--base-alone", action="store_true",
                        help="also weight each model's fitted base on its own (targets with a density)")
    parser.add_argument("--symmetries", nargs="+", default=["none"], choices=list(SYMMETRY_HELP),
                        help="density-only targets: relabelling symmetries of the flows (lipsgen train --symmetry)")
    parser.add_argument("--peers", nargs="*", default=[], choices=list(PEERS),
                        help="integrators on the same density, in the same table (targets with a density)")
    add_peer_options(parser)
    args = parser.parse_args()
    steps = {**{k: str(v) for k, v in DEFAULT_STEPS.items()}, **dict(item.split("=") for item in args.steps)}
    lipsgen = [sys.executable, "-m", "lipsgen"]
    import h5py

    print(f"Machine: {machine()}\n")
    print("| target | model | base | steps | train (s) | plain AUC | below ycut | weighted AUC | ESS / event | "
          "unweighting eff. (bootstrap) | unweighting eff. (raw max) | unweighted ev/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in args.targets:
        work = args.work / target
        work.mkdir(parents=True, exist_ok=True)
        log = work / "log.txt"
        if target in DENSITIES:
            peer_rows(target, args)
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
            has_density = target in DENSITIES
            if has_density:
                weighted_s = run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.weighted), "--out",
                                            str(weighted), "--weights", "--steps", "20", "--seed", "4", "--force"], log)
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
                cells += [f"{samples[weighted.stem]['auc']:.3f}", *weight_cells(w, weighted_s)[1:]]
            else:
                cells += ["-"] * 5  # no target density: no exact weights
            print("| " + " | ".join(cells) + " |", flush=True)
            if has_density and args.base_alone:
                base_alone_row(target, model, base, out, args)


def base_alone_row(target: str, model: str, base: str, out: Path, args: argparse.Namespace) -> None:
    """The row of a trained model's fitted base sampled alone (none for uniform phase space)."""
    if base == "uniform":
        return
    weights, seconds = base_alone_weights(out / "model.pt", density_of(target), args.weighted)
    print("| " + " | ".join([target, f"{base} base alone (fitted for {model})", base, "-", "-", "-", "-",
                             *weight_cells(weights, seconds)]) + " |", flush=True)


def density_only(target: str, args: argparse.Namespace, steps: dict[str, str], lipsgen: list[str], work: Path,
                 log: Path) -> None:
    """nf from the density alone, per base and relabelling symmetry (``--symmetries``; steps
    ``nf/BASE/SYMMETRY=S``, default those of ``nf/BASE``): the weights' ESS, unweighting
    efficiencies and integral. A flow trained without a symmetry is also sampled symmetrised by
    each of the other symmetries (the group's mixture at sampling only)."""
    import h5py

    for base in args.bases:
        for symmetry in args.symmetries:
            name = f"nf_{base}" + ("" if symmetry == "none" else f"_{symmetry}")
            out, n_steps = work / name, steps.get(f"nf/{base}/{symmetry}", steps[f"nf/{base}"])
            train_s = run(lipsgen + ["train", *DENSITY_ONLY[target], "--model", "nf", "--base", base, "--out",
                                     str(out), "--max-steps", n_steps, "--seed", str(args.train_seed),
                                     "--symmetry", symmetry], log)
            at_sampling = [s for s in args.symmetries if s != "none"] if symmetry == "none" else []
            for sampled in [symmetry, *at_sampling]:
                weighted = work / f"{name}_{sampled}_weighted.h5"
                weighted_s = run(lipsgen + ["sample", str(out / "model.pt"), "--events", str(args.weighted),
                                            "--out", str(weighted), "--weights", "--seed", "4", "--force",
                                            "--symmetry", sampled], log)
                with h5py.File(weighted) as f:
                    w = np.asarray(f["weights"])
                label = ("nf" if symmetry == "none" else f"nf, trained {symmetry}") + (
                    f", sampled {sampled}" if sampled != symmetry else "")
                print("| " + " | ".join([target, label, base, n_steps, f"{train_s:.0f}", "-", "-",
                                         *weight_cells(w, weighted_s)]) + " |", flush=True)
            if args.base_alone:
                base_alone_row(target, "nf" if symmetry == "none" else f"nf, {symmetry}", base, out, args)


if __name__ == "__main__":
    main()
