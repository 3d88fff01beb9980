"""A space that changes while it is paged: nothing twice, nothing that stayed is lost."""

from __future__ import annotations

import io
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable

import pytest
from aiohttp import web

from unpod_async import Task, UnpodClient
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, make_client, tasks_server

Op = Callable[[Simulator], list[str]]
DRIFT_LOG = re.compile(r"(?i)drift|chang")


def insert(n: int) -> Op:
    def op(sim: Simulator) -> list[str]:
        sim.insert(n)
        return []

    return op


def delete(n: int, at: int = 0) -> Op:
    def op(sim: Simulator) -> list[str]:
        return sim.delete(n, at=at)

    return op


class Schedule:
    """Changes applied to the space the first time a given page is requested."""

    def __init__(self, sim: Simulator, ops: dict[int, list[Op]]) -> None:
        self.ops = ops
        self.deleted: set[str] = set()
        self.fired: list[int] = []
        sim.on_request = self

    def __call__(self, page: int, sim: Simulator) -> None:
        for op in self.ops.pop(page, []):
            self.deleted.update(op(sim))
            self.fired.append(page)


def assert_drift_safe(tasks: list[Task], original: list[str], deleted: set[str]) -> None:
    keys = [t.task_id for t in tasks]
    counts = Counter(keys)
    assert [k for k, n in counts.items() if n > 1] == []  # nothing twice
    survivors = [k for k in original if k not in deleted]
    missing = [k for k in survivors if k not in counts]
    assert missing == []  # everything that existed throughout came out


async def pull(sim: Simulator, ops: dict[int, list[Op]], **kwargs: object) -> list[Task]:
    original = sim.task_ids()
    schedule = Schedule(sim, ops)
    async with make_client(sim, concurrency=4) as client:
        tasks = await client.get_all_tasks(SPACE, **kwargs)  # type: ignore[arg-type]
    assert schedule.ops == {}, "every planned change happened during the pull"
    assert_drift_safe(tasks, original, schedule.deleted)
    return tasks


@pytest.mark.simulator(ids="_id")  # asserts on every task's _id
async def test_insertions_during_paging(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unpod_async")
    tasks = await pull(sim, {3: [insert(13)], 8: [insert(7)], 15: [insert(1)]}, page_size=50)
    assert len(tasks) <= len(sim)
    assert set(t.task_id for t in tasks) <= set(sim.task_ids())
    assert len({t.id for t in tasks}) == len(tasks)
    drift = [r for r in caplog.records if DRIFT_LOG.search(r.getMessage())]
    assert drift
    assert all(r.levelno == logging.INFO for r in drift)


async def test_deletions_during_paging(sim: Simulator) -> None:
    # Deleting already-read tasks pulls unread ones onto pages already fetched.
    original = set(sim.task_ids())
    tasks = await pull(sim, {4: [delete(20)], 10: [delete(5, at=600)]}, page_size=50)
    assert {t.task_id for t in tasks} <= original


async def test_deletions_ahead_of_the_reader(sim: Simulator) -> None:
    tasks = await pull(sim, {2: [delete(40, at=700)], 6: [delete(3, at=10)]}, page_size=50)
    assert len(tasks) >= 1000 - 43


async def test_insertions_and_deletions_mixed(sim: Simulator) -> None:
    await pull(
        sim,
        {
            3: [insert(11)],
            5: [delete(30, at=300)],
            9: [insert(4), delete(10)],
            12: [delete(1, at=900), insert(60)],
        },
        page_size=50,
    )


@pytest.mark.parametrize("seed", range(6))
async def test_random_drift(seed: int) -> None:
    rng = random.Random(seed)
    async with serve(tasks=600, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        ops: dict[int, list[Op]] = {}
        for page in rng.sample(range(2, 20), 4):
            if rng.random() < 0.5:
                ops[page] = [insert(rng.randint(1, 40))]
            else:
                ops[page] = [delete(rng.randint(1, 25), at=rng.randint(0, 500))]
        await pull(sim, ops, page_size=30)


async def test_no_drift_no_drift_log(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unpod_async")
    tasks = await pull(sim, {}, page_size=50)
    assert [t.task_id for t in tasks] == sim.task_ids()
    assert [r.getMessage() for r in caplog.records if DRIFT_LOG.search(r.getMessage())] == []


async def test_tasks_without_underscore_id_dedupe_on_task_id() -> None:
    async with serve(
        tasks=800, token=TOKEN, org_handle=ORG, space_token=SPACE, strip_ids=True
    ) as sim:
        tasks = await pull(sim, {2: [insert(9)], 6: [insert(17)], 9: [delete(12)]}, page_size=40)
    assert all(t.id is None for t in tasks)
    assert all(t.task_id for t in tasks)


async def test_tasks_without_any_id_are_not_repeated_by_a_reread() -> None:
    # No task_id and no _id: identity falls back to the task's own JSON, so a drift-triggered
    # re-read (around the boundaries the moved count made suspect) does not yield every task
    # again (typed path and raw JSONL export alike).
    tasks = [{"status": "completed", "input": {"n": i}} for i in range(250)]
    requests = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        page, size = int(request.query["page"]), int(request.query["page_size"])
        count = 251 if requests == 2 else 250  # the count moves once: a re-read is needed
        body = {"count": count, "status_code": 200, "data": tasks[(page - 1) * size : page * size]}
        return web.Response(text=json.dumps(body), content_type="application/json")

    async with (
        tasks_server(handler) as base_url,
        UnpodClient("t", base_url=base_url, concurrency=1) as client,
    ):
        got = await client.get_all_tasks("space", page_size=100)
        assert [t.input for t in got] == [t["input"] for t in tasks]
        requests = 0
        out = io.BytesIO()
        stats = await client.export_tasks("space", out, page_size=100)
    assert stats.repairs >= 1  # the moved count made it read part of the space again
    assert [json.loads(line)["input"] for line in out.getvalue().splitlines()] == [
        t["input"] for t in tasks
    ]
