"""Helpers for benchmark scripts: machine description and interleaved median timing."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch


def machine() -> str:
    """One line naming the CPU, core count, Python and torch versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def interleaved_medians(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time (s) of each function, run in turn ``repeats`` times after one warm-up each,
    so that load from other processes on a shared machine hits all of them alike."""
    for fn in functions.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
