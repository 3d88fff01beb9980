"""One pass over a live space: tasks arriving and going while it is paged, and faults.

Tests of correctness, not of time: every task that existed throughout the pull comes out
exactly once; tasks that arrived during the pull come out once at most; and the pull costs
about one pass (the repairs are few), whether the server answers the pages in the order they
were sent (the simulator does) or in any order (a random delay before each page is served).
"""

from __future__ import annotations

import pytest

from unpod_async import UnpodClient
from unpod_async.testing import Simulator, serve

from .helpers import ORG, SPACE, TOKEN, Live, make_client


async def pull(sim: Simulator, live: Live, **kwargs: object) -> tuple[list[str], int]:
    async with make_client(sim, concurrency=16, **kwargs) as client:
        tasks = client.iter_tasks(SPACE, page_size=50)
        got = [t.task_id async for t in tasks]
    live.check(got)  # type: ignore[arg-type]
    return got, tasks.stats.requests  # type: ignore[return-value]


STATIC = 5000 // 50 + 1  # the requests of a pull of a space that holds still


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("arrive", "delete"),
    [(3, 0), (3, 40), (0, 40), (1, 5)],
    ids=["arrivals", "both", "deletes", "storm"],
)
async def test_a_live_space_in_one_pass(seed: int, arrive: int, delete: int) -> None:
    async with serve(tasks=5000, seed=seed, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        live = Live(sim, seed, arrive, delete, jitter=0)
        _, requests = await pull(sim, live)
    # Answered in order, the boundaries are whole unless a delete moved them: a few repairs.
    assert requests <= 1.3 * STATIC, requests


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("arrive", "delete"), [(3, 0), (3, 40), (1, 5)], ids=["arrivals", "both", "storm"]
)
async def test_a_live_space_answered_out_of_order(seed: int, arrive: int, delete: int) -> None:
    async with serve(tasks=5000, seed=seed, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        live = Live(sim, seed, arrive, delete, jitter=0.003)
        _, requests = await pull(sim, live)
    # Out of order while tasks arrive, many boundaries need a (small) repair read each.
    assert requests <= 2.5 * STATIC, requests


async def test_arrivals_are_read_from_the_head() -> None:
    async with serve(tasks=2000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim:
        live = Live(sim, 0, arrive=2, delete=0, jitter=0)
        async with make_client(sim, concurrency=4) as client:
            tasks = client.iter_tasks(SPACE, page_size=100)
            got = [t.task_id async for t in tasks]
        live.check(got)  # type: ignore[arg-type]
        new = set(got) - set(live.original)
        assert new  # tasks that arrived during the pull came out too
        assert tasks.stats.arrivals == len(new)
        assert tasks.stats.passes == 1
        assert tasks.stats.complete


@pytest.mark.parametrize("seed", range(3))
async def test_five_percent_of_first_attempts_failing_changes_nothing(seed: int) -> None:
    async with (
        serve(
            tasks=5000,
            seed=seed,
            token=TOKEN,
            org_handle=ORG,
            space_token=SPACE,
            fault_rate=0.05,
            fault_kinds=("503", "206", "reset", "truncated", "malformed", "html200"),
        ) as sim,
        make_client(sim, concurrency=16) as client,
    ):
        tasks = client.iter_tasks(SPACE, page_size=50)
        got = [t.task_id async for t in tasks]
    assert got == sim.task_ids()  # every task once, in order
    assert tasks.stats.retries + tasks.stats.rereads > 0
    assert tasks.stats.complete


async def test_a_still_space_costs_one_pass_exactly(sim: Simulator) -> None:
    async with UnpodClient(TOKEN, ORG, base_url=sim.base_url, concurrency=16) as client:
        tasks = client.iter_tasks(SPACE, page_size=100)
        got = [t.task_id async for t in tasks]
    assert got == sim.task_ids()
    assert tasks.stats.requests == len(sim.requests) == len(sim) // 100 + 1
    assert (tasks.stats.repairs, tasks.stats.arrivals, tasks.stats.passes) == (0, 0, 1)
