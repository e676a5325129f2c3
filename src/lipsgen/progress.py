"""Progress: a bar with rate and ETA on a terminal; plain log lines when output is redirected.

Long runs must show they are alive wherever their output goes: on a terminal a tqdm bar; into a
file or a pipe (a batch job's log) one line every ``LOG_INTERVAL`` seconds with the count, rate,
ETA and the latest postfix (e.g. the loss). Silent when ``CI`` is set or when asked to be.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar", "LogLines", "LOG_INTERVAL"]

LOG_INTERVAL = 30.0  # seconds between log lines when stderr is not a terminal


class LogLines:
    """The part of tqdm's interface lipsgen uses, writing a line per ``interval`` seconds to stderr."""

    def __init__(self, *, total: int | None, initial: int = 0, unit: str = "it", desc: str = "",
                 interval: float = LOG_INTERVAL, **_: Any) -> None:
        self.total, self.n, self.unit, self.desc, self.interval = total, initial, unit, desc, interval
        self.postfix = ""
        self._start_n, self._start = initial, time.monotonic()
        self._last = self._start

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval or (self.total is not None and self.n >= self.total):
            self._last = now
            self._write(now)

    def set_postfix(self, refresh: bool = False, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def _write(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = (self.n - self._start_n) / elapsed
        parts = [f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}",
                 f"{rate:.3g} {self.unit}/s"]
        if self.total and rate > 0:
            parts.append(f"ETA {(self.total - self.n) / rate / 60:.1f} min")
        if self.postfix:
            parts.append(self.postfix)
        print(", ".join(parts), file=sys.stderr, flush=True)

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def progress_bar(*, total: int | None, enable: bool | None = None, **kwargs: Any) -> tqdm | LogLines:
    """A tqdm bar (rate and ETA) on stderr if it is a terminal, else :class:`LogLines`;
    ``enable=False`` (or ``CI`` set, when ``enable`` is None) silences both."""
    if enable is None:
        enable = not os.environ.get("CI")
    if enable and not sys.stderr.isatty():
        return LogLines(total=total, **kwargs)
    return tqdm(total=total, disable=not enable, file=sys.stderr, dynamic_ncols=True, **kwargs)
