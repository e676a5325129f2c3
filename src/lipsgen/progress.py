"""Progress bars: shown on a terminal, silent in CI and when output is redirected."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(*, total: int | None, enable: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (rate and ETA) on stderr. ``enable=None``: only if stderr is a terminal and
    ``CI`` is not set."""
    if enable is None:
        enable = sys.stderr.isatty() and not os.environ.get("CI")
    return tqdm(total=total, disable=not enable, file=sys.stderr, dynamic_ncols=True, **kwargs)
