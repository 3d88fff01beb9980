"""What the client does with every kind of response body, hostile or merely odd.

Every bad answer (malformed, truncated or empty JSON, HTML, invalid UTF-8, deep nesting, an
unknown status, broken HTTP framing, a corrupt gzip stream) is a typed error after the
retries, is retried when it clears, and never leaves a partial export. Odd but valid bodies
(JSON under another Content-Type, a BOM, chunked, gzip, HTTP/1.0) decode as usual; integers
beyond 64 bits survive; an absurd ``count`` neither crashes nor floods; ``max_response_bytes``
caps the body, decompressed size included (a gzip bomb).

The bodies come from ``MiniServer`` (raw sockets, exact bytes), so headers such as a missing
Content-Type, chunked coding or gzip are exactly what the test says.
"""

from __future__ import annotations

import asyncio
import gzip
import resource
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from unpod_async import (
    APIConnectionError,
    ResponseDecodeError,
    ResponseTooLargeError,
    ServerError,
    UnpodClient,
    UnpodError,
)

from .helpers import SPACE, TOKEN, MiniServer, answer, chunked, client_for, http

ConnErr = APIConnectionError
CHUNKED = {"Transfer-Encoding": "chunked"}
GZIP = {"Content-Encoding": "gzip"}
HTML = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>\n"
DEPTH = 100_000


def deep(n: int = DEPTH) -> bytes:
    return b'{"count":1,"data":[{"task_id":"x","input":' + b"[" * n + b"]" * n + b"}]}"


def invalid_utf8(body: bytes) -> bytes:
    """The good page with one task's ``status`` made of bytes that are not UTF-8."""
    return body.replace(b'"status":"completed"', b'"status":"compl\xff\xfeted"', 1)


# name -> (the whole response built from the good page body, the error a caller must see)
BAD: dict[str, tuple[Callable[[bytes], bytes], type[UnpodError]]] = {
    "malformed-json": (
        lambda b: http(200, b'{"count": 3, "data": [ {"_id": '),
        ResponseDecodeError,
    ),
    "truncated-json": (lambda b: http(200, b[: len(b) // 2]), ResponseDecodeError),
    "empty": (lambda b: http(200, b""), ResponseDecodeError),
    "null": (lambda b: http(200, b"null"), ResponseDecodeError),
    "empty-list": (lambda b: http(200, b"[]"), ResponseDecodeError),
    "wrong-shape": (lambda b: http(200, b'{"count":"many","data":{}}'), ResponseDecodeError),
    "html-200": (lambda b: http(200, HTML, content_type="text/html"), ResponseDecodeError),
    "html-502": (lambda b: http(502, HTML, content_type="text/html"), ServerError),
    "html-503": (lambda b: http(503, HTML, content_type="text/html"), ServerError),
    "text-plain-garbage": (
        lambda b: http(200, b"rate limited, try later", content_type="text/plain"),
        ResponseDecodeError,
    ),
    "no-content-type-garbage": (lambda b: http(200, HTML, content_type=None), ResponseDecodeError),
    "bom-then-garbage": (lambda b: http(200, b"\xef\xbb\xbf<html>"), ResponseDecodeError),
    "invalid-utf8": (lambda b: http(200, invalid_utf8(b)), ResponseDecodeError),
    "invalid-utf8-5xx": (lambda b: http(500, b'{"message":"db \xff\xfe down"}'), ServerError),
    "deeply-nested": (lambda b: http(200, deep()), ResponseDecodeError),
    "deeply-nested-5xx": (lambda b: http(500, deep()), ServerError),
    "unknown-status-999": (lambda b: http(999, b), ServerError),
    # Broken HTTP framing: aiohttp refuses it; the client must say so with a typed error.
    "header-line-200kB": (lambda b: http(200, b, headers={"X-Junk": "a" * 200_000}), ConnErr),
    "bad-chunk-size": (
        lambda b: http(200, b"zz\r\n" + b + b"\r\n0\r\n\r\n", headers=CHUNKED),
        ConnErr,
    ),
    "two-content-lengths": (lambda b: http(200, b, headers={"Content-Length": "5"}), ConnErr),
    # A corrupt or cut gzip stream: aiohttp reports it as a payload error or hands over what
    # it could inflate (an empty or partial body), depending on where zlib notices; either
    # way the caller must get a typed error.
    "not-gzip-but-says-so": (
        lambda b: http(200, b"\x1f\x8b\x08\x00garbage", headers={"Content-Encoding": "gzip"}),
        UnpodError,
    ),
    "gzip-cut-in-half": (
        lambda b: http(200, gzip.compress(b)[: len(gzip.compress(b)) // 2], headers=GZIP),
        UnpodError,
    ),
}

# --------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize("name", list(BAD))
async def test_bad_body_every_time_is_a_typed_error(name: str) -> None:
    make, expected = BAD[name]
    async with MiniServer() as server:
        server.on(answer(make), times=1000)
        async with client_for(server.url, max_retries=2) as client:
            with pytest.raises(expected) as info:
                await client.get_tasks(SPACE)
    assert isinstance(info.value, UnpodError)
    assert len(server.requests) == 3  # retried: a proxy hiccup may clear


@pytest.mark.parametrize("name", list(BAD))
async def test_bad_body_once_is_retried_then_succeeds(name: str) -> None:
    make, _ = BAD[name]
    async with MiniServer() as server:
        server.on(answer(make), page=2, times=2)
        async with client_for(server.url) as client:
            tasks = await client.get_all_tasks(SPACE, page_size=50)
    assert [t.task_id for t in tasks] == server.task_ids()


@pytest.mark.parametrize("name", list(BAD))
async def test_bad_body_never_writes_a_partial_export(name: str, tmp_path: Path) -> None:
    make, expected = BAD[name]
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"previous export\n")
    async with MiniServer() as server:
        server.on(answer(make), page=3, times=1000)
        async with client_for(server.url, max_retries=1) as client:
            with pytest.raises(expected):
                await client.export_tasks(SPACE, out, page_size=50)
    assert out.read_bytes() == b"previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.jsonl"]


# --------------------------------------------------------------------------- harmless oddities


HARMLESS: dict[str, Callable[[bytes], bytes]] = {
    "json-as-text-html": lambda b: http(200, b, content_type="text/html; charset=utf-8"),
    "json-as-text-plain": lambda b: http(200, b, content_type="text/plain"),
    "no-content-type": lambda b: http(200, b, content_type=None),
    "utf8-bom": lambda b: http(200, b"\xef\xbb\xbf" + b),
    "chunked": lambda b: http(200, chunked(b, 100), headers={"Transfer-Encoding": "chunked"}),
    "gzip": lambda b: http(200, gzip.compress(b), headers={"Content-Encoding": "gzip"}),
    "http-1.0-body-until-close": lambda b: (
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + b
    ),
    "gzip-chunked": lambda b: http(
        200,
        chunked(gzip.compress(b), 64),
        headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
    ),
}


@pytest.mark.parametrize("name", list(HARMLESS))
async def test_odd_but_valid_json_is_decoded(name: str, tmp_path: Path) -> None:
    """The client does not trust Content-Type: a valid JSON page is a valid page."""
    async with MiniServer() as server:
        server.on(answer(HARMLESS[name], close=name.startswith("http-1.0")), times=1000)
        async with client_for(server.url, max_retries=0) as client:
            tasks = await client.get_all_tasks(SPACE, page_size=50)
            out = tmp_path / "t.jsonl"
            await client.export_tasks(SPACE, out, page_size=50)
    assert [t.task_id for t in tasks] == server.task_ids()
    assert out.read_bytes().splitlines() == server.task_lines()


# --------------------------------------------------------------------------- big integers


async def test_integers_beyond_64_bits_survive(tmp_path: Path) -> None:
    big_task = b'{"_id":"%024x","task_id":"BIG","retry_attempt":%d,"input":{"n":%d,"m":-%d}}' % (
        1,
        2**64,
        2**70,
        2**63 + 1,
    )

    async def page(writer: asyncio.StreamWriter, good: bytes) -> bool:
        body = b'{"count":1,"status_code":200,"data":[%s]}' % big_task
        writer.write(http(200, body))
        return True

    async with MiniServer() as server:
        server.on(page, page=1, times=1000)
        async with client_for(server.url, max_retries=0) as client:
            first = await client.get_tasks(SPACE)
            out = tmp_path / "big.jsonl"
            await client.export_tasks(SPACE, out, page_size=50)
    task = first.data[0]
    assert task.retry_attempt == 2**64
    assert task.input == {"n": 2**70, "m": -(2**63 + 1)}
    assert out.read_bytes() == big_task + b"\n"  # byte-exact: no float rounding


@pytest.mark.parametrize(
    "count",
    [
        2**63,
        2**64 + 1,
        10**400,
        -(2**63),
    ],
    ids=["2**63", "2**64+1", "10**400", "-2**63"],
)
async def test_absurd_count_neither_crashes_nor_floods(count: int) -> None:
    async with (
        MiniServer(tasks=30, count=count) as server,
        client_for(server.url, max_retries=0) as client,
    ):
        try:
            tasks = await client.get_all_tasks(SPACE, page_size=20)
        except UnpodError:
            pass  # a typed error is an acceptable answer to a nonsensical count
        else:
            assert [t.task_id for t in tasks] == server.task_ids()
    assert len(server.requests) < 40  # planned lazily: no flood of pages 3 .. 2**63


# --------------------------------------------------------------------------- depth


async def test_deep_nesting_surfaces_as_response_decode_error() -> None:
    async with MiniServer() as server:
        server.on(answer(lambda b: http(200, deep())), times=1000)
        async with client_for(server.url, max_retries=0) as client:
            with pytest.raises(ResponseDecodeError, match="nested too deeply") as info:
                await client.get_tasks(SPACE)
    assert not isinstance(info.value.__cause__, RecursionError)
    assert info.value.__context__ is None or not isinstance(info.value.__context__, RecursionError)


# --------------------------------------------------------------------------- size caps


def test_default_size_cap_is_64_mib() -> None:
    client = UnpodClient(TOKEN, base_url="http://127.0.0.1:1")
    assert client.max_response_bytes == 64 * 1024 * 1024


async def test_size_cap_is_exact_on_content_length() -> None:
    async with MiniServer() as server:
        size = len(server.page_body(1, 20))
        async with client_for(server.url, max_response_bytes=size, max_retries=0) as client:
            assert len((await client.get_tasks(SPACE)).data) == 20
        async with client_for(server.url, max_response_bytes=size - 1, max_retries=3) as client:
            with pytest.raises(ResponseTooLargeError, match=f"max_response_bytes={size - 1}"):
                await client.get_tasks(SPACE)
    assert len(server.requests) == 2  # too large is final: not retried


async def test_size_cap_while_reading_a_chunked_body() -> None:
    huge = b'{"count":1,"data":[{"task_id":"x","input":"' + b"a" * 3_000_000 + b'"}]}'
    async with MiniServer() as server:
        server.on(
            answer(lambda b: http(200, chunked(huge), headers={"Transfer-Encoding": "chunked"})),
            times=1000,
        )
        async with client_for(server.url, max_response_bytes=1 << 20) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.get_tasks(SPACE)
    assert len(server.requests) == 1


def _bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of JSON-ish whitespace, gzip-compressed to about 1/1000 the size."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = compressor.compress(b'{"count":1,"data":[{"task_id":"x","input":"')
    block = b" " * (1 << 20)
    parts = [head, *(compressor.compress(block) for _ in range(megabytes))]
    parts.append(compressor.compress(b'"}]}') + compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _bomb(96)  # 96 MiB inflated, more than the default 64 MiB cap


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_gzip_bomb_is_stopped_by_decompressed_size(bomb: bytes, framing: str) -> None:
    assert len(bomb) < 200_000

    def make(_: bytes) -> bytes:
        if framing == "chunked":
            headers = {"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"}
            return http(200, chunked(bomb, 8192), headers=headers)
        return http(200, bomb, headers={"Content-Encoding": "gzip"})

    async with MiniServer() as server:
        server.on(answer(make), times=1000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        async with client_for(server.url, max_response_bytes=1 << 20) as client:
            with pytest.raises(ResponseTooLargeError, match="1048576"):
                await client.get_tasks(SPACE)
        # ru_maxrss is the peak of the process: it can only show growth past earlier peaks,
        # so this proves a bound (inflated and kept a chunk at a time), never a false alarm.
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mib < 32
        async with client_for(server.url, max_retries=2) as client:  # the default cap: 64 MiB
            with pytest.raises(ResponseTooLargeError, match="67108864"):
                await client.get_tasks(SPACE)
    assert len(server.requests) == 2  # too large is final: not retried


async def test_size_cap_leaves_the_export_destination_untouched(tmp_path: Path) -> None:
    out = tmp_path / "tasks.jsonl"
    out.write_bytes(b"previous export\n")
    async with MiniServer() as server:
        limit = len(server.page_body(1, 50)) + 10
        server.on(answer(lambda b: http(200, b + b" " * (limit + 1 - len(b)))), page=4, times=1000)
        async with client_for(server.url, max_response_bytes=limit) as client:
            with pytest.raises(ResponseTooLargeError):
                await client.export_tasks(SPACE, out, page_size=50)
    assert out.read_bytes() == b"previous export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["tasks.jsonl"]
