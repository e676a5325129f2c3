"""The q-space Langevin model at the cpu preset and variants of it, on one target, side by side.

Trains each variant on the same training file, samples it and evaluates all samples against the
same truth in one ``lipsgen evaluate`` run; prints AUC, W1 and, for muon decay, the occupation of
the x_3 -> 1 edge (e- and nu_mu collinear), where the model's errors concentrate.

Variants (``--variants``): ``cpu`` (the preset), ``steps=K``, ``eps=E``, ``drift=regularised``, ``drift=score``,
``schedule=singular``, ``lift=fixed`` (with its sigma^2 pairing), ``time_law=uniform`` + ``loss_weight=sigma2``
as ``legacy``; joined by ``+`` they combine (``drift=regularised+steps=12000``).

Usage: python bench/langevin_study.py --train TRAIN.h5 --truth TRUTH.h5 --work DIR --variants cpu steps=12000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from lipsgen.evaluation import EvaluationInputs, evaluate
from lipsgen.io import load_events
from lipsgen.models import ModelConfig
from lipsgen.sampling import sample_to_file
from lipsgen.targets.facts import facts_from_attributes
from lipsgen.training import load_model, resolve_preset, train

VARIANTS = {
    "cpu": {},
    "drift=regularised": {"drift": "regularised"},
    "drift=score": {"drift": "score"},
    "schedule=singular": {"schedule": "singular", "drift": "regularised"},
    "lift=fixed": {"lift": "fixed", "time_law": "uniform", "loss_weight": "sigma2"},
    "legacy": {"time_law": "uniform", "loss_weight": "sigma2"},
}


def edge_fractions(path: Path) -> tuple[float, float]:
    with h5py.File(path) as f:
        x3 = 2 * f["momenta"][:, 2, 0] / float(f.attrs.get("sqrt_s", 1.0))
    return float(np.mean(x3 > 0.9)), float(np.mean(x3 > 0.95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=["cpu"])
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args()
    events, attributes = load_events(args.train)
    facts = facts_from_attributes(attributes, events.shape[1])
    base = ModelConfig("langevin", events.shape[1], target=facts.name, sqrt_s=float(attributes["sqrt_s"]),
                       backbone="mlp" if facts.labelled else "transformer")
    samples, seconds = [], {}
    for variant in args.variants:
        overrides: dict = {}
        steps = None
        for part in variant.split("+"):  # variants combine: drift=regularised+steps=12000
            if part.startswith("steps="):
                steps = int(part.split("=", 1)[1])
            elif part.startswith("eps="):
                overrides["eps"] = float(part.split("=", 1)[1])
            elif part not in VARIANTS:
                raise SystemExit(f"unknown variant {part!r}; choose from {', '.join(VARIANTS)}, steps=K, eps=E")
            else:
                overrides.update(VARIANTS[part])
        config, settings = resolve_preset("cpu", replace(base, **{k: v for k, v in overrides.items() if k == "lift"}))
        config = replace(config, **{k: v for k, v in overrides.items() if k != "lift"})
        if steps is not None:
            settings = replace(settings, steps=steps)
        name = variant.replace("=", "-").replace("+", "_")
        start = time.perf_counter()
        result = train(events, config, settings, args.work / name, data_attributes=attributes)
        model, _ = load_model(result.model_path)
        out = args.work / f"{name}.h5"
        sample_to_file(model, args.samples, out, seed=3)
        seconds[name] = time.perf_counter() - start
        samples.append(out)
    metrics = evaluate(EvaluationInputs(args.truth, samples), args.work / "report")
    first = metrics["samples"][samples[0].stem]["wasserstein"]
    keys = [k for k in ("x_1", "x_3", "log10_min_y", "thrust") if k in first]
    muon = facts.name == "muon"
    print(f"target {facts.name}; floor AUC {metrics['floor_auc']:.3f}"
          + (f"; truth x_3 > 0.9: {edge_fractions(args.truth)[0]:.1%}, > 0.95: {edge_fractions(args.truth)[1]:.1%}"
             if muon else "") + "\n")
    spectra = list(metrics.get("truth_spectra", {}))
    if spectra:
        print("truth chi2/ndf against the analytic spectra: "
              + ", ".join(f"{k} {v['chi2_ndf']:.2f}" for k, v in metrics["truth_spectra"].items()) + "\n")
    print("| variant | AUC | " + " | ".join(f"W1 {k}" for k in keys) + (" | x_3 > 0.9 | x_3 > 0.95" if muon else "")
          + "".join(f" | chi2/ndf {k}" for k in spectra) + " | train + sample (s) |")
    print("|---|---:|" + "---:|" * (len(keys) + len(spectra)) + ("---:|---:|" if muon else "") + "---:|")
    for path in samples:
        m = metrics["samples"][path.stem]
        edges = edge_fractions(path) if muon else ()
        print(f"| {path.stem} | {m['auc']:.3f} | " + " | ".join(f"{m['wasserstein'][k][0]:.4f}" for k in keys)
              + "".join(f" | {e:.1%}" for e in edges)
              + "".join(f" | {m['spectra'][k]['chi2_ndf']:.1f}" for k in spectra) + f" | {seconds[path.stem]:.0f} |")


if __name__ == "__main__":
    main()
