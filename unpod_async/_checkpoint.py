"""The checkpoint of a resumable export: which export it belongs to, and how far it got.

After every page written, the checkpoint beside the output records how many bytes of the
partial file are complete and which page comes next. A rerun trusts it only if it describes
the very same export (its ``identity``), truncates the partial file to that point, and asks
the pager to continue from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from ._errors import ExportError
from ._paging import Page, ResumePoint

__all__ = ["Checkpoint", "load", "save"]

VERSION = 1


class Checkpoint(msgspec.Struct, kw_only=True):
    version: int = VERSION
    identity: str
    offset: int = 0
    tasks: int = 0
    next_page: int = 1
    size: int = 0
    count: int = 0
    dirty: bool = False
    pass_complete: bool = False

    @property
    def started(self) -> bool:
        """Whether any page was recorded (else there is nothing to resume)."""
        return self.next_page > 1 or self.pass_complete

    def resume_point(self) -> ResumePoint:
        return ResumePoint(
            next_page=self.next_page,
            size=self.size,
            count=self.count,
            dirty=self.dirty,
            pass_complete=self.pass_complete,
        )

    def advance(self, page: Page[Any], page_size: int) -> None:
        """Record a written page."""
        if page.pass_no > 1:
            self.pass_complete = self.dirty = True
            return
        if page.number == 1:
            self.count = page.count or 0
            capped = 0 < page.size < page_size and (page.count or 0) > page.size
            self.size = page.size if capped else page_size
        self.dirty = self.dirty or not page.all_new or page.count != self.count
        self.next_page = page.number + 1
        if page.size < self.size:
            self.pass_complete = True  # a short page ends the pass


def load(path: Path, identity: str) -> Checkpoint:
    """The checkpoint at ``path``, refused if it belongs to another export."""
    try:
        state = msgspec.json.decode(path.read_bytes(), type=Checkpoint)
    except (msgspec.DecodeError, OSError) as exc:
        raise ExportError(f"cannot read checkpoint {path}: {exc}") from None
    if state.identity != identity or state.version != VERSION:
        raise ExportError(
            f"checkpoint {path} belongs to a different export "
            "(space, format, page size or filters differ); delete it or drop resume"
        )
    return state


def save(path: Path, state: Checkpoint) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgspec.json.encode(state))
    os.replace(tmp, path)
