"""``lipsgen convert IN OUT``: read events in any supported format, check them, write another; or
cluster showered events (HepMC3, LHE) into N jets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import add_force_option, check_output, positive_float, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert", help="convert and check event files (HDF5, npz, LHE), or cluster HepMC3/LHE events into jets",
        description="Read massless events from an HDF5 (.h5), npz or LHE (.lhe, .lhe.gz) file, check "
        "that they are massless and in their CM frame (or boost them there with --to-cm), and write "
        "them in the format OUT's name asks for. With --jets N, read showered e+e- events (HepMC3 "
        ".hepmc/.hepmc3, or LHE with any number of outgoing particles), cluster every event's final "
        "state into N exclusive Durham jets and project them onto massless phase space.",
    )
    parser.add_argument("input", type=Path, help="event file to read")
    parser.add_argument("output", type=Path, help="event file to write (.h5, .npz, .lhe, .lhe.gz)")
    parser.add_argument("--jets", type=positive_int, default=None,
                        help="cluster each event's final state into this many Durham jets (HepMC3 or LHE input)")
    parser.add_argument("--to-cm", action="store_true",
                        help="boost every event to its CM frame and rescale it to --sqrt-s")
    parser.add_argument("--sqrt-s", type=positive_float, default=None,
                        help="total energy (default: the input's, else 1)")
    parser.add_argument("--mass-rtol", type=positive_float, default=1e-6,
                        help="relative tolerance on |E - |p|| (default 1e-6)")
    parser.add_argument("--cm-rtol", type=positive_float, default=1e-6,
                        help="relative tolerance on total energy and momentum (default 1e-6)")
    add_force_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..io import event_format, load_events, read_weights, write_events
    from ..jets.files import HEPMC_SUFFIXES, jets_from_file

    hepmc = args.input.name.lower().endswith(HEPMC_SUFFIXES)
    if hepmc and args.jets is None:
        raise ValueError(f"{args.input}: HepMC events are showered final states; cluster them with --jets N")
    event_format(args.output)
    check_output(args.output, inputs=[args.input], force=args.force)
    if args.jets is not None:
        projected, attributes = jets_from_file(args.input, args.jets, sqrt_s=args.sqrt_s, to_cm=args.to_cm,
                                               cm_rtol=args.cm_rtol)
        events, datasets = projected.events, projected.datasets()
    else:
        events, attributes = load_events(args.input, sqrt_s=args.sqrt_s, to_cm=args.to_cm,
                                         mass_rtol=args.mass_rtol, cm_rtol=args.cm_rtol)
        datasets = None
    # clustering keeps every event in order, so weights carry over one to one
    weights = None if hepmc else read_weights(args.input)
    attributes = {**attributes, "source": str(args.input), "boosted_to_cm": bool(args.to_cm)}
    if weights is None:
        # the weight summaries describe weights this file no longer has
        attributes = {k: v for k, v in attributes.items() if k != "weighted" and not k.startswith("weight_")}
    write_events(args.output, events, attributes, weights=weights, datasets=datasets)
    print(f"wrote {len(events)} events of {events.shape[1]} particles to {args.output}", file=sys.stderr)
    return 0
