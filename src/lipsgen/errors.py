"""Errors lipsgen raises for problems a user can fix; the command line reports them in one line."""

from __future__ import annotations

__all__ = ["LipsgenError", "CutsNotLearnedError", "DeviceError", "Terminated", "request_termination",
           "raise_if_terminated"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system), raised like Ctrl-C so that every open
    output is cleaned up and a training run checkpoints before the process ends."""


_received: type[KeyboardInterrupt] | None = None


def request_termination(kind: type[KeyboardInterrupt] = Terminated) -> None:
    """Record a SIGTERM (``Terminated``) or Ctrl-C (``KeyboardInterrupt``) and raise it. A signal
    handler's exception that lands in a weakref or ``__del__`` callback (h5py and matplotlib free
    their objects through them) is printed and dropped by Python, so writers also call
    :func:`raise_if_terminated` at their chunk boundaries and the command line before it reports success."""
    global _received
    _received = kind
    raise kind()


def raise_if_terminated() -> None:
    """Raise the recorded SIGTERM or Ctrl-C, if one was received (whether or not its raise got through)."""
    if _received is not None:
        raise _received()


class LipsgenError(Exception):
    """Base of lipsgen's own errors."""


class CutsNotLearnedError(LipsgenError, RuntimeError):
    """Almost no sampled event passes the target's cuts (``sample --apply-cuts``)."""


class DeviceError(LipsgenError, ValueError):
    """A torch device that does not exist or is not available in this torch build."""
