"""Write-then-rename, so a failed or interrupted write never leaves a partial file behind."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import raise_if_terminated

__all__ = ["atomic_output", "temporary_prefix", "remove_stale_temporaries"]


def temporary_prefix(name: str) -> str:
    """Prefix of this process's hidden temporary files for output ``name``: ``.NAME.HOST.PID.``.

    The host and process id let a later command recognise, and remove, the leftovers of a writer
    that was killed before it could clean up (SIGKILL, a crash), without touching a live writer's
    files, including those of a process on another host sharing the folder."""
    return f".{name}.{socket.gethostname()}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: Path, name: str) -> list[Path]:
    """Remove the temporary files or folders of output ``name`` in ``folder`` that were left by a
    process of this host that no longer runs; return what was removed."""
    host = socket.gethostname()
    removed = []
    for path in folder.glob(f".{name}.{host}.*.tmp"):
        pid = path.name[len(f".{name}.{host}."):].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


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
    exception (including KeyboardInterrupt) it is deleted and ``path`` is left untouched; what a
    killed writer left (SIGKILL gives no chance to clean up) is removed by the next write. A path
    that did not exist when the write began is never overwritten: if another command created it
    meanwhile, this write fails instead of silently replacing that result.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"{target}: output folder {folder} does not exist")
    existed = target.exists()
    remove_stale_temporaries(folder, target.name)
    fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(target.name), suffix=".tmp", dir=folder)
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
