"""``lipsgen evaluate``: compare samples (and trajectories) with truth; write metrics, plots, report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..catalogue import EVALUATED_EVENTS
from .options import add_force_option, positive_int, seed_value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate", help="compare samples with truth: metrics, plots, report",
        description="Compare sample files with a truth file: Wasserstein-1 per observable, a classifier "
        "two-sample test (with the truth-vs-truth floor), the conservation metric; PNG histograms with "
        "ratio panels; metrics.json, report.md and report.html in OUT. --trajectory plots observables "
        "along a reverse run (a file from lipsgen sample --trajectory K).",
    )
    parser.add_argument("--truth", type=Path, required=True, help="truth events (held out from training)")
    parser.add_argument("--samples", type=Path, action="append", default=[], help="sample file (repeatable)")
    parser.add_argument("--trajectory", type=Path, default=None, help="sample file with a trajectory")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_force_option(parser)
    parser.add_argument("--batches", type=positive_int, default=5, help="batches for W1 spread (default 5)")
    parser.add_argument("--max-events", type=positive_int, default=EVALUATED_EVENTS,
                        help=f"events evaluated per sample file (twice as many of the truth): a larger file gives a "
                             f"uniform random subsample for the histograms, W1 and the classifier, while the "
                             f"conservation metric and the physics checks see every event (default {EVALUATED_EVENTS})")
    parser.add_argument("--seed", type=seed_value, default=0, help="classifier seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import EvaluationInputs, evaluate
    if not args.samples and args.trajectory is None:
        raise ValueError("give at least one --samples FILE or a --trajectory FILE")
    if (args.out / "metrics.json").exists() and not args.force:
        raise FileExistsError(f"{args.out} already holds a report; pass --force to replace it")
    metrics = evaluate(EvaluationInputs(args.truth, list(args.samples), args.trajectory), args.out,
                       n_batches=args.batches, seed=args.seed, max_events=args.max_events)
    print(f"classifier floor (truth vs truth) AUC {metrics['floor_auc']:.3f}", file=sys.stderr)
    for name, m in metrics["samples"].items():
        w = m["weights"]
        weights = "" if w is None else (f", weighted: integral {w['integral']:.4g} +- {w['integral_error']:.2g}, "
                                        f"ESS per event {w['ess_per_event']:.3f}")
        print(f"{name}: AUC {m['auc']:.3f}, conservation {m['conservation']['energy']:.2e} (energy), "
              f"{m['conservation']['momentum']:.2e} (momentum){weights}", file=sys.stderr)
    print(f"report: {args.out / 'report.html'} (also report.md, metrics.json)")
    return 0
