"""Files that appear whole or not at all: written beside the destination, then renamed.

A failed, cancelled or killed writer never leaves a truncated file at the destination, and never
clobbers the good file that was there: the data goes to a hidden file in the same directory
(so the rename is atomic), is flushed to disk, and only then replaces the destination.

Exports hold personal data: the hidden files are created ``0600``; the finished file takes the
mode of the file it replaces (or the usual ``0666 & ~umask`` when there was none). A temporary
file carries the writer's process id, so the next export to the same path can remove those of
writers that are gone (killed before they could clean up).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import uuid
from pathlib import Path
from typing import IO

__all__ = ["AtomicFile", "create_private", "fsync_dir", "remove_stale_temps", "temp_beside"]

logger = logging.getLogger("unpod_async")

TEMP_SUFFIX = "unpod-tmp"
_PRIVATE = 0o600


def temp_beside(dest: Path, suffix: str = TEMP_SUFFIX) -> Path:
    """A fresh hidden name in the destination's directory, tagged with this process's id."""
    return dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.{suffix}")


def create_private(path: Path, *, exclusive: bool = False) -> IO[bytes]:
    """Open ``path`` for writing (truncating it), readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), _PRIVATE)
    try:
        os.fchmod(fd, _PRIVATE)  # an existing file keeps its mode through O_CREAT
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temps(dest: Path) -> list[Path]:
    """Remove the temporary files of earlier writers of ``dest`` whose process is gone."""
    pattern = re.compile(rf"\.{re.escape(dest.name)}\.(\d+)-[0-9a-f]{{12}}\.{TEMP_SUFFIX}")
    removed: list[Path] = []
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
                logger.info("removed %s, left by an export that was killed", entry)
    return removed


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_destination(dest: Path) -> None:
    """Refuse, before any request, a destination that cannot be written as a file."""
    if dest.is_dir():
        raise ValueError(f"{dest} is a directory; give a file path")
    if not dest.parent.is_dir():
        raise ValueError(f"directory {dest.parent} does not exist")


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def final_mode(dest: Path) -> int:
    """The mode the finished file takes: that of the file it replaces, else the default."""
    try:
        return stat.S_IMODE(dest.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


class AtomicFile:
    """The partial file behind a destination, and how it becomes the destination.

    ``partial`` is a fresh temporary name, or, for a resumable write, a fixed name that a
    rerun finds again (``keep_partial``: it is left in place on failure).
    """

    def __init__(self, dest: Path, *, partial: Path | None = None) -> None:
        self.dest = dest
        self.keep_partial = partial is not None
        self.partial = partial if partial is not None else temp_beside(dest)
        self.file: IO[bytes] | None = None

    def open(self, offset: int | None = None) -> IO[bytes]:
        """Open the partial file: new and empty, or (``offset``) kept up to ``offset`` bytes."""
        if offset is None:
            self.file = create_private(self.partial)
        else:
            os.chmod(self.partial, _PRIVATE)
            self.file = self.partial.open("r+b")
            self.file.truncate(offset)
            self.file.seek(offset)
        return self.file

    def finish(self) -> None:
        """Flush the partial file to disk and close it."""
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def commit(self, source: Path | None = None) -> int:
        """Rename ``source`` (default: the partial file) over the destination; its size."""
        source = self.partial if source is None else source
        os.chmod(source, final_mode(self.dest))
        size = source.stat().st_size
        os.replace(source, self.dest)
        fsync_dir(self.dest.parent)
        return size

    def abort(self) -> None:
        """After a failure: close, and remove the partial file unless it is resumable."""
        if self.file is not None:
            with contextlib.suppress(OSError):  # closing flushes: may fail again on a full disk
                self.file.close()
        if not self.keep_partial:
            self.partial.unlink(missing_ok=True)
