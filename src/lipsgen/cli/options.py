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


# target parameter -> (flag, type, help), for lipsgen data and train
TARGET_FLAGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "n_particles": ("--particles", particle_count, "particles per event"),
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
