"""The client: its options and its lifecycle.

``UnpodClient`` checks its arguments (``_params``) and builds one
:class:`~unpod_async._request.Requester` (gate, transport, retries, answer). Its reading methods
(organizations, spaces, pages, iterators, lists) come from ``_api_read``, its exports and sync
from ``_api_write``, both on ``_core.ClientCore``, which turns an endpoint into a page stream
(``_paging``) for a consumer: an iterator, a list, an export job (``_export``) or a sync job
(``_sync``). It never touches aiohttp or a transport exception itself.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import TYPE_CHECKING

from . import _params
from ._api_write import WriteAPI
from ._limits import Gate
from ._params import DEFAULT_BASE_URL
from ._redact import Secret
from ._request import Requester
from ._retry import RetryPolicy
from ._transport import Transport
from ._version import __version__

if TYPE_CHECKING:
    import aiohttp


__all__ = ["DEFAULT_BASE_URL", "UnpodClient"]

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
DEFAULT_READ_AHEAD_BYTES = 16 * 1024 * 1024


class UnpodClient(WriteAPI):
    """Async client for the Unpod platform API.

    >>> async with UnpodClient() as client:  # UNPOD_API_TOKEN / UNPOD_ORG_HANDLE from the env
    ...     async for task in client.iter_tasks("SPACE_TOKEN"):
    ...         print(task.task_id, task.status)

    Every option but the first two is keyword-only:

    - ``token``: the API token, else ``$UNPOD_API_TOKEN`` (required: one or the other). Sent
      only in the ``Authorization`` header, never shown in a repr, an error or a log line.
    - ``org_handle``: the organization's domain handle, sent as ``Org-Handle``, else
      ``$UNPOD_ORG_HANDLE``; :meth:`list_organizations` tells them, :meth:`list_spaces`
      needs one.
    - ``base_url``: else ``$UNPOD_BASE_URL``, else ``https://unpod.ai``.
    - ``concurrency`` (8): the bound on requests in flight across everything this client
      does, shared by concurrent calls.
    - ``max_retries`` (5): retries per request, after the first attempt.
    - ``timeout`` (30.0): seconds per attempt, the whole answer included.
    - ``retry_delay`` (0.5), ``max_retry_delay`` (8.0): the exponential backoff's start and
      ceiling, in seconds (jittered; the first retry of a one-off failure comes sooner).
    - ``max_retry_after`` (120.0): the longest ``Retry-After`` honoured; a server asking
      for more fails the request instead.
    - ``max_response_bytes`` (64 MiB): a larger answer fails with
      :class:`ResponseTooLargeError` (ask for smaller pages).
    - ``read_ahead_bytes`` (16 MiB): how much of a pull's pages may wait, fetched but not
      yet consumed, while an earlier page is retried (memory, not speed).
    - ``max_requests_per_minute`` (None): spread requests evenly to stay under a plan's
      rate limit.
    - ``adaptive_concurrency`` (False): halve the bound on 429/503 and creep back up (AIMD),
      for servers that shed load.
    - ``allow_insecure_http`` (False): allow ``http://`` to a host that is not loopback (the
      token would travel in clear text); ``http://`` to loopback is always allowed.
    - ``session``: an ``aiohttp.ClientSession`` you own, used as it is and never closed here.
    - ``auth_scheme``: the ``Authorization`` scheme, ``"Token"`` (what the tasks endpoints
      take), ``"Bearer"`` or ``"JWT"`` (what the spaces and organizations views may require),
      any case; else ``$UNPOD_AUTH_SCHEME``, else ``"Token"``.

    Bad values raise :class:`ValueError` (or :class:`TypeError`) here, before any request.
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
        read_ahead_bytes: int = DEFAULT_READ_AHEAD_BYTES,
        max_requests_per_minute: float | None = None,
        adaptive_concurrency: bool = False,
        allow_insecure_http: bool = False,
        session: aiohttp.ClientSession | None = None,
        auth_scheme: str | None = None,
    ) -> None:
        token = _params.env_token(token)
        if token is None:
            raise ValueError("no API token: pass token= or set UNPOD_API_TOKEN")
        org_handle = _params.env_org_handle(org_handle)
        self.auth_scheme = _params.env_auth_scheme(auth_scheme)
        self._token = Secret(_params.check_header_value("token", token))
        self.org_handle = (
            _params.check_header_value("org_handle", org_handle) if org_handle else None
        )
        self.base_url = _params.check_base_url(_params.env_base_url(base_url), allow_insecure_http)
        self.concurrency = _params.check_positive("concurrency", concurrency)
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self.max_response_bytes = _params.check_positive("max_response_bytes", max_response_bytes)
        self.read_ahead_bytes = _params.check_positive("read_ahead_bytes", read_ahead_bytes)
        if max_requests_per_minute is not None and not max_requests_per_minute > 0:
            raise ValueError("max_requests_per_minute must be > 0")
        # The reference lists Content-Type as required on every request, GETs included.
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": f"unpod-async/{__version__}",
        }
        if self.org_handle:
            headers["Org-Handle"] = self.org_handle
        self._transport = Transport(
            concurrency=self.concurrency,
            max_response_bytes=self.max_response_bytes,
            session=session,
        )
        self._gate = Gate(
            self.concurrency, per_minute=max_requests_per_minute, adaptive=adaptive_concurrency
        )
        self._requester = Requester(
            self._transport,
            self._gate,
            RetryPolicy(max_retries, retry_delay, max_retry_delay, max_retry_after),
            token=self._token,
            headers=headers,
            auth_scheme=self.auth_scheme,
            timeout=self.timeout,
        )

    def __repr__(self) -> str:
        return (
            f"UnpodClient(base_url={self.base_url!r}, org_handle={self.org_handle!r}, "
            f"concurrency={self.concurrency}, auth_scheme={self.auth_scheme!r})"
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> UnpodClient:
        self._transport.session  # noqa: B018 (created here, inside the running loop)
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
        await self._transport.aclose()

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        return self._transport._session

    # --- endpoints --------------------------------------------------------------------------
