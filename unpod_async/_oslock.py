"""A non-blocking OS lock on a file: one holder at a time, released when its process ends,
however it ends (the operating system drops the lock with the descriptor).

A sync holds one beside its store (``<name>.lock``, kept: a later sync takes it again), a
resumable export one beside its output (removed when the export ends). The lock file holds the
holder's process id, for the message of the one refused. A lock file that is removed is removed
by its holder, while it still holds it; whoever opened it just before takes the lock of a file
no longer there, so a taker checks that the file it locked is still the one at the path, and
tries again if not.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from pathlib import Path

if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


__all__ = ["LockHeld", "OsLock"]

_ATTEMPTS = 10  # a removed lock file taken again this often in a row is someone else's loop


class LockHeld(Exception):
    """Another holder has the lock; ``holder`` is its process id, when the file says it."""

    def __init__(self, path: Path, holder: int | None) -> None:
        super().__init__(f"{path} is locked" + (f" by process {holder}" if holder else ""))
        self.path = path
        self.holder = holder


def _release(path: Path, fd: int, remove: bool) -> None:
    if remove:  # while it is still held: see the module's docstring
        with contextlib.suppress(OSError):
            os.unlink(path)
    os.close(fd)  # releases the lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        at_path = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


class OsLock:
    """A lock held on ``path``: :meth:`acquire` it, :meth:`release` it (once is enough; a lock
    dropped without being released is released when it is garbage-collected)."""

    def __init__(self, path: Path, fd: int, *, remove: bool) -> None:
        self.path = path
        self._release = weakref.finalize(self, _release, path, fd, remove)

    @classmethod
    def acquire(cls, path: Path, *, remove: bool = False) -> OsLock:
        """Take the lock on ``path`` (created if need be) at once, or raise :class:`LockHeld`;
        an :class:`OSError` if the file cannot be opened. ``remove``: the file is removed when
        the lock is released."""
        for _ in range(_ATTEMPTS):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
            try:
                _try_lock(fd)
            except OSError:
                try:
                    text = os.read(fd, 32).decode(errors="replace").strip()
                except OSError:
                    text = ""
                os.close(fd)
                raise LockHeld(path, int(text) if text.isdigit() else None) from None
            try:
                if remove and not _same_file(fd, path):
                    os.close(fd)  # its holder removed it: lock the file at the path now
                    continue
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except BaseException:
                os.close(fd)
                raise
            return cls(path, fd, remove=remove)
        raise LockHeld(path, None)

    @property
    def held(self) -> bool:
        return self._release.alive

    def release(self) -> None:
        """Release the lock (and remove its file, if so made); again, nothing."""
        self._release()
