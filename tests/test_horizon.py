"""A pull whose pass ends at a horizon (what an incremental sync reads): only the pages up to
it are requested, and what lies before it is read as safely as a whole pass reads a space,
while tasks arrive and go and pages are answered out of order (a whole pull too, when tasks
arrive and go at one pace)."""

from __future__ import annotations

from typing import Any

import pytest

from unpod_async import PullStats, TaskFilter
from unpod_async._decode import decode_raw_page
from unpod_async._paging import Page
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, Live, make_client


class StopAt:
    """A horizon at a fixed page of every pass."""

    def __init__(self, page: int, plan: int | None = None) -> None:
        self.page = page
        self.planned = page if plan is None else plan
        self.asked: list[int] = []

    def plan(self, count: int | None, size: int) -> int:
        return self.planned

    async def reached(self, page: Page[Any]) -> bool:
        self.asked.append(page.number)
        return page.number >= self.page


async def head(
    sim: Simulator, horizon: StopAt, size: int, **options: Any
) -> tuple[list[str], PullStats]:
    stats = PullStats()
    async with make_client(sim, **options) as client:
        pages = client._stream(
            client._tasks_url(SPACE, TaskFilter()),
            decode_raw_page,
            page_size=size,
            deadline=None,
            stats=stats,
            horizon=horizon,
        )
        got = [str(key) async for page in pages for key in page.select(page.keys)]
    return got, stats


async def test_a_pass_ends_at_its_horizon(sim: Simulator) -> None:
    horizon = StopAt(4)
    got, stats = await head(sim, horizon, 50, concurrency=8)
    assert got == sim.task_ids()[:200]
    assert stats.requests == len(sim.requests) == 4  # nothing past the horizon is asked for
    assert horizon.asked == [1, 2, 3, 4]
    assert stats.complete  # the count speaks of the whole space, not of the head
    assert stats.missing == 0


async def test_past_its_plan_a_pass_reads_on_a_few_pages_at_a_time(sim: Simulator) -> None:
    horizon = StopAt(7, plan=2)
    got, stats = await head(sim, horizon, 50, concurrency=8)
    assert got == sim.task_ids()[:350]
    # 2 planned, then 1, 2 and 4 more (the last 2 past the horizon, already sent).
    assert stats.requests == len(sim.requests) <= 9


async def test_a_horizon_never_reached_reads_the_whole_space(sim: Simulator) -> None:
    got, stats = await head(sim, StopAt(10**6, plan=3), 100, concurrency=4)
    assert got == sim.task_ids()
    assert stats.complete


# Live (from helpers) with deletes near the head (within the first 600 tasks); jitter is never
# 0 here, so every answer waits a random while and pages are answered in any order.


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("arrive", "delete"),
    [(1, 0), (2, 3), (0, 2), (1, 1)],
    ids=["arrivals", "both", "deletes", "storm"],
)
async def test_a_head_read_misses_nothing_before_its_horizon(
    seed: int, arrive: int, delete: int
) -> None:
    async with serve(tasks=3000, seed=seed, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        live = Live(sim, seed, arrive, delete, jitter=0.004, delete_within=600)
        got, stats = await head(sim, StopAt(12), 50, concurrency=8)
    assert len(got) == len(set(got))  # nothing twice
    assert set(got) <= set(live.original) | live.arrived
    survivors = [t for t in live.original if t not in live.deleted]
    kept = set(got)
    deepest = max(i for i, t in enumerate(survivors) if t in kept)
    # What was read is the head without a hole: every task down to the deepest one read.
    assert [t for t in survivors[: deepest + 1] if t not in kept] == []
    assert deepest >= 12 * 50 - 50  # and the head down to about the horizon
    assert stats.requests < 40


@pytest.mark.parametrize("seed", range(4))
async def test_a_whole_pull_misses_nothing_when_tasks_arrive_and_go_at_one_pace(seed: int) -> None:
    # Arrivals and deletes in step keep the count level; answered out of order, pages then
    # shift with no sign in the counts, but tasks seen twice tell that tasks arrived (this
    # used to lose 3 to 8 tasks a pull).
    async with serve(tasks=3000, seed=seed, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        live = Live(sim, seed, arrive=1, delete=1, jitter=0.004, delete_within=600)
        async with make_client(sim, concurrency=8) as client:
            tasks = client.iter_tasks(SPACE, page_size=50)
            got = [t.task_id async for t in tasks]
    assert len(got) == len(set(got))
    kept = set(got)
    assert [t for t in live.original if t not in live.deleted and t not in kept] == []
    assert tasks.stats.requests < 2.5 * (3000 // 50 + 1)
