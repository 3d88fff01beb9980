"""Plain helpers shared by the tests (fixtures live in ``conftest.py``).

Test modules import from here, never from one another.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from unpod_async import UnpodClient
from unpod_async.testing import Simulator

TOKEN = "test-token"
ORG = "demo-org"
SPACE = "space-demo"


def make_client(sim: Simulator, **kwargs: object) -> UnpodClient:
    """A client for ``sim`` with fast retries (tests should not sleep for backoff)."""
    options: dict[str, object] = {"retry_delay": 0.001, "max_retry_delay": 0.01}
    options.update(kwargs)
    return UnpodClient(TOKEN, ORG, base_url=sim.base_url, **options)  # type: ignore[arg-type]


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
