"""``lipsgen density``: a trained model's density of given events (``GenerativeModel.log_prob``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import add_force_option, add_symmetry_option, check_output, positive_int, seed_value
from .sample import weighting_density


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "density", help="a trained model's density of given events",
        description="Write the events with the model's log-density of each (dataset log_model_density, in the "
        "convention of sample --weights: log r with r = V_N x the density on phase space, 0 for uniform phase "
        "space). ODE models invert their sampler's run step by step; where the lift into the model's space has a "
        "fibre, exp(log_model_density) is an unbiased estimate from --draws fibre draws. With --weights, also each "
        "event's weight V_N f / r (dataset weights) for the target density f. Models trained on energy-ordered "
        "events are written, with their densities, in decreasing energy order.",
    )
    parser.add_argument("checkpoint", type=Path, help="model checkpoint (OUT/model.pt of lipsgen train)")
    parser.add_argument("events", type=Path, help="events (.h5, .npz, .lhe, .lhe.gz) at the model's sqrt_s")
    parser.add_argument("--out", type=Path, required=True, help="output event file (.h5 or .npz)")
    add_force_option(parser)
    parser.add_argument("--draws", type=positive_int, default=16, help="fibre draws per event (default 16)")
    parser.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--solver", default=None, help="a deterministic solver (default: the model's first)")
    parser.add_argument("--weights", action="store_true",
                        help="also the weights V_N f / r for the target density (default: the training target's)")
    parser.add_argument("--density", default=None, metavar="MODULE:FUNCTION",
                        help="with --weights: the target density, as for lipsgen sample")
    add_symmetry_option(parser)
    parser.add_argument("--seed", type=seed_value, default=0, help="random seed of the fibre draws (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=4096, help="events per batch (default 4096)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..io import event_format, read_events, read_weights, write_events
    from ..io.formats import FILE_RTOL
    from ..kinematics import sorted_by_energy
    from ..progress import progress_bar
    from ..targets.density import checked_log_density
    from ..training import load_model
    from ..validation import check_events
    from ..weights import log_event_weights

    check_output(args.out, inputs=[args.checkpoint, args.events], force=args.force)
    if args.density and not args.weights:
        raise ValueError("--density is the target density of the weights: add --weights")
    if event_format(args.out) not in ("hdf5", "npz"):
        raise ValueError(f"{args.out}: the densities are a per-event dataset: write .h5 or .npz")
    model, state = load_model(args.checkpoint, torch.device(args.device))
    model.check_density()
    config = model.config
    events, attributes = read_events(args.events)
    if events.shape[1] != config.n_particles:
        raise ValueError(f"{args.events}: {events.shape[1]} particles, the model has {config.n_particles}")
    check_events(events, str(args.events), sqrt_s=config.sqrt_s, mass_rtol=FILE_RTOL, cm_rtol=FILE_RTOL,
                 masses=config.masses)
    given_weights = read_weights(args.events)
    if given_weights is not None and args.weights:
        raise ValueError(f"{args.events}: the events carry weights already; --weights would replace them "
                         f"(unweight them first, or leave out --weights to keep them beside the densities)")
    if config.order_by_energy:  # the model knows the events in decreasing energy: write them so
        events = sorted_by_energy(events)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    parts = []
    with progress_bar(total=len(events), unit="ev", desc="density") as bar:
        for batch in events.split(args.batch_size):
            parts.append(model.log_prob(batch.to(args.device), generator=generator, draws=args.draws,
                                        steps=args.steps, solver=args.solver, symmetry=args.symmetry).cpu())
            bar.update(len(batch))
    log_r = torch.cat(parts)
    record = dict(attributes) if not args.weights else {k: v for k, v in attributes.items()
                                                           if not k.startswith("weight")}
    record.update(density_of_model=str(args.checkpoint), density_draws=args.draws, density_seed=args.seed,
                  density_symmetry=args.symmetry or config.symmetry)
    datasets = {"log_model_density": log_r.numpy()}
    weights = given_weights
    if args.weights:
        density = weighting_density(args.checkpoint, state, args.density)
        log_f = model.space.represented_log_density(checked_log_density(density, events), events)
        weights = log_event_weights(log_f, log_r, n_particles=config.n_particles, sqrt_s=config.sqrt_s,
                                    masses=config.masses).exp()
        record.update(weighted=True)
    write_events(args.out, events, record, weights=weights, datasets=datasets)
    finite = log_r[torch.isfinite(log_r)]
    print(f"wrote {len(events)} events with the model's log-density (mean {float(finite.mean()):.4g}, "
          f"{len(log_r) - len(finite)} not finite)" + (" and weights" if weights is not None else "")
          + f" to {args.out}", file=sys.stderr)
    return 0
