"""The checkpoint of a resumable export: which export it belongs to, and how far it got.

The checkpoint beside the output records how many bytes of the partial file are complete and
which page comes next. It is written only after the data it counts is on disk (flushed and
fsynced), so after a crash or a power cut the partial file is never shorter than a checkpoint
says, unless something else cut it. A rerun trusts a checkpoint only if it describes the very
same export: the same space, format, page size and filters, the same server and organization,
and the same token (compared by a salted fingerprint; the token itself is never stored).
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ._atomic import create_private
from ._errors import ExportError
from ._page import Page, ResumePoint
from ._redact import Secret

__all__ = ["Checkpoint", "Identity", "load", "save", "server_mismatch"]

logger = logging.getLogger("unpod_async")

VERSION = 2


@dataclass(frozen=True, slots=True)
class Identity:
    """What makes two exports the same export."""

    space: str
    format: str
    page_size: int
    filters: str
    base_url: str
    org_handle: str | None
    token: Secret

    def describe(self) -> str:
        return f"{self.space}|{self.format}|{self.page_size}|{self.filters}"


class Checkpoint(msgspec.Struct, kw_only=True):
    version: int = VERSION
    export: str  # space|format|page size|filters
    base_url: str
    org_handle: str | None = None
    salt: str
    token_fingerprint: str
    offset: int = 0
    tasks: int = 0
    next_page: int = 1
    size: int = 0
    count: int = 0
    dirty: bool = False
    pass_complete: bool = False

    @classmethod
    def new(cls, identity: Identity) -> Checkpoint:
        salt = secrets.token_hex(8)
        return cls(
            export=identity.describe(),
            base_url=identity.base_url,
            org_handle=identity.org_handle,
            salt=salt,
            token_fingerprint=identity.token.fingerprint(salt),
        )

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

    def rewind(self, pages: int, offset: int) -> None:
        """Resume after ``pages`` whole pages of pass 1, ``offset`` bytes into the file."""
        self.next_page = pages + 1
        self.offset = offset
        self.tasks = pages * self.size
        self.pass_complete = False

    def mismatch(self, identity: Identity) -> str | None:
        """What differs between this checkpoint and ``identity``, if anything."""
        if self.export != identity.describe():
            return "the space, format, page size or filters differ"
        return server_mismatch(
            self.base_url, self.org_handle, self.salt, self.token_fingerprint, identity
        )


def server_mismatch(
    base_url: str, org_handle: str | None, salt: str, fingerprint: str, identity: Identity
) -> str | None:
    """How the server, organization and token something was written with (the token by its
    salted ``fingerprint``) differ from ``identity``'s, if they do."""
    if base_url != identity.base_url:
        return f"it was written from another server ({base_url})"
    if org_handle != identity.org_handle:
        return f"it was written for another organization ({org_handle or 'none'})"
    if fingerprint != identity.token.fingerprint(salt):
        return "it was written with another API token"
    return None


def load(path: Path, identity: Identity) -> Checkpoint | None:
    """The checkpoint at ``path``: ``None`` (with a warning) if it cannot be read, an
    :class:`ExportError` if it belongs to another export."""
    try:
        state = msgspec.json.decode(path.read_bytes(), type=Checkpoint)
    except (msgspec.DecodeError, OSError, ValueError) as exc:
        logger.warning("ignoring unreadable checkpoint %s (%s): starting afresh", path, exc)
        return None
    if state.version != VERSION:
        logger.warning("ignoring checkpoint %s of another version: starting afresh", path)
        return None
    why = state.mismatch(identity)
    if why is not None:
        raise ExportError(
            f"checkpoint {path} belongs to a different export: {why}. Delete it and the "
            f"partial file beside it, or export without resume=True (--resume on the command "
            f"line) to start afresh"
        )
    return state


def save(path: Path, state: Checkpoint) -> None:
    """Replace the checkpoint with ``state``, durably (the data it counts is already on disk)."""
    tmp = path.with_name(path.name + ".tmp")
    with create_private(tmp) as f:
        f.write(msgspec.json.encode(state))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
