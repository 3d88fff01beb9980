"""The page engine: one pass over a whole pull, fast, in order, and safe while the space changes.

Page 1 tells the ``count`` (and the page size the server really serves); the rest fan out under
the client's bound and are handed over in server order. Fetched pages wait as **bytes**, bounded
by a byte budget rather than a page count, so that while the head page waits out a retry the
fetchers keep going; a page is decoded only when the consumer reaches it (``_window``).

Tasks are newest first. New tasks arrive at the head and push the rest toward later pages (a
task seen twice is dropped by key); deletes pull tasks toward earlier pages. Every response
carries ``count`` at its moment, which bounds what can have moved between two adjacent pages:
a boundary where a gap was possible is repaired by one re-read around it (``_repair``), and
the tasks that arrived during the pull are read from the head at the end. A full re-read pass
is kept only for what cannot be reasoned about (an unknown count, a repair that cannot find
its anchors, a resumed pull of a space that changed).

A page that cannot be right is read again before it is believed: an undecodable body, an error
envelope inside a 200, a short or empty page while the count says more exist. A pull that
still ends with fewer tasks than the last count says so (``PullStats.missing``), and the
requests of a pull are bounded (``max_requests``). A page one stored task makes the server
fail is read in pieces around it (``_isolate``).

A pull may also end a pass early, where a ``_page.Horizon`` says nothing further is needed
(an incremental sync reads only the head of a space): the pages read are still checked,
repaired and followed by the head's arrivals as in a whole pass; only the pages past the
horizon are not read.

The engine knows nothing of HTTP: a ``_page.Source`` gives it bytes, decoded pages, a decoder.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Generic, TypeVar

from ._decode import Decoded, Key, count_of
from ._errors import BusinessLogicError, IncompletePullError
from ._isolate import read_in_pieces
from ._page import Horizon, Page, PullStats, ResumePoint, Source, ceil_div
from ._repair import Boundary, RepairPlan, anchors_in, head_anchor, pack_anchors, suspect
from ._response import DECODE_ERRORS, envelope_error
from ._seen import SeenKeys
from ._window import Fetched, Window

__all__ = ["Pager"]

logger = logging.getLogger("unpod_async")

P = TypeVar("P")
T = TypeVar("T")

ANCHOR_KEYS = 8  # keys kept from each side of a boundary that may need a repair
MAX_REPAIR_ATTEMPTS = 4


class _Stop(Exception):
    """The request ceiling was reached: stop the pull where it is."""


class Pager(Generic[P]):
    """One pull: the pages of a whole space, each task once, bounded in memory and requests."""

    def __init__(
        self,
        source: Source[P],
        *,
        page_size: int,
        concurrency: int,
        read_ahead_bytes: int,
        stats: PullStats,
        seen: SeenKeys | None = None,
        resume: ResumePoint | None = None,
        max_passes: int = 4,
        max_requests: int | None = None,
        strict: bool = False,
        horizon: Horizon | None = None,
    ) -> None:
        self._source = source
        self._horizon = horizon
        self._bounded = False  # the latest pass ended at the horizon
        self._strict = strict
        self._page_size = page_size
        self._concurrency = concurrency
        self._budget = read_ahead_bytes
        self.stats = stats
        self._seen = SeenKeys() if seen is None else seen
        self._resume = resume
        self._max_passes = max(1, max_passes)
        self._max_requests = max_requests
        self._size = page_size
        self._boundaries: list[Boundary] = []  # adjacent pages that did not overlap
        self._samples: list[tuple[int, int]] = []  # (answer order, count) of pass-1 pages
        self._movement = 0  # the count's total movement over pass 1
        self._head_keys: tuple[Key, ...] = ()
        self._drift = False  # duplicates seen, or a count that moved
        self._unknown_count = False
        self._useful_pages = 0  # pages that brought a new task
        self._read_in_pieces = False  # a page was read in pieces around a poisoned task

    # --- the whole pull -------------------------------------------------------------------

    async def pages(self) -> AsyncGenerator[Page[P], None]:
        try:
            if self._resume is not None:
                async with aclosing(self._resumed()) as pages:
                    async for page in pages:
                        yield page
            else:
                async with aclosing(self._first_pass()) as pages:
                    async for page in pages:
                        yield page
                async with aclosing(self._after_pass()) as pages:
                    async for page in pages:
                        yield page
        except _Stop:
            pass
        self._finish()

    async def _after_pass(self) -> AsyncGenerator[Page[P], None]:
        """Repairs around the boundaries where a gap was possible, then the head's arrivals;
        a full re-read pass only where that cannot be reasoned about."""
        # Pieces of a page keep no boundary to repair: a space that moved reads again whole.
        pieces_moved = self._read_in_pieces and self._arrivals_possible()
        reread = (self._unknown_count and self._drift) or pieces_moved
        boundaries = self._suspect_boundaries()
        if self._drift:
            stats = self.stats
            logger.info(
                "space changed during the pass (count %s -> %s, %d duplicates dropped): "
                "re-reading around %d page boundaries, then the head",
                stats.expected,
                stats.last_count,
                stats.duplicates,
                len(boundaries),
            )
        # Repairs are independent small reads: all at once, under the client's bound. While
        # they are in flight the space keeps moving at the pace the pass saw: widen each
        # read by what that pace moves the boundaries during a round of them.
        rate = self._movement / max(1, self.stats.requests)
        slack = math.ceil(rate * min(len(boundaries), 2 * self._concurrency))
        repaired = await asyncio.gather(*(self._repair(b, slack) for b in boundaries))
        for page in repaired:
            if page is None:
                reread = True
            elif page.n_new:
                yield page
        if reread:
            async with aclosing(self._reread_passes(first_pass_no=2)) as pages:
                async for page in pages:
                    yield page
        elif self._arrivals_possible():
            async with aclosing(self._head()) as pages:
                async for page in pages:
                    yield page

    async def _resumed(self) -> AsyncGenerator[Page[P], None]:
        """An interrupted pull: finish pass 1 from the checkpoint, then re-read whole passes
        while the space moved (the old boundaries are not known any more)."""
        resume = self._resume
        assert resume is not None
        stats = self.stats
        stats.expected = resume.count
        stats.last_count = resume.count
        self._size = resume.size
        stats.planned_pages = max(1, ceil_div(resume.count, resume.size))
        changed = resume.dirty
        if not resume.pass_complete:
            stats.passes = 1
            async with aclosing(self._fan_out(resume.next_page, resume.count)) as pages:
                async for page in pages:
                    page.pass_no = 1
                    changed = changed or page.count != resume.count or not page.all_new
                    yield page
            if not changed:
                return
        async with aclosing(self._reread_passes(first_pass_no=2)) as pages:
            async for page in pages:
                yield page

    def _finish(self) -> None:
        """Say whether the pull is short: a WARNING, the stats, and with ``strict`` an error."""
        stats = self.stats
        last = stats.last_count
        # A pass that ended at its horizon read only the head: the count says nothing of it.
        counted = None if self._bounded else last
        stats.missing = max(0, counted - len(self._seen)) if counted is not None else 0
        if stats.stopped is not None:
            message = f"pull stopped early ({stats.stopped}) with {stats.tasks} tasks"
        elif stats.missing:
            message = (
                f"pull incomplete: {len(self._seen)} distinct tasks, but the server last "
                f"counted {last} ({stats.missing} missing after re-reads)"
            )
        else:
            return
        if self._strict:
            raise IncompletePullError(
                message,
                tasks=stats.tasks,
                last_count=last,
                missing=stats.missing,
                reason=stats.stopped,
            )
        # Marked: a caller that reports the stats (the command line) says it once, not twice.
        logger.warning("%s", message, extra={"unpod_in_stats": True})

    # --- pass 1 -----------------------------------------------------------------------------

    async def _first_pass(self) -> AsyncGenerator[Page[P], None]:
        stats = self.stats
        stats.passes = 1
        first = await self._read_first()
        count = first.count
        page = self._deliver(1, first, pass_no=1)
        stats.expected = count or 0
        stats.last_count = count
        stats.planned_pages = max(1, ceil_div(count or 0, self._size))
        self._head_keys = tuple(first.keys[:ANCHOR_KEYS])
        yield page
        if first.size + first.skipped < self._size:
            return  # empty, or fewer than asked and no more exist: the whole space
        if await self._ends_pass(page):
            return
        async with aclosing(self._fan_out(2, count, previous=page)) as pages:
            async for later in pages:
                yield later

    async def _read_first(self) -> Decoded[P]:
        """Page 1, believed only once it can be right: an empty page 1 while the count says
        there are tasks is read again. A short one tells the page size the server caps to
        (planning with it is right either way: smaller pages still tile the space)."""
        size = self._page_size
        first = await self._request_decoded(1, size)
        count = first.count
        if first.size == 0 and count:
            again = await self._reread(1, size)
            if again.size > first.size:
                first = again
            count = first.count
        served = first.size + first.skipped
        if 0 < served < size and count is not None and count > served:
            self._size = served
            logger.info("server served %d tasks per page (asked for %d)", served, size)
        first.count = count
        return first

    async def _fan_out(
        self, start: int, count: int | None, previous: Page[P] | _Edge | None = None
    ) -> AsyncGenerator[Page[P], None]:
        """Pages ``start``, ``start + 1``, ... of one pass, in order, until the end."""
        stats, size = self.stats, self._size
        latest = count
        if count is None:
            self._unknown_count = True
        limit = self._planned_last(count, start)
        if self._horizon is not None:
            limit = max(start, min(limit, self._horizon.plan(count, size)))
        window = Window(
            self._fetch_body,
            size=size,
            start=start,
            limit=limit,
            max_unanswered=2 * self._concurrency,
            max_ahead=max(64, 32 * self._concurrency),
            budget=self._budget,
        )
        probe = 1
        number = start
        try:
            while True:
                try:
                    fetched = await window.take(number)
                except BusinessLogicError as exc:
                    decoded = await self._isolate(number, size, exc)
                else:
                    decoded = await self._decode(fetched)
                if decoded.count is not None:
                    latest = decoded.count
                    stats.last_count = latest
                else:
                    self._unknown_count = True
                if self._suspicious(number, decoded, latest):
                    window.hold()  # nothing past a page that may be the end, meanwhile
                    again = await self._reread(number, size)
                    window.release()
                    if again.size > decoded.size:
                        decoded = again
                        latest = again.count if again.count is not None else latest
                page = self._deliver(number, decoded, pass_no=1)
                if previous is not None:
                    self._classify(previous, page)
                yield page
                # What the next boundary needs of this page, not its tasks: those are freed
                # as soon as the consumer is done with them.
                previous = _Edge(page.number, page.count, page.seq, page.keys)
                past_plan = number >= self._planned_last(latest, start)
                if page.size + decoded.skipped < size or (past_plan and page.n_new == 0):
                    return  # a short page, an empty one, or nothing new past the count
                if await self._ends_pass(page):
                    return
                number += 1
                if number > window.limit:
                    planned = self._planned_last(latest, start)
                    if planned >= number and self._horizon is None:
                        window.extend(planned)
                    else:
                        # Short of a horizon, or past an understated count: on a few pages at
                        # a time, more each time (while pages come full).
                        probed = number + probe - 1
                        window.extend(min(planned, probed) if planned >= number else probed)
                        probe = min(2 * probe, 2 * self._concurrency)
        finally:
            await window.aclose()

    async def _isolate(self, number: int, size: int, error: BusinessLogicError) -> Decoded[P]:
        """A page the server still fails after its retries, read in pieces (see
        :func:`read_in_pieces`); with ``strict``, its error."""
        if self._strict or not error.transient:
            raise error
        parts, skipped = await read_in_pieces(self._read, number, size, error)
        known = self.stats.skipped
        known.extend(position for position in skipped if position not in known)
        # The pieces are many reads, with no boundary kept between them: if the space moves
        # at all during the pull, tasks may have slipped between two of them (see
        # ``_after_pass``).
        self._read_in_pieces = True
        if len({part.count for part in parts}) > 1:
            self._drift = True
        page = self._source.combine(parts)
        page.count = _count(page)
        page.skipped = len(skipped)
        return page

    def _planned_last(self, count: int | None, start: int) -> int:
        """The last page of a pass that ``count`` implies, plus the one that confirms a full
        last page's end (sent with the tail rather than after it)."""
        if count is None:
            return start
        last = max(1, ceil_div(count, self._size))
        if count % self._size == 0:
            last += 1
        self.stats.planned_pages = max(self.stats.planned_pages, last)
        return max(last, start)

    def _suspicious(self, number: int, decoded: Decoded[P], count: int | None) -> bool:
        """A page shorter than its count says it should be: a symptom, not the end."""
        served = decoded.size + decoded.skipped
        if count is None or served >= self._size:
            return False
        return count > (number - 1) * self._size + served

    # --- boundaries and repairs -------------------------------------------------------------

    def _classify(self, before: Page[P] | _Edge, after: Page[P]) -> None:
        """Keep the boundary between two adjacent pages unless it is plainly whole: a task of
        the earlier page seen again at the start of the later one means the later page starts
        at or before the earlier one's end."""
        if not before.keys or before.count is None or after.count is None:
            return
        if before.count != after.count:
            self._drift = True
        if after.keys and after.keys[0] in before.keys:
            return
        # An empty later page is the end of the space: the boundary with it is kept too
        # (no head anchors: its repair reads on to the end).
        self._boundaries.append(
            Boundary(
                position=before.number * self._size,
                tail=pack_anchors(before.keys[-ANCHOR_KEYS:]),
                head=pack_anchors(after.keys[:ANCHOR_KEYS]),
                count_before=before.count,
                count_after=after.count,
                seq_before=before.seq,
                seq_after=after.seq,
            )
        )

    def _suspect_boundaries(self) -> list[Boundary]:
        boundaries, self._boundaries = self._boundaries, []
        # Tasks seen twice count as arrivals too: as many deletes as arrivals keep the count
        # level, while tasks still moved.
        twice = self.stats.duplicates > 0
        suspects, self._movement = suspect(boundaries, self._samples, arrived=twice)
        return suspects

    async def _repair(self, boundary: Boundary, slack: int = 0) -> Page[P] | None:
        """Re-read around ``boundary`` until one response holds a task of each side; what lies
        between them is what the pass may have missed. ``None`` if the anchors are not found."""
        plan = RepairPlan(boundary, slack)
        for _ in range(MAX_REPAIR_ATTEMPTS):
            number, size = plan.next_read(self.stats.last_count)
            decoded = await self._request_decoded(number, size)
            self.stats.repairs += 1
            if decoded.count is not None:
                self.stats.last_count = decoded.count
            reached_end = decoded.size + decoded.skipped < size
            span = anchors_in(decoded.keys, boundary, reached_end=reached_end)
            if span is None:
                plan.missed(decoded.keys)
                continue
            lo, hi = span
            page = self._deliver(number, decoded, pass_no=2, only=range(lo, hi))
            self.stats.recovered += page.n_new
            if page.n_new:
                logger.info(
                    "recovered %d tasks around page %d that the space's changes had shifted",
                    page.n_new,
                    boundary.position // self._size,
                )
            return page
        logger.info("could not re-read around position %d; reading again", boundary.position)
        return None

    def _arrivals_possible(self) -> bool:
        stats = self.stats
        grew = stats.last_count is not None and stats.last_count > stats.expected
        return grew or stats.duplicates > 0 or self._drift

    async def _head(self) -> AsyncGenerator[Page[P], None]:
        """The tasks that arrived during the pull: the head, read until a task of page 1."""
        if not self._head_keys:
            return
        number = 1
        while True:
            decoded = await self._request_decoded(number, self._size)
            if decoded.count is not None:
                self.stats.last_count = decoded.count
            end = head_anchor(decoded.keys, self._head_keys)
            found = end is not None
            stop = end if end is not None else decoded.size
            page = self._deliver(number, decoded, pass_no=2, only=range(stop))
            self.stats.arrivals += page.n_new
            if page.n_new:
                yield page
            if found or decoded.size + decoded.skipped < self._size:
                return
            number += 1

    async def _reread_passes(self, first_pass_no: int) -> AsyncGenerator[Page[P], None]:
        """Whole passes again, while a pass still finds something new (up to ``max_passes``)."""
        stats = self.stats
        for pass_no in range(first_pass_no, max(self._max_passes, first_pass_no) + 1):
            stats.passes = pass_no
            self._bounded = False
            stats.skipped.clear()  # a whole pass again: what it skips is what is skipped
            first = await self._request_decoded(1, self._size)
            count = _count(first)
            if count is not None:
                stats.last_count = count
            new = 0
            page = self._deliver(1, first, pass_no=pass_no)
            new += page.n_new
            changed = False
            if page.n_new:
                yield page
            full = first.size + first.skipped >= self._size
            if full and not await self._ends_pass(page):
                async with aclosing(self._fan_out(2, count)) as pages:
                    async for later in pages:
                        later.pass_no = pass_no
                        changed = changed or later.count != count
                        new += later.n_new
                        if later.n_new:
                            yield later
            stats.recovered += new
            if new == 0 and not changed:
                if pass_no > 1:
                    logger.info(
                        "space settled after %d passes: %d duplicates dropped, %d recovered",
                        pass_no,
                        stats.duplicates,
                        stats.recovered,
                    )
                return
            logger.info(
                "space changed during pass %d (%d new tasks): reading it again", pass_no, new
            )
        logger.warning(
            "space still changing after %d passes; stopping with %d tasks",
            self._max_passes,
            stats.tasks,
        )

    # --- pages in and out -------------------------------------------------------------------

    def _deliver(
        self, number: int, decoded: Decoded[P], *, pass_no: int, only: range | None = None
    ) -> Page[P]:
        """Mark which tasks of a page are new (``only`` a part of it may be) and count them."""
        stats = self.stats
        keys = decoded.keys
        page = Page(number, decoded.count, keys, decoded.payload, pass_no, decoded.seq)
        if pass_no == 1 and only is None and decoded.count is not None:
            self._samples.append((decoded.seq, decoded.count))
        if only is None:
            page._new = self._seen.add_page(keys)
        else:
            fresh = self._seen.add_page(keys[only.start : only.stop])
            part = list(only) if fresh is None else [only.start + i for i in fresh]
            page._new = None if len(part) == len(keys) else part
        stats.pages += 1
        if page.size == 0:
            stats.empty_pages += 1
        stats.tasks += page.n_new
        if page.n_new:
            self._useful_pages += 1
        if only is None:
            stats.duplicates += page.size - page.n_new
            if page.size != page.n_new:
                self._drift = True
        return page

    async def _ends_pass(self, page: Page[P]) -> bool:
        """Whether the horizon says this pass needs nothing past ``page``."""
        if self._horizon is None or not await self._horizon.reached(page):
            return False
        self._bounded = True
        return True

    def _count_request(self) -> None:
        stats = self.stats
        stats.requests += 1
        ceiling = self._max_requests
        if ceiling is None:
            # A documented multiple of the planned pages: 4 x planned + 8 x concurrency + 16.
            # Without a count, the pages that brought new tasks are the plan.
            planned = stats.planned_pages
            if self._unknown_count:
                planned = max(planned, self._useful_pages)
            ceiling = 4 * max(1, planned) + 8 * self._concurrency + 16
        if stats.requests > ceiling:
            stats.stopped = f"request ceiling of {ceiling} reached"
            raise _Stop

    async def _fetch_body(self, number: int, size: int) -> Fetched:
        self._count_request()
        body, order = await self._source.body(number, size)
        return Fetched(number, body, order)

    async def _request_decoded(self, number: int, size: int) -> Decoded[P]:
        """One page, decoded inside its retry loop; one the server still fails with its
        transient 206 is read in pieces around the task that makes it fail, on every path
        (page 1, repairs, the head, re-reads)."""
        try:
            return await self._read(number, size)
        except BusinessLogicError as exc:
            return await self._isolate(number, size, exc)

    async def _read(self, number: int, size: int, retry_206: bool = True) -> Decoded[P]:
        self._count_request()
        decoded = await self._source.decoded(number, size, retry_206)
        decoded.count = _count(decoded)
        return decoded

    async def _reread(self, number: int, size: int) -> Decoded[P]:
        self.stats.rereads += 1
        logger.info("page %d is shorter than the count says: reading it again", number)
        return await self._request_decoded(number, size)

    async def _decode(self, fetched: Fetched) -> Decoded[P]:
        """Decode a fetched page at the consumer; a body that cannot be right (undecodable, or
        an error envelope) is fetched again with the decode inside the retry loop, so that it
        is retried, or fails with its own typed error."""
        try:
            decoded = self._source.decode(fetched.body)
        except DECODE_ERRORS:
            decoded = None
        if decoded is None or envelope_error(decoded.status_code) is not None:
            self.stats.rereads += 1
            return await self._request_decoded(fetched.number, self._size)
        decoded.seq = fetched.seq
        decoded.count = _count(decoded)
        return decoded


class _Edge:
    """The figures of a page the boundary after it is judged by (its tasks long freed)."""

    __slots__ = ("count", "keys", "number", "seq")

    def __init__(self, number: int, count: int | None, seq: int, keys: Sequence[Key]) -> None:
        self.number, self.count, self.seq, self.keys = number, count, seq, keys


def _count(decoded: Decoded[P]) -> int | None:
    """The server's count as a non-negative int, or None when it is missing or nonsense."""
    return count_of(decoded.count)
