"""The simulator's organization: more spaces, runs and agents, in the real server's shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from unpod_async.testing import Fault, Simulator, serve

from .helpers import ORG, SPACE, TOKEN

PREFIX = "/api/v2/platform/"
HEADERS = {"Authorization": f"Token {TOKEN}", "Org-Handle": ORG}


@pytest.fixture
async def org() -> AsyncIterator[Simulator]:
    async with serve(
        600, token=TOKEN, org_handle=ORG, space_token=SPACE, spaces={"b": 300, "c": 0}
    ) as sim:
        yield sim


async def _get(sim: Simulator, path: str, **params: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{sim.base_url}{PREFIX}{path}",
            params=params,
            headers=HEADERS,
            allow_redirects=False,
        ) as resp,
    ):
        json = "json" in resp.headers.get("Content-Type", "")
        return resp.status, await resp.json() if json else None, resp


async def test_the_spaces_list_names_every_space(org: Simulator) -> None:
    status, body, _ = await _get(org, "spaces/")
    assert status == 200
    assert [s["token"] for s in body["data"]] == [SPACE, "b", "c"] == org.space_tokens
    assert all(s["organization"]["domain_handle"] == ORG for s in body["data"])


async def test_each_space_serves_its_own_tasks(org: Simulator) -> None:
    seen: dict[str, list[str]] = {}
    for token in org.space_tokens:
        status, body, _ = await _get(org, f"spaces/{token}/tasks/", page=1, page_size=1000)
        assert status == 200
        assert body["count"] == len(org.space(token))
        seen[token] = [t["task_id"] for t in body["data"]]
        assert seen[token] == org.space(token).task_ids()
    assert len({i for ids in seen.values() for i in ids}) == 900  # no task in two spaces
    _, body, _ = await _get(org, "spaces/b/tasks/", page_size=5)
    assert {t["space_id"] for t in body["data"]} == {4243}  # its own space id


async def test_runs_are_paged_like_tasks_in_the_runs_list_shape(org: Simulator) -> None:
    status, body, _ = await _get(org, f"spaces/{SPACE}/runs/", page=1, page_size=2)
    assert status == 200
    assert body["message"] == "Runs Fetched Successfully"
    assert body["count"] == 3
    assert [r["batch_count"] for r in body["data"]] == [100, 250]
    assert set(body["data"][0]) == {
        "space_id", "user", "thread_id", "run_id", "collection_ref", "run_mode", "status",
        "batch_count", "created", "modified",
    }  # fmt: skip
    _, past, _ = await _get(org, f"spaces/{SPACE}/runs/", page=9, page_size=2)
    assert (past["count"], past["data"]) == (3, [])
    _, default, _ = await _get(org, "spaces/b/runs/")
    assert len(default["data"]) == 2  # 300 tasks: runs of 250 and 50


async def test_runs_fetch_failed_and_bad_pages(org: Simulator) -> None:
    org.faults.append(Fault("206", route="runs"))
    status, body, _ = await _get(org, f"spaces/{SPACE}/runs/")
    assert (status, body["message"], body["errors"]) == (
        206,
        "Runs Fetch Failed",
        "database timeout",
    )
    status, body, _ = await _get(org, f"spaces/{SPACE}/runs/", page=0)
    assert (status, body["message"]) == (206, "Runs Fetch Failed")
    status, body, _ = await _get(org, "spaces/nope/runs/")
    assert (status, body["message"]) == (206, "Invalid Space Token")
    assert [r.fault for r in org.requests] == ["206", None, None]


async def test_a_runs_tasks_and_an_unknown_run(org: Simulator) -> None:
    _, runs, _ = await _get(org, "spaces/b/runs/")
    run = runs["data"][1]
    status, body, _ = await _get(org, f"spaces/b/runs/{run['run_id']}/tasks/", page_size=1000)
    assert status == 200
    assert body["count"] == run["batch_count"] == 250
    assert {t["run_id"] for t in body["data"]} == {run["run_id"]}
    status, body, _ = await _get(org, "spaces/b/runs/R0000/tasks/")
    assert (status, body["count"], body["data"]) == (200, 0, [])


async def test_agents_and_their_errors(org: Simulator) -> None:
    status, body, _ = await _get(org, "agents/agent-9/tasks/")
    assert (status, body) == (404, {"message": "Agent not found"})
    status, body, _ = await _get(org, "agents/agent-2/tasks/", page_size=0)
    assert status == 200
    assert len(body["data"]) == body["count"] == 250 + 250  # run 1 of the main space, run 0 of b
    assert all(t["assignee"] == "agent-2" for t in body["data"])


async def test_new_routes_redirect_without_the_slash_and_take_only_token_auth(
    org: Simulator,
) -> None:
    status, _, resp = await _get(org, f"spaces/{SPACE}/runs")
    assert status == 301
    assert resp.headers["Location"] == f"{PREFIX}spaces/{SPACE}/runs/"
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{org.base_url}{PREFIX}agents/agent-1/tasks/",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp,
    ):
        assert resp.status == 401


async def test_a_fault_aims_at_one_route() -> None:
    with pytest.raises(ValueError, match="unknown route"):
        Fault("206", route="spaces")
    async with serve(10, spaces={"x": 10}) as sim:
        sim.space("x").faults.append(Fault("status", route="run_tasks"))
        status, _, _ = await _get(sim, "spaces/x/tasks/")
        assert status == 200  # the tasks list is not the fault's route
        status, _, _ = await _get(sim, "spaces/x/runs/R1/tasks/")
        assert status == 503


def test_spaces_must_be_new_tokens() -> None:
    with pytest.raises(ValueError, match="new, non-empty space token"):
        Simulator(5, spaces={"space-demo": 3})
