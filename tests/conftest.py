"""Shared fixtures: a simulator over real loopback sockets and a client pointed at it."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import aiohttp
import aioresponses.core as aioresponses_core
import pytest
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

from unpod_async import UnpodClient
from unpod_async.testing import Simulator, serve

TOKEN = "test-token"
ORG = "demo-org"
SPACE = "space-demo"


def sim_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The simulator options a test asks for with ``@pytest.mark.simulator(...)`` (e.g.
    ``legacy_shapes=True`` for a test written against the earlier task shape)."""
    marker = request.node.get_closest_marker("simulator")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    options = sim_options(request)
    async with serve(
        tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE, **options
    ) as simulator:
        yield simulator


def make_client(sim: Simulator, **kwargs: object) -> UnpodClient:
    """A client for ``sim`` with fast retries (tests should not sleep for backoff)."""
    options: dict[str, object] = {"retry_delay": 0.001, "max_retry_delay": 0.01}
    options.update(kwargs)
    return UnpodClient(TOKEN, ORG, base_url=sim.base_url, **options)  # type: ignore[arg-type]


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[UnpodClient]:
    async with make_client(sim) as c:
        yield c


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without ``stream_writer``, which aiohttp 3.14 needs."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
            kwargs.setdefault("stream_writer", mock.Mock(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """aioresponses for request shape and error mapping; any request shows in ``requests``."""
    monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as m:
        yield m


@contextlib.asynccontextmanager
async def tasks_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A one-route server on loopback answering the tasks list with ``handler``; its base URL.

    For shapes the simulator does not produce (pretty-printed JSON, tasks with no id at all).
    """
    app = web.Application()
    app.router.add_get("/api/v2/platform/spaces/{space}/tasks/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` / ``__context__``."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen
