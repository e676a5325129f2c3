"""Argument types shared by the subcommands, so that bad values fail at parse time."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """A positive integer, also written as a float with an integral value (``1e6``)."""
    try:
        number = float(text)
        value = int(number) if number.is_integer() and abs(number) < 2**63 else int(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def seed_value(text: str) -> int:
    """A random seed: an integer in [0, 2^63), what every generator and event file can hold."""
    value = non_negative_int(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"a seed must be below 2^63, got {text!r}")
    return value


def particle_count(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"need at least 2 particles, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def add_force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")


def add_symmetry_option(parser: argparse.ArgumentParser, *, training: bool = False) -> None:
    """``--symmetry``: the relabelling group a model is symmetrised over (lipsgen.models.symmetry); for
    training, recorded in the model; for sampling and densities, default the model's."""
    from ..catalogue import SYMMETRY_HELP

    lead = ("symmetrise the model over a relabelling group of its particles, for a target that has it (recorded in "
            "the model: its samples are relabelled at random, its densities averaged over the group at |G| times "
            "the cost; a flow trained from a density learns the group's mixture, each labelling covering what "
            "the others miss). Default none" if training else
            "sample from the model symmetrised over a relabelling group (default: the model's own, set by train "
            "--symmetry): each event relabelled at random, its density averaged over the group (|G| times the cost)")
    parser.add_argument("--symmetry", choices=list(SYMMETRY_HELP), default="none" if training else None,
                        help=lead + "; " + "; ".join(f"{k}: {v}" for k, v in SYMMETRY_HELP.items()))


def check_output(out: Path, *, inputs: Iterable[Path | None] = (), force: bool = False) -> None:
    """Refuse to write over an input of the same command, or over an existing output without
    ``--force``: nothing a user made is lost by a slip of the command line."""
    for source in inputs:
        if source is not None and Path(source).exists() and out.exists() and out.resolve() == Path(source).resolve():
            raise FileExistsError(f"{out}: is also an input of this command; choose another output")
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to overwrite it")


def _ordering(text: str) -> str:
    if text not in ("one", "all"):
        raise argparse.ArgumentTypeError(f"must be one or all, got {text!r}")
    return text


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def mass_list(text: str) -> tuple[float, ...]:
    """Comma-separated masses, one per particle, each a finite number >= 0."""
    return tuple(non_negative_float(part) for part in text.split(","))


# target parameter -> (flag, type, help), for lipsgen data and train
TARGET_FLAGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "n_particles": ("--particles", particle_count, "particles per event"),
    "masses": ("--masses", mass_list, "comma-separated masses, one per particle, in the unit of sqrt_s (empty: "
               "massless)"),
    "electron_mass": ("--electron-mass", non_negative_float, "electron mass, in the unit of sqrt_s"),
    "w_mass": ("--w-mass", positive_float, "W mass, in the unit of sqrt_s (the top mass)"),
    "w_width": ("--w-width", positive_float, "W width, in the unit of sqrt_s"),
    "b_mass": ("--b-mass", non_negative_float, "b-quark mass, in the unit of sqrt_s"),
    "ycut": ("--ycut", positive_float, "cut on min y_ij = min 2 p_i.p_j / s"),
    "xi_max": ("--xi-max", positive_float, "SARGE antenna cutoff xi_m"),
    "orderings": ("--orderings", _ordering, "one colour ordering or all (N <= 6)"),
}


def run_in_world(args: argparse.Namespace, body: Callable[[argparse.Namespace, Any, Any], int]) -> int:
    """Run a command's ``body(args, world, device)`` on ``args.device``, inside torchrun's process
    group when started by torchrun (``lipsgen.distributed``), leaving the group afterwards."""
    from ..devices import resolve_device
    from ..distributed import join_world, leave_world

    world, device = join_world(resolve_device(args.device))
    try:
        return body(args, world, device)
    finally:
        leave_world(world)


def base_name(value: str) -> str:
    """A --base value: one of the built-in bases, or MODULE:FUNCTION (checked when the model is built)."""
    from ..catalogue import BASE_HELP

    if value in BASE_HELP or (":" in value and all(value.partition(":")[::2])):
        return value
    raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(BASE_HELP)}, "
                                     f"or MODULE:FUNCTION)")


# Bytes an output holds per particle: HDF5 and npz store 4 float64; LHE prints a line of ~230 bytes.
_BYTES_PER_PARTICLE = {"hdf5": 32, "npz": 32, "lhe": 230}


def check_output_size(out: Path, n_events: int, n_particles: int) -> None:
    """Refuse, before any work, an output the disk or this process's file-size limit (``ulimit -f``)
    cannot hold, or (npz, LHE: written from memory) that memory cannot hold. (HDF5 that fails
    half-way through a write crashes in its own clean-up: better never to start it.)"""
    import os
    import resource
    import shutil

    from ..io import event_format

    fmt = event_format(out)
    needed = n_events * n_particles * _BYTES_PER_PARTICLE[fmt] + 2**16  # and header and metadata
    folder = out.parent if str(out.parent) else Path(".")
    free = shutil.disk_usage(folder if folder.is_dir() else Path(".")).free
    if needed > free:
        raise ValueError(f"{out}: {n_events} events of {n_particles} particles need about {needed / 2**30:.3g} GiB, "
                         f"the disk has {free / 2**30:.3g} GiB free")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and needed > limit:
        raise ValueError(f"{out}: {n_events} events of {n_particles} particles need about {needed / 2**20:.3g} MiB, "
                         f"above this process's file-size limit of {limit / 2**20:.3g} MiB (ulimit -f)")
    if fmt != "hdf5":
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        in_memory = n_events * n_particles * 32
        if in_memory > memory // 2:
            raise ValueError(f"{out}: {fmt} files are written from memory and {n_events} events need about "
                             f"{in_memory / 2**30:.3g} GiB of this machine's {memory / 2**30:.3g} GiB; write HDF5 "
                             f"(.h5), which streams, and convert in parts")
