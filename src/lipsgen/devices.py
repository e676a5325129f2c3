"""Turning a device name into a torch device this build can use, with a clear error otherwise."""

from __future__ import annotations

import torch

from .errors import DeviceError

__all__ = ["resolve_device"]


def resolve_device(name: str | torch.device) -> torch.device:
    """``torch.device(name)``, refused with :class:`DeviceError` if the name is not a device or
    this torch build cannot use it (e.g. ``cuda`` on a CPU-only build)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"{name!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps): {err}") from None
    available = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
    }.get(device.type, lambda: False)
    if not available():
        build = torch.__version__
        raise DeviceError(f"device {str(device)!r} is not available with this torch ({build}); use cpu, or "
                          f"install a torch build for it (README, GPU users)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA devices")
    return device
