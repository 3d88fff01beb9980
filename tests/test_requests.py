"""Request shape and error mapping, with aioresponses (no network)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import MultiDict
from yarl import URL

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
    TasksPage,
    UnpodClient,
    UnpodError,
)

from .helpers import assert_clean_chain

TOKEN = "tok-3c1f-not-a-real-token"
ORG = "acme"
SPACE = "space-42"
BASE = "https://unpod.ai"
TASKS_PATH = f"/api/v2/platform/spaces/{SPACE}/tasks/"
ANY_URL = re.compile(r"^https://unpod\.ai/.*$")


def sent(m: aioresponses) -> list[tuple[URL, dict[str, str]]]:
    out = []
    for (method, url), calls in m.requests.items():
        assert method == "GET"
        out.extend((url, dict(call.kwargs.get("headers") or {})) for call in calls)
    return out


def page_body(n: int, count: int = 100) -> dict[str, Any]:
    data = [{"_id": f"{i:024x}", "task_id": f"T{i}"} for i in range(n)]
    return {"count": count, "status_code": 200, "message": "ok", "data": data}


# --------------------------------------------------------------------------- request shape


async def test_get_tasks_url_query_and_headers(mocked: aioresponses) -> None:
    mocked.get(ANY_URL, payload=page_body(10))
    async with UnpodClient(TOKEN, ORG) as client:
        page = await client.get_tasks(SPACE, page=3, page_size=10)
    assert isinstance(page, TasksPage)
    assert len(page.data) == 10
    [(url, headers)] = sent(mocked)
    assert (url.scheme, url.host, url.path) == ("https", "unpod.ai", TASKS_PATH)
    assert url.query == MultiDict({"page": "3", "page_size": "10"})
    assert headers["Authorization"] == f"Token {TOKEN}"
    assert headers["Org-Handle"] == ORG
    assert "json" in headers["Accept"]


async def test_default_page_size_is_always_sent(mocked: aioresponses) -> None:
    mocked.get(ANY_URL, payload=page_body(0, count=0), repeat=True)
    async with UnpodClient(TOKEN, ORG) as client:
        await client.get_tasks(SPACE)
        assert await client.get_all_tasks(SPACE) == []
    for url, _ in sent(mocked):
        assert int(url.query["page_size"]) >= 1
        assert int(url.query["page"]) >= 1


async def test_filters_are_sent_as_the_backend_reads_them(mocked: aioresponses) -> None:
    mocked.get(ANY_URL, payload=page_body(0, count=0))
    after = datetime(2026, 1, 2, tzinfo=timezone.utc)
    async with UnpodClient(TOKEN, ORG) as client:
        await client.get_tasks(
            SPACE,
            page_size=50,
            outcome=["completed", "failed"],  # the server's status parameter
            call_type="outbound",
            created_after=after,
            created_before=1_800_000_000.7,
            search="José & co=1",
        )
    [(url, _)] = sent(mocked)
    assert url.path == TASKS_PATH
    assert dict(url.query) == {
        "page": "1",
        "page_size": "50",
        "status": "completed,failed",
        "call_type": "outbound",
        "from_ts": str(int(after.timestamp())),
        "to_ts": "1800000000",
        "search": "José & co=1",
    }


async def test_no_org_handle_header_without_an_org(
    mocked: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNPOD_ORG_HANDLE", raising=False)
    mocked.get(ANY_URL, payload=page_body(1))
    async with UnpodClient(TOKEN) as client:
        await client.get_tasks(SPACE)
    [(_, headers)] = sent(mocked)
    assert "Org-Handle" not in headers
    assert headers["Authorization"] == f"Token {TOKEN}"


async def test_spaces_and_organizations_paths(mocked: aioresponses) -> None:
    mocked.get(
        f"{BASE}/api/v2/platform/organizations/",
        payload={"status_code": 200, "data": [{"domain_handle": ORG, "name": "Acme"}]},
    )
    mocked.get(
        f"{BASE}/api/v2/platform/spaces/",
        payload={"status_code": 200, "data": [{"token": SPACE, "name": "S"}]},
    )
    async with UnpodClient(TOKEN, ORG) as client:
        [org] = await client.list_organizations()
        [space] = await client.list_spaces()
    assert org.domain_handle == ORG
    assert space.token == SPACE
    paths = sorted(url.path for url, _ in sent(mocked))
    assert paths == ["/api/v2/platform/organizations/", "/api/v2/platform/spaces/"]
    assert all(h["Org-Handle"] == ORG for _, h in sent(mocked))


async def test_list_spaces_without_org_fails_before_any_request(
    mocked: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNPOD_ORG_HANDLE", raising=False)
    async with UnpodClient(TOKEN) as client:
        with pytest.raises(ValueError, match="org"):
            await client.list_spaces()
    assert sent(mocked) == []


# --------------------------------------------------------------------------- status mapping


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
async def test_status_maps_to_its_error(
    mocked: aioresponses, status: int, cls: type[APIStatusError]
) -> None:
    mocked.get(ANY_URL, status=status, payload={"status_code": status, "message": "said so"})
    async with UnpodClient(TOKEN, ORG, max_retries=0) as client:
        with pytest.raises(cls) as info:
            await client.get_tasks(SPACE, page=3)
    exc = info.value
    assert type(exc) is cls
    assert isinstance(exc, APIStatusError)
    assert exc.status_code == status
    assert exc.message == "said so"
    assert exc.page == 3
    assert "page 3" in str(exc)
    assert_clean_chain(exc)


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("Tasks Fetch Failed", True),
        ("Something new went wrong", True),
        ("Invalid Space Token", False),
        ("You Don't have Access to this Space", False),
        ("You Don't have Access to do operation to this Space", False),
    ],
)
async def test_206_is_a_business_logic_error(
    mocked: aioresponses, message: str, transient: bool
) -> None:
    mocked.get(ANY_URL, status=206, payload={"status_code": 206, "message": message, "data": {}})
    async with UnpodClient(TOKEN, ORG, max_retries=0) as client:
        with pytest.raises(BusinessLogicError) as info:
            await client.get_tasks(SPACE, page=2)
    exc = info.value
    assert exc.status_code == 206
    assert exc.page == 2
    assert exc.message == message
    assert exc.transient is transient
    assert isinstance(exc, APIStatusError)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"message": "Task not found"}, "Task not found"),  # no status_code: views do that
        ({"error": {"code": "not_found", "message": "No such space"}}, "No such space"),
        ({"status_code": 404, "message": "Gone", "data": {}}, "Gone"),
    ],
)
async def test_every_error_envelope_gives_its_message(
    mocked: aioresponses, body: dict[str, Any], message: str
) -> None:
    mocked.get(ANY_URL, status=404, payload=body)
    async with UnpodClient(TOKEN, ORG) as client:
        with pytest.raises(NotFoundError) as info:
            await client.get_tasks(SPACE)
    assert info.value.message == message
    assert message in str(info.value)


async def test_new_error_shape_on_a_server_error(mocked: aioresponses) -> None:
    body = {"error": {"code": "overloaded", "message": "Try later"}}
    mocked.get(ANY_URL, status=503, payload=body)
    async with UnpodClient(TOKEN, ORG, max_retries=0) as client:
        with pytest.raises(ServerError) as info:
            await client.get_tasks(SPACE, page=4)
    assert info.value.message == "Try later"
    assert info.value.status_code == 503
    assert info.value.page == 4


async def test_html_error_page_is_a_server_error(mocked: aioresponses) -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    mocked.get(ANY_URL, status=502, body=html, content_type="text/html")
    async with UnpodClient(TOKEN, ORG, max_retries=0) as client:
        with pytest.raises(ServerError) as info:
            await client.get_tasks(SPACE, page=2)
    exc = info.value
    assert exc.status_code == 502
    assert exc.page == 2
    assert exc.message  # says something, even without a JSON message
    assert_clean_chain(exc)


async def test_error_envelope_inside_a_200(mocked: aioresponses) -> None:
    mocked.get(ANY_URL, status=200, payload={"status_code": 401, "message": "Invalid token."})
    async with UnpodClient(TOKEN, ORG, max_retries=0) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.get_tasks(SPACE)
    assert info.value.status_code == 401
    assert info.value.message == "Invalid token."


# --------------------------------------------------------------------------- decode errors


@pytest.mark.parametrize(
    ("body", "content_type", "what"),
    [
        ("<!DOCTYPE html><html><body>Welcome</body></html>", "text/html", r"(?i)json"),
        ('{"count": 3, "data": [ {"_id": ', "application/json", r"(?i)json"),
        ("", "application/json", r"(?i)empty"),
        ('{"count": "many", "data": []}', "application/json", r"(?i)count|shape|expected"),
    ],
    ids=["html", "malformed", "empty", "wrong-shape"],
)
async def test_non_json_body_is_a_decode_error_naming_page_and_problem(
    mocked: aioresponses, body: str, content_type: str, what: str
) -> None:
    mocked.get(ANY_URL, status=200, body=body, content_type=content_type, repeat=True)
    async with UnpodClient(TOKEN, ORG, max_retries=1, retry_delay=0) as client:
        with pytest.raises(ResponseDecodeError) as info:
            await client.get_tasks(SPACE, page=7)
    exc = info.value
    assert exc.page == 7
    assert "page 7" in str(exc)
    assert re.search(what, exc.message), exc.message
    assert_clean_chain(exc)


# --------------------------------------------------------------------------- transport errors


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("boom"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("cut short"),
        ConnectionResetError(104, "reset"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_connection_errors_are_api_connection_errors(
    mocked: aioresponses, error: BaseException
) -> None:
    mocked.get(ANY_URL, exception=error, repeat=True)
    async with UnpodClient(TOKEN, ORG, max_retries=2, retry_delay=0) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_tasks(SPACE, page=5)
    exc = info.value
    assert not isinstance(exc, APITimeoutError)
    assert exc.page == 5
    assert_clean_chain(exc)
    assert len(sent(mocked)) == 3  # retried, then the last typed error (no RetryError)


@pytest.mark.parametrize(
    "error",
    [asyncio.TimeoutError(), aiohttp.ServerTimeoutError(), aiohttp.ConnectionTimeoutError()],
    ids=lambda e: type(e).__name__,
)
async def test_timeouts_are_api_timeout_errors(mocked: aioresponses, error: BaseException) -> None:
    mocked.get(ANY_URL, exception=error, repeat=True)
    async with UnpodClient(TOKEN, ORG, max_retries=1, retry_delay=0) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.get_tasks(SPACE, page=2)
    assert isinstance(info.value, APIConnectionError)
    assert info.value.page == 2
    assert_clean_chain(info.value)


async def test_no_route_at_all_is_a_connection_error(mocked: aioresponses) -> None:
    async with UnpodClient(TOKEN, ORG, max_retries=0) as client:
        with pytest.raises(UnpodError) as info:
            await client.get_tasks(SPACE)
    assert isinstance(info.value, APIConnectionError)
    assert_clean_chain(info.value)


# --------------------------------------------------------------------------- a caller's session


async def test_a_callers_raise_for_status_session_keeps_the_error_types() -> None:
    """``raise_for_status=True`` on a session the caller passes changes nothing: the client
    reads every status itself (a 401 is not a retried connection error, a 503 is a
    ServerError that is retried)."""
    from unpod_async import AuthenticationError, ServerError
    from unpod_async.testing import Fault, serve

    async with (
        serve(tasks=100, token=TOKEN, org_handle=ORG, space_token=SPACE) as sim,
        aiohttp.ClientSession(raise_for_status=True) as session,
    ):
        bad = UnpodClient("wrong", ORG, base_url=sim.base_url, session=session, retry_delay=0)
        with pytest.raises(AuthenticationError):
            await bad.get_tasks(SPACE)
        assert len(sim.requests) == 1
        sim.requests.clear()
        sim.faults.append(Fault("status", status=503, times=2))
        good = UnpodClient(
            TOKEN, ORG, base_url=sim.base_url, session=session, retry_delay=0, max_retries=1
        )
        with pytest.raises(ServerError):
            await good.get_tasks(SPACE)
        assert len(sim.requests) == 2
        page = await good.get_tasks(SPACE)
        assert len(page.data) == 20
        assert not session.closed
