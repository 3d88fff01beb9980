"""``sync_tasks``: a local copy of a space kept current with a few requests.

Against the simulator over loopback; request counts come from the simulator's own log. A space
"ages" with ``sim.settle(keep=n)``: only its newest ``n`` tasks are left in an open status.
"""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from unpod_async import SyncStats, export_from_db
from unpod_async._dates import parse_datetime
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, make_client

NO_LOOKBACK = timedelta(0)


def stored(db: Path, space: str = SPACE) -> dict[str, dict[str, Any]]:
    """Every row of ``space`` in the store, by task_id."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        rows = con.execute("SELECT * FROM tasks WHERE space_token = ?", (space,)).fetchall()
    finally:
        con.close()
    return {row["task_id"]: dict(row) for row in rows}


def live(db: Path, space: str = SPACE) -> dict[str, str]:
    """The JSON of each task of ``space`` the store holds as served (not deleted)."""
    return {k: r["json"] for k, r in stored(db, space).items() if r["deleted_at"] is None}


def served(sim: Simulator) -> dict[str, str]:
    """The JSON of each task the simulator serves now."""
    return {k: raw.decode() for k, raw in zip(sim.task_ids(), sim.tasks_json(), strict=True)}


def created_of(sim: Simulator, index: int) -> datetime:
    when = parse_datetime(msgspec.json.decode(sim.tasks_json()[index])["created"])
    assert when is not None
    return when


def lookback_covering(sim: Simulator, n: int) -> timedelta:
    """A lookback that covers exactly the newest ``n`` tasks (from now)."""
    inside, outside = created_of(sim, n - 1), created_of(sim, n)
    return datetime.now(timezone.utc) - (inside + (outside - inside) / 2)


async def sync(sim: Simulator, db: Path, **kwargs: Any) -> tuple[SyncStats, int]:
    """One sync; its stats and the requests the simulator saw for it."""
    before = len(sim.requests)
    async with make_client(sim, concurrency=kwargs.pop("concurrency", 8)) as client:
        stats = await client.sync_tasks(SPACE, db, **kwargs)
    return stats, len(sim.requests) - before


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "unpod.sqlite"


# --- the first sync ---------------------------------------------------------------------------


async def test_the_first_sync_stores_every_task_as_served(sim: Simulator, db: Path) -> None:
    stats, requests = await sync(sim, db)
    assert live(db) == served(sim)  # the server's exact bytes, every task
    assert (stats.new, stats.updated, stats.unchanged, stats.deleted) == (1000, 0, 0, 0)
    assert stats.full
    assert stats.complete
    assert stats.advanced
    assert stats.horizon_page is None
    assert stats.requests == requests == 1000 // 100 + 1
    assert stats.stored == stats.last_count == 1000
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    state = con.execute(
        "SELECT schema_version, base_url, org_handle, synced_at, full_synced_at, pending_full,"
        " server_count FROM sync_state WHERE space_token = ?",
        (SPACE,),
    ).fetchone()
    con.close()
    assert state[:3] == (1, sim.base_url, ORG)
    assert state[3] == state[4] is not None
    assert state[5:] == (0, 1000)
    rows = stored(db)
    one = next(iter(rows.values()))
    assert one["first_seen"] == one["last_seen"] == state[3]
    assert {r["status"] for r in rows.values()} <= {
        "completed", "failed", "partially_completed", "pending", "in_progress", "hold"
    }  # fmt: skip


async def test_the_columns_are_the_tasks_own_values(sim: Simulator, db: Path) -> None:
    await sync(sim, db)
    for raw in sim.tasks_json()[:50]:
        task = msgspec.json.decode(raw)
        row = stored(db)[task["task_id"]]
        assert (row["status"], row["created"], row["modified"]) == (
            task["status"], task["created"], task["modified"]
        )  # fmt: skip
    con = sqlite3.connect(db)
    # The JSON is queryable with SQLite's JSON functions.
    (n,) = con.execute(
        "SELECT count(*) FROM tasks WHERE json_extract(json, '$.space_id') = 4242"
    ).fetchone()
    con.close()
    assert n == 1000


# --- the next syncs: the head, down to the horizon ---------------------------------------------


async def test_a_resync_with_nothing_new_reads_only_the_head(sim: Simulator, db: Path) -> None:
    sim.settle(keep=150)  # open tasks only in the first two pages
    await sync(sim, db)
    stats, requests = await sync(sim, db)
    assert requests == stats.requests == 2
    assert stats.horizon_page == 2
    assert (stats.new, stats.updated, stats.unchanged, stats.deleted) == (0, 0, 200, 0)
    assert not stats.full
    assert stats.complete
    assert live(db) == served(sim)


@pytest.mark.parametrize("k", [1, 99, 100, 101, 250, 1000])
async def test_k_new_tasks_cost_about_k_over_the_page_size(db: Path, k: int) -> None:
    async with serve(tasks=3000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        sim.settle(keep=0)
        await sync(sim, db)
        sim.insert(k)
        stats, requests = await sync(sim, db)
        assert live(db) == served(sim)
    assert stats.new == k
    assert stats.requests == requests <= math.ceil(k / 100) + 1
    assert stats.horizon_page == requests


async def test_a_100000_task_space_with_nothing_new_costs_at_most_3_requests(db: Path) -> None:
    async with serve(tasks=100_000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        sim.settle(keep=200)  # its open tasks in the first two pages
        first, _ = await sync(sim, db, page_size=1000, concurrency=16)
        assert first.new == 100_000
        stats, requests = await sync(sim, db)
        assert requests == stats.requests <= 3
        assert (stats.new, stats.updated) == (0, 0)
        sim.insert(1000)
        arrivals, requests = await sync(sim, db)
        assert arrivals.new == 1000
        assert requests == arrivals.requests <= math.ceil(1000 / 100) + 3
        con = sqlite3.connect(db)
        ids = {row[0] for row in con.execute("SELECT task_id FROM tasks")}
        con.close()
        assert ids == set(sim.task_ids())


async def test_a_status_change_of_an_open_task_is_stored(db: Path) -> None:
    async with serve(tasks=2000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        sim.settle(keep=500)
        await sync(sim, db)
        docs = [msgspec.json.decode(raw) for raw in sim.tasks_json()]
        opened = [d for d in docs[:500] if d["status"] in ("pending", "in_progress", "hold")]
        deepest = opened[-1]["task_id"]  # the oldest open task: the horizon is past it
        sim.update(deepest, status="completed", **{"output.call_summary": "Reached, at last."})
        stats, requests = await sync(sim, db)
        assert live(db) == served(sim)
        assert stats.updated == 1
        assert requests == stats.horizon_page <= 500 // 100 + 1
        # It is final now: the next sync stops short of where it was.
        again, fewer = await sync(sim, db)
    assert again.updated == 0
    assert fewer <= requests


async def test_late_post_call_data_within_the_lookback_is_stored(db: Path) -> None:
    async with serve(tasks=2000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        sim.settle(keep=0)
        lookback = lookback_covering(sim, 150)
        await sync(sim, db, lookback=lookback)
        inside, outside = sim.task_ids()[120], sim.task_ids()[400]
        summary = {"status": "Interested", "summary": "Wants the premium plan."}
        for task in (inside, outside):
            sim.update(task, **{"output.post_call_data.summary": summary})
        stats, requests = await sync(sim, db, lookback=lookback)
        assert stats.updated == 1
        assert requests == 2  # 150 tasks: down to page 2
        assert live(db)[inside] == served(sim)[inside]
        # A final task beyond the lookback is not read again, until a full sync.
        assert live(db)[outside] != served(sim)[outside]
        full, _ = await sync(sim, db, full=True)
        assert full.updated == 1
        assert live(db) == served(sim)


async def test_a_change_of_the_bytes_alone_is_an_update(sim: Simulator, db: Path) -> None:
    sim.settle(keep=0)
    await sync(sim, db, lookback=lookback_covering(sim, 50))
    target = sim.task_ids()[10]
    sim.update(target, bump=False, assignee="agent-42")  # same modified
    stats, _ = await sync(sim, db, lookback=lookback_covering(sim, 50))
    assert stats.updated == 1
    assert live(db)[target] == served(sim)[target]


async def test_unchanged_tasks_only_get_last_seen(sim: Simulator, db: Path) -> None:
    sim.settle(keep=0)
    await sync(sim, db)
    before = stored(db)
    sim.insert(30)
    await sync(sim, db, lookback=NO_LOOKBACK)
    after = stored(db)
    read = [k for k in before if after[k]["last_seen"] != before[k]["last_seen"]]
    assert 0 < len(read) <= 100  # the rest of page 1: read, the same, only last_seen moved
    for key, row in before.items():
        assert {**after[key], "last_seen": row["last_seen"]} == row
    assert len(after) == 1030


async def test_an_empty_space_then_its_first_tasks(db: Path) -> None:
    async with serve(tasks=0, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        first, _ = await sync(sim, db)
        assert (first.new, first.stored, first.complete) == (0, 0, True)
        sim.insert(120)
        stats, _ = await sync(sim, db)  # nothing was stored: everything is new
        assert stats.new == 120
        assert live(db) == served(sim)


# --- full syncs and deletes ---------------------------------------------------------------------


async def test_a_full_sync_marks_tasks_no_longer_served_and_keeps_them(
    sim: Simulator, db: Path
) -> None:
    await sync(sim, db)
    gone = sim.delete(3, at=10) + sim.delete(2, at=700)
    head, _ = await sync(sim, db)
    assert head.deleted == 0  # only a full sync looks for deletes
    stats, requests = await sync(sim, db, full=True)
    assert stats.full
    assert stats.deleted == 5
    assert requests == 995 // 100 + 1
    rows = stored(db)
    assert len(rows) == 1000  # never deleted from the store
    assert {k for k, r in rows.items() if r["deleted_at"] is not None} == set(gone)
    assert live(db) == served(sim)
    assert stats.stored == 995


async def test_a_full_sync_that_knows_it_is_short_marks_nothing(db: Path) -> None:
    async with serve(tasks=400, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        await sync(sim, db)
        sim.delete(10, at=50)
        sim.count_offset = 70  # the server counts 70 more than it serves
        stats, _ = await sync(sim, db, full=True)
        assert stats.missing == 70
        assert not stats.complete
        assert stats.deleted == 0
        assert all(r["deleted_at"] is None for r in stored(db).values())
        assert not stats.advanced  # not recorded as finished: the next sync is full again
        sim.count_offset = 0
        again, _ = await sync(sim, db)
    assert again.full
    assert again.deleted == 10


async def test_a_task_served_again_is_no_longer_deleted(sim: Simulator, db: Path) -> None:
    await sync(sim, db)
    ids = sim.task_ids()
    sim.delete(1, at=5)
    await sync(sim, db, full=True)
    assert stored(db)[ids[5]]["deleted_at"] is not None
    sim.count_offset = 0
    restored = Simulator(1000, token=TOKEN, org_handle=ORG, space_token=SPACE)
    sim._tasks = restored._tasks  # the same space, the task back in its place
    sim._changed()
    stats, _ = await sync(sim, db, full=True)
    assert stats.updated == 1
    assert stored(db)[ids[5]]["deleted_at"] is None


# --- a space that moves while it is synced -----------------------------------------------------


class Live:
    """Tasks arrive (and some near the head go) while a sync reads, answers in any order."""

    def __init__(self, sim: Simulator, seed: int, arrive: int, delete: int) -> None:
        self.rng = random.Random(seed)
        self.arrive, self.delete = arrive, delete
        self.deleted: set[str] = set()
        self.n = 0
        sim.on_request = self

    async def __call__(self, page: int, sim: Simulator) -> None:
        await asyncio.sleep(self.rng.random() * 0.004)
        self.n += 1
        if self.arrive and self.n % self.arrive == 0:
            sim.insert(3)
        if self.delete and self.n % self.delete == 0:
            self.deleted.update(sim.delete(1, at=self.rng.randrange(300)))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("arrive", "delete"), [(1, 0), (1, 2)], ids=["arrivals", "both"])
async def test_a_sync_while_tasks_arrive_loses_nothing(
    db: Path, seed: int, arrive: int, delete: int
) -> None:
    async with serve(tasks=3000, seed=seed, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        sim.settle(keep=100)
        await sync(sim, db)
        sim.insert(700)
        expected = set(sim.task_ids())
        moving = Live(sim, seed, arrive, delete)
        stats, _ = await sync(sim, db, concurrency=8)
        sim.on_request = None
        assert stats.complete
        held = set(live(db))
        # Every task there when it started is stored (unless deleted since).
        assert expected - moving.deleted <= held
        # And the next, quiet sync leaves the store exactly what is served.
        await sync(sim, db)
        assert set(live(db)) - moving.deleted == set(served(sim))


# --- many spaces, one file; arguments ----------------------------------------------------------


async def test_many_spaces_share_one_file(db: Path) -> None:
    async with (
        serve(tasks=300, seed=1, token=TOKEN, org_handle=ORG, space_token="space-a") as a,
        serve(tasks=200, seed=2, token=TOKEN, org_handle=ORG, space_token="space-b") as b,
    ):
        for sim, space in ((a, "space-a"), (b, "space-b")):
            async with make_client(sim) as client:
                await client.sync_tasks(space, db)
        assert live(db, "space-a") == served(a)
        assert live(db, "space-b") == served(b)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"lookback": timedelta(hours=-1)}, ValueError),
        ({"lookback": "24h"}, TypeError),
        ({"page_size": 0}, ValueError),
        ({"final_statuses": "completed"}, TypeError),
        ({"progress": 3}, TypeError),
    ],
)
async def test_bad_arguments_are_refused_before_any_request(
    sim: Simulator, db: Path, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    async with make_client(sim) as client:
        with pytest.raises(error):
            await client.sync_tasks(SPACE, db, **kwargs)
        with pytest.raises(ValueError, match="directory"):
            await client.sync_tasks(SPACE, db.parent)
    assert sim.requests == []
    assert not db.exists()


async def test_progress_is_reported_after_each_page(sim: Simulator, db: Path) -> None:
    seen: list[Any] = []
    async with make_client(sim) as client:
        await client.sync_tasks(SPACE, db, progress=seen.append)
    assert [p.pages_done for p in seen] == list(range(1, 12))
    assert seen[-1].tasks_written == 1000


# --- an export from the store -------------------------------------------------------------------


async def test_an_export_from_the_store_sends_no_request(
    sim: Simulator, db: Path, tmp_path: Path
) -> None:
    await sync(sim, db)
    sim.delete(4, at=0)
    await sync(sim, db, full=True)
    before = len(sim.requests)
    out = tmp_path / "tasks.jsonl"
    stats = await export_from_db(db, SPACE, out)
    assert len(sim.requests) == before
    lines = out.read_bytes().splitlines()
    assert stats.tasks == len(lines) == 996
    assert stats.requests == 0
    assert sorted(line.decode() for line in lines) == sorted(served(sim).values())
    # Newest first, as the server lists them.
    assert [msgspec.json.decode(line)["task_id"] for line in lines] == sim.task_ids()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
async def test_an_export_from_the_store_in_any_format(
    sim: Simulator, db: Path, tmp_path: Path, fmt: str
) -> None:
    await sync(sim, db)
    direct, copy = tmp_path / f"direct.{fmt}", tmp_path / f"copy.{fmt}"
    async with make_client(sim) as client:
        await client.export_tasks(SPACE, direct, format=fmt)  # type: ignore[arg-type]
    await export_from_db(db, SPACE, copy, format=fmt)  # type: ignore[arg-type]
    assert copy.read_bytes() == direct.read_bytes() or fmt == "parquet"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(copy).equals(pq.read_table(direct))


async def test_an_export_from_the_store_filters_on_the_tasks(
    sim: Simulator, db: Path, tmp_path: Path
) -> None:
    await sync(sim, db)
    out = tmp_path / "failed.jsonl"
    stats = await export_from_db(db, SPACE, out, status="failed")
    want = [k for k, raw in served(sim).items() if msgspec.json.decode(raw)["status"] == "failed"]
    got = [msgspec.json.decode(line)["task_id"] for line in out.read_bytes().splitlines()]
    assert got == want
    assert stats.tasks == len(want)


async def test_an_export_from_a_store_without_the_space_is_refused(
    db: Path, tmp_path: Path
) -> None:
    from unpod_async import SyncError

    with pytest.raises(SyncError, match="no store"):
        await export_from_db(db, SPACE, tmp_path / "t.jsonl")
    sqlite3.connect(db).close()
    with pytest.raises(SyncError, match="empty"):
        await export_from_db(db, SPACE, tmp_path / "t.jsonl")
    assert not (tmp_path / "t.jsonl").exists()
