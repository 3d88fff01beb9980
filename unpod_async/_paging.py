"""The page engine: planning and fan-out of a whole-space pull, and the drift handling around it.

A pass fetches page 1 to learn ``count`` and the page size the server really serves, then keeps
a window of pages in flight ahead of the consumer and hands them over in server order. The
window is lazy: a space that claims fifty million tasks costs a few pages of memory, not fifty
million coroutines. A pass ends at the first short or empty page, whatever ``count`` said.

Tasks are newest first, so inserts push old tasks to later pages (seen twice: dropped by
key) and deletes pull them to earlier ones (skipped: found again by a re-read pass). A pull
re-reads until a pass adds nothing new while the count holds still, up to ``max_passes``.

The engine knows nothing of HTTP or of what a page holds: it is given a ``fetch(number, size)``
and pages carrying a count and one key per task. :func:`stream_pages` binds it to a
:class:`~unpod_async._request.Requester` and a decoder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ._decode import Key, PageDecoder
from ._errors import DeadlineExceededError
from ._request import Requester
from ._seen import SeenKeys

__all__ = ["Page", "PullStats", "ResumePoint", "pull", "stream_pages"]

logger = logging.getLogger("unpod_async")

P = TypeVar("P")
T = TypeVar("T")


@dataclass(slots=True)
class PullStats:
    """Running figures of one pull (the export statistics are built from these)."""

    expected: int = 0
    pages: int = 0
    tasks: int = 0
    duplicates: int = 0
    passes: int = 0
    recovered: int = 0
    retries: int = 0
    planned_pages: int = 0


@dataclass(slots=True)
class Page(Generic[P]):
    """One fetched page: its number, the server's ``count``, each task's dedupe key, the
    consumer's view of it, and (once delivered) which of its tasks are new."""

    number: int
    count: int
    keys: Sequence[Key]
    payload: P = field(repr=False)
    pass_no: int = 1
    _new: list[int] | None = field(default=None, repr=False)  # None: every task is new

    @property
    def size(self) -> int:
        return len(self.keys)

    @property
    def all_new(self) -> bool:
        return self._new is None

    @property
    def n_new(self) -> int:
        return self.size if self._new is None else len(self._new)

    def select(self, items: Sequence[T]) -> Sequence[T]:
        """The items (one per task of this page) of the tasks not delivered before."""
        new = self._new
        return items if new is None else [items[i] for i in new]


Fetch = Callable[[int, int], Awaitable[Page[P]]]


def ceil_div(count: int, size: int) -> int:
    # Integer arithmetic: a count of 10**400 is absurd but must not raise OverflowError.
    return -(-count // max(1, size))


@dataclass(slots=True)
class ResumePoint:
    """Where an interrupted pull stopped: pages before ``next_page`` of pass 1 are done."""

    next_page: int
    size: int
    count: int
    dirty: bool = False  # the interrupted pass had already seen drift
    pass_complete: bool = False


async def one_pass(
    fetch: Fetch[P], page_size: int, window: int, start: ResumePoint | None = None
) -> AsyncGenerator[Page[P], None]:
    """The pages of one pass, in order, with up to ``window`` pages in flight ahead."""
    if start is None:
        first = await fetch(1, page_size)
        yield first
        size, count, next_fetch = page_size, first.count, 2
        if first.size < page_size:
            if first.size == 0 or first.count <= first.size:
                return
            # Fewer than asked while more exist: the server caps the page size; plan with its.
            size = first.size
            logger.info("server served %d tasks per page (asked for %d)", size, page_size)
    else:
        size, count, next_fetch = start.size, start.count, start.next_page
    # Pages past the planned last one are probed, not flooded: one page, then a widening
    # run while they keep coming back full (an understated count), so an exact count costs
    # a single extra request to confirm the end.
    limit = max(1, ceil_div(count, size))
    if count % size == 0:
        limit += 1  # a full last page needs one more to confirm the end: send it with the tail
    probe = 1
    if limit < next_fetch:
        limit = next_fetch
    inflight: dict[int, asyncio.Future[Page[P]]] = {}
    next_yield = next_fetch
    try:
        while True:
            while len(inflight) < window and next_fetch <= limit:
                inflight[next_fetch] = asyncio.ensure_future(fetch(next_fetch, size))
                next_fetch += 1
            pending = inflight.pop(next_yield, None)
            if pending is None:
                return
            page = await pending
            yield page
            if page.size < size:
                return
            next_yield += 1
            if next_yield > limit:
                limit = next_yield + probe - 1
                probe = min(2 * probe, window)
    finally:
        for fut in inflight.values():
            fut.cancel()
        if inflight:
            await asyncio.gather(*inflight.values(), return_exceptions=True)


async def pull(
    fetch: Fetch[P],
    *,
    page_size: int,
    window: int,
    stats: PullStats,
    max_passes: int = 4,
    seen: SeenKeys | None = None,
    resume: ResumePoint | None = None,
) -> AsyncGenerator[Page[P], None]:
    """Every page of a whole-space pull, each marked with which of its tasks are new.

    ``resume`` (with the ``seen`` keys of what was already delivered) continues an
    interrupted pull.
    """
    seen = SeenKeys() if seen is None else seen
    first_pass = 2 if resume is not None and resume.pass_complete else 1
    start = resume if resume is not None and not resume.pass_complete else None
    if resume is not None:
        stats.expected = resume.count
        stats.planned_pages = max(1, ceil_div(resume.count, resume.size))
    for pass_no in range(first_pass, max(max_passes, first_pass) + 1):
        stats.passes = pass_no
        count: int | None = start.count if start is not None else None
        changed = start is not None and start.dirty
        new = dups = 0
        async with aclosing(one_pass(fetch, page_size, window, start)) as pages:
            start = None
            async for page in pages:
                page.pass_no = pass_no
                if count is None:
                    count = page.count
                    if pass_no == 1:
                        stats.expected = count
                        stats.planned_pages = max(1, ceil_div(count, page.size))
                elif page.count != count:
                    changed = True
                page._new = seen.add_page(page.keys)
                n_new = page.n_new
                new += n_new
                dups += page.size - n_new
                if pass_no == 1:
                    stats.duplicates += page.size - n_new
                else:
                    stats.recovered += n_new
                stats.tasks += n_new
                yield page
        settled = (dups == 0 if pass_no == 1 else new == 0) and not changed
        if settled:
            if pass_no > 1:
                logger.info(
                    "space settled after %d passes: %d duplicates dropped, %d tasks recovered",
                    pass_no,
                    stats.duplicates,
                    stats.recovered,
                )
            return
        logger.info(
            "space changed during pass %d (count %s, %d duplicates, %d new): reading it again",
            pass_no,
            "changed" if changed else "held",
            dups,
            new,
        )
    logger.warning(
        "space still changing after %d passes; stopping with %d tasks", max_passes, stats.tasks
    )


def stream_pages(
    requester: Requester,
    url_for: Callable[[int, int], str],
    decode: PageDecoder[P],
    *,
    page_size: int,
    window: int,
    deadline: float | None,
    stats: PullStats,
    max_passes: int = 4,
    seen: SeenKeys | None = None,
    resume: ResumePoint | None = None,
) -> AsyncGenerator[Page[P], None]:
    """The pages of a whole pull, ``url_for(page, size)`` fetched through ``requester`` and
    decoded with ``decode``; lazy, like every generator."""

    async def run() -> AsyncGenerator[Page[P], None]:
        loop = asyncio.get_running_loop()
        until = None if deadline is None else loop.time() + deadline

        async def fetch(number: int, size: int) -> Page[P]:
            decoded = await requester.get(
                url_for(number, size),
                decode,
                page=number,
                stats=stats,
                deadline=until,
            )
            stats.pages += 1
            return Page(number, decoded.count, decoded.keys, decoded.payload)

        try:
            async with aclosing(
                pull(
                    fetch,
                    page_size=page_size,
                    window=window,
                    stats=stats,
                    max_passes=max_passes,
                    seen=seen,
                    resume=resume,
                )
            ) as pages:
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
