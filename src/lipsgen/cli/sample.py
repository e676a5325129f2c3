"""``lipsgen sample``: draw events from a trained model into an event file."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .options import (
    add_force_option,
    add_symmetry_option,
    check_output,
    check_output_size,
    non_negative_int,
    positive_float,
    positive_int,
    run_in_world,
    seed_value,
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sample", help="sample events from a trained model",
        description="Sample events from a checkpoint into an HDF5 event file (same layout as lipsgen data).",
    )
    parser.add_argument("checkpoint", type=Path, help="model checkpoint (OUT/model.pt of lipsgen train)")
    parser.add_argument("--events", type=positive_int, required=True, help="number of events")
    parser.add_argument("--out", type=Path, required=True,
                        help="output event file (.h5; .npz, .lhe or .lhe.gz without --trajectory)")
    add_force_option(parser)
    parser.add_argument("--steps", type=positive_int, default=None, help="sampler steps (default: the model's)")
    parser.add_argument("--solver", default=None,
                        help="sde, euler, heun, langevin, ode or flow (default: the model's)")
    parser.add_argument("--trajectory", type=non_negative_int, default=0,
                        help="also store K evenly spaced states of each run, noise end first")
    parser.add_argument("--from-data", type=Path, default=None, help="partial run: start from these events...")
    parser.add_argument("--t", type=positive_float, default=None,
                        help="...noised to this time in (0, 1] (1: pure noise, i.e. uniform phase space; 0: the data)")
    parser.add_argument("--apply-cuts", action="store_true",
                        help="reject and replace events outside the training target's cuts (qqg: min y_ij > ycut)")
    parser.add_argument("--weights", action="store_true",
                        help="weighted events: each event's exact weight (target density / model density) and "
                        "the model's log-density beside it (datasets weights, log_model_density; LHE: XWGTUP); "
                        "the sampler defaults to the model's deterministic one (ode, heun, flow)")
    parser.add_argument("--density", default=None, metavar="MODULE:FUNCTION",
                        help="with --weights: the target density, a Python function of events (n, N, 4) returning "
                        "log |M|^2 (n,), unnormalised (default: the training target's closed form)")
    add_symmetry_option(parser)
    parser.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=10_000, help="events per sampling batch")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_in_world(args, _sample)


def weighting_density(checkpoint: Path, state: dict[str, Any], given: str | None) -> Any:
    """The target density of weights: ``given`` (MODULE:FUNCTION), else the user's density the model
    was trained on, else the training target's closed form (a :class:`lipsgen.targets.density.Density`)."""
    from ..targets import target_from_attributes
    from ..targets.density import load_density
    from ..training import CheckpointError

    recorded = str((state.get("data") or {}).get("density", ""))  # a model trained on a user's density
    if given or recorded:
        return load_density(given or recorded)
    if not state.get("data"):
        raise CheckpointError(f"{checkpoint}: records no training target; give its density with --density")
    return target_from_attributes(state["data"])


def _sample(args: argparse.Namespace, world: Any, device: Any) -> int:
    from ..io import event_format, read_attributes_h5, read_events, read_weights, write_events
    from ..sampling import sample_to_file
    from ..targets import target_from_attributes
    from ..targets.density import Density
    from ..training import CheckpointError, load_model
    check_output(args.out, inputs=[args.checkpoint, args.from_data], force=args.force)
    fmt = event_format(args.out)
    if fmt != "hdf5" and args.trajectory:
        raise ValueError(f"{args.out}: trajectories are stored in HDF5 files only; write to a .h5 file")
    if args.density and not args.weights:
        raise ValueError("--density is the target density of weighted sampling: add --weights")
    model, state = load_model(args.checkpoint, device)
    check_output_size(args.out, args.events, model.config.n_particles)
    density: Density | None = None
    if args.weights:
        model.check_density()
        density = weighting_density(args.checkpoint, state, args.density)
    support, extra = None, {"checkpoint": str(args.checkpoint)}
    if args.apply_cuts:
        if not state.get("data"):
            raise CheckpointError(f"{args.checkpoint}: records no training-data attributes, so the cuts of "
                                  f"its target are unknown; retrain it with this version")
        target = target_from_attributes(state["data"])
        support, extra["cuts"] = target.in_support, json.dumps(target.parameters())
    start = time.perf_counter()
    # other formats: sample into HDF5 beside the output, then convert (atomically, like every write)
    h5_out = args.out if fmt == "hdf5" else args.out.with_name(f".{args.out.name}.{os.getpid()}.h5")
    try:
        sample_to_file(model, args.events, h5_out, steps=args.steps, solver=args.solver, seed=args.seed,
                       trajectory=args.trajectory, from_data=args.from_data, t=args.t,
                       batch_size=args.batch_size, attributes=extra, support=support, density=density,
                       world=world, symmetry=args.symmetry)
        if not world.is_main:  # rank 0 wrote the file
            return 0
        attrs = read_attributes_h5(h5_out)
        if fmt != "hdf5":
            write_events(args.out, read_events(h5_out)[0], attrs, weights=read_weights(h5_out))
    finally:
        if h5_out != args.out:
            h5_out.unlink(missing_ok=True)
    if args.apply_cuts:
        print(f"{attrs['support_acceptance']:.1%} of sampled events passed the {target.name} cuts "
              f"{extra['cuts']}", file=sys.stderr)
    if density is not None:
        print(f"weights for {density.name}: integral {attrs['weight_integral']:.5g} +- "
              f"{attrs['weight_integral_error']:.2g}, relative std {attrs['weight_relative_std']:.3g}, "
              f"ESS per event {attrs['weight_ess_per_event']:.3g}, unweighting efficiency "
              f"{attrs['weight_unweighting_efficiency']:.3g}", file=sys.stderr)
    print(f"wrote {args.events} events from {model.config.model} to {args.out} in "
          f"{time.perf_counter() - start:.1f} s; conservation: mean |sum E - sqrt_s| / median E = "
          f"{attrs['conservation_energy']:.3g}, mean |sum p| / median E = {attrs['conservation_momentum']:.3g}",
          file=sys.stderr)
    return 0
