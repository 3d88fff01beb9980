"""The read-ahead window of a pass: pages fetched ahead of the consumer, kept as bytes.

Fetches are launched while fewer than ``max_unanswered`` are waiting for an answer and the
bytes fetched but not yet taken stay under ``budget``. Both bounds, not a count of pages
ahead, decide: while the consumer waits for a head page that is backing off before a retry,
the other fetchers keep going until the budget is full, so one slow page does not drain the
window behind it; and memory stays bounded whatever the size of the space. A page waits as
the bytes the server sent (no decoded objects going cold in the cache), and is decoded when
the consumer takes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

__all__ = ["Fetched", "Window"]


@dataclass(slots=True)
class Fetched:
    """The bytes of one page as the server sent them."""

    number: int
    body: bytes
    seq: int = 0  # the order in which its answer arrived


class Window:
    """Pages ``start`` .. ``limit`` of one pass, fetched ahead and taken in order.

    ``max_ahead`` caps the pages launched past the consumer too, for pages so small that the
    byte budget would admit thousands of them.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], Awaitable[Fetched]],
        *,
        size: int,
        start: int,
        limit: int,
        max_unanswered: int,
        max_ahead: int,
        budget: int,
    ) -> None:
        self._fetch = fetch
        self._size = size
        self._next = start
        self.limit = limit
        self._max_unanswered = max(1, max_unanswered)
        self._max_ahead = max(1, max_ahead)
        self._budget = budget
        self._taken = start  # the next page the consumer takes
        self._held = False
        # A page answered much smaller than the biggest seen is likely the end of the space
        # (short or empty): launch nothing past it until the consumer asks for more.
        self._largest = 0
        self._stop_after: int | None = None
        self._futures: dict[int, asyncio.Future[Fetched]] = {}
        self._unanswered = 0
        self.buffered = 0  # bytes fetched and not yet taken
        self._closed = False
        self._fill()

    def extend(self, limit: int) -> None:
        """Fetch up to page ``limit`` (the count grew, or an understated count is probed)."""
        if limit > self.limit:
            self.limit = limit
            self._fill()

    def _resume_past(self, number: int) -> None:
        if self._stop_after is not None and number >= self._stop_after:
            self._stop_after = None

    def hold(self) -> None:
        """Launch nothing more until :meth:`release` (the consumer is checking a page that
        may be the end)."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self._fill()

    def _fill(self) -> None:
        while (
            not self._closed
            and not self._held
            and self._next <= self.limit
            and self._unanswered < self._max_unanswered
            and self.buffered < self._budget
            and self._next - self._taken < self._max_ahead
            and (self._stop_after is None or self._next <= self._stop_after)
        ):
            number = self._next
            self._next += 1
            future = asyncio.ensure_future(self._fetch(number, self._size))
            self._unanswered += 1
            future.add_done_callback(partial(self._answered, number))
            self._futures[number] = future

    def _answered(self, number: int, future: asyncio.Future[Fetched]) -> None:
        self._unanswered -= 1
        if self._closed or future.cancelled() or future.exception() is not None:
            return
        if number in self._futures:
            size = len(future.result().body)
            self.buffered += size
            small = size * 4 < self._largest
            if small and (self._stop_after is None or number < self._stop_after):
                self._stop_after = number
            self._largest = max(self._largest, size)
        self._fill()

    async def take(self, number: int) -> Fetched:
        """Page ``number`` (the next in order), once fetched; its fetch's error if it failed."""
        self._resume_past(number)
        if number not in self._futures:
            # Pages are launched in order and taken in order, so a page not launched yet is
            # past the limit (the bounds never hold back the smallest page not taken).
            self.extend(number)
            self._fill()
        future = self._futures[number]
        if future.done():
            # Taken without waiting: let the event loop run once, so that a consumer going
            # through a full window does not hold it for the whole window.
            await asyncio.sleep(0)
        try:
            fetched = await future
        finally:
            if future.done():
                del self._futures[number]
        self.buffered -= len(fetched.body)
        self._taken = number + 1
        self._fill()
        return fetched

    async def aclose(self) -> None:
        """Cancel every fetch still in flight, and wait until they are gone."""
        self._closed = True
        futures = list(self._futures.values())
        self._futures.clear()
        for future in futures:
            future.cancel()
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)
