"""Admission control shared by every request of one client.

Three things decide when a request may go out:

* a bound on requests in flight, shared across concurrent calls (a FastAPI app sharing one
  client never exceeds it). Retries go to the front of its queue, so a page being retried
  does not wait behind the read-ahead. With ``adaptive=True`` it follows AIMD: it halves
  when the server says it is overloaded (429, 503), at most once per window of ``limit``
  answers, and creeps back up by one per window without one, never above the bound. It is
  off by default: against a server that sheds load it converges on the server's capacity,
  but a few stray 503s from a proxy would halve a bulk pull's speed for nothing (measured:
  5% random 503s cut a pull to under half its speed);
* a shared pause: a 429 holds every request of the client, not just the one that got it;
* an optional even request rate (``max_requests_per_minute``): requests are spaced, not burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable


class Gate:
    def __init__(
        self,
        limit: int,
        *,
        per_minute: float | None = None,
        adaptive: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.max_limit = limit
        self.limit = limit
        self.in_flight = 0
        self.peak_in_flight = 0
        self._adaptive = adaptive
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._next_send = 0.0
        self._last_sent = -math.inf
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._answers = 0  # answers in the current window of `limit` answers
        self._overloads = 0  # of which 429/503
        self._answers_since_cut = limit  # one cut per window: a burst of 503s halves once
        self._clock = clock

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def acquire(self, *, ahead: bool = False) -> None:
        """Wait for a slot, the end of any pause, and the next rate-limit tick.

        ``ahead`` queues the request ahead of every waiting one (a retry: the consumer is
        waiting for that page, not for the read-ahead behind it).
        """
        if self.in_flight >= self.limit or self._waiters:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if ahead:
                self._waiters.appendleft(fut)
            else:
                self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    # Woken and cancelled at once: the slot we were given goes to the next.
                    self.in_flight -= 1
                    self._wake()
                else:
                    # A release may already have popped (and skipped) this cancelled future.
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(fut)
                raise
        else:
            self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self._hold()
        except BaseException:
            self.release(overloaded=False, answered=False)
            raise

    async def _hold(self) -> None:
        reserved = False
        while True:
            now = self._now()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            if self._interval and not reserved:
                send_at = max(now, self._next_send)
                self._next_send = send_at + self._interval
                reserved = True
                if send_at > now:
                    await asyncio.sleep(send_at - now)
                    continue  # a pause may have begun meanwhile
            if self._interval:
                # A send woken late (a busy loop, a stalled process) must not go out right
                # before the next one's slot: the spacing holds between actual sends.
                early = self._last_sent + self._interval - now
                if early > 0:
                    self._next_send = max(self._next_send, now + early + self._interval)
                    await asyncio.sleep(early)
                    continue
                self._last_sent = now
            return

    def release(self, *, overloaded: bool, answered: bool) -> None:
        """Give the slot back; ``answered`` if the server answered, ``overloaded`` if 429/503."""
        self.in_flight -= 1
        if self._adaptive and answered:
            self._answers += 1
            if overloaded:
                self._overloads += 1
                if self._answers_since_cut >= self.limit:
                    self.limit = max(1, self.limit // 2)
                    self._answers_since_cut = 0
            if self._answers >= self.limit:
                if self._overloads == 0:
                    self.limit = min(self.max_limit, self.limit + 1)
                self._answers = self._overloads = 0
            self._answers_since_cut += 1
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
        if self._interval:
            self._next_send = max(self._next_send, self._paused_until)
