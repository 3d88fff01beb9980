"""The FastAPI example, run in-process against the simulator."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import msgspec
import pytest

from unpod_async import UnpodClient
from unpod_async.testing import Fault, Simulator, serve

pytest.importorskip("fastapi")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"
TASKS = 1234


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the handlers' annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example() -> ModuleType:
    return _load_example()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with serve(tasks=TASKS) as simulator:
        yield simulator


def _factory(sim: Simulator, token: str | None = None, **options: Any) -> Callable[[], UnpodClient]:
    def make() -> UnpodClient:
        return UnpodClient(
            token or sim.token,
            sim.org_handle,
            base_url=sim.base_url,
            retry_delay=0.001,
            max_retry_delay=0.01,
            **options,
        )

    return make


@asynccontextmanager
async def _http(
    example: ModuleType, factory: Callable[[], UnpodClient]
) -> AsyncIterator[httpx.AsyncClient]:
    app = example.create_app(client_factory=factory)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            yield http


@pytest.fixture
async def http(example: ModuleType, sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with _http(example, _factory(sim)) as client:
        yield client


def test_module_level_app_needs_no_credentials_at_import(example: ModuleType) -> None:
    # The client is built in the lifespan, so importing the module never needs a token.
    assert example.app.title == "Unpod tasks"


async def test_one_page(http: httpx.AsyncClient, sim: Simulator) -> None:
    response = await http.get(
        f"/spaces/{sim.space_token}/tasks", params={"page": 2, "page_size": 50}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    page = msgspec.json.decode(response.content)
    assert page["count"] == TASKS
    assert [t["task_id"] for t in page["data"]] == sim.task_ids()[50:100]


async def test_export_streams_every_task_once_in_order(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    async with http.stream("GET", f"/spaces/{sim.space_token}/tasks/export") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [line async for line in response.aiter_lines() if line]
    ids = [msgspec.json.decode(line)["task_id"] for line in lines]
    assert ids == sim.task_ids()
    assert len(set(ids)) == TASKS


async def test_export_is_sent_in_bounded_chunks(example: ModuleType, sim: Simulator) -> None:
    # httpx's ASGI transport joins the body, so look at what the app hands to the server.
    async with _factory(sim)() as client:
        chunks = [c async for c in example._ndjson(client.iter_tasks(sim.space_token), None)]
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < 2 * example._FLUSH_BYTES
    assert sum(c.count(b"\n") for c in chunks) == TASKS


async def test_export_with_filter(http: httpx.AsyncClient, sim: Simulator) -> None:
    response = await http.get(
        f"/spaces/{sim.space_token}/tasks/export", params={"status": "failed"}
    )
    assert response.status_code == 200
    tasks = [msgspec.json.decode(line) for line in response.text.splitlines()]
    assert tasks
    assert {t["status"] for t in tasks} == {"failed"}


async def test_export_of_an_empty_space(example: ModuleType) -> None:
    async with serve(tasks=0) as empty, _http(example, _factory(empty)) as http:
        response = await http.get(f"/spaces/{empty.space_token}/tasks/export")
    assert response.status_code == 200
    assert response.content == b""


async def test_unknown_space_is_404(http: httpx.AsyncClient) -> None:
    for path in ("/spaces/no-such-space/tasks", "/spaces/no-such-space/tasks/export"):
        response = await http.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Invalid Space Token"}


async def test_malformed_space_token_is_400(http: httpx.AsyncClient) -> None:
    response = await http.get("/spaces/bad%20token/tasks")
    assert response.status_code == 400


async def test_rate_limit_is_429(example: ModuleType, sim: Simulator) -> None:
    sim.faults.append(Fault("429", times=10, retry_after="3"))
    async with _http(example, _factory(sim, max_retries=0)) as http:
        response = await http.get(f"/spaces/{sim.space_token}/tasks")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


async def test_wrong_server_credentials_are_502(example: ModuleType, sim: Simulator) -> None:
    async with _http(example, _factory(sim, token="wrong-token")) as http:
        response = await http.get(f"/spaces/{sim.space_token}/tasks")
    assert response.status_code == 502
    assert "wrong-token" not in response.text


async def test_one_runs_tasks_stream_as_ndjson(http: httpx.AsyncClient, sim: Simulator) -> None:
    async with UnpodClient(sim.token, sim.org_handle, base_url=sim.base_url) as client:
        runs = await client.list_runs(sim.space_token)
        everything = [t async for t in client.iter_tasks(sim.space_token)]
    run = runs[1]
    path = f"/spaces/{sim.space_token}/runs/{run.run_id}/tasks/export"
    async with http.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [line async for line in response.aiter_lines() if line]
    ids = [msgspec.json.decode(line)["task_id"] for line in lines]
    assert ids == [t.task_id for t in everything if t.run_id == run.run_id]
    assert len(ids) == run.batch_count
    failed = await http.get(path, params={"status": "failed"})
    assert {msgspec.json.decode(line)["status"] for line in failed.text.splitlines()} <= {"failed"}


async def test_run_tasks_of_an_unknown_space_are_404_and_a_bad_run_id_400(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/spaces/no-such-space/runs/R1/tasks/export")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid Space Token"}
    assert (await http.get("/spaces/space-demo/runs/R%201/tasks/export")).status_code == 400
