"""Arguments that could steer a request are refused before it is sent; the token never leaks."""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from unpod_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BusinessLogicError,
    ResponseDecodeError,
    ServerError,
    UnpodClient,
    UnpodError,
)
from unpod_async.testing import Fault, Simulator, serve

from .helpers import ORG, SPACE, exception_chain, free_port

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
    ("token", "org"),
    [("tok\r\nX-Evil: 1", ORG), ("tok", "org\nX-Evil: 1"), ("tok\0", ORG), (" ", ORG)],
    ids=["token-crlf", "org-lf", "token-nul", "token-blank"],
)
def test_header_injection_is_refused(token: str, org: str) -> None:
    with pytest.raises(ValueError, match=r"token|org_handle") as info:
        UnpodClient(token, org)
    assert token.strip() == "" or token not in str(info.value)


# --------------------------------------------------------------------------- the token


def leaks(value: object) -> bool:
    try:
        text = repr(value)
    except Exception:
        return False
    return SECRET in text or SECRET in str(value)


def assert_no_token(exc: BaseException) -> None:
    for e in exception_chain(exc):
        assert SECRET not in str(e)
        assert SECRET not in repr(e)
        assert not any(leaks(arg) for arg in e.args)
        assert not any(leaks(v) for v in vars(e).values())
        # What a traceback printer with locals (Sentry, rich, pytest --showlocals) would show.
        tb = e.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename != __file__:  # this test's own locals aside
                for name, value in tb.tb_frame.f_locals.items():
                    assert not leaks(value), f"{name} in {tb.tb_frame.f_code.co_name}"
            tb = tb.tb_next
    assert SECRET not in "".join(traceback.format_exception(exc))
    assert SECRET.encode() not in pickle.dumps(exc)


async def test_token_not_in_str_or_repr_of_the_client() -> None:
    async with UnpodClient(SECRET, ORG) as client:
        assert SECRET not in repr(client)
        assert SECRET not in str(client)
        assert SECRET not in f"{client}"
        # Nor in what a debugger or a traceback-with-locals shows of its attributes.
        assert not any(leaks(value) for value in vars(client).values())


async def failure(scenario: str) -> UnpodError:
    """Provoke one kind of failure with a client holding SECRET; return what it raised."""
    if scenario == "refused":
        base_url = f"http://127.0.0.1:{free_port()}"
        async with UnpodClient(SECRET, ORG, base_url=base_url, max_retries=1, retry_delay=0) as c:
            with pytest.raises(APIConnectionError) as info:
                await c.get_all_tasks(SPACE)
        return info.value
    token = "a-different-token" if scenario == "401" else SECRET
    async with serve(50, token=token, org_handle=ORG, space_token=SPACE) as sim:
        expected: type[UnpodError] = AuthenticationError
        options: dict[str, Any] = {"max_retries": 1, "retry_delay": 0}
        if scenario == "503":
            sim.faults.append(Fault("status", status=503, times=9))
            expected = ServerError
        elif scenario == "reset":
            sim.faults.append(Fault("reset", times=9))
            expected = APIConnectionError
        elif scenario == "stall":
            sim.faults.append(Fault("stall", delay=1.0, times=9))
            options["timeout"] = 0.05
            expected = APITimeoutError
        elif scenario == "html200":
            sim.faults.append(Fault("html200", times=9))
            expected = ResponseDecodeError
        elif scenario == "206":
            sim.faults.append(Fault("206", message="Invalid Space Token"))
            expected = BusinessLogicError
        async with UnpodClient(SECRET, ORG, base_url=sim.base_url, **options) as c:
            with pytest.raises(expected) as info:
                await c.get_all_tasks(SPACE)
        return info.value


SCENARIOS = ["refused", "401", "503", "reset", "stall", "html200", "206"]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_token_never_in_an_exception(scenario: str) -> None:
    assert_no_token(await failure(scenario))


async def test_token_never_in_a_log_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for scenario in SCENARIOS:
        await failure(scenario)
    async with serve(300, token=SECRET, org_handle=ORG, space_token=SPACE) as sim:
        sim.faults.append(Fault("429", page=2, retry_after="0"))
        async with UnpodClient(SECRET, ORG, base_url=sim.base_url, retry_delay=0) as c:
            assert len(await c.get_all_tasks(SPACE, page_size=50)) == 300
    assert any(r.name.startswith("unpod_async") for r in caplog.records)  # it did log
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.getMessage()
        assert SECRET not in repr(record.args)
        assert SECRET not in (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            assert SECRET not in "".join(traceback.format_exception(record.exc_info[1]))
    assert SECRET not in caplog.text
