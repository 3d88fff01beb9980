"""The client: its lifecycle, its headers, and one request from admission to typed result.

The only module that touches aiohttp. Everything aiohttp raises is translated here, in one
place, into the typed errors of ``_errors`` (most specific first), built outside the ``except``
block so that no aiohttp exception, with the request headers it carries, rides along as a cause.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import re
import sys
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from datetime import datetime
from types import TracebackType
from typing import IO, Any, Literal, TypeVar

import aiohttp
import msgspec
from yarl import URL

from . import _models
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    BusinessLogicError,
    DeadlineExceededError,
    RateLimitError,
    RedirectError,
    ResponseDecodeError,
    ResponseTooLargeError,
    UnpodError,
    status_error_class,
)
from ._export import ExportStats, Format, ProgressCallback, export_tasks
from ._limits import Gate
from ._models import Key, Organization, Space, Task, TasksPage
from ._pagination import Page, PullStats, ResumePoint, SeenKeys, pull
from ._retry import RetryPolicy, call_with_retries, is_permanent_206, parse_retry_after
from ._version import __version__

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
else:  # aiohttp depends on async-timeout before 3.11
    from async_timeout import timeout as _timeout

__all__ = ["DEFAULT_BASE_URL", "UnpodClient"]

T = TypeVar("T")
P = TypeVar("P")

logger = logging.getLogger("unpod_async")

DEFAULT_BASE_URL = "https://unpod.ai"
API_PREFIX = "/api/v2/platform/"
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024

# A space token is an opaque identifier: anything else could steer the request path.
_SPACE_TOKEN = re.compile(r"[A-Za-z0-9_\-]{1,256}")
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16

Status = str | Sequence[str]
Timestamp = datetime | float | int


class _Secret:
    """A string that never shows itself in a ``repr``, a traceback's locals or ``vars()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, data: bytes) -> bytes:
        """``data`` with every occurrence of the secret blanked out."""
        secret = self._value.encode()
        return data.replace(secret, b"<redacted>") if secret in data else data

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


def _check_header_value(name: str, value: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"{name} is empty")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{name} contains a line break or NUL; refusing to send it as a header")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} contains characters that cannot be sent in a header") from None
    return value.strip()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str, allow_insecure_http: bool) -> str:
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if url.user or url.password or url.query_string or url.fragment:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    if url.scheme == "http" and not _is_loopback(url.host) and not allow_insecure_http:
        raise ValueError(
            f"refusing plain http:// to {url.host}: the token would travel in clear text "
            "(pass allow_insecure_http=True to override)"
        )
    return str(url).rstrip("/")


def _space_path(space_token: str) -> str:
    if not isinstance(space_token, str):
        raise TypeError(f"space_token must be a str, got {type(space_token).__name__}")
    if not _SPACE_TOKEN.fullmatch(space_token):
        raise ValueError(
            f"invalid space_token {space_token!r}: expected 1-256 letters, digits, '-' or '_'"
        )
    return f"spaces/{space_token}/tasks/"


def _check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _epoch(name: str, value: Timestamp) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc))")
        value = value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{name} must be a datetime or epoch seconds, got {value!r}")
    return str(int(value))


def _filter_query(
    status: Status | None,
    call_type: str | None,
    created_after: Timestamp | None,
    created_before: Timestamp | None,
    search: str | None,
) -> str:
    """The pass-through filters the backend honours, as an encoded query suffix."""
    params: list[tuple[str, str]] = []
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        if not statuses or not all(isinstance(s, str) and s.strip() for s in statuses):
            raise ValueError(f"status must be a non-empty string or list of strings: {status!r}")
        params.append(("status", ",".join(s.strip() for s in statuses)))
    if call_type is not None:
        if call_type not in ("inbound", "outbound"):
            raise ValueError(f"call_type must be 'inbound' or 'outbound', got {call_type!r}")
        params.append(("call_type", call_type))
    if created_after is not None:
        params.append(("from_ts", _epoch("created_after", created_after)))
    if created_before is not None:
        params.append(("to_ts", _epoch("created_before", created_before)))
    if search is not None:
        if not isinstance(search, str):
            raise TypeError("search must be a str")
        params.append(("search", search))
    return "&" + urllib.parse.urlencode(params) if params else ""


def _error_message(body: bytes) -> tuple[str | None, Any]:
    """The server's message from any of the error shapes it uses, and the decoded body."""
    try:
        data = _models.ANY_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, data
    for candidate in (data.get("message"), data.get("detail"), data.get("error")):
        if isinstance(candidate, dict):
            candidate = candidate.get("message")
        if isinstance(candidate, str) and candidate:
            return candidate, data
    errors = data.get("errors")
    if isinstance(errors, str) and errors:
        return errors, data
    return None, data


def _translate(exc: BaseException, url: str, page: int | None, timeout: float) -> UnpodError:
    """One aiohttp (or socket) failure as the typed error a caller sees."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(f"no complete answer within {timeout:g}s", url=url, page=page)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return APIConnectionError("response body was cut short", url=url, page=page)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return APIConnectionError("server closed the connection", url=url, page=page)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return APIConnectionError(f"cannot connect to {exc.host}:{exc.port}: {reason}", url=url)
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError | OSError):
        return APIConnectionError(f"connection failed: {type(exc).__name__}", url=url, page=page)
    if isinstance(exc, aiohttp.ClientResponseError) and exc.message:
        # Its message is aiohttp's account of the broken framing; its repr would carry the
        # request headers, so only the message is kept.
        return APIConnectionError(f"invalid HTTP response: {exc.message}", url=url, page=page)
    return APIConnectionError(f"request failed: {type(exc).__name__}", url=url, page=page)


class UnpodClient:
    """Async client for the Unpod platform API.

    >>> async with UnpodClient() as client:  # UNPOD_API_TOKEN / UNPOD_ORG_HANDLE from the env
    ...     async for task in client.iter_tasks("SPACE_TOKEN"):
    ...         print(task.task_id, task.status)

    ``concurrency`` bounds the requests in flight across everything this client does;
    ``max_retries`` retries per request; ``timeout`` is per attempt. Pass ``session`` to use
    an aiohttp session you own (it is never closed here).
    """

    def __init__(
        self,
        token: str | None = None,
        org_handle: str | None = None,
        *,
        base_url: str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        timeout: float = 30.0,
        retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        max_retry_after: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_requests_per_minute: float | None = None,
        adaptive_concurrency: bool = False,
        allow_insecure_http: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        token = token if token is not None else os.environ.get("UNPOD_API_TOKEN")
        if not token:
            raise ValueError("no API token: pass token= or set UNPOD_API_TOKEN")
        org_handle = org_handle if org_handle is not None else os.environ.get("UNPOD_ORG_HANDLE")
        self._token = _Secret(_check_header_value("token", token))
        self.org_handle = _check_header_value("org_handle", org_handle) if org_handle else None
        self.base_url = _check_base_url(
            base_url or os.environ.get("UNPOD_BASE_URL") or DEFAULT_BASE_URL, allow_insecure_http
        )
        self.concurrency = _check_positive("concurrency", concurrency)
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self._policy = RetryPolicy(max_retries, retry_delay, max_retry_delay, max_retry_after)
        self.max_response_bytes = _check_positive("max_response_bytes", max_response_bytes)
        if max_requests_per_minute is not None and not max_requests_per_minute > 0:
            raise ValueError("max_requests_per_minute must be > 0")
        self._gate = Gate(
            self.concurrency, per_minute=max_requests_per_minute, adaptive=adaptive_concurrency
        )
        self._session = session
        self._owns_session = session is None
        self._closed = False
        # The Authorization header is built per request from the secret, so that no plain
        # copy of the token lives on the client (vars(client) stays clean).
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"unpod-async/{__version__}",
        }
        if self.org_handle:
            self._headers["Org-Handle"] = self.org_handle

    def __repr__(self) -> str:
        return (
            f"UnpodClient(base_url={self.base_url!r}, org_handle={self.org_handle!r}, "
            f"concurrency={self.concurrency})"
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> UnpodClient:
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this client created (a caller's own session is left open)."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this UnpodClient is closed")
        if self._session is None:
            # The pool never queues: the gate admits at most `concurrency` requests, so the
            # per-attempt timeout never counts time spent waiting for a connection.
            connector = aiohttp.TCPConnector(limit=self.concurrency + 4, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
            )
            # aiohttp silently re-sends an idempotent request once when a pooled connection
            # drops. Our retry policy is the only one: counted, logged, backed off.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    # --- one request ------------------------------------------------------------------------

    def _url(self, path: str, query: str = "") -> str:
        return f"{self.base_url}{API_PREFIX}{path}{query}"

    async def _request(
        self,
        url: str,
        decode: Callable[[bytes], T],
        *,
        page: int | None = None,
        stats: PullStats | None = None,
        deadline: float | None = None,
    ) -> T:
        """GET ``url`` with retries; ``decode`` turns a 2xx body into the result."""
        session = self._ensure_session()
        loop = asyncio.get_running_loop()

        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            if deadline is None:
                await self._gate.acquire(first=attempts > 1)
            else:
                # Waiting for a slot, a 429 pause or a rate-limit tick counts against the
                # deadline too.
                try:
                    async with _timeout(deadline - loop.time()):
                        await self._gate.acquire(first=attempts > 1)
                except asyncio.TimeoutError:
                    raise DeadlineExceededError(
                        "deadline reached waiting to send", url=url, page=page
                    ) from None
            status = 0
            try:
                timeout = self.timeout
                if deadline is not None:
                    timeout = min(timeout, deadline - loop.time())
                    if timeout <= 0:
                        raise DeadlineExceededError("deadline reached", url=url, page=page)
                status, headers, body = await self._send(session, url, page, timeout)
            finally:
                self._gate.release(overloaded=status in (429, 503), answered=status != 0)
            return self._interpret(url, page, status, headers, body, decode)

        def on_retry(exc: BaseException, wait: float) -> None:
            if stats is not None:
                stats.retries += 1
            if isinstance(exc, RateLimitError):
                self._gate.pause(wait)

        return await call_with_retries(
            attempt, self._policy, page=page, clock=loop.time, deadline=deadline, on_retry=on_retry
        )

    async def _send(
        self, session: aiohttp.ClientSession, url: str, page: int | None, timeout: float
    ) -> tuple[int, Any, bytes]:
        error: UnpodError | None = None
        try:
            async with _timeout(timeout):
                return await self._exchange(session, url)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = _translate(exc, url, page, timeout)
        # Raised outside the except block, with no local left holding it: the aiohttp error
        # (and the request headers it carries) is neither the cause, the context, nor a
        # traceback local of what the caller sees.
        raise error

    async def _exchange(self, session: aiohttp.ClientSession, url: str) -> tuple[int, Any, bytes]:
        async with session.get(
            URL(url, encoded=True),
            headers={**self._headers, "Authorization": f"Token {self._token.reveal()}"},
            allow_redirects=False,
        ) as resp:
            limit = self.max_response_bytes
            length = resp.content_length
            if length is not None and length > limit:
                return -1, length, b""
            if length is not None and "Content-Encoding" not in resp.headers:
                body = await resp.read()
            else:
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        return -1, size, b""
                    chunks.append(chunk)
                body = b"".join(chunks)
            return resp.status, resp.headers, body

    def _interpret(
        self,
        url: str,
        page: int | None,
        status: int,
        headers: Any,
        body: bytes,
        decode: Callable[[bytes], T],
    ) -> T:
        if status == -1:
            raise ResponseTooLargeError(
                f"response larger than max_response_bytes={self.max_response_bytes} "
                f"(at least {headers} bytes)",
                url=url,
                page=page,
            )
        if body.startswith(_BOM):
            body = body[len(_BOM) :]
        if 200 <= status < 300 and status != 206:
            try:
                result = decode(body)
            except (msgspec.DecodeError, RecursionError, ValueError) as exc:
                problem = self._decode_problem(exc, body, headers)
            else:
                envelope_status = getattr(result, "status_code", None)
                if not (isinstance(envelope_status, int) and envelope_status >= 400):
                    return result
                status = envelope_status  # a 200 that carries an error envelope
                problem = ""
            if problem:
                raise ResponseDecodeError(problem, url=url, page=page)
        # A server or proxy echoing the token must not put it into an error.
        message, data = _error_message(self._token.redact(body))
        if 300 <= status < 400:
            location = headers.get("Location")
            host = URL(location).host if location else None
            raise RedirectError(
                f"server redirected to {host or 'an unknown host'}; redirects are not followed "
                "so that credentials never leave the API host",
                status_code=status,
                url=url,
                page=page,
                location=location,
            )
        retry_after = parse_retry_after(headers.get("Retry-After"))
        text = message or f"HTTP {status} without a JSON message"
        if retry_after is not None:
            text += f" (server asked to wait {retry_after:g}s"
            if retry_after > self._policy.max_retry_after:
                text += f", more than max_retry_after={self._policy.max_retry_after:g}s"
            text += ")"
        if status == 206:
            raise BusinessLogicError(
                text,
                url=url,
                page=page,
                body=data,
                transient=not is_permanent_206(message),
            )
        cls = status_error_class(status)
        raise cls(text, status_code=status, url=url, page=page, body=data, retry_after=retry_after)

    @staticmethod
    def _decode_problem(exc: BaseException, body: bytes, headers: Any) -> str:
        if isinstance(exc, RecursionError):
            return "body is nested too deeply to decode"
        if not body:
            return "empty body where JSON was expected"
        kind = headers.get("Content-Type", "no Content-Type")
        if isinstance(exc, msgspec.ValidationError):
            return f"unexpected JSON shape ({kind}): {exc}"
        if isinstance(exc, UnicodeDecodeError):
            return f"body is not valid UTF-8 ({kind}, byte {exc.start})"
        return f"body is not valid JSON ({kind}, {len(body)} bytes): {exc}"

    # --- endpoints --------------------------------------------------------------------------

    async def list_organizations(self) -> list[Organization]:
        """The organizations the token belongs to; ``domain_handle`` is the Org-Handle value."""
        url = self._url("organizations/")
        envelope = await self._request(url, _models.ORGS_ENVELOPE_DECODER.decode)
        return envelope.data

    async def list_spaces(self) -> list[Space]:
        """The spaces of ``org_handle``; each ``Space.token`` is a ``space_token``."""
        if not self.org_handle:
            raise ValueError("list_spaces needs org_handle (or UNPOD_ORG_HANDLE)")
        url = self._url("spaces/")
        envelope = await self._request(url, _models.SPACES_ENVELOPE_DECODER.decode)
        return envelope.data

    async def get_tasks(
        self,
        space_token: str,
        *,
        page: int = 1,
        page_size: int = 20,
        status: Status | None = None,
        call_type: Literal["inbound", "outbound"] | None = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        search: str | None = None,
    ) -> TasksPage:
        """One page of a space's tasks, newest first.

        >>> page = await client.get_tasks("SPACE_TOKEN", page=1, page_size=50)
        >>> page.count, len(page.data)
        """
        path = _space_path(space_token)
        _check_positive("page", page)
        _check_positive("page_size", page_size)
        query = _filter_query(status, call_type, created_after, created_before, search)
        url = self._url(path, f"?page={page}&page_size={page_size}{query}")
        return await self._request(url, _models.TASKS_PAGE_DECODER.decode, page=page)

    def iter_tasks(
        self,
        space_token: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        status: Status | None = None,
        call_type: Literal["inbound", "outbound"] | None = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        search: str | None = None,
    ) -> AsyncGenerator[Task, None]:
        """Every task of a space, once each, in server order (newest first).

        Pages are fetched concurrently under the client's bound and handed over in order;
        memory holds about ``2 x concurrency`` pages. Close the iterator early with
        ``contextlib.aclosing`` to cancel what is in flight at once.

        >>> async with aclosing(client.iter_tasks("SPACE_TOKEN")) as tasks:
        ...     async for task in tasks:
        ...         ...
        """
        pages = self._task_pages(
            space_token,
            page_size,
            deadline,
            _filter_query(status, call_type, created_after, created_before, search),
        )
        return _tasks_of(pages)

    async def get_all_tasks(
        self,
        space_token: str,
        *,
        page_size: int = 100,
        deadline: float | None = None,
        status: Status | None = None,
        call_type: Literal["inbound", "outbound"] | None = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        search: str | None = None,
    ) -> list[Task]:
        """Every task of a space in one list (``iter_tasks`` streams them instead)."""
        pages = self._task_pages(
            space_token,
            page_size,
            deadline,
            _filter_query(status, call_type, created_after, created_before, search),
        )
        tasks: list[Task] = []
        async with aclosing(pages):
            async for page, fresh in pages:  # a page at a time: no per-task await
                data = page.payload.data
                tasks.extend(data if fresh is None else [data[i] for i in fresh])
        return tasks

    def _task_pages(
        self, space_token: str, page_size: int, deadline: float | None, filters: str
    ) -> AsyncGenerator[tuple[Page[TasksPage], list[int] | None], None]:
        return self._pull(
            space_token,
            _models.TASKS_PAGE_DECODER.decode,
            _task_page,
            page_size=page_size,
            deadline=deadline,
            stats=PullStats(),
            filters=filters,
        )

    async def export_tasks(
        self,
        space_token: str,
        path: str | os.PathLike[str] | IO[bytes],
        *,
        format: Format = "jsonl",
        page_size: int = 100,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        deadline: float | None = None,
        status: Status | None = None,
        call_type: Literal["inbound", "outbound"] | None = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        search: str | None = None,
    ) -> ExportStats:
        """Pull a whole space into a file: ``jsonl`` (lossless), ``csv`` or ``parquet``.

        The file appears at ``path`` only when complete (written beside it, then renamed);
        ``path="-"`` or a binary stream streams instead. ``resume=True`` keeps a checkpoint so
        that a rerun after an interruption fetches only the missing pages. ``progress`` is
        called with an :class:`ExportProgress` after every page.

        >>> stats = await client.export_tasks("SPACE_TOKEN", "tasks.jsonl")
        >>> stats.tasks, stats.seconds
        """
        return await export_tasks(
            self,
            space_token,
            path,
            format=format,
            page_size=page_size,
            resume=resume,
            progress=progress,
            deadline=deadline,
            filters=_filter_query(status, call_type, created_after, created_before, search),
        )

    def _pull(
        self,
        space_token: str,
        decode: Callable[[bytes], P],
        keys_of: Callable[[P, bytes], tuple[int, Sequence[Key]]],
        *,
        page_size: int,
        deadline: float | None,
        stats: PullStats,
        filters: str = "",
        max_passes: int = 4,
        seen: SeenKeys | None = None,
        resume: ResumePoint | None = None,
    ) -> AsyncGenerator[tuple[Page[P], list[int] | None], None]:
        """Validate now (before any request), then pull lazily: the pages of a whole space."""
        path = _space_path(space_token)
        _check_positive("page_size", page_size)
        if deadline is not None and not (deadline > 0 and math.isfinite(deadline)):
            raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
        base = self._url(path, "?page=")
        self._ensure_session()

        async def run() -> AsyncGenerator[tuple[Page[P], list[int] | None], None]:
            loop = asyncio.get_running_loop()
            until = None if deadline is None else loop.time() + deadline

            def decode_page(body: bytes) -> Page[P]:
                payload = decode(body)
                count, keys = keys_of(payload, body)
                return Page(0, count, keys, payload)

            async def fetch(number: int, size: int) -> Page[P]:
                url = f"{base}{number}&page_size={size}{filters}"
                page = await self._request(
                    url, decode_page, page=number, stats=stats, deadline=until
                )
                page.number = number
                stats.pages += 1
                return page

            try:
                async with aclosing(
                    pull(
                        fetch,
                        page_size=page_size,
                        window=2 * self.concurrency,
                        stats=stats,
                        max_passes=max_passes,
                        seen=seen,
                        resume=resume,
                    )
                ) as pages:
                    async for item in pages:
                        yield item
            except DeadlineExceededError as exc:
                failure = exc
            else:
                return
            raise DeadlineExceededError(
                f"deadline of {deadline:g}s reached after {stats.pages} pages and "
                f"{stats.tasks} tasks",
                url=failure.url,
                page=failure.page,
                pages=stats.pages,
                tasks=stats.tasks,
            )

        return run()


def _task_page(page: TasksPage, body: bytes) -> tuple[int, list[Key]]:
    return page.count, _models.typed_keys(page.data)


async def _tasks_of(
    pages: AsyncGenerator[tuple[Page[TasksPage], list[int] | None], None],
) -> AsyncGenerator[Task, None]:
    async with aclosing(pages):
        async for page, fresh in pages:
            data = page.payload.data
            if fresh is None:
                for task in data:
                    yield task
            else:
                for i in fresh:
                    yield data[i]
