"""The faults the simulator can inject, and the answers each one produces."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol

import msgspec
from aiohttp import web

__all__ = ["FAULT_KINDS", "Fault"]


class _Recorded(Protocol):
    """The request log entry a fault's answer updates (``RequestRecord``)."""

    status: int


#: Every fault kind understood by :class:`Fault` (and usable in ``fault_kinds``).
FAULT_KINDS: Final = frozenset(
    {
        "status",
        "206",
        "429",
        "reset",
        "reset_mid_body",
        "truncated",
        "malformed",
        "html200",
        "stall",
        "slow_body",
        "empty",
    }
)

#: The paged lists a :class:`Fault` can aim at.
ROUTES: Final = frozenset({"tasks", "runs", "run_tasks", "agent_tasks"})

# Faults answered without computing the page.
IMMEDIATE: Final = frozenset({"status", "206", "429", "reset", "malformed", "html200", "empty"})

JSON: Final = "application/json"
HTML: Final = "text/html"
_MALFORMED_BODY: Final = b'{"count": 3, "data": [ {"_id": '
_HTML200_BODY: Final = (
    b"<!DOCTYPE html>\n<html><head><title>Unpod</title></head>"
    b"<body><h1>Welcome to Unpod</h1><p>Please sign in to continue.</p></body></html>\n"
)

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Fault:
    """A scripted fault for ``GET .../spaces/{space_token}/tasks/`` requests.

    Faults in :attr:`Simulator.faults` are checked in list order; the first whose ``page``
    matches (``None`` matches any request) is applied and its ``times`` decremented (it is
    replaced by a copy with ``times - 1``, or removed from the list once used up).

    ``route`` aims it at another paged list instead: ``"runs"`` (a space's runs; a ``206``
    then says "Runs Fetch Failed"), ``"run_tasks"`` (a run's tasks) or ``"agent_tasks"`` (an
    agent's tasks, with the faults of the simulator itself, not of one of its ``spaces``).

    Kinds:

    - ``status``: HTTP ``status`` (503) with a small HTML page (``text/html``).
    - ``206``: 206 "Tasks Fetch Failed" with ``data.errors``/``errors`` = "database timeout";
      another ``message`` (e.g. "Invalid Space Token") gives ``data: {}`` instead.
    - ``429``: 429 ``{"message": "Request was throttled.", ...}`` + ``Retry-After`` header.
    - ``reset``: connection reset (RST) without a response (see
      :attr:`Simulator.reset_includes_auto_retry`).
    - ``reset_mid_body``: headers with the full Content-Length, half the body, then close.
    - ``truncated``: 200 with the first half of the page; Content-Length matches the half.
    - ``malformed``: 200 ``application/json`` with invalid JSON.
    - ``html200``: 200 with an HTML page (``text/html``).
    - ``stall``: sleep ``delay`` seconds, then answer normally.
    - ``slow_body``: headers at once, then the body one byte every ``delay`` seconds.
    - ``empty``: 200 with an empty body.
    """

    kind: str
    page: int | None = None
    times: int = 1
    status: int = 503
    retry_after: str | None = "0.05"
    message: str | None = None
    delay: float = 5.0
    route: str = "tasks"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}"
            )
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; expected one of {sorted(ROUTES)}")


RESET: Final = Fault("reset")


class Aborted(web.Response):
    """Returned after the transport was torn down: aiohttp's attempt to send it fails quietly."""


def immediate_response(request: web.Request, record: _Recorded, fault: Fault) -> web.Response:
    """The answer of a fault that needs no page (see ``IMMEDIATE``)."""
    kind = fault.kind
    if kind == "status":
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        html = f"<html><body><h1>{fault.status} {phrase}</h1></body></html>"
        return web.Response(status=fault.status, text=html, content_type=HTML)
    if kind == "206":
        message = fault.message
        if message is None or message == "Tasks Fetch Failed":
            return fetch_failed("database timeout")
        return failed_without_data(message)
    if kind == "429":
        headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
        return json_response(
            429, {"message": "Request was throttled.", "status_code": 429}, headers=headers
        )
    if kind == "malformed":
        return web.Response(status=200, body=_MALFORMED_BODY, content_type=JSON)
    if kind == "html200":
        return web.Response(status=200, body=_HTML200_BODY, content_type=HTML)
    if kind == "empty":
        return web.Response(status=200, body=b"", content_type=JSON)
    # "reset": tear the connection down (RST) without sending anything.
    abort(request)
    record.status = 0
    return Aborted()


def random_fault(kind: str, retry_after: str | None) -> Fault:
    """A fault for ``fault_rate``; ``"503"``/``"502"``/... are shorthands for kind "status"."""
    if kind.isdigit() and kind not in FAULT_KINDS:
        return Fault("status", status=int(kind))
    return Fault(kind, retry_after=retry_after)


def json_response(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(status=status, body=_encode(payload), content_type=JSON, headers=headers)


def fetch_failed(errors: Any, message: str = "Tasks Fetch Failed") -> web.Response:
    return json_response(
        206,
        {
            "status_code": 206,
            "message": message,
            "data": {"errors": errors},
            "errors": errors,
        },
    )


def failed_without_data(message: str) -> web.Response:
    """206 with ``message`` and ``data: {}`` (no ``errors``), as "Invalid Space Token" is."""
    return json_response(206, {"status_code": 206, "message": message, "data": {}})


def invalid_space_token() -> web.Response:
    """The backend's answer for a space token it does not know."""
    return failed_without_data("Invalid Space Token")


async def body_response(
    request: web.Request, record: _Recorded, fault: Fault | None, body: bytes
) -> web.StreamResponse:
    """A page's ``body`` (200, JSON) as the ``fault`` that needs the page sends it (``truncated``,
    ``reset_mid_body``, ``slow_body``), or whole."""
    if fault is not None:
        if fault.kind == "truncated":
            return web.Response(status=200, body=body[: len(body) // 2], content_type=JSON)
        if fault.kind == "reset_mid_body":
            return await reset_mid_body(request, record, body)
        if fault.kind == "slow_body":
            return await slow_body(request, record, body, fault.delay)
    return web.Response(status=200, body=body, content_type=JSON)


def abort(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # SO_LINGER 0: closing sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def reset_mid_body(
    request: web.Request, record: _Recorded, body: bytes
) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = JSON
    resp.content_length = len(body)
    record.status = 200
    try:
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
    except ConnectionError:
        return resp
    transport = request.transport
    if transport is not None:
        transport.close()  # flushes the half body, then FIN
    return resp


async def slow_body(
    request: web.Request, record: _Recorded, body: bytes, delay: float
) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = JSON
    resp.content_length = len(body)
    record.status = 200
    try:
        await resp.prepare(request)
        for i in range(len(body)):
            await resp.write(body[i : i + 1])
            await asyncio.sleep(delay)
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp
