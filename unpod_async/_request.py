"""One request from admission to typed result: the gate, the transport, the retries, the answer.

``Requester.get`` is what every endpoint and every page of a pull goes through: it waits for
an admission slot (``_limits``), sends one attempt (``_transport``), interprets the answer
(``_response``) and, when that fails in a way worth retrying, backs off and tries again
(``_retry``). The slot is held only while a request is on the wire, never during a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol, TypeVar

from ._errors import DeadlineExceededError, RateLimitError, UnpodError
from ._limits import Gate
from ._redact import Secret
from ._response import interpret
from ._retry import RetryPolicy, call_with_retries, describe
from ._transport import Transport, timeout_after

__all__ = ["Requester"]

T = TypeVar("T")

logger = logging.getLogger("unpod_async")


class RetryCounter(Protocol):
    retries: int


class Requester:
    """Sends GETs for one client: shared gate, shared retry policy, one set of headers."""

    def __init__(
        self,
        transport: Transport,
        gate: Gate,
        policy: RetryPolicy,
        *,
        token: Secret,
        headers: Mapping[str, str],
        auth_scheme: str = "Token",
        timeout: float,
    ) -> None:
        self.transport = transport
        self.gate = gate
        self.policy = policy
        self.timeout = timeout
        self._token = token
        self._headers = dict(headers)
        self._auth_scheme = auth_scheme

    def _request_headers(self) -> dict[str, str]:
        # Built per request from the secret, so that no plain copy of the token lives on the
        # client (``vars(client)`` stays clean).
        return {**self._headers, "Authorization": f"{self._auth_scheme} {self._token.reveal()}"}

    async def get(
        self,
        url: str,
        decode: Callable[[bytes], T],
        *,
        page: int | None = None,
        stats: RetryCounter | None = None,
        deadline: float | None = None,
        retry_206: bool = True,
    ) -> T:
        """GET ``url`` with retries; ``decode`` turns a successful body into the result.

        ``deadline`` is a loop time: waiting for a slot, a 429 pause or a backoff counts
        against it too. ``retry_206=False`` does not retry a transient 206 (every other
        passing fault still is).
        """
        result, _ = await self.get_ordered(
            url, decode, page=page, stats=stats, deadline=deadline, retry_206=retry_206
        )
        return result

    async def get_ordered(
        self,
        url: str,
        decode: Callable[[bytes], T],
        *,
        page: int | None = None,
        stats: RetryCounter | None = None,
        deadline: float | None = None,
        retry_206: bool = True,
    ) -> tuple[T, int]:
        """:meth:`get`, and the order in which the answer used arrived (its headers), among
        all answers of the client."""
        loop = asyncio.get_running_loop()
        gate, transport, policy = self.gate, self.transport, self.policy
        if not retry_206:
            policy = replace(policy, retry_business_errors=False)
        attempts = 0
        order = 0

        async def attempt() -> T:
            nonlocal attempts, order
            attempts += 1
            ahead = attempts > 1  # a retry: the consumer waits for this very page
            if deadline is None:
                await gate.acquire(ahead=ahead)
            else:
                try:
                    async with timeout_after(deadline - loop.time()):
                        await gate.acquire(ahead=ahead)
                except asyncio.TimeoutError:
                    raise DeadlineExceededError(
                        "deadline reached waiting to send", url=url, page=page
                    ) from None
            status = 0
            sent = loop.time()
            try:
                timeout = self.timeout
                if deadline is not None:
                    timeout = min(timeout, deadline - loop.time())
                    if timeout <= 0:
                        raise DeadlineExceededError("deadline reached", url=url, page=page)
                resp = await transport.get(url, self._request_headers, timeout=timeout, page=page)
                status, order = resp.status, resp.order
            except UnpodError as exc:
                if logger.isEnabledFor(logging.DEBUG):
                    self._log(url, page, attempts, policy, describe(exc), loop.time() - sent)
                raise
            finally:
                gate.release(overloaded=status in (429, 503), answered=status != 0)
            if logger.isEnabledFor(logging.DEBUG):
                answer = f"HTTP {status}, {len(resp.body):,} bytes"
                self._log(url, page, attempts, policy, answer, loop.time() - sent)
            return interpret(
                resp,
                decode,
                url=url,
                page=page,
                redact=self._token.redact,
                max_retry_after=policy.max_retry_after,
            )

        def on_retry(exc: BaseException, wait: float) -> None:
            if stats is not None:
                stats.retries += 1
            if isinstance(exc, RateLimitError):
                # The whole client holds off for what the server asked; this request alone
                # waits out its own (jittered, growing) backoff on top.
                asked = exc.retry_after
                gate.pause(wait if asked is None else min(asked, policy.max_retry_after))

        result = await call_with_retries(
            attempt, policy, page=page, clock=loop.time, deadline=deadline, on_retry=on_retry
        )
        return result, order

    def _log(
        self, url: str, page: int | None, attempt: int, policy: RetryPolicy, what: str, took: float
    ) -> None:
        """One request at DEBUG: page, attempt, answer (or failure), time; never the token
        (it travels only in a header, and anything echoed is scrubbed)."""
        where = f"page {page} " if page is not None else ""
        logger.debug(
            "GET %s(attempt %d of %d): %s in %.3fs (%s)",
            where,
            attempt,
            policy.max_retries + 1,
            self._token.redact(what),
            took,
            self._token.redact(url),
        )
