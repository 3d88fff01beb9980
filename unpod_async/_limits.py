"""Admission control shared by every request of one client.

Three things decide when a request may go out:

* a bound on requests in flight, shared across concurrent calls (a FastAPI app sharing one
  client never exceeds it), which adapts: it halves when the server says it is overloaded
  (429, 503) and creeps back up by one per window of successes (AIMD), never above the bound;
* a shared pause: a 429 holds every request of the client, not just the one that got it;
* an optional even request rate (``max_requests_per_minute``): requests are spaced, not burst.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class Gate:
    def __init__(
        self,
        limit: int,
        *,
        per_minute: float | None = None,
        adaptive: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.max_limit = limit
        self.limit = limit
        self.in_flight = 0
        self.peak_in_flight = 0
        self._adaptive = adaptive
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next_send = 0.0
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._epoch = 0  # bumped at each decrease: one overload burst halves the bound once
        self._successes = 0
        self._clock = clock

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def acquire(self) -> int:
        """Wait for a slot, the end of any pause, and the next rate-limit tick; returns a ticket."""
        if self.in_flight >= self.limit or self._waiters:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    # Woken and cancelled at once: the slot we were given goes to the next.
                    self.in_flight -= 1
                    self._wake()
                else:
                    self._waiters.remove(fut)
                raise
        else:
            self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self._hold()
        except BaseException:
            self.release(ticket=self._epoch, overloaded=False, ok=False)
            raise
        return self._epoch

    async def _hold(self) -> None:
        while True:
            now = self._now()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            if self._interval:
                send_at = max(now, self._next_send)
                self._next_send = send_at + self._interval
                if send_at > now:
                    await asyncio.sleep(send_at - now)
            return

    def release(self, *, ticket: int, overloaded: bool, ok: bool) -> None:
        self.in_flight -= 1
        if self._adaptive:
            if overloaded and ticket == self._epoch:
                self.limit = max(1, self.limit // 2)
                self._epoch += 1
                self._successes = 0
            elif ok and self.limit < self.max_limit:
                self._successes += 1
                if self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def pause(self, seconds: float) -> None:
        """Hold every request not yet sent for ``seconds`` (a 429's Retry-After)."""
        self._paused_until = max(self._paused_until, self._now() + seconds)
