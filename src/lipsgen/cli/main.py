"""Entry point of the ``lipsgen`` command: builds the parser and turns errors into messages."""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from .._version import __version__
from ..errors import LipsgenError, Terminated, raise_if_terminated, request_termination
from . import convert, data, demo, density, distill, emergence, evaluate, refine, sample, train, unweight

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lipsgen",
        description="Generative models whose samples lie exactly on massless phase space.",
    )
    parser.add_argument("--version", action="version", version=f"lipsgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data.add_parser(commands)
    convert.add_parser(commands)
    train.add_parser(commands)
    distill.add_parser(commands)
    sample.add_parser(commands)
    unweight.add_parser(commands)
    density.add_parser(commands)
    refine.add_parsers(commands)
    evaluate.add_parser(commands)
    emergence.add_parser(commands)
    demo.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed, 2 bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)

    def one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                         file: TextIO | None = None, line: str | None = None) -> None:
        print(f"lipsgen {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = one_line_warning
    try:
        status = int(args.run(args) or 0)
        raise_if_terminated()  # an interrupt Python dropped in a callback still ends the command as one
        return status
    except (LipsgenError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, PermissionError,
            FloatingPointError) as err:
        print(f"lipsgen {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"lipsgen {args.command}: interrupted; no output was left half-written", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130


def _terminate(signum: int, frame: object) -> None:
    request_termination()


def _interrupt(signum: int, frame: object) -> None:
    request_termination(KeyboardInterrupt)


def main_entry() -> None:
    """Console-script entry point; SIGTERM is handled like Ctrl-C (outputs cleaned up), and both are
    recorded so that one Python drops in a callback is not lost."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _interrupt)
    sys.exit(main())


if __name__ == "__main__":
    main_entry()
