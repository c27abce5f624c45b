"""One process at a time in a folder: an advisory ``flock`` on the folder itself.

Two ``ctbench train resume=true`` in one run folder (a second study beside a running one, a job started by hand
beside its sweep) would both write its checkpoints and report, and the report would mix two trainings. The lock
is taken on the folder's own descriptor, so it leaves no file behind, and the kernel drops it when its process
ends however it ends (``kill -9`` included): no stale lock outlives a run. A forked child (a DataLoader worker)
closes its copy of the descriptor, so the lock is this process's alone. Where the file system has no
``flock`` for folders (some network mounts), nothing is locked, as before. POSIX only, as is SLURM.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctbench.errors import CTBenchError


class FolderBusy(CTBenchError):
    """Another process holds the folder's lock."""


#: descriptors this process holds a folder's lock through; a forked child (a DataLoader worker) closes its copies,
#: so the lock ends with the block, not with the last worker
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def _open(folder: Path) -> int | None:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None


def _try_lock(fd: int, block: bool) -> bool:
    """True when the lock is held now (or cannot be taken on this file system); False when another holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        return True  # no flock here (ENOLCK, EINVAL, EBADF on some network mounts): run unlocked
    return True


@contextmanager
def exclusive(folder: str | os.PathLike, doing: str = "training") -> Iterator[None]:
    """Hold ``folder``'s lock for the block (the folder is created if missing).

    Raises:
        FolderBusy: another process holds it; the message names the folder and what to do (exit code 2).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = _open(folder)
    try:
        if fd is not None and not _try_lock(fd, block=False):
            raise FolderBusy(f"{folder} is in use by another ctbench process ({doing} there now, e.g. a second study "
                             "or a job started by hand): wait for it to end or stop it, then run this again",
                             exit_code=2)
        if fd is not None:
            _HELD.add(fd)
        yield
    finally:
        if fd is not None:
            _HELD.discard(fd)
            os.close(fd)  # closing the descriptor releases the lock


@contextmanager
def waiting(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s lock for the block, waiting for another holder first: for a short read-modify-write of a
    file in it that several processes share (a study's ``study_jobs.json``)."""
    fd = _open(Path(folder))
    try:
        if fd is not None:
            _try_lock(fd, block=True)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def in_use(folder: str | os.PathLike) -> bool:
    """True when another process holds ``folder``'s lock now (a missing folder is not in use)."""
    fd = _open(Path(folder))
    if fd is None:
        return False
    try:
        return not _try_lock(fd, block=False)
    finally:
        os.close(fd)
