"""Files that appear whole or not at all: written beside the destination, then renamed.

A failed, cancelled or killed writer never leaves a truncated file at the destination, and never
clobbers the good file that was there: the data goes to a hidden file in the same directory
(so the rename is atomic), is flushed to disk, and only then replaces the destination.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import IO

__all__ = ["AtomicFile", "fsync_dir", "temp_beside"]


def temp_beside(dest: Path, suffix: str = "unpod-tmp") -> Path:
    """A fresh hidden name in the destination's directory."""
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.{suffix}")


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
            self.file = self.partial.open("wb")
        else:
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
