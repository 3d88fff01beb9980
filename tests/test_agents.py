"""An agent's tasks (``GET agents/{handle}/tasks/``): across the organization's spaces, newest
``created`` first, raw documents, through the same engine; and their export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import aiohttp
import pytest

from unpod_async import NotFoundError, Task, UnpodClient
from unpod_async.testing import Fault, Simulator

from .helpers import ORG, SPACE, TOKEN, make_client, serve_recorded

SPACES = {"alpha": 700, "beta": 260}


async def _everyone(client: UnpodClient, sim: Simulator) -> list[Task]:
    tasks: list[Task] = []
    for token in sim.space_tokens:
        tasks += [t async for t in client.iter_tasks(token)]
    return tasks


@pytest.mark.simulator(spaces=SPACES)
async def test_an_agents_tasks_come_from_every_space_newest_first(
    sim: Simulator, client: UnpodClient
) -> None:
    everyone = await _everyone(client, sim)
    for agent in ("agent-3", "agent-4"):
        tasks = client.iter_agent_tasks(agent, page_size=30)
        got = [t async for t in tasks]
        mine = [t for t in everyone if t.assignee == agent]
        assert got
        assert sorted(t.task_id or "" for t in got) == sorted(t.task_id or "" for t in mine)
        assert len({t.space_id for t in got}) > 1  # more than one space
        created = [t.created_at for t in got]
        assert created == sorted(created, reverse=True)  # type: ignore[type-var]
        assert all(t.id for t in got)  # raw documents: `_id` always
        assert tasks.stats.complete
        assert tasks.stats.expected == len(got)


async def test_the_agents_view_serves_20_a_page_and_raw_documents(sim: Simulator) -> None:
    url = f"{sim.base_url}/api/v2/platform/agents/agent-2/tasks/"
    headers = {"Authorization": f"Token {TOKEN}", "Org-Handle": ORG}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["message"] == "Tasks Fetched Successfully"
    assert len(body["data"]) == 20
    assert body["count"] > 20
    doc = body["data"][0]
    assert doc["_id"]
    assert doc["assignee"] == "agent-2"
    assert {"failure_count", "retry_attempt", "last_status_change"} <= set(doc)


async def test_agent_tasks_are_retried(sim: Simulator, client: UnpodClient) -> None:
    sim.faults += [
        Fault("status", route="agent_tasks", times=2),
        Fault("206", route="agent_tasks", page=2),
        Fault("truncated", route="agent_tasks", page=3),
    ]
    tasks = client.iter_agent_tasks("agent-1", page_size=25)
    got = [t async for t in tasks]
    assert len(got) == len({t.task_id for t in got}) == tasks.stats.expected > 75
    assert tasks.stats.retries >= 3
    assert tasks.stats.complete


async def test_an_unknown_agent_is_not_found_and_a_bad_handle_is_refused(
    sim: Simulator, client: UnpodClient
) -> None:
    with pytest.raises(NotFoundError, match="Agent not found"):
        [t async for t in client.iter_agent_tasks("nobody")]
    assert len(sim.requests) == 1
    with pytest.raises(ValueError, match="invalid agent_handle"):
        client.iter_agent_tasks("../spaces")
    with pytest.raises(ValueError, match="an agent's tasks cannot be filtered by outcome"):
        client.iter_agent_tasks("agent-1", outcome="Interested")
    with pytest.raises(ValueError, match="thread_id"):
        client.iter_agent_tasks("agent-1", thread_id="th_1")
    assert len(sim.requests) == 1


async def test_agent_task_filters_are_checked_on_each_task(
    sim: Simulator, client: UnpodClient
) -> None:
    got = [t async for t in client.iter_agent_tasks("agent-3", status=["failed", "hold"])]
    assert got
    assert {t.status for t in got} <= {"failed", "hold"}
    assert all("status" not in r.query for r in sim.requests)


@pytest.mark.simulator(spaces=SPACES)
async def test_export_agent_tasks(sim: Simulator, client: UnpodClient, tmp_path: Path) -> None:
    expected = [t.task_id async for t in client.iter_agent_tasks("agent-2")]
    out = tmp_path / "agent.csv"
    stats = await client.export_agent_tasks("agent-2", out, format="csv", resume=True)
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert stats.complete
    assert stats.tasks == len(rows) == len(expected)
    assert [r["task_id"] for r in rows] == expected
    jsonl = tmp_path / "agent.jsonl"
    await client.export_agent_tasks("agent-2", jsonl, page_size=7)
    docs = [json.loads(line) for line in jsonl.read_bytes().splitlines()]
    assert [d["task_id"] for d in docs] == expected
    assert all("_id" in d for d in docs)


async def test_agent_requests_go_through_the_one_bound() -> None:
    async with (
        serve_recorded(3000, latency=0.01, spaces={"b": 2000}) as (sim, server),
        make_client(sim, concurrency=3) as client,
    ):
        got = [t async for t in client.iter_agent_tasks("agent-1", page_size=20)]
    assert got
    assert server.peak == 3
    assert sim.space(SPACE) is sim
