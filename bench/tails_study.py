"""Why models over-fill where the density vanishes: one model at the cpu preset and variants of it.

Trains each variant on the same training file (a target with analytic spectra: muon, qqg), samples
it and reports, per variant, the chi^2/ndf of every analytic spectrum (40 bins, lipsgen's
``chi2_per_ndf``), the model/truth ratio in the outermost 0.05-wide bins and the classifier AUC
against an independent truth sample (one ``lipsgen evaluate`` run for all).

A variant is ``name:key=value,key=value`` with ModelConfig or TrainConfig fields (``cpu`` alone is
the preset); ``--sample-only`` re-samples existing variants (e.g. with ``--steps`` or ``--solver``).

Usage: python bench/tails_study.py --train TRAIN.h5 --truth TRUTH.h5 --work DIR --model fm-z \\
           --variants cpu b2048:batch_size=2048 --samples 200000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from lipsgen.evaluation import EvaluationInputs, evaluate
from lipsgen.evaluation.tails import chi2_per_ndf
from lipsgen.io import load_events
from lipsgen.models import ModelConfig
from lipsgen.sampling import sample_to_file
from lipsgen.targets import target_from_attributes
from lipsgen.targets.facts import facts_from_attributes
from lipsgen.training import TrainConfig, load_model, resolve_preset, train

EDGE_BIN = 0.05


def parse_variant(text: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``name:key=value,...`` -> (name, ModelConfig overrides, TrainConfig overrides)."""
    name, _, settings = text.partition(":")
    model_fields, train_fields = {f.name for f in fields(ModelConfig)}, {f.name for f in fields(TrainConfig)}
    model_overrides: dict[str, Any] = {}
    train_overrides: dict[str, Any] = {}
    for item in filter(None, settings.split(",")):
        key, _, raw = item.partition("=")
        value: Any = {"true": True, "false": False}.get(raw.lower(), raw)
        if isinstance(value, str):
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    pass
        if key in model_fields:
            model_overrides[key] = value
        elif key in train_fields:
            train_overrides[key] = value
        else:
            raise SystemExit(f"variant {text!r}: {key!r} is neither a ModelConfig nor a TrainConfig field")
    return name, model_overrides, train_overrides


def spectra_rows(path: Path, spectra: dict) -> dict[str, tuple[float, float, float]]:
    """Per spectrum of energy fractions: (chi2/ndf, ratio in [0, 0.05), ratio in [0.95, 1])."""
    with h5py.File(path) as f:
        x = 2 * f["momenta"][:, :, 0] / float(f.attrs.get("sqrt_s", 1.0))
    rows = {}
    for name, cdf in spectra.items():
        if not name.startswith("x_"):
            continue
        values = x[:, int(name[2:]) - 1]
        chi2, _ = chi2_per_ndf(values, cdf)
        low = np.mean(values < EDGE_BIN) / (cdf(np.array([EDGE_BIN]))[0] - cdf(np.array([0.0]))[0])
        high = np.mean(values >= 1 - EDGE_BIN) / (cdf(np.array([1.0]))[0] - cdf(np.array([1 - EDGE_BIN]))[0])
        rows[name] = (chi2, float(low), float(high))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--model", default="fm-z")
    parser.add_argument("--variants", nargs="+", default=["cpu"])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--solver", default=None)
    parser.add_argument("--sample-only", action="store_true", help="re-sample trained variants")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the variants' existing samples (e.g. of runs made in parallel)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    events, attributes = load_events(args.train)
    facts = facts_from_attributes(attributes, events.shape[1])
    target = target_from_attributes(attributes)
    base = ModelConfig(args.model, events.shape[1], target=facts.name, sqrt_s=float(attributes["sqrt_s"]),
                       backbone="mlp" if facts.labelled else "transformer")
    samples, seconds = [], {}
    for text in args.variants:
        name, model_overrides, train_overrides = parse_variant(text)
        folder, out = args.work / name, args.work / f"{name}.h5"
        samples.append(out)
        if args.evaluate_only:
            continue
        start = time.perf_counter()
        if not args.sample_only:
            config, settings = resolve_preset("cpu", base)
            train(events, replace(config, **model_overrides), replace(settings, **train_overrides), folder,
                  data_attributes=attributes)
        model, _ = load_model(folder / "model.pt")
        out.unlink(missing_ok=True)
        sample_to_file(model, args.samples, out, seed=5, steps=args.steps, solver=args.solver)
        seconds[name] = time.perf_counter() - start
    metrics = evaluate(EvaluationInputs(args.truth, samples), args.work / "report")
    spectra = target.spectra()
    truth_rows = spectra_rows(args.truth, spectra)
    names = list(truth_rows)
    print(f"target {facts.name}, model {args.model}; floor AUC {metrics['floor_auc']:.3f}; "
          "truth chi2/ndf " + ", ".join(f"{k} {v[0]:.2f}" for k, v in truth_rows.items()) + "\n")
    print("| variant | AUC | " + " | ".join(f"χ²/ndf {k}" for k in names)
          + " | " + " | ".join(f"{k} r[0,.05) | {k} r[.95,1]" for k in names) + " | train + sample (s) |")
    print("|---|---:|" + "---:|" * (3 * len(names)) + "---:|")
    for path in samples:
        rows = spectra_rows(path, spectra)
        print(f"| {path.stem} | {metrics['samples'][path.stem]['auc']:.3f} | "
              + " | ".join(f"{rows[k][0]:.1f}" for k in names) + " | "
              + " | ".join(f"{rows[k][1]:.2f} | {rows[k][2]:.2f}" for k in names)
              + f" | {seconds.get(path.stem, float('nan')):.0f} |")


if __name__ == "__main__":
    main()
