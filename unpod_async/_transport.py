"""The transport: one HTTP GET over aiohttp, and the map from aiohttp's failures to ours.

The only module of the package that imports aiohttp. It knows sockets, timeouts, the response
size cap and the exception map; it knows nothing of the API's statuses or envelopes (that is
``_response``). Everything aiohttp raises is translated here, most specific first, into the
typed errors of ``_errors``, raised outside the ``except`` block so that no aiohttp exception,
with the request headers it carries, rides along as a cause, a context or a traceback local.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from ._errors import APIConnectionError, APITimeoutError, ResponseTooLargeError, UnpodError

if sys.version_info >= (3, 11):
    from asyncio import timeout as _timeout
else:  # aiohttp depends on async-timeout before 3.11
    from async_timeout import timeout as _timeout

__all__ = ["Response", "Transport", "timeout_after"]

timeout_after = _timeout
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Response:
    """What the server answered: the status, its headers and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    order: int = 0  # when its headers arrived, among all answers of this transport


class Transport:
    """An aiohttp session (the caller's, or one of its own) and one GET at a time over it.

    The pool is sized a little above ``concurrency``: the client's gate admits at most
    ``concurrency`` requests, so the per-attempt timeout never counts time spent waiting for
    a connection.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        max_response_bytes: int,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.max_response_bytes = max_response_bytes
        self._pool_size = concurrency + 4
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._answers = 0

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside a running loop, as aiohttp wants)."""
        if self._closed:
            raise RuntimeError("this UnpodClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
            )
            # aiohttp silently re-sends an idempotent request once when a pooled connection
            # drops. Our retry policy is the only one: counted, logged, backed off.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def aclose(self) -> None:
        """Close the session this transport created (a caller's own is left open)."""
        self._closed = True
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def get(
        self,
        url: str,
        headers: Callable[[], Mapping[str, str]],
        *,
        timeout: float,
        page: int | None,
    ) -> Response:
        """GET ``url`` once with ``headers()``.

        Raises :class:`APIConnectionError` (or a subclass) if no whole answer came back within
        ``timeout`` seconds, :class:`ResponseTooLargeError` if it is bigger than
        ``max_response_bytes``.

        ``headers`` is called at the moment of sending, so that no local variable of this
        module ever holds the Authorization header (traceback printers show locals).
        """
        session = self.session
        error: UnpodError | None = None
        try:
            async with _timeout(timeout):
                return await self._exchange(session, url, headers, page)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = _translate(exc, url, page, timeout)
        raise error

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Callable[[], Mapping[str, str]],
        page: int | None,
    ) -> Response:
        async with session.get(
            URL(url, encoded=True),
            headers=headers(),
            allow_redirects=False,
            raise_for_status=False,  # statuses are ours to interpret, whatever the session says
        ) as resp:
            # Numbered when the headers arrive: the closest the client sees to the order in
            # which the server answered (a body's last byte can come later for a bigger one).
            self._answers += 1
            order = self._answers
            limit = self.max_response_bytes
            length = resp.content_length
            if length is not None and length > limit:
                raise self._too_large(length, url, page)
            if length is not None and "Content-Encoding" not in resp.headers:
                body = await resp.read()
            else:
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise self._too_large(size, url, page)
                    chunks.append(chunk)
                body = b"".join(chunks)
            return Response(resp.status, resp.headers, body, order)

    def _too_large(self, size: int, url: str, page: int | None) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"response larger than max_response_bytes={self.max_response_bytes} "
            f"(at least {size} bytes)",
            url=url,
            page=page,
        )


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
