"""A resumable export whose last step fails, and two resumable exports of one file at once.

When putting the finished file in place fails (the rename refused, say), the caller gets that
error as an :class:`ExportError`, not a consequence of the clean-up; the partial file (for
Parquet, the JSONL spool it converts) and the checkpoint stay, and a rerun resumes from them
to the same file a clean export writes. A second resumable export of a path another one is
writing is refused at once (they would share one partial file and checkpoint); the lock that
refuses it is released however the first one ends.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from unpod_async import (
    BusinessLogicError,
    ExportError,
    ExportProgress,
    UnpodClient,
    _atomic,
    _oslock,
)
from unpod_async._export import Format
from unpod_async.testing import Fault, Simulator, serve

from .helpers import ORG, SPACE, TOKEN, exception_chain, leftovers, make_client

FORMATS: list[Format] = ["jsonl", "csv", "parquet"]


def content(path: Path, format: str) -> Any:
    if format == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return path.read_bytes()


def refuse_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    def commit(self: _atomic.AtomicFile, source: Path | None = None) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(_atomic.AtomicFile, "commit", commit)


@pytest.mark.parametrize("format", FORMATS)
async def test_a_failing_commit_is_the_error_raised_and_a_rerun_resumes(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, format: Format
) -> None:
    if format == "parquet":
        pytest.importorskip("pyarrow")
    clean = tmp_path / "clean" / f"t.{format}"
    clean.parent.mkdir()
    out = tmp_path / f"t.{format}"
    async with make_client(sim) as client:
        await client.export_tasks(SPACE, clean, page_size=100, format=format)
        refuse_commit(monkeypatch)
        with pytest.raises(ExportError, match="Permission denied") as info:
            await client.export_tasks(SPACE, out, page_size=100, format=format, resume=True)
        assert info.value.errno == errno.EACCES
        assert info.value.path == str(out)
        # Not "flush of closed file" (or a detached buffer): the clean-up tried no write.
        assert not any(isinstance(e, ValueError) for e in exception_chain(info.value))
        assert not out.exists()
        # The partial file (for Parquet, the spool) and its checkpoint stay; no converted
        # temporary file is left behind.
        assert leftovers(tmp_path) == [f".t.{format}.unpod-partial", f".t.{format}.unpod-resume"]
        monkeypatch.undo()
        sim.requests.clear()
        stats = await client.export_tasks(SPACE, out, page_size=100, format=format, resume=True)
    assert stats.resumed_pages >= 1  # from the last checkpoint saved, not afresh
    assert 1 not in {r.page for r in sim.requests}
    assert content(out, format) == content(clean, format)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- one at a time


async def test_a_second_resumable_export_of_a_path_is_refused_at_once(
    sim: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    clean = tmp_path / "clean.jsonl"
    lock = tmp_path / "t.jsonl.unpod-lock"
    first_page = asyncio.Event()
    go_on = asyncio.Event()

    async def hold(progress: ExportProgress) -> None:
        first_page.set()
        await go_on.wait()

    async with (
        serve(tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE) as other,
        make_client(sim) as client,
        make_client(other) as second,
    ):
        await client.export_tasks(SPACE, clean, page_size=100)
        first = asyncio.create_task(
            client.export_tasks(SPACE, out, page_size=100, resume=True, progress=hold)
        )
        await asyncio.wait_for(first_page.wait(), 10)
        assert lock.exists()
        assert lock.stat().st_mode & 0o777 == 0o600
        with pytest.raises(ExportError, match="another resumable export") as info:
            await second.export_tasks(SPACE, out, page_size=100, resume=True)
        assert info.value.path == str(out)
        assert other.requests == []  # refused before a single request
        go_on.set()
        stats = await first
        assert stats.tasks == 1000
        assert out.read_bytes() == clean.read_bytes()
        assert not lock.exists()
        assert leftovers(tmp_path) == []
        # Released: the next one runs.
        await second.export_tasks(SPACE, out, page_size=100, resume=True)
    assert out.read_bytes() == clean.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.jsonl", "t.jsonl"]


async def test_the_lock_is_released_when_an_export_fails(
    sim: Simulator, client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    sim.faults.append(Fault(kind="206", page=3, message="Invalid Space Token"))
    with pytest.raises(BusinessLogicError):
        await client.export_tasks(SPACE, out, page_size=100, resume=True)
    assert not (tmp_path / "t.jsonl.unpod-lock").exists()
    # Refused while preparing (the checkpoint is another organization's): released too.
    other_org = UnpodClient(TOKEN, "other-org", base_url=sim.base_url)
    async with other_org:
        with pytest.raises(ExportError, match="another organization"):
            await other_org.export_tasks(SPACE, out, page_size=100, resume=True)
    assert not (tmp_path / "t.jsonl.unpod-lock").exists()
    stats = await client.export_tasks(SPACE, out, page_size=100, resume=True)
    assert stats.resumed_pages == 2
    assert stats.tasks == 1000
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


async def test_a_lock_file_a_killed_export_left_is_taken_over(
    client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    stale = tmp_path / "t.jsonl.unpod-lock"
    stale.write_bytes(b"999999999\n")  # no lock is held on it: its process is gone
    stats = await client.export_tasks(SPACE, out, page_size=100, resume=True)
    assert stats.tasks == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]


async def test_an_export_that_does_not_resume_takes_no_lock(
    client: UnpodClient, tmp_path: Path
) -> None:
    out = tmp_path / "t.jsonl"
    names: set[str] = set()

    def look(progress: ExportProgress) -> None:
        names.update(p.name for p in tmp_path.iterdir())

    await client.export_tasks(SPACE, out, page_size=100, progress=look)
    assert not any(name.endswith(".unpod-lock") for name in names)


def test_a_lock_file_removed_by_its_holder_meanwhile_is_taken_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A taker that opened the lock file just before its holder removed it and let go locks a
    # file no longer at the path: it must lock the one there now, or two would hold "it".
    path = tmp_path / "t.jsonl.unpod-lock"
    holder = _oslock.OsLock.acquire(path, remove=True)
    with pytest.raises(_oslock.LockHeld):
        _oslock.OsLock.acquire(path, remove=True)
    real = _oslock._try_lock
    calls = 0

    def try_lock(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            holder.release()  # between the taker's open and its lock
        real(fd)

    monkeypatch.setattr(_oslock, "_try_lock", try_lock)
    taker = _oslock.OsLock.acquire(path, remove=True)
    assert calls == 2  # it tried again, on the file at the path
    monkeypatch.undo()
    with pytest.raises(_oslock.LockHeld, match=str(os.getpid())):
        _oslock.OsLock.acquire(path, remove=True)
    taker.release()
    assert not path.exists()
    _oslock.OsLock.acquire(path, remove=True).release()
