"""What is retried and what is not, how often, how long the client waits, and what the caller
finally sees.

Retried faults end, after ``max_retries``, in the last typed error (never a tenacity or aiohttp
one); client errors and permanent 206s are not retried. ``Retry-After``, in seconds or as an
HTTP date, is honoured; junk falls back to the client's own backoff; a wait beyond
``max_retry_after`` fails at once, saying how long. Each retry is logged at INFO. (The pause a
429 puts on every request of a client is in ``test_limits.py``.)
"""

from __future__ import annotations

import logging
import math
import re
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from unpod_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BusinessLogicError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    UnpodClient,
    UnpodError,
)
from unpod_async._retry import parse_retry_after
from unpod_async.testing import Fault, Simulator

from .helpers import (
    ORG,
    SPACE,
    TOKEN,
    MiniServer,
    assert_clean_chain,
    client_for,
    http,
    make_client,
    send,
    serve_recorded,
)

MAX_RETRIES = 2


# --------------------------------------------------------------------------- retried


RETRIED = [
    ("500", Fault("status", status=500), {}, (ServerError,)),
    ("502", Fault("status", status=502), {}, (ServerError,)),
    ("503", Fault("status", status=503), {}, (ServerError,)),
    ("504", Fault("status", status=504), {}, (ServerError,)),
    ("429", Fault("429", retry_after="0"), {}, (RateLimitError,)),
    ("429-no-retry-after", Fault("429", retry_after=None), {}, (RateLimitError,)),
    ("206-fetch-failed", Fault("206"), {}, (BusinessLogicError,)),
    ("206-unknown", Fault("206", message="Something Else Broke"), {}, (BusinessLogicError,)),
    ("reset", Fault("reset"), {}, (APIConnectionError,)),
    ("reset-mid-body", Fault("reset_mid_body"), {}, (APIConnectionError,)),
    ("truncated", Fault("truncated"), {}, (ResponseDecodeError, APIConnectionError)),
    ("malformed", Fault("malformed"), {}, (ResponseDecodeError,)),
    ("html200", Fault("html200"), {}, (ResponseDecodeError,)),
    ("empty-body", Fault("empty"), {}, (ResponseDecodeError,)),
    ("stall", Fault("stall", delay=1.0), {"timeout": 0.1}, (APITimeoutError,)),
    ("slow-body", Fault("slow_body", delay=0.05), {"timeout": 0.15}, (APITimeoutError,)),
]


def retried_params(with_errors: bool) -> list[Any]:
    return [
        pytest.param(fault, options, *([errors] if with_errors else []), id=name)
        for name, fault, options, errors in RETRIED
    ]


@pytest.mark.parametrize(("fault", "options", "errors"), retried_params(with_errors=True))
async def test_retried_until_max_retries_then_the_last_typed_error(
    sim: Simulator, fault: Fault, options: dict[str, Any], errors: tuple[type[UnpodError], ...]
) -> None:
    # One attempt is one request: the transport must not silently re-send a reset request
    # (so the simulator need not reset such a re-send; one would show up here as a success).
    sim.reset_includes_auto_retry = False
    sim.faults.append(Fault(**{**vars(fault), "page": 2, "times": MAX_RETRIES + 1}))
    async with make_client(sim, max_retries=MAX_RETRIES, **options) as client:
        with pytest.raises(UnpodError) as info:
            await client.get_tasks(SPACE, page=2, page_size=10)
    exc = info.value
    assert isinstance(exc, errors), repr(exc)
    assert_clean_chain(exc)
    assert exc.page == 2
    assert [r.page for r in sim.requests] == [2] * (MAX_RETRIES + 1)
    if isinstance(exc, BusinessLogicError):
        assert exc.transient


@pytest.mark.parametrize(("fault", "options"), retried_params(with_errors=False))
async def test_retried_fault_then_success(
    sim: Simulator, fault: Fault, options: dict[str, Any]
) -> None:
    sim.reset_includes_auto_retry = False
    sim.faults.append(Fault(**{**vars(fault), "page": 2, "times": MAX_RETRIES}))
    async with make_client(sim, max_retries=MAX_RETRIES, **options) as client:
        page = await client.get_tasks(SPACE, page=2, page_size=10)
    assert [t.task_id for t in page.data] == sim.task_ids()[10:20]
    assert len(sim.requests) == MAX_RETRIES + 1


async def test_connection_resets_reach_the_client_and_are_retried(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    # The simulator also resets a transport's immediate silent re-send, so the client's own
    # retry loop sees every reset, whatever the transport does underneath.
    caplog.set_level(logging.INFO, logger="unpod_async")
    sim.faults.append(Fault("reset", page=2, times=50))
    async with make_client(sim, max_retries=MAX_RETRIES) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_tasks(SPACE, page=2, page_size=10)
        assert info.value.page == 2
        retries = [r for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == MAX_RETRIES
        sim.faults[:] = [Fault("reset", page=3)]
        page = await client.get_tasks(SPACE, page=3, page_size=10)
    assert [t.task_id for t in page.data] == sim.task_ids()[20:30]
    assert sim.faults == []


async def test_faults_in_a_whole_pull_are_retried_and_lose_nothing(sim: Simulator) -> None:
    for page, kind in [(1, "503"), (2, "reset"), (3, "malformed"), (5, "206"), (7, "html200")]:
        fault = Fault("status", status=503) if kind == "503" else Fault(kind)
        sim.faults.append(Fault(**{**vars(fault), "page": page, "times": 2}))
    sim.faults.append(Fault("429", page=4, retry_after="0.01", times=2))
    async with make_client(sim, max_retries=6) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert [t.task_id for t in tasks] == sim.task_ids()
    assert sim.faults == []


async def test_exhausted_retries_in_a_pull_name_the_page(sim: Simulator) -> None:
    sim.faults.append(Fault("status", status=502, page=3, times=MAX_RETRIES + 1))
    async with make_client(sim, max_retries=MAX_RETRIES) as client:
        with pytest.raises(ServerError) as info:
            await client.get_all_tasks(SPACE, page_size=100)
    assert info.value.page == 3
    assert info.value.status_code == 502
    assert [r.page for r in sim.requests].count(3) == MAX_RETRIES + 1


async def test_zero_retries_means_one_attempt(sim: Simulator) -> None:
    sim.faults.append(Fault("status", status=503, page=1, times=5))
    async with make_client(sim, max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.get_tasks(SPACE)
    assert len(sim.requests) == 1


# --------------------------------------------------------------------------- not retried


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
    ],
)
async def test_client_errors_are_not_retried(
    sim: Simulator, status: int, cls: type[APIStatusError]
) -> None:
    sim.faults.append(Fault("status", status=status, page=2, times=10))
    async with make_client(sim, max_retries=4) as client:
        with pytest.raises(cls) as info:
            await client.get_tasks(SPACE, page=2)
    assert info.value.status_code == status
    assert len(sim.requests) == 1


async def test_wrong_token_is_not_retried(sim: Simulator) -> None:
    async with UnpodClient("wrong-token", ORG, base_url=sim.base_url, max_retries=4) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_all_tasks(SPACE)
    assert info.value.message == "Invalid token."
    assert len(sim.requests) == 1


async def test_invalid_space_token_is_not_retried(sim: Simulator) -> None:
    async with make_client(sim, max_retries=4) as client:
        with pytest.raises(BusinessLogicError) as info:
            await client.get_all_tasks("another-space")
    assert info.value.message == "Invalid Space Token"
    assert info.value.transient is False
    assert len(sim.requests) == 1


@pytest.mark.parametrize(
    "message",
    [
        "Invalid Space Token",
        "You Don't have Access to this Space",
        "You Don't have Access to do operation to this Space",
    ],
)
async def test_permanent_206_is_not_retried(sim: Simulator, message: str) -> None:
    sim.faults.append(Fault("206", page=3, message=message, times=10))
    async with make_client(sim, max_retries=4) as client:
        with pytest.raises(BusinessLogicError) as info:
            await client.get_tasks(SPACE, page=3)
    assert info.value.transient is False
    assert info.value.message == message
    assert len(sim.requests) == 1


# --------------------------------------------------------------------------- Retry-After


def test_retry_after_parsing_table() -> None:
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 30, timezone.utc), usegmt=True)
    past = format_datetime(datetime.fromtimestamp(now - 30, timezone.utc), usegmt=True)
    assert parse_retry_after("7", now=now) == 7
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after(date, now=now) == 30
    assert parse_retry_after(past, now=now) == 0
    for junk in ("-1", "soon", "nan", "NaN", "inf", "-inf", "1e400", "", "   ", "Mon, 99 Foo"):
        assert parse_retry_after(junk, now=now) is None, junk
    assert parse_retry_after(None) is None


async def test_retry_after_seconds_is_honoured() -> None:
    async with serve_recorded() as (sim, tracer):
        sim.faults.append(Fault("429", page=1, retry_after="0.4"))
        async with make_client(sim) as client:
            started = time.monotonic()
            page = await client.get_tasks(SPACE)
            elapsed = time.monotonic() - started
    assert len(page.data) == 20
    first, second = tracer.hits
    assert first.page == second.page == 1
    assert first.end is not None
    assert second.start - first.end >= 0.4 - 1e-3  # counted from the 429's answer, server clock
    assert 0.39 <= elapsed < 1.0


async def test_retry_after_http_date_is_honoured() -> None:
    async with serve_recorded(100) as (sim, tracer):
        # Taken once the server is up, right before the request: the server's start-up on a
        # loaded machine is not part of the 1 to 2 s the date asks for.
        target = math.ceil(time.time()) + 1  # whole seconds: an HTTP date has no fraction
        when = format_datetime(datetime.fromtimestamp(target, timezone.utc), usegmt=True)
        sim.faults.append(Fault("429", page=1, retry_after=when))
        async with make_client(sim, max_retry_after=5) as client:
            await client.get_tasks(SPACE, page_size=10)
    first, second = tracer.hits
    assert first.wall < target
    assert second.wall >= target - 0.01
    assert 0.9 <= second.start - first.start < 2.5  # 1 to 2 s away: the date has whole seconds


@pytest.mark.parametrize(
    "value",
    ["-5", "soon", "nan", "inf", "-inf", "1e400", "", "Tue, 31 Feb 2026 99:00:00 GMT"],
)
async def test_unusable_retry_after_falls_back_to_backoff(sim: Simulator, value: str) -> None:
    """Garbage never means "wait forever" nor a crash: the client's own short backoff."""
    sim.faults.append(Fault("429", page=1, retry_after=value, times=2))
    async with make_client(sim) as client:
        started = time.monotonic()
        page = await client.get_tasks(SPACE)
        assert time.monotonic() - started < 0.5
    assert len(page.data) == 20
    sim.faults.append(Fault("429", page=1, retry_after=value, times=100))
    async with make_client(sim, max_retries=1) as client:
        with pytest.raises(RateLimitError) as info:
            await client.get_tasks(SPACE)
    assert info.value.retry_after is None
    assert info.value.status_code == 429


@pytest.mark.parametrize(
    ("retry_after", "max_retry_after", "said"),
    [
        pytest.param("600", 1.0, "600", id="600"),
        pytest.param("date", 1.0, r"3[56]\d\d", id="date"),
        pytest.param(
            "0.5", 0.2, r"wait 0\.5s, more than max_retry_after=0\.2s", id="0.5-over-custom-0.2"
        ),
    ],
)
async def test_retry_after_beyond_the_limit_fails_at_once(
    sim: Simulator, retry_after: str, max_retry_after: float, said: str
) -> None:
    if retry_after == "date":
        later = datetime.fromtimestamp(time.time() + 3600, timezone.utc)
        retry_after = format_datetime(later, usegmt=True)
    sim.faults.append(Fault("429", page=1, retry_after=retry_after, times=5))
    started = time.monotonic()
    async with make_client(sim, max_retry_after=max_retry_after, max_retries=4) as client:
        with pytest.raises(RateLimitError) as info:
            await client.get_tasks(SPACE)
    assert time.monotonic() - started < 0.5
    assert len(sim.requests) == 1
    exc = info.value
    assert exc.retry_after is not None
    assert exc.retry_after > max_retry_after
    assert re.search(said, exc.message), exc.message  # the message names the wait
    assert re.search(said, str(exc)), str(exc)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("100000", "100000s"),
        ("99999999999999999999", "1e+20s"),
        ("Fri, 01 Jan 2100 00:00:00 GMT", "e+09s"),
    ],
)
async def test_huge_retry_after_fails_at_once_saying_how_long(
    sim: Simulator, value: str, said: str
) -> None:
    sim.faults.append(Fault("429", page=1, retry_after=value, times=100))
    async with make_client(sim, max_retries=5) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as info:
            await client.get_tasks(SPACE)
        assert time.monotonic() - started < 0.5
    assert len(sim.requests) == 1  # not retried
    message = str(info.value)
    assert said in message
    assert "max_retry_after=120s" in message
    assert info.value.retry_after is not None
    assert info.value.retry_after > 120


async def test_huge_retry_after_on_a_503_fails_at_once_too() -> None:
    async with MiniServer() as server:
        server.on(
            send(
                http(
                    503,
                    b"<h1>down</h1>",
                    content_type="text/html",
                    headers={"Retry-After": "86400"},
                ),
                close=False,
            ),
            times=1000,
        )
        async with client_for(server.url, max_retries=5) as client:
            with pytest.raises(ServerError, match="86400s") as info:
                await client.get_tasks(SPACE)
    assert info.value.retry_after == 86400
    assert len(server.requests) == 1


async def test_a_429_in_a_pull_is_waited_out_and_loses_nothing() -> None:
    async with serve_recorded(1000, latency=0.005) as (sim, tracer):
        sim.faults.append(Fault("429", page=6, retry_after="0.2"))
        async with make_client(sim, concurrency=4) as client:
            tasks = await client.get_all_tasks(SPACE, page_size=10)
    assert [t.task_id for t in tasks] == sim.task_ids()
    first, retry = (h for h in tracer.hits if h.page == 6)
    assert retry.start - first.end >= 0.2 - 1e-3


# --------------------------------------------------------------------------- logging


async def test_each_retry_is_logged_at_info(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.faults.append(Fault("status", status=503, page=4, times=2))
    async with make_client(sim, max_retries=3) as client:
        await client.get_tasks(SPACE, page=4, page_size=10)
    retries = [
        r
        for r in caplog.records
        if r.name.startswith("unpod_async") and re.search(r"(?i)retry|retrying", r.getMessage())
    ]
    assert len(retries) == 2
    for attempt, record in enumerate(retries, start=2):
        message = record.getMessage()
        assert record.levelno == logging.INFO
        assert record.name == "unpod_async"
        assert re.search(r"\bpage 4\b", message), message
        assert re.search(rf"\battempt {attempt}\b", message), message
        assert re.search(r"\d+(\.\d+)?\s*s\b", message), message  # the wait
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in repr(record.args)


async def test_no_retry_no_log(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="unpod_async")
    async with make_client(sim) as client:
        await client.get_tasks(SPACE, page_size=10)
    assert [r for r in caplog.records if r.name.startswith("unpod_async")] == []
