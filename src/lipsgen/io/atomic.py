"""Write-then-rename, so a failed or interrupted write never leaves a partial file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import raise_if_terminated

__all__ = ["atomic_output"]


def _publish_new(tmp: Path, target: Path) -> None:
    """Rename tmp onto a target that did not exist when the write began, refusing if another
    command created it meanwhile (a hard link fails on an existing name, atomically)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(f"{target}: written meanwhile by another command; this result was not saved "
                              f"over it") from None
    except OSError:  # a filesystem without hard links: plain rename
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the destination folder so the final rename is atomic. On any
    exception (including KeyboardInterrupt) it is deleted and ``path`` is left untouched. A path
    that did not exist when the write began is never overwritten: if another command created it
    meanwhile, this write fails instead of silently replacing that result.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{target}: output folder {folder} does not exist")
    existed = target.exists()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        raise_if_terminated()  # a kill whose raise was dropped must not publish the output
        # mkstemp creates the file private (0600); give the result the usual umask permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if existed:
            os.replace(tmp, target)  # overwriting was asked for (--force)
        else:
            _publish_new(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
