"""``lipsgen refine`` learns a model's density ratio to its data; ``lipsgen reweight`` applies it.

Thin layers over :mod:`lipsgen.refinement`: read and check the files, fit or apply, write
atomically, print what a user checks (validation loss, weight summary).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from .options import add_force_option, check_output, positive_int, seed_value


def add_parsers(commands: argparse._SubParsersAction) -> None:
    refine = commands.add_parser(
        "refine", help="learn per-event weights data / model from a model's samples and its training data",
        description="Train a classifier between data events (the model's training file) and events sampled from "
        "the model, whose logit estimates ln(data / model) (DCTR). `lipsgen reweight` gives other samples of the "
        "same model these weights, which correct the model where it over- or under-fills (tails, edges, cuts) "
        "without moving any event: exact events stay exact. The ratio is estimated, not exact as the weights of "
        "`lipsgen sample --weights`; it needs no target density, so it works for any data. Fit it on samples "
        "that you will not reweight.",
    )
    refine.add_argument("--data", type=Path, required=True, help="data events (the model's training file)")
    refine.add_argument("--samples", type=Path, required=True,
                        help="unweighted events sampled from the model (lipsgen sample), as many as the data or more")
    refine.add_argument("--out", type=Path, required=True, help="density-ratio file to write (.pt)")
    add_force_option(refine)
    refine.add_argument("--steps", type=positive_int, default=3000, help="classifier training steps (default 3000)")
    refine.add_argument("--batch-size", type=positive_int, default=2048,
                        help="events per class per step (default 2048)")
    refine.add_argument("--rotation-invariant", action="store_true",
                        help="describe events up to any rotation (isotropic processes); default: up to rotations "
                        "about the beam (z) axis, keeping each particle's polar angle")
    refine.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    refine.add_argument("--device", default="cpu", help="torch device (default cpu)")
    refine.set_defaults(run=run_refine)

    reweight = commands.add_parser(
        "reweight", help="weight a model's samples by a density ratio of lipsgen refine",
        description="Give every event of a model's sample file the weight data / model learnt by `lipsgen refine` "
        "(dataset weights, attributes weight_*: their mean is 1 for a calibrated ratio). The events are copied "
        "unchanged. `lipsgen unweight` turns the result into unweighted events; `lipsgen evaluate` uses the weights.",
    )
    reweight.add_argument("ratios", type=Path, nargs="+", metavar="RATIO",
                          help="density-ratio file (lipsgen refine --out); several (refits with other --seed) are "
                          "an ensemble whose log ratios are averaged, which steadies the weights of a model far "
                          "from its data")
    reweight.add_argument("samples", type=Path,
                          help="unweighted events of the same model, not those the ratio was fitted on")
    reweight.add_argument("--out", type=Path, required=True, help="weighted events (.h5, .npz, .lhe, .lhe.gz)")
    add_force_option(reweight)
    reweight.set_defaults(run=run_reweight)


def _model_samples(path: Path, n_particles: int, target: str) -> tuple[Any, dict[str, Any]]:
    """A model's unweighted events, checked against the data's particle count and target."""
    from ..io import read_events, read_weights
    from ..io.errors import EventFileError
    from ..validation import check_events

    events, attributes = read_events(path)
    if events.shape[1] != n_particles:
        raise EventFileError(f"{path}: events of {events.shape[1]} particles; the density ratio is for {n_particles}")
    if read_weights(path) is not None:
        raise EventFileError(f"{path}: events are weighted; the density ratio is learnt for, and applied to, "
                             "a model's unweighted events")
    other = attributes.get("target")
    if other is not None and target != "unknown" and other != target:
        raise EventFileError(f"{path}: events of target {other!r}, the density ratio is for {target!r}")
    # ambient-space baselines do not conserve energy-momentum: only the layout and E >= 0 are required
    check_events(events, str(path), massless=False)
    return events, attributes


def run_refine(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..io import load_events
    from ..refinement import NO_INFORMATION_LOSS, RatioConfig, fit_density_ratio, save_density_ratio
    from ..targets.facts import facts_from_attributes

    check_output(args.out, inputs=[args.data, args.samples], force=args.force)
    device = resolve_device(args.device)
    data, attributes = load_events(args.data)
    facts = facts_from_attributes(attributes, data.shape[1])
    samples, sample_attributes = _model_samples(args.samples, data.shape[1], facts.name)
    config = RatioConfig(data.shape[1], facts.labelled, rotation_invariant=args.rotation_invariant,
                         steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    model, fit = fit_density_ratio(data, samples, config, device=device)
    record = {"data": str(args.data.resolve()), "samples": str(args.samples.resolve()), "target": facts.name,
              "sqrt_s": float(attributes.get("sqrt_s", 1.0)), "model": str(sample_attributes.get("model", "")),
              "checkpoint": str(sample_attributes.get("checkpoint", ""))}
    save_density_ratio(args.out, model, fit, record)
    scale, shift = fit.calibration
    print(f"density ratio of {args.samples} to {args.data}: validation loss {fit.validation_loss:.5f} at step "
          f"{fit.best_step} (2 ln 2 = {NO_INFORMATION_LOSS:.5f}: indistinguishable), {fit.calibrated_loss:.5f} with "
          f"the logit calibrated as {scale:.3f} l {shift:+.3f}; wrote {args.out}", file=sys.stderr)
    return 0


def run_reweight(args: argparse.Namespace) -> int:
    from ..io import write_events
    from ..refinement import calibration_problem, load_density_ratio, mean_log_ratio
    from ..refinement.ratio import RatioCheckpointError
    from ..weights import summarise_weights

    check_output(args.out, inputs=[*args.ratios, args.samples], force=args.force)
    loaded = [load_density_ratio(path) for path in args.ratios]
    ratios, records = [r for r, _ in loaded], [record for _, record in loaded]
    first = (ratios[0].config.n_particles, records[0].get("target"))
    for path, ratio, record in zip(args.ratios, ratios, records):
        if (ratio.config.n_particles, record.get("target")) != first:
            raise RatioCheckpointError(f"{path}: a density ratio for {ratio.config.n_particles} particles of target "
                                       f"{record.get('target')!r}; {args.ratios[0]} is for {first[0]} of {first[1]!r}: "
                                       "an ensemble needs ratios of one model")
        if Path(args.samples).resolve() == Path(record.get("samples", "")).resolve():
            warnings.warn(f"{args.samples} is the file the ratio {path} was fitted on; its weights are biased towards "
                          "those events. Reweight other samples of the model.", stacklevel=2)
    events, attributes = _model_samples(args.samples, ratios[0].config.n_particles,
                                        str(records[0].get("target", "unknown")))
    weights = mean_log_ratio(ratios, events).exp()
    if not bool(weights.isfinite().all()):
        raise FloatingPointError(f"{args.samples}: the density ratio is infinite for some events; refit it")
    summary = summarise_weights(weights)
    problem = calibration_problem(summary)
    if problem:
        warnings.warn(f"{args.samples}: the density ratio is not calibrated on these events ({problem}): the model "
                      "is too far from the data for this classifier, or the ratio is over-fitted; refit it with more "
                      "events, and do not use these weights for results", stacklevel=2)
    validation_loss = sum(float(r.get("fit", {}).get("validation_loss", float("nan"))) for r in records) / len(records)
    out_attributes = {**attributes, "weighted": True, "weights_from": "density-ratio",
                      "density_ratio": ", ".join(str(path) for path in args.ratios),
                      "density_ratio_validation_loss": validation_loss, "density_ratio_calibrated": problem is None,
                      **{f"weight_{k}": v for k, v in summary.as_dict().items()}}
    write_events(args.out, events, out_attributes, weights=weights)
    print(f"weighted {summary.n} events of {args.samples}: mean weight {summary.integral:.4f} +- "
          f"{summary.integral_error:.2g} (1 if calibrated), relative std {summary.relative_std:.3g}, ESS per event "
          f"{summary.ess_per_event:.3g}, unweighting efficiency {summary.unweighting_efficiency:.3g}; wrote {args.out}",
          file=sys.stderr)
    return 0
