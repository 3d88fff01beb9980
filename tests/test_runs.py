"""Runs: a space's runs and one run's tasks, through the same engine as tasks, over real
sockets against the simulator (paging, retries, drift, tolerant decoding, filters, export)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from unpod_async import BusinessLogicError, Run, RunsPage, UnpodClient
from unpod_async._decode import decode_runs_page
from unpod_async.testing import Fault, Simulator

from .helpers import (
    ORG,
    SPACE,
    TOKEN,
    client_for,
    ids,
    make_client,
    serve_recorded,
    tasks_server,
)

RUN_SIZE = 250  # the simulator's tasks per run (``testing._data.RUN_SIZE``)


def _expected_runs(sim: Simulator) -> list[str]:
    """The run ids of the simulator's space, newest first, from its tasks' own documents."""
    seen: dict[str, None] = {}
    for raw in sim.tasks_json():
        seen.setdefault(json.loads(raw)["run_id"], None)
    return list(seen)


async def test_list_runs_is_every_run_newest_first_typed(
    sim: Simulator, client: UnpodClient
) -> None:
    runs = await client.list_runs(SPACE)
    assert [r.run_id for r in runs] == _expected_runs(sim)
    assert len(runs) == 1000 // RUN_SIZE
    assert sum(r.batch_count or 0 for r in runs) == 1000
    for run in runs:
        assert isinstance(run, Run)
        assert run.run_mode in {"default", "prefect"}  # the run's own mode, not its tasks'
        assert run.status in {"completed", "in_progress", "partially_completed"}
        assert run.created_at is not None
        assert run.modified_at is not None
        assert run.created_at < run.modified_at
        assert run.invalid_fields is None
    created = [r.created_at for r in runs]
    assert created == sorted(created, reverse=True)  # type: ignore[type-var]


@pytest.mark.parametrize("page_size", [1, 3, 4, 100])
async def test_iter_runs_pages_concurrently_and_yields_each_run_once(page_size: int) -> None:
    async with serve_recorded(2300, latency=0.005) as (sim, server), make_client(sim) as client:
        runs = client.iter_runs(SPACE, page_size=page_size)
        got = [run.run_id async for run in runs]
    assert got == _expected_runs(sim)
    assert runs.stats.complete
    assert runs.stats.expected == len(got) == 10
    planned = -(-10 // page_size)
    assert set(range(1, planned + 1)) <= {h.page for h in server.hits} <= set(range(1, planned + 2))
    assert {h.page_size for h in server.hits} == {page_size}


async def test_runs_fetch_failed_is_retried(sim: Simulator, client: UnpodClient) -> None:
    sim.faults += [Fault("206", route="runs", times=2), Fault("status", route="runs", page=1)]
    runs = client.iter_runs(SPACE, page_size=2)
    got = [run.run_id async for run in runs]
    assert got == _expected_runs(sim)
    assert runs.stats.retries == 3
    failed = [r for r in sim.requests if r.fault == "206"]
    assert len(failed) == 2
    assert all(r.path.endswith("/runs/") for r in failed)


async def test_runs_fetch_failed_every_time_is_a_business_logic_error(
    sim: Simulator, client: UnpodClient
) -> None:
    sim.faults.append(Fault("206", route="runs", times=10_000))
    with pytest.raises(BusinessLogicError) as caught:
        await client.list_runs(SPACE)
    assert caught.value.message == "Runs Fetch Failed"
    assert caught.value.transient


async def test_runs_of_an_unknown_space_fail_at_once(sim: Simulator, client: UnpodClient) -> None:
    with pytest.raises(BusinessLogicError, match="Invalid Space Token") as caught:
        await client.list_runs("no-such-space")
    assert not caught.value.transient
    assert len(sim.requests) == 1  # permanent: not retried


async def test_a_run_arriving_during_the_pull_is_not_lost_nor_doubled() -> None:
    inserted: list[str] = []

    @web.middleware
    async def grow(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        if request.path.endswith("/runs/") and request.query.get("page") == "3" and not inserted:
            inserted.extend(sim.insert(RUN_SIZE))  # a whole new run at the head
        return await handler(request)

    async with (
        serve_recorded(2000, middlewares=[grow], latency=0.002) as (sim, _),
        make_client(sim, concurrency=2) as client,
    ):
        runs = [r.run_id for r in await client.list_runs(SPACE, page_size=2)]
    assert inserted
    assert len(runs) == len(set(runs))  # no run twice, though every run moved down a place
    expected = _expected_runs(sim)
    assert sorted(runs) == sorted(expected)  # the new one too: read from the head at the end
    assert [r for r in runs if r in expected[1:]] == expected[1:]  # the others in order


async def test_a_run_with_unexpected_types_is_kept_not_failed() -> None:
    body = {
        "count": 2,
        "status_code": 200,
        "message": "Runs Fetched Successfully",
        "data": [
            {"run_id": "R1", "status": "completed", "batch_count": "many", "run_mode": "dev"},
            {"run_id": 7, "status": ["odd"], "created": "2026-02-01T01:59:00"},
        ],
    }
    decoded = decode_runs_page(msgspec.json.encode(body))
    first, second = decoded.payload.data
    assert decoded.repaired == 2
    assert decoded.keys == ["R1", "7"]
    assert (first.run_id, first.batch_count, first.invalid_fields) == (
        "R1",
        None,
        {"batch_count": "many"},
    )
    assert (second.run_id, second.status) == ("7", None)
    assert second.invalid_fields == {"status": ["odd"]}

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body)

    runs_path = "/api/v2/platform/spaces/{space}/runs/"
    async with tasks_server(handler, path=runs_path) as url, client_for(url) as client:
        runs = await client.list_runs("s1")
    assert [r.run_id for r in runs] == ["R1", "7"]


def test_runs_page_is_the_api_shape() -> None:
    page = msgspec.json.decode(
        b'{"count":1,"status_code":200,"message":"ok","data":[{"run_id":"R1","batch_count":3}]}',
        type=RunsPage,
    )
    assert page.data[0].key == "R1"
    assert page.count == 1


# --- a run's tasks ------------------------------------------------------------------------------


async def test_iter_run_tasks_is_exactly_that_runs_tasks_in_server_order(
    sim: Simulator, client: UnpodClient
) -> None:
    runs = await client.list_runs(SPACE)
    everything = [t async for t in client.iter_tasks(SPACE)]
    for run in runs:
        tasks = client.iter_run_tasks(SPACE, run.run_id or "", page_size=7)
        got = [t async for t in tasks]
        assert ids(got) == ids(t for t in everything if t.run_id == run.run_id)
        assert len(got) == run.batch_count == tasks.stats.expected
        assert tasks.stats.complete


async def test_run_tasks_are_retried_and_a_poisoned_task_is_skipped() -> None:
    async with serve_recorded(1000, poisoned=[990]) as (sim, _), make_client(sim) as client:
        run = (await client.list_runs(SPACE))[0]  # the newest run holds serial 990
        sim.faults += [
            Fault("status", route="run_tasks", times=2),
            Fault("reset", route="run_tasks"),
        ]
        tasks = client.iter_run_tasks(SPACE, run.run_id or "", page_size=50)
        got = [t async for t in tasks]
    assert len(got) == (run.batch_count or 0) - 1
    assert sim.poisoned_task_ids()[0] not in ids(got)
    assert tasks.stats.retries >= 3
    assert len(tasks.stats.skipped) == 1
    assert not tasks.stats.complete


async def test_an_unknown_run_has_no_tasks(sim: Simulator, client: UnpodClient) -> None:
    tasks = client.iter_run_tasks(SPACE, "R-none")
    assert [t async for t in tasks] == []
    assert tasks.stats.complete
    assert tasks.stats.expected == 0


async def test_run_tasks_take_only_the_filters_their_server_reads(
    sim: Simulator, client: UnpodClient
) -> None:
    for bad in ({"search": "Ann"}, {"outcome": "Interested"}, {"call_type": "inbound"}):
        with pytest.raises(ValueError, match="a run's tasks cannot be filtered"):
            client.iter_run_tasks(SPACE, "R1", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid run_id"):
        client.iter_run_tasks(SPACE, "../tasks")
    assert sim.requests == []
    run = (await client.list_runs(SPACE))[0]
    completed = [
        t async for t in client.iter_run_tasks(SPACE, run.run_id or "", status="completed")
    ]
    assert completed
    assert {t.status for t in completed} == {"completed"}
    every = [t async for t in client.iter_run_tasks(SPACE, run.run_id or "")]
    thread = next(t.thread_id for t in every if t.thread_id)
    user = every[0].user_info.id if every[0].user_info else None
    threaded = [
        t
        async for t in client.iter_run_tasks(
            SPACE, run.run_id or "", thread_id=thread, user_id=user, created_after=0
        )
    ]
    assert threaded
    assert all((t.thread_id, t.user) == (thread, user) for t in threaded)
    last = sim.requests[-1]
    assert (last.query["thread_id"], last.query["user_id"]) == (thread, str(user))
    assert "from_ts" not in last.query  # a bound the server ignores there: checked here only


async def test_export_tasks_of_one_run(sim: Simulator, client: UnpodClient, tmp_path: Path) -> None:
    run = (await client.list_runs(SPACE))[1]
    out = tmp_path / "run.jsonl"
    stats = await client.export_tasks(SPACE, out, run_id=run.run_id, resume=True)
    lines = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert stats.complete
    assert stats.tasks == len(lines) == run.batch_count
    assert {line["run_id"] for line in lines} == {run.run_id}
    assert all(
        r.path.endswith(f"/runs/{run.run_id}/tasks/") for r in sim.requests[-stats.requests :]
    )


async def test_runs_need_the_token_scheme_of_the_tasks_views() -> None:
    async with (
        serve_recorded(300, spaces_auth=("JWT",)) as (sim, _),
        UnpodClient(TOKEN, ORG, base_url=sim.base_url, auth_scheme="Token") as client,
    ):
        assert len(await client.list_runs(SPACE)) == 2
