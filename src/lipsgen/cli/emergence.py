"""``lipsgen emergence``: when along the reverse process the structures of the data are decided."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import add_force_option, positive_float, positive_int, seed_value


def time_list(text: str) -> tuple[float, ...]:
    """Comma-separated U-turn times in (0, 1]."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or not all(0 < t <= 1 for t in values):
        raise argparse.ArgumentTypeError(f"U-turn times must lie in (0, 1], got {text!r}")
    return values


def add_parser(commands: argparse._SubParsersAction) -> None:
    from ..catalogue import EMERGENCE_DEFAULTS as defaults
    from ..catalogue import EMERGENCE_STRUCTURES as STRUCTURES
    from ..catalogue import EMERGENCE_TIMES as DEFAULT_TIMES

    parser = commands.add_parser(
        "emergence", help="how the data's structures emerge along a model's reverse process",
        description="On a trained exact model and events of its target: U-turns (data noised exactly to t, "
        "denoised by the model) with the probability that each structure is kept (" + "; ".join(STRUCTURES.values())
        + "), the correlation of each observable before and after and the W1 of the results to independent "
        "data, per t; the time each structure is decided (keep probability half-way between 1 and its value for "
        "independent events, with bootstrap errors); the speciation times predicted from the data's covariance "
        "spectrum in the model's coordinates (Biroli et al.); and the unconditional reverse run against the "
        "exact forward process. Writes metrics.json, emergence_times.csv and PNG plots into OUT.",
    )
    parser.add_argument("checkpoint", type=Path, help="model checkpoint (OUT/model.pt of lipsgen train)")
    parser.add_argument("--data", type=Path, required=True,
                        help="events of the model's target, held out from training: the first --events are the "
                             "U-turns' originals, the next --events the reference of the marginals")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_force_option(parser)
    parser.add_argument("--events", type=positive_int, default=defaults["events"],
                        help=f"originals per U-turn and events of the reverse run (default {defaults['events']})")
    parser.add_argument("--times", type=time_list, default=DEFAULT_TIMES,
                        help="comma-separated U-turn times in (0, 1]; 1 is always added (default "
                             + ",".join(f"{t:g}" for t in DEFAULT_TIMES) + ")")
    parser.add_argument("--trajectory", type=positive_int, default=defaults["trajectory"],
                        help=f"states of the reverse run compared with the forward process (default "
                             f"{defaults['trajectory']})")
    parser.add_argument("--bootstrap", type=positive_int, default=defaults["replicas"],
                        help=f"bootstrap replicas of every band and error (default {defaults['replicas']})")
    parser.add_argument("--jet-ycut", type=positive_float, default=defaults["jet_ycut"],
                        help=f"Durham y_cut of the jet multiplicity (default {defaults['jet_ycut']})")
    parser.add_argument("--directions", type=positive_int, default=defaults["directions"],
                        help=f"leading covariance directions given a speciation time "
                             f"(default {defaults['directions']})")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="sampler steps of a full run (default: the model's); partial runs keep its step size")
    parser.add_argument("--solver", default=None, help="sampler (default: the model's)")
    parser.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"],
                        help=f"events per sampling batch (default {defaults['batch_size']})")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..devices import resolve_device
    from ..evaluation.emergence import EmergenceSettings, analyse_emergence, check_emergence_model, write_emergence
    from ..evaluation.inputs import describe_truth
    from ..io.formats import file_attributes
    from ..sampling import load_partial_data
    from ..training import load_model

    if (args.out / "metrics.json").exists() and not args.force:
        raise FileExistsError(f"{args.out} already holds emergence results; pass --force to replace them")
    settings = EmergenceSettings(events=args.events, times=args.times, trajectory=args.trajectory,
                                 replicas=args.bootstrap, jet_ycut=args.jet_ycut, directions=args.directions,
                                 steps=args.steps, solver=args.solver, seed=args.seed, batch_size=args.batch_size)
    device = resolve_device(args.device)
    model, _ = load_model(args.checkpoint, device)
    check_emergence_model(model)
    if args.solver is not None:
        model.process.check_solver(args.solver)
    events = load_partial_data(model, args.data, 2 * args.events)
    _, labelled, _ = describe_truth(file_attributes(args.data), model.config.n_particles)
    metrics = analyse_emergence(model, events[:args.events], events[args.events:], labelled=labelled,
                                settings=settings)
    write_emergence(metrics, args.out)
    first = min(settings.times)
    for row in metrics["emergence_times"]:
        t = "not reached" if row["t"] is None else f"{row['t']:.3f}"
        if row["t"] is not None and row["t"] < first and not row["quantity"].startswith("speciation"):
            t += f" (before the first U-turn time {first:g}: add smaller --times to resolve it)"
        band = "" if row["low"] is None else f" [{row['low']:.3f}, {row['high']:.3f}]"
        kept = "" if row["log10_snr"] is None else f" (log10 SNR of the forward process {row['log10_snr']:.2f})"
        print(f"{row['quantity']}: t = {t}{band}{kept}", file=sys.stderr)
    print(f"wrote {args.out / 'metrics.json'}, emergence_times.csv and plots")
    return 0
