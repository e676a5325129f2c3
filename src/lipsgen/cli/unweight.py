"""``lipsgen unweight``: turn weighted events into unweighted ones by accept-reject."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import add_force_option, check_output, fraction, seed_value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "unweight", help="unweight weighted events by accept-reject",
        description="Keep each weighted event with probability min(1, w / w_ref). w_ref is the smallest weight "
        "whose overweights (w > w_ref) carry at most --overweight-tolerance of the total weight, as event "
        "generators choose it (0: the maximum weight, exact unit weights). Overweight events are kept with "
        "weight w / w_ref > 1, so the output stays exact; their fraction is reported. Output weights are in units "
        "of the integral: every event carries the same weight (LHE: IDWTUP 3, XWGTUP = XSECUP) except the "
        "overweights, and their mean is the input's integral estimate.",
    )
    parser.add_argument("input", type=Path, help="weighted events (lipsgen sample --weights)")
    parser.add_argument("--out", type=Path, required=True, help="unweighted events (.h5, .npz, .lhe, .lhe.gz)")
    add_force_option(parser)
    parser.add_argument("--overweight-tolerance", type=fraction, default=1e-3,
                        help="share of the total weight allowed above w_ref (default 1e-3)")
    parser.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..io import read_events, read_weights, write_events
    from ..weights import reduced_maximum, summarise_weights, unweight
    check_output(args.out, inputs=[args.input], force=args.force)
    events, attributes = read_events(args.input)
    weights = read_weights(args.input)
    if weights is None:
        raise ValueError(f"{args.input}: events are unweighted (no weights); sample with --weights")
    summary = summarise_weights(weights)  # refuses negative and non-finite weights
    reference = reduced_maximum(weights, args.overweight_tolerance)
    keep, new_weights = unweight(weights, reference, torch.Generator().manual_seed(args.seed))
    kept = int(keep.sum())
    if kept == 0:
        raise ValueError(f"{args.input}: no event survived unweighting ({len(weights)} weighted events)")
    overweights = int((new_weights > 1).sum())
    # common weight c: the output's mean weight equals the integral estimated from the input
    output_weights = new_weights * (summary.integral / float(new_weights.mean()))
    record = {k: v for k, v in attributes.items() if not k.startswith("weight_")}
    record.update(weighted=bool(overweights), unweighted_from=str(args.input), unweighting_reference=reference,
                  unweighting_efficiency=kept / len(weights), overweight_fraction=overweights / kept,
                  overweight_tolerance=args.overweight_tolerance, unweighting_seed=args.seed,
                  integral=summary.integral, integral_error=summary.integral_error)
    write_events(args.out, events[keep], record, weights=output_weights)
    print(f"kept {kept} of {len(weights)} events (efficiency {kept / len(weights):.3g}; w_ref {reference:.4g} = "
          f"{reference / float(weights.max()):.3g} of the maximum weight); {overweights} overweight events "
          f"({overweights / kept:.2%}) keep weights w / w_ref up to {float(new_weights.max()):.3g}; integral "
          f"{summary.integral:.5g} +- {summary.integral_error:.2g}; wrote {args.out}", file=sys.stderr)
    return 0
