"""A pull: the page engine bound to a requester, a URL and a decoder, within a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TypeVar

from ._decode import Decoded, PageCombiner, PageDecoder
from ._errors import DeadlineExceededError
from ._page import Horizon, Page, PullStats, ResumePoint, Source
from ._paging import Pager
from ._request import Requester
from ._response import ENVELOPE_DECODER
from ._seen import SeenKeys

__all__ = ["stream_pages"]

P = TypeVar("P")

# A body this small is read whole at once: an error envelope inside a 200 (or broken JSON)
# is then found inside the retry loop. A real page is bigger and is decoded by its consumer.
_SMALL_BODY = 16 * 1024


class _Body:
    __slots__ = ("body", "status_code")

    def __init__(self, body: bytes, status_code: object) -> None:
        self.body = body
        self.status_code = status_code


def _checked(body: bytes) -> _Body:
    status = ENVELOPE_DECODER.decode(body).status_code if len(body) <= _SMALL_BODY else None
    return _Body(body, status)


def stream_pages(
    requester: Requester,
    url_for: Callable[[int, int], str],
    decode: PageDecoder[P],
    combine: PageCombiner[P],
    *,
    page_size: int,
    concurrency: int,
    read_ahead_bytes: int,
    deadline: float | None,
    stats: PullStats,
    seen: SeenKeys | None = None,
    resume: ResumePoint | None = None,
    max_passes: int = 4,
    max_requests: int | None = None,
    strict: bool = False,
    horizon: Horizon | None = None,
) -> AsyncGenerator[Page[P], None]:
    """The pages of a whole pull, ``url_for(page, size)`` fetched through ``requester``;
    lazy, like every generator: nothing is sent before the first page is asked for."""

    async def run() -> AsyncGenerator[Page[P], None]:
        loop = asyncio.get_running_loop()
        until = None if deadline is None else loop.time() + deadline

        async def body(number: int, size: int) -> tuple[bytes, int]:
            checked, order = await requester.get_ordered(
                url_for(number, size), _checked, page=number, stats=stats, deadline=until
            )
            return checked.body, order

        async def decoded(number: int, size: int, retry_206: bool = True) -> Decoded[P]:
            result, order = await requester.get_ordered(
                url_for(number, size),
                decode,
                page=number,
                stats=stats,
                deadline=until,
                retry_206=retry_206,
            )
            result.seq = order
            return result

        pager = Pager(
            Source(body, decoded, decode, combine),
            page_size=page_size,
            concurrency=concurrency,
            read_ahead_bytes=read_ahead_bytes,
            stats=stats,
            seen=seen,
            resume=resume,
            max_passes=max_passes,
            max_requests=max_requests,
            strict=strict,
            horizon=horizon,
        )
        try:
            async with aclosing(pager.pages()) as pages:
                async for page in pages:
                    yield page
        except DeadlineExceededError as exc:
            failure = exc
        else:
            return
        raise DeadlineExceededError(
            f"deadline of {deadline:g}s reached after {stats.pages} pages and {stats.tasks} tasks",
            url=failure.url,
            page=failure.page,
            pages=stats.pages,
            tasks=stats.tasks,
        )

    return run()
