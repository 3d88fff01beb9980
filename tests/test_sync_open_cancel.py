"""A sync whose store cannot be opened cleanly: cancelled while it opens, or not creatable.

Opening the store runs in the sync's thread and takes the store's OS lock. A sync cancelled
while that runs must still close what the thread opens, else the lock stays held and every
later sync of the file in this process is refused. A store file that cannot be created is a
:class:`SyncError` (as a lock file that cannot be opened is), before any request.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from unpod_async import SyncError, _store
from unpod_async.testing import Simulator

from .helpers import SPACE, make_client


def open_files(path: Path) -> list[str]:
    """The descriptors of this process open on ``path`` (or its lock file)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_a_sync_cancelled_while_its_store_opens_leaves_the_store_unlocked(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "unpod.sqlite"
    opening, go_on = threading.Event(), threading.Event()
    original = _store.Store.open.__func__  # type: ignore[attr-defined]

    def slow_open(cls: type[_store.Store], path: Path, *, sync: bool) -> _store.Store:
        opening.set()
        go_on.wait(10)
        return original(cls, path, sync=sync)  # type: ignore[no-any-return]

    monkeypatch.setattr(_store.Store, "open", classmethod(slow_open))
    async with make_client(sim) as client:
        sync = asyncio.create_task(client.sync_tasks(SPACE, db))
        assert await asyncio.to_thread(opening.wait, 10)
        sync.cancel()  # while the thread opens the store (and takes its lock)
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await sync
        assert open_files(db) == []  # neither the database nor its lock is left open
        monkeypatch.undo()
        stats = await client.sync_tasks(SPACE, db)
    assert stats.new == 1000
    assert stats.advanced


async def test_a_store_file_that_cannot_be_created_is_a_sync_error(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "unpod.sqlite"

    def refuse(path: Path, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(_store, "create_private", refuse)
    async with make_client(sim) as client:
        with pytest.raises(SyncError, match=r"cannot create .*unpod\.sqlite: Permission denied"):
            await client.sync_tasks(SPACE, db)
        assert sim.requests == []
        assert not db.exists()
        monkeypatch.undo()
        stats = await client.sync_tasks(SPACE, db)  # the lock was released
    assert stats.new == 1000
