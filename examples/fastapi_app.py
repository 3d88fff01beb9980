"""Serve Unpod tasks from a FastAPI app, with one shared ``UnpodClient``.

Run it against the real API (credentials from the environment)::

    UNPOD_API_TOKEN=... UNPOD_ORG_HANDLE=... uvicorn examples.fastapi_app:app

or against the built-in simulator (``unpod-async simulate`` prints the values to use)::

    UNPOD_BASE_URL=http://127.0.0.1:8080 UNPOD_API_TOKEN=test-token \\
        UNPOD_ORG_HANDLE=demo-org uvicorn examples.fastapi_app:app

then ``curl localhost:8000/spaces/space-demo/tasks?page=1&page_size=20`` for one page,
``curl localhost:8000/spaces/space-demo/tasks/export`` for the whole space as NDJSON and
``curl localhost:8000/spaces/space-demo/runs/RUN_ID/tasks/export`` for one run's tasks
(``unpod-async runs list space-demo`` shows the run ids).

One client lives for the whole app (created in the lifespan, closed at shutdown): it owns the
connection pool and the concurrency bound, so every request shares them. Creating a client per
request would throw both away each time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from unpod_async import (
    APITimeoutError,
    BusinessLogicError,
    NotFoundError,
    RateLimitError,
    Task,
    UnpodClient,
    UnpodError,
)

__all__ = ["app", "create_app", "get_client"]

logger = logging.getLogger(__name__)

ClientFactory = Callable[[], UnpodClient]

# Built once: an Encoder reuses its internal buffer across calls.
_encoder = msgspec.json.Encoder()
_FLUSH_BYTES = 64 * 1024  # NDJSON is sent in chunks of about this size, never all at once

CallType = Literal["inbound", "outbound"]


def client_from_env() -> UnpodClient:
    """The default factory: ``UNPOD_API_TOKEN``, ``UNPOD_ORG_HANDLE``, ``UNPOD_BASE_URL``."""
    return UnpodClient()


def get_client(request: Request) -> UnpodClient:
    """Dependency: the app's shared client."""
    client: UnpodClient = request.app.state.unpod
    return client


Client = Annotated[UnpodClient, Depends(get_client)]


def http_error(exc: UnpodError) -> HTTPException:
    """An upstream failure as the HTTP error this app answers with.

    The detail is the error's own message, not ``str(exc)``: that names the upstream URL.
    """
    headers: dict[str, str] | None = None
    if isinstance(exc, NotFoundError) or (
        isinstance(exc, BusinessLogicError) and not exc.transient
    ):
        status = 404  # an unknown space comes back as 206 "Invalid Space Token"
    elif isinstance(exc, RateLimitError):
        status = 429
        if exc.retry_after is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    elif isinstance(exc, APITimeoutError):
        status = 504
    else:
        status = 502  # including 401/403: our credentials are wrong, not the caller's
    return HTTPException(status_code=status, detail=exc.message, headers=headers)


async def _ndjson(tasks: AsyncIterator[Task], first: Task | None) -> AsyncIterator[bytes]:
    """The tasks as NDJSON, in chunks of about ``_FLUSH_BYTES``."""
    buffer = bytearray()
    try:
        if first is not None:
            _encoder.encode_into(first, buffer, -1)
            buffer += b"\n"
        async for task in tasks:
            _encoder.encode_into(task, buffer, -1)
            buffer += b"\n"
            if len(buffer) >= _FLUSH_BYTES:
                yield bytes(buffer)
                buffer.clear()
    except UnpodError as exc:
        # Never end the body cleanly after a failure: a short export must not look whole.
        logger.error("export stream failed after the response started: %s", exc)
        raise
    finally:
        await _close(tasks)  # a caller who hangs up cancels the pages in flight at once
    if buffer:
        yield bytes(buffer)


async def _close(tasks: AsyncIterator[Task]) -> None:
    aclose = getattr(tasks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _streamed(tasks: AsyncIterator[Task]) -> StreamingResponse:
    """``tasks`` as an NDJSON response, once the first one is in hand.

    Pulling the first task before answering means a wrong space token or an outage still gets
    a proper HTTP status. Past this point the status is sent, and a failure can only cut the
    stream short (the chunked body then never ends properly, which clients see).
    """
    try:
        first: Task | None = await anext(tasks)
    except StopAsyncIteration:
        first = None
    except UnpodError as exc:
        await _close(tasks)
        raise http_error(exc) from None
    return StreamingResponse(_ndjson(tasks, first), media_type="application/x-ndjson")


def create_app(client_factory: ClientFactory = client_from_env) -> FastAPI:
    """The app; ``client_factory`` builds the shared client at startup (tests pass their own).

    >>> app = create_app(lambda: UnpodClient("TOKEN", "org", base_url="http://127.0.0.1:8080"))
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client_factory() as client:
            app.state.unpod = client
            yield

    app = FastAPI(title="Unpod tasks", lifespan=lifespan)

    @app.exception_handler(ValueError)
    async def bad_argument(request: Request, exc: ValueError) -> JSONResponse:
        # The client refuses a malformed space token before sending anything.
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/spaces/{space_token}/tasks")
    async def tasks_page(
        space_token: str,
        client: Client,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> Response:
        """One page of a space's tasks, newest first, as the API's own page shape."""
        try:
            result = await client.get_tasks(space_token, page=page, page_size=page_size)
        except UnpodError as exc:
            raise http_error(exc) from None
        return Response(msgspec.json.encode(result), media_type="application/json")

    @app.get("/spaces/{space_token}/tasks/export")
    async def export_tasks(
        space_token: str,
        client: Client,
        status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
        call_type: CallType | None = None,
    ) -> StreamingResponse:
        """Every task of the space, once each, newest first, one JSON object per line."""
        tasks = client.iter_tasks(space_token, status=status, call_type=call_type)
        return await _streamed(tasks)

    @app.get("/spaces/{space_token}/runs/{run_id}/tasks/export")
    async def export_run_tasks(
        space_token: str,
        run_id: str,
        client: Client,
        status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    ) -> StreamingResponse:
        """Every task of one run of the space, once each, newest first, as NDJSON (an unknown
        run has no tasks: an empty body, as the API answers it)."""
        return await _streamed(client.iter_run_tasks(space_token, run_id, status=status))

    return app


app = create_app()
