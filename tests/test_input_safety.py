"""Arguments that could steer a request are refused before anything is sent.

A space token that is not one plain path segment, page numbers and sizes below one or of the
wrong type, a ``space_id`` smuggled into a filter, and header values (token, org handle) that
could inject a header or cannot be sent in one. Where the token must never show (exceptions,
logs, reprs) is in ``test_security.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from unpod_async import UnpodClient
from unpod_async.testing import Simulator

from .helpers import ORG, SPACE

SECRET = "sk-SECRET-7f3a9c2e51d04b"

BAD_SPACE_TOKENS: list[Any] = [
    "../x",
    "a/b",
    "x?page=9",
    "",
    " ",
    "x#y",
    "%2e%2e",
    "..",
    "x\\y",
    "a\nb",
    "x&space_id=1",
    123,
    None,
    b"space",
    ["space"],
]


async def drain(tasks: Any) -> None:
    async for _ in tasks:
        pass


Call = Callable[[UnpodClient, Any, Path], Awaitable[object]]

ENTRY_POINTS: dict[str, Call] = {
    "get_tasks": lambda c, s, p: c.get_tasks(s),
    "iter_tasks": lambda c, s, p: drain(c.iter_tasks(s)),
    "get_all_tasks": lambda c, s, p: c.get_all_tasks(s),
    "export_tasks": lambda c, s, p: c.export_tasks(s, p / "out.jsonl"),
}


async def call(entry: Call, client: UnpodClient, arg: Any, path: Path) -> None:
    # A refusal may come at call time (iter_tasks returns an iterator) or on first use.
    await entry(client, arg, path)


# --------------------------------------------------------------------------- space tokens


@pytest.mark.parametrize("entry", list(ENTRY_POINTS), ids=str)
@pytest.mark.parametrize("space_token", BAD_SPACE_TOKENS, ids=repr)
async def test_bad_space_token_is_refused_before_any_request(
    mocked: aioresponses, tmp_path: Path, entry: str, space_token: Any
) -> None:
    async with UnpodClient(SECRET, ORG, max_retries=0) as client:
        with pytest.raises((ValueError, TypeError)):
            await call(ENTRY_POINTS[entry], client, space_token, tmp_path)
    assert mocked.requests == {}
    assert list(tmp_path.iterdir()) == []


async def test_bad_space_token_against_the_simulator(sim: Simulator, tmp_path: Path) -> None:
    async with UnpodClient("test-token", ORG, base_url=sim.base_url, max_retries=0) as client:
        for space_token in BAD_SPACE_TOKENS:
            for entry in ENTRY_POINTS.values():
                with pytest.raises((ValueError, TypeError)):
                    await call(entry, client, space_token, tmp_path)
    assert sim.requests == []


# --------------------------------------------------------------------------- page numbers


@pytest.mark.parametrize(
    "kwargs",
    [
        {"page": 0},
        {"page": -1},
        {"page_size": 0},
        {"page_size": -5},
        {"page_size": False},
        {"page": "2"},
        {"page_size": "0"},
        {"page_size": 2.5},
    ],
    ids=repr,
)
async def test_bad_page_arguments_of_get_tasks(
    mocked: aioresponses, kwargs: dict[str, Any]
) -> None:
    async with UnpodClient(SECRET, ORG, max_retries=0) as client:
        with pytest.raises((ValueError, TypeError)):
            await client.get_tasks(SPACE, **kwargs)
    assert mocked.requests == {}


@pytest.mark.parametrize("page", [0, -1])
async def test_page_below_one_is_a_value_error(mocked: aioresponses, page: int) -> None:
    async with UnpodClient(SECRET, ORG, max_retries=0) as client:
        with pytest.raises(ValueError, match="page"):
            await client.get_tasks(SPACE, page=page)
    assert mocked.requests == {}


PAGE_SIZE_ENTRY_POINTS: dict[str, Callable[[UnpodClient, int, Path], Awaitable[object]]] = {
    "get_tasks": lambda c, n, p: c.get_tasks(SPACE, page_size=n),
    "iter_tasks": lambda c, n, p: drain(c.iter_tasks(SPACE, page_size=n)),
    "get_all_tasks": lambda c, n, p: c.get_all_tasks(SPACE, page_size=n),
    "export_tasks": lambda c, n, p: c.export_tasks(SPACE, p / "o.jsonl", page_size=n),
}


@pytest.mark.parametrize("page_size", [0, -1])
@pytest.mark.parametrize("entry", list(PAGE_SIZE_ENTRY_POINTS))
async def test_page_size_below_one_is_a_value_error(
    mocked: aioresponses, tmp_path: Path, entry: str, page_size: int
) -> None:
    async with UnpodClient(SECRET, ORG, max_retries=0) as client:
        with pytest.raises(ValueError, match="page_size"):
            await PAGE_SIZE_ENTRY_POINTS[entry](client, page_size, tmp_path)
    assert mocked.requests == {}
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- space_id


async def test_no_space_id_is_ever_sent(sim: Simulator, tmp_path: Path) -> None:
    async with UnpodClient("test-token", ORG, base_url=sim.base_url) as client:
        await client.get_tasks(SPACE, search="x&space_id=evil")
        await client.get_all_tasks(SPACE, status="completed&space_id=1", page_size=200)
        await client.get_all_tasks(SPACE, status=["failed", "hold&space_id=2"], page_size=500)
        await client.export_tasks(SPACE, tmp_path / "t.jsonl", search="space_id=3")
        await client.get_all_tasks(SPACE, page_size=300, call_type="inbound", created_after=0)
        with pytest.raises(TypeError):
            await client.get_tasks(SPACE, space_id="other")  # type: ignore[call-arg]
    assert sim.requests
    for request in sim.requests:
        assert "space_id" not in request.query, request.query
        assert request.status == 200
    assert sim.requests[0].query["search"] == "x&space_id=evil"


# --------------------------------------------------------------------------- header values


@pytest.mark.parametrize(
    "bad",
    [
        "\r",
        "\n",
        "\r\nX-Injected: 1",
        "\0",
        "\u20ac",
        "\u0442\u043e\u043a\u0435\u043d",
        "\U0001f511",
    ],
    ids=["CR", "LF", "CRLF-injection", "NUL", "euro", "cyrillic", "emoji"],
)
@pytest.mark.parametrize("field", ["token", "org_handle"])
def test_header_injection_and_non_latin1_are_refused_at_construction(bad: str, field: str) -> None:
    value = f"{SECRET}{bad}tail"
    kwargs: dict[str, Any] = {"token": "tok", "org_handle": ORG}
    kwargs[field] = value
    with pytest.raises(ValueError, match=field) as info:
        UnpodClient(**kwargs, base_url="https://unpod.ai")
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert kwargs["token"] not in str(info.value)  # the token is not echoed either


def test_a_blank_token_is_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        UnpodClient(" ", ORG)
