"""A pull never reports success with fewer tasks than it knows exist.

Hostile but plausible servers, over real sockets: error envelopes inside a 200, pages that
come back short once, a server that ignores ``page``, counts that are missing or nonsense.
Each case either delivers every task, or fails with a typed error, or says it is short.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from unpod_async import (
    AuthenticationError,
    BusinessLogicError,
    IncompletePullError,
    UnpodClient,
)
from unpod_async.testing import serve

from .helpers import ORG, SPACE, TOKEN, make_client, tasks_server

FAST = {"retry_delay": 0.001, "max_retry_delay": 0.002}


def task(i: int) -> dict[str, Any]:
    return {"task_id": f"T{i:05d}", "status": "completed", "input": {"n": i}}


class Space:
    """A hand-written tasks endpoint: ``n`` tasks, and hooks to make any answer misbehave."""

    def __init__(self, n: int) -> None:
        self.tasks = [task(i) for i in range(n)]
        self.requests: list[tuple[int, int]] = []
        self.count: Callable[[int], object] = lambda page: len(self.tasks)
        self.override: Callable[[int, int, int], web.Response | None] = lambda p, s, n: None

    async def handler(self, request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["page_size"])
        self.requests.append((page, size))
        special = self.override(page, size, len(self.requests))
        if special is not None:
            return special
        data = self.tasks[(page - 1) * size : page * size]
        return self.page(data, self.count(page))

    @staticmethod
    def page(data: list[Any], count: object, status: int = 200) -> web.Response:
        body: dict[str, Any] = {"status_code": 200, "message": "ok", "data": data}
        if count is not ...:
            body["count"] = count
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def client(url: str, **kwargs: Any) -> UnpodClient:
    return UnpodClient(TOKEN, base_url=url, concurrency=4, **{**FAST, **kwargs})


def envelope(status_code: int, message: str, data: Any, http: int = 200) -> web.Response:
    body = {"status_code": status_code, "message": message, "data": data}
    return web.Response(status=http, text=json.dumps(body), content_type="application/json")


# --------------------------------------------------------------------------- error envelopes


async def _pull(c: UnpodClient, how: str, out: Path) -> None:
    if how == "get_all":
        await c.get_all_tasks(SPACE, page_size=100)
    elif how == "iter":
        async for _ in c.iter_tasks(SPACE, page_size=100):
            pass
    else:
        await c.export_tasks(SPACE, out, page_size=100)


@pytest.mark.parametrize("how", ["get_all", "iter", "export"])
async def test_a_200_whose_envelope_says_401_is_an_authentication_error(
    how: str, tmp_path: Path
) -> None:
    space = Space(300)
    space.override = lambda p, s, n: envelope(401, "Invalid token.", [])
    out = tmp_path / "tasks.jsonl"
    async with tasks_server(space.handler) as url, client(url) as c:
        with pytest.raises(AuthenticationError, match="Invalid token"):
            await _pull(c, how, out)
    assert len(space.requests) == 1  # permanent: not retried
    assert list(tmp_path.iterdir()) == []  # no empty file claims the space is empty


async def test_a_200_whose_envelope_says_206_tasks_fetch_failed_is_retried() -> None:
    space = Space(300)
    space.override = lambda p, s, n: (
        envelope(206, "Tasks Fetch Failed", {"errors": "timeout"}) if n <= 2 else None
    )
    async with tasks_server(space.handler) as url, client(url) as c:
        tasks = await c.get_all_tasks(SPACE, page_size=100)
    assert [t.task_id for t in tasks] == [t["task_id"] for t in space.tasks]
    assert space.requests[:3] == [(1, 100)] * 3


async def test_a_200_envelope_that_never_stops_failing_ends_in_its_own_error() -> None:
    space = Space(300)
    space.override = lambda p, s, n: envelope(206, "Tasks Fetch Failed", {})
    async with tasks_server(space.handler) as url, client(url, max_retries=3) as c:
        with pytest.raises(BusinessLogicError) as info:
            await c.get_all_tasks(SPACE, page_size=100)
    assert info.value.transient
    # Its 4 attempts, then the pieces that tell a failing server from one bad task: halves,
    # then quarters, all failing.
    assert len(space.requests) == 4 + 2 + 4


async def test_invalid_space_token_with_an_object_for_data_fails_at_once() -> None:
    # "data": {} does not fit a page: still the permanent 206 it says, not a decode error.
    space = Space(300)
    space.override = lambda p, s, n: envelope(206, "Invalid Space Token", {})
    async with tasks_server(space.handler) as url, client(url) as c:
        with pytest.raises(BusinessLogicError, match="Invalid Space Token") as info:
            await c.get_all_tasks(SPACE, page_size=100)
    assert not info.value.transient
    assert len(space.requests) == 1


async def test_an_error_envelope_in_a_big_body_is_still_that_error() -> None:
    # Bodies this big are decoded by the consumer, not in the retry loop: same outcome.
    space = Space(1000)

    def big_error(page: int, size: int, n: int) -> web.Response | None:
        if page == 3:
            return envelope(401, "Invalid token.", space.tasks[:300])
        return None

    space.override = big_error
    async with tasks_server(space.handler) as url, client(url) as c:
        with pytest.raises(AuthenticationError):
            await c.get_all_tasks(SPACE, page_size=100)


# --------------------------------------------------------------------------- short pages


async def test_a_page_short_once_while_the_count_holds_is_read_again() -> None:
    space = Space(500)
    short = {"done": False}

    def once(page: int, size: int, n: int) -> web.Response | None:
        if page == 3 and not short["done"]:
            short["done"] = True
            return Space.page(space.tasks[200:207], 500)
        return None

    space.override = once
    async with tasks_server(space.handler) as url, client(url) as c:
        tasks = c.iter_tasks(SPACE, page_size=100)
        got = [t.task_id async for t in tasks]
    assert got == [t["task_id"] for t in space.tasks]
    assert tasks.stats.rereads == 1
    assert tasks.stats.complete


async def test_an_empty_page_one_while_the_count_says_more_is_read_again() -> None:
    space = Space(250)
    space.override = lambda p, s, n: Space.page([], 250) if n == 1 else None
    async with tasks_server(space.handler) as url, client(url) as c:
        tasks = await c.get_all_tasks(SPACE, page_size=100)
    assert len(tasks) == 250


async def test_a_pull_that_stays_short_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The count says 500; the server only ever serves 430 of them.
    space = Space(430)
    space.count = lambda page: 500
    caplog.set_level(logging.WARNING, logger="unpod_async")
    async with tasks_server(space.handler) as url, client(url) as c:
        tasks = c.iter_tasks(SPACE, page_size=100)
        got = [t async for t in tasks]
        assert len(got) == 430
        assert tasks.stats.missing == 70
        assert not tasks.stats.complete
        assert any("70 missing" in r.getMessage() for r in caplog.records)

        stats = await c.export_tasks(SPACE, tmp_path / "t.jsonl", page_size=100)
        assert (stats.tasks, stats.missing, stats.complete) == (430, 70, False)

        with pytest.raises(IncompletePullError) as info:
            await c.get_all_tasks(SPACE, page_size=100, strict=True)
        assert (info.value.missing, info.value.last_count) == (70, 500)
        with pytest.raises(IncompletePullError):
            await c.export_tasks(SPACE, tmp_path / "strict.jsonl", page_size=100, strict=True)
    assert not (tmp_path / "strict.jsonl").exists()  # a failed export leaves no file


# --------------------------------------------------------------------------- page ignored


@pytest.mark.parametrize("n", [100, 1000])
async def test_a_server_that_ignores_page_is_not_flooded(n: int) -> None:
    space = Space(n)
    space.override = lambda page, size, k: Space.page(space.tasks[:size], n)
    async with tasks_server(space.handler) as url, client(url) as c:
        async with asyncio.timeout(10):
            tasks = c.iter_tasks(SPACE, page_size=100)
            got = [t.task_id async for t in tasks]
    assert got == [t["task_id"] for t in space.tasks[:100]]  # each task once
    planned = -(-n // 100) + 1
    assert len(space.requests) <= planned + 2 * 4 + 2
    assert tasks.stats.missing == n - 100  # and it knows what it did not get


async def test_the_requests_of_a_pull_are_bounded() -> None:
    # A server that never runs out: every page full of new tasks, whatever the count says.
    requests = 0

    async def endless(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        page, size = int(request.query["page"]), int(request.query["page_size"])
        data = [task(page * 1000 + i) for i in range(size)]
        return Space.page(data, 100)

    async with tasks_server(endless) as url, client(url) as c:
        async with asyncio.timeout(20):
            tasks = c.iter_tasks(SPACE, page_size=10)
            async for _ in tasks:
                pass
    planned = 100 // 10 + 1
    ceiling = 4 * planned + 8 * 4 + 16
    assert requests <= ceiling + 2 * 4  # a few were in flight when the ceiling was reached
    assert tasks.stats.stopped is not None
    assert "ceiling" in tasks.stats.stopped


# --------------------------------------------------------------------------- nonsense counts


@pytest.mark.parametrize(
    "count",
    [..., None, -5, "250", "many", 250.0, 10**400, True],
    ids=["missing", "null", "negative", "numeric-string", "text", "float", "absurd", "bool"],
)
async def test_any_count_never_crashes_hangs_or_loops(count: object) -> None:
    space = Space(250)
    space.count = lambda page: count
    out = io.BytesIO()
    async with tasks_server(space.handler) as url, client(url) as c:
        async with asyncio.timeout(10):
            tasks = await c.get_all_tasks(SPACE, page_size=100)
            await c.export_tasks(SPACE, out, page_size=100)
    assert [t.task_id for t in tasks] == [t["task_id"] for t in space.tasks]
    assert out.getvalue().count(b"\n") == 250
    assert len(space.requests) <= 2 * (3 + 1 + 8)


# --------------------------------------------------------------------------- the simulator


async def test_a_clean_pull_is_complete_and_says_so() -> None:
    async with (
        serve(tasks=1000, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim,
        make_client(sim) as c,
    ):
        tasks = c.iter_tasks(SPACE, page_size=100)
        got = [t async for t in tasks]
    stats = tasks.stats
    assert len(got) == stats.tasks == stats.expected == stats.last_count == 1000
    assert stats.complete
    assert stats.missing == 0
    assert stats.requests == len(sim.requests) == 11  # ten pages and the one that ends it
