"""Errors lipsgen raises for problems a user can fix; the command line reports them in one line."""

from __future__ import annotations

__all__ = ["LipsgenError", "CutsNotLearnedError", "DeviceError", "Terminated"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch system), raised like Ctrl-C so that every open
    output is cleaned up and a training run checkpoints before the process ends."""


class LipsgenError(Exception):
    """Base of lipsgen's own errors."""


class CutsNotLearnedError(LipsgenError, RuntimeError):
    """Almost no sampled event passes the target's cuts (``sample --apply-cuts``)."""


class DeviceError(LipsgenError, ValueError):
    """A torch device that does not exist or is not available in this torch build."""
