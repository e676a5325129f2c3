"""``lipsgen data pythia``: Pythia 8 events at the Z pole clustered to N Durham jets, projected onto
massless phase space."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .options import add_force_option, check_output, positive_float, positive_int, seed_value

HELP = "Pythia 8 e+e- -> hadrons clustered to N Durham jets, projected onto massless phase space"


def add_parser(targets: argparse._SubParsersAction) -> None:
    from ..catalogue import PYTHIA_BLOCK_SIZE as BLOCK_SIZE
    from ..catalogue import Z_POLE

    sub = targets.add_parser("pythia", help=HELP + " (extra: lipsgen[pythia])", description=HELP + (
        ". Needs the optional extra: pip install 'lipsgen[pythia]'. Events are reproducible from --seed "
        "and --block-size whatever the number of --workers."))
    sub.add_argument("--jets", type=_jet_count, required=True, help="number of exclusive Durham jets N (2..20)")
    sub.add_argument("--events", type=positive_int, required=True, help="number of events")
    sub.add_argument("--out", type=Path, required=True, help="output event file (.h5, .npz, .lhe, .lhe.gz)")
    add_force_option(sub)
    sub.add_argument("--sqrt-s", type=positive_float, default=Z_POLE, help=f"CM energy in GeV (default {Z_POLE})")
    sub.add_argument("--level", choices=["hadron", "parton"], default="hadron",
                     help="cluster hadrons (shower + hadronisation + decays) or shower partons (default hadron)")
    sub.add_argument("--seed", type=seed_value, default=None, help="random seed (default: fresh, recorded in the file)")
    sub.add_argument("--workers", type=positive_int, default=1,
                     help="Pythia processes in parallel (default 1; does not change the events)")
    sub.add_argument("--block-size", type=positive_int, default=BLOCK_SIZE,
                     help=f"events per independently seeded Pythia run (default {BLOCK_SIZE})")
    sub.add_argument("--massive", action="store_true",
                     help="keep each jet's measured mass: refused (every event would have its own masses, a "
                     "varying-mass phase space lipsgen's massive map does not describe; docs/design.md)")
    sub.set_defaults(run=run)


def _jet_count(text: str) -> int:
    value = positive_int(text)
    if not 2 <= value <= 20:
        raise argparse.ArgumentTypeError(f"must be an integer from 2 to 20, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..generators.pythia import PythiaJets, generate_jets
    from ..io import event_format, write_events
    from ..jets import project_jets
    from ..progress import progress_bar
    from ..random import fresh_seed

    if args.massive:
        raise ValueError("--massive: jets keep measured masses that differ from event to event, so the events "
                         "would live on a varying-mass phase space, which lipsgen's massive map (fixed masses per "
                         "particle) and its volume do not describe; the jets are projected onto massless phase "
                         "space instead (leave out --massive)")
    event_format(args.out)
    check_output(args.out, force=args.force)
    process = PythiaJets(args.jets, sqrt_s=args.sqrt_s, level=args.level, block_size=args.block_size)
    attributes = process.attributes()  # fails here, with the install hint, if Pythia is missing
    seed = fresh_seed() if args.seed is None else args.seed
    start = time.perf_counter()
    pieces, failed, too_few, multiplicity = [], 0, 0, []
    with progress_bar(total=args.events, unit="ev", desc=f"pythia {args.jets} jets") as bar:
        for block in generate_jets(process, args.events, seed, workers=args.workers):
            pieces.append(block.jets)
            failed, too_few = failed + block.failed, too_few + block.too_few
            multiplicity += block.multiplicity
            bar.update(len(block.jets))
    projected = project_jets(torch.from_numpy(np.concatenate(pieces)), process.sqrt_s)
    attributes |= {"seed": seed, "n_particles": args.jets, "permuted": False, "workers": args.workers,
                   "events_failed": failed, "events_too_few_particles": too_few, **projected.summary()}
    datasets = {**projected.datasets(), "multiplicity": np.asarray(multiplicity, dtype=np.int64)}
    write_events(args.out, projected.events, attributes, datasets=datasets)
    elapsed = time.perf_counter() - start
    print(f"wrote {args.events} Pythia {args.level}-level {args.jets}-jet events (seed {seed}) to {args.out} in "
          f"{elapsed:.1f} s ({args.events / elapsed:.0f} ev/s); projection: median energy change "
          f"{attributes['projection_rel_energy_change_median']:.1%}, ordering changed in "
          f"{attributes['projection_order_changed_fraction']:.1%} of events", file=sys.stderr)
    return 0
