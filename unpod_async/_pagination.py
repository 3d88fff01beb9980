"""Planning and fan-out of a whole-space pull, and the drift handling around it.

A pass fetches page 1 to learn ``count`` and the page size the server really serves, then keeps
a window of pages in flight ahead of the consumer and hands them over in server order. The
window is lazy: a space that claims fifty million tasks costs a few pages of memory, not fifty
million coroutines. A pass ends at the first short or empty page, whatever ``count`` said.

Tasks are newest first, so inserts push old tasks to later pages (seen twice: dropped by
key) and deletes pull them to earlier ones (skipped: found again by a re-read pass). A pull
re-reads until a pass adds nothing new while the count holds still, up to ``max_passes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ._models import Key

logger = logging.getLogger("unpod_async")

P = TypeVar("P")


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
    """One fetched page: its number, the server's ``count``, and the dedupe key of each task."""

    number: int
    count: int
    keys: Sequence[Key]
    payload: P = field(repr=False)
    pass_no: int = 1

    @property
    def size(self) -> int:
        return len(self.keys)


Fetch = Callable[[int, int], Awaitable[Page[P]]]


def _ceil_div(count: int, size: int) -> int:
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


class SeenKeys:
    """The keys of every task yielded so far, kept compact.

    Keys are held as their 64-bit hashes: the newest up to 2**13 in a set (checked a page at
    a time in C), older ones in an open-addressing table of 8-byte slots (half full at most):
    about 16 bytes a task, 4.4 MB for 200,000 tasks (a set of the strings would take ~60 MB;
    a set of the hashes, 8.7 MB at 2**17, for 0.04 s less per 200,000 keys). Two
    distinct keys share a 64-bit hash with odds near n**2 / 2**65: about 1e-8 for half a
    million tasks.
    """

    __slots__ = ("_mask", "_recent", "_slots", "_stored")
    _RECENT_MAX = 1 << 13

    def __init__(self) -> None:
        self._recent: set[int] = set()
        self._stored = 0
        self._mask = 0
        self._slots = memoryview(bytearray(8)).cast("q")

    def __len__(self) -> int:
        return len(self._recent) + self._stored

    def add_page(self, keys: Sequence[Key]) -> list[int] | None:
        """Record a page's keys; return the indexes of the new ones, or None if all are new."""
        recent = self._recent
        if not self._stored and None not in keys:
            # The common case in C: a page of distinct keys none of which was seen before.
            hashes = set(map(hash, keys))
            if len(hashes) == len(keys) and recent.isdisjoint(hashes):
                recent |= hashes
                self._compact()
                return None
        fresh: list[int] | None = None
        slots, mask, stored = self._slots, self._mask, self._stored
        for i, key in enumerate(keys):
            if key is None:  # no identity to dedupe on: always yielded
                if fresh is not None:
                    fresh.append(i)
                continue
            h = hash(key) or 1  # 0 marks an empty slot
            seen = h in recent
            if not seen and stored:
                j = h & mask
                while (v := slots[j]) and v != h:
                    j = (j + 1) & mask
                seen = v == h
            if seen:
                if fresh is None:
                    fresh = list(range(i))
                continue
            recent.add(h)
            if fresh is not None:
                fresh.append(i)
        self._compact()
        return fresh

    def _compact(self) -> None:
        """Move the set into the table once it is large: 8 bytes a key instead of ~70."""
        if len(self._recent) <= self._RECENT_MAX:
            return
        needed = 2 * (self._stored + len(self._recent))
        if needed > self._mask + 1:
            capacity = 1 << max(needed - 1, 1).bit_length()
            old = self._slots
            self._slots = memoryview(bytearray(8 * capacity)).cast("q")
            self._mask = capacity - 1
            self._stored = 0
            self._insert(v for v in old if v)
        self._insert(self._recent)
        self._recent.clear()

    def _insert(self, hashes: Iterable[int]) -> None:
        slots, mask = self._slots, self._mask
        for h in hashes:
            h = h or 1
            j = h & mask
            while slots[j]:
                j = (j + 1) & mask
            slots[j] = h
            self._stored += 1


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
    limit = max(1, _ceil_div(count, size))
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
) -> AsyncGenerator[tuple[Page[P], list[int] | None], None]:
    """Every page of a whole-space pull with the indexes of its tasks not yielded before.

    The second item is None when every task of the page is new (the common case), so the
    caller can pass a whole page on without looking at each task. ``resume`` (with the
    ``seen`` keys of what was already written) continues an interrupted pull.
    """
    seen = SeenKeys() if seen is None else seen
    first_pass = 2 if resume is not None and resume.pass_complete else 1
    start = resume if resume is not None and not resume.pass_complete else None
    if resume is not None:
        stats.expected = resume.count
        stats.planned_pages = max(1, _ceil_div(resume.count, resume.size))
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
                        stats.planned_pages = max(1, _ceil_div(count, page.size))
                elif page.count != count:
                    changed = True
                fresh = seen.add_page(page.keys)
                n_new = page.size if fresh is None else len(fresh)
                new += n_new
                dups += page.size - n_new
                if pass_no == 1:
                    stats.duplicates += page.size - n_new
                else:
                    stats.recovered += n_new
                stats.tasks += n_new
                yield page, fresh
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
