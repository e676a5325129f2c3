"""Errors lipsgen raises for problems a user can fix; the command line reports them in one line."""

from __future__ import annotations

__all__ = ["LipsgenError", "CutsNotLearnedError", "DeviceError", "Terminated", "request_termination",
           "raise_if_terminated"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system), raised like Ctrl-C so that every open
    output is cleaned up and a training run checkpoints before the process ends."""


_termination_requested = False


def request_termination() -> None:
    """Record a SIGTERM and raise :class:`Terminated`. A signal handler's exception that lands in a
    weakref or ``__del__`` callback (h5py frees its objects through them) is printed and dropped
    by Python, so writers also call :func:`raise_if_terminated` at their chunk boundaries."""
    global _termination_requested
    _termination_requested = True
    raise Terminated()


def raise_if_terminated() -> None:
    """Raise :class:`Terminated` if a SIGTERM was received (whether or not its raise got through)."""
    if _termination_requested:
        raise Terminated()


class LipsgenError(Exception):
    """Base of lipsgen's own errors."""


class CutsNotLearnedError(LipsgenError, RuntimeError):
    """Almost no sampled event passes the target's cuts (``sample --apply-cuts``)."""


class DeviceError(LipsgenError, ValueError):
    """A torch device that does not exist or is not available in this torch build."""
