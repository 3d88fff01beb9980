"""A sync's store stays whole and its own: a sync killed mid-way (SIGKILL) loses nothing and the
next one finishes the job; a second sync of the same file is refused; a store of another
server, organization or token is refused before any request; the token is never written."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unpod_async import AuthenticationError, SyncError, UnpodClient, _store
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, child_env, make_client

SECRET = "s3cret-Token-never-stored-0123"


def served(sim: Simulator) -> dict[str, str]:
    return {k: raw.decode() for k, raw in zip(sim.task_ids(), sim.tasks_json(), strict=True)}


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def live(db: Path) -> dict[str, str]:
    rows = query(db, "SELECT task_id, json FROM tasks WHERE deleted_at IS NULL")
    return dict(rows)


def state(db: Path) -> tuple[Any, ...]:
    [row] = query(db, "SELECT synced_at, pending_full FROM sync_state WHERE space_token = ?", SPACE)
    return row


async def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not await asyncio.to_thread(check):
        assert loop.time() < until, "timed out"
        await asyncio.sleep(0.05)


def _rows(db: Path, where: str = "1", *args: Any) -> int:
    try:
        return int(query(db, f"SELECT count(*) FROM tasks WHERE {where}", *args)[0][0])
    except sqlite3.Error:  # not created yet
        return 0


async def start_sync(sim: Simulator, db: Path) -> asyncio.subprocess.Process:
    """``unpod-async tasks sync`` in a child process, slow: 20 tasks a page, 2 at a time."""
    env = child_env(sim)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "unpod_async", "tasks", "sync", SPACE, "--db", str(db),
        "--page-size", "20", "--concurrency", "2", "--max-retries", "1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip


async def kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL


def assert_whole(db: Path, sim: Simulator) -> None:
    """The file is sound and every row it holds is a task exactly as served."""
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    now = served(sim)
    assert {k: v for k, v in live(db).items() if now.get(k) != v} == {}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_first_sync_killed_mid_way_loses_nothing_and_the_next_finishes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(
        tasks=3000, latency=0.02, token=TOKEN, org_handle=ORG, space_token=SPACE
    ) as sim:
        proc = await start_sync(sim, db)
        await wait_for(lambda: _rows(db) >= 200)
        await kill(proc)
        kept = _rows(db)
        assert 200 <= kept < 3000  # killed mid-way
        assert_whole(db, sim)
        assert state(db) == (None, 1)  # not recorded as finished: a full sync is still due
        sim.latency = 0
        async with make_client(sim) as client:  # the lock died with the process
            stats = await client.sync_tasks(SPACE, db)
        assert stats.full
        assert stats.complete
        assert stats.unchanged == kept
        assert stats.new == 3000 - kept
        assert live(db) == served(sim)
        assert state(db)[1] == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_an_incremental_sync_killed_mid_way_loses_nothing_and_the_next_finishes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "unpod.sqlite"
    async with serve(tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        sim.settle(keep=0)
        async with make_client(sim) as client:
            await client.sync_tasks(SPACE, db)
        finished = state(db)
        sim.insert(2000)
        sim.latency = 0.02
        proc = await start_sync(sim, db)
        await wait_for(lambda: _rows(db, "first_seen > ?", finished[0]) >= 200)
        await kill(proc)
        got = _rows(db, "first_seen > ?", finished[0])
        assert 200 <= got < 2000
        assert_whole(db, sim)
        assert state(db) == finished  # the last finished sync is still the one it starts from
        sim.latency = 0
        async with make_client(sim) as client:
            stats = await client.sync_tasks(SPACE, db)
        assert not stats.full  # the head again, down past what the finished sync stored
        assert stats.new == 2000 - got
        assert live(db) == served(sim)


class Gate:
    """Holds every page request after the first until released."""

    def __init__(self, sim: Simulator) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        sim.on_request = self

    async def __call__(self, page: int, sim: Simulator) -> None:
        if page > 1:
            self.entered.set()
            await self.release.wait()


async def test_a_second_sync_of_the_same_file_is_refused(sim: Simulator, tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    gate = Gate(sim)
    async with make_client(sim) as client:
        first = asyncio.ensure_future(client.sync_tasks(SPACE, db))
        await asyncio.wait_for(gate.entered.wait(), 10)
        with pytest.raises(SyncError, match=r"is being synced by another sync \(process \d+\)"):
            await client.sync_tasks(SPACE, db)
        # Another process is refused the same way (the command exits 1, before any request).
        env = child_env(UNPOD_API_TOKEN=TOKEN, UNPOD_BASE_URL=sim.base_url)  # no org
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "unpod_async", "tasks", "sync", SPACE, "--db", str(db),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 1
        assert "is being synced by another sync" in err.decode()
        # Neither asked for anything: a sync starts with page 1, and only the first did.
        assert [r.page for r in sim.requests].count(1) == 1
        # Another file is another store: that sync runs.
        other = asyncio.ensure_future(client.sync_tasks(SPACE, tmp_path / "other.sqlite"))
        await asyncio.sleep(0.05)
        gate.release.set()
        stats = await first
        assert stats.complete
        assert (await other).complete
        again = await client.sync_tasks(SPACE, db)  # and once it is done, the file is free
    assert again.complete


async def test_a_store_of_another_server_is_refused_before_any_request(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with (
        serve(tasks=100, token=TOKEN, org_handle=ORG, space_token=SPACE) as one,
        serve(tasks=100, token=TOKEN, org_handle=ORG, space_token=SPACE) as two,
    ):
        async with make_client(one) as client:
            await client.sync_tasks(SPACE, db)
        async with make_client(two) as client:
            with pytest.raises(SyncError, match=f"another server \\({one.base_url}\\)"):
                await client.sync_tasks(SPACE, db)
        assert two.requests == []
        before = len(one.requests)
        async with make_client(one) as client:
            client.org_handle = "another-org"
            with pytest.raises(SyncError, match="another organization"):
                await client.sync_tasks(SPACE, db)
        one.token = "a-new-token"
        async with UnpodClient("a-new-token", ORG, base_url=one.base_url) as client:
            with pytest.raises(SyncError, match="another API token"):
                await client.sync_tasks(SPACE, db)
        assert len(one.requests) == before
        assert len(live(db)) == 100  # untouched


async def test_a_first_sync_that_failed_at_once_does_not_pin_its_token(
    sim: Simulator, tmp_path: Path
) -> None:
    db = tmp_path / "unpod.sqlite"
    async with UnpodClient("a-wrong-token", ORG, base_url=sim.base_url, max_retries=0) as client:
        with pytest.raises(AuthenticationError):
            await client.sync_tasks(SPACE, db)
    async with make_client(sim) as client:
        stats = await client.sync_tasks(SPACE, db)
    assert stats.new == 1000


async def test_the_store_never_holds_the_token(tmp_path: Path) -> None:
    db = tmp_path / "unpod.sqlite"
    async with (
        serve(tasks=300, token=SECRET, org_handle=ORG, space_token=SPACE) as sim,
        UnpodClient(SECRET, ORG, base_url=sim.base_url) as client,
    ):
        await client.sync_tasks(SPACE, db)
        await client.sync_tasks(SPACE, db, full=True)
    files = sorted(tmp_path.iterdir())
    assert files  # the database, its WAL and shared memory, the lock
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert oct(db.stat().st_mode & 0o777) == oct(0o600)  # it holds personal data


async def test_the_store_works_in_its_own_thread(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The event loop never waits on SQLite: every store call runs in the sync's thread.
    threads: list[str] = []
    for name in ("begin", "upsert", "known", "finish", "close"):
        original = getattr(_store.Store, name)

        def spy(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(_store.Store, name, spy)
    db = tmp_path / "unpod.sqlite"
    sim.settle(keep=0)
    async with make_client(sim) as client:
        await client.sync_tasks(SPACE, db)
        await client.sync_tasks(SPACE, db)
    assert len(threads) > 12  # 11 pages, then a few of the head
    assert all(name.startswith("unpod-sync") for name in threads), set(threads)


@pytest.mark.parametrize("kind", ["newer", "foreign"])
async def test_a_file_that_is_not_a_store_of_this_version_is_refused(
    sim: Simulator, tmp_path: Path, kind: str
) -> None:
    db = tmp_path / "unpod.sqlite"
    con = sqlite3.connect(db)
    if kind == "newer":
        con.execute("PRAGMA user_version = 2")
    else:
        con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    async with make_client(sim) as client:
        with pytest.raises(SyncError, match="newer unpod-async" if kind == "newer" else "not an"):
            await client.sync_tasks(SPACE, db)
    assert sim.requests == []
