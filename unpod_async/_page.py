"""What a pull hands its consumers: pages, and the figures of the pull so far."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ._decode import Decoded, Key, PageCombiner, PageDecoder

__all__ = ["Horizon", "Page", "PullStats", "ResumePoint", "Source", "ceil_div"]

P = TypeVar("P")
T = TypeVar("T")


@dataclass(slots=True)
class PullStats:
    """Running figures of one pull.

    ``expected`` is the count page 1 reported and ``last_count`` the latest one; ``tasks``
    the distinct tasks delivered; ``duplicates`` tasks seen again and dropped; ``passes``
    how many full passes were read; ``repairs`` the re-reads around a boundary where a gap
    was possible, ``recovered`` the tasks they (or a re-read pass) found; ``arrivals`` tasks
    that arrived during the pull and were read from the head; ``rereads`` pages read again
    because they could not be right (short, empty, undecodable); ``requests`` page requests
    sent (retries aside, counted in ``retries``); ``missing`` how many fewer tasks than
    ``last_count`` the pull ended with (0 when complete); ``empty_pages`` pages delivered
    without a task (the one past a full last page, which confirms the end, is one);
    ``skipped`` the positions (0-based, in server order) of tasks the server fails every read
    of, skipped so the rest could come; ``stopped`` why the pull stopped early, if it did.
    """

    expected: int = 0
    pages: int = 0
    tasks: int = 0
    duplicates: int = 0
    passes: int = 0
    recovered: int = 0
    retries: int = 0
    planned_pages: int = 0
    requests: int = 0
    repairs: int = 0
    arrivals: int = 0
    rereads: int = 0
    empty_pages: int = 0
    last_count: int | None = None
    missing: int = 0
    stopped: str | None = None  # why the pull stopped early, if it did
    skipped: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether the pull delivered every task the server last counted."""
        return self.missing == 0 and self.stopped is None and not self.skipped


@dataclass(slots=True)
class Page(Generic[P]):
    """One page handed to a consumer: its number, the server's ``count`` at its moment, each
    task's dedupe key, the consumer's view of it, and which of its tasks are new.

    ``pass_no`` is 1 for the first pass and 2 or more for everything read after it (repairs,
    arrivals at the head, re-read passes).
    """

    number: int
    count: int | None
    keys: Sequence[Key]
    payload: P = field(repr=False)
    pass_no: int = 1
    seq: int = 0  # the order in which its answer arrived (its headers), among the client's
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


@dataclass(slots=True)
class ResumePoint:
    """Where an interrupted pull stopped: pages before ``next_page`` of pass 1 are done."""

    next_page: int
    size: int
    count: int
    dirty: bool = False  # the interrupted pass had already seen drift
    pass_complete: bool = False


@dataclass(frozen=True, slots=True)
class Source(Generic[P]):
    """Where pages come from: ``body(page, size)`` fetches the bytes (retried; only a small
    body's envelope is checked), ``decoded(page, size)`` fetches and decodes in the retry
    loop, ``decode`` turns bytes into the consumer's view, and ``combine`` joins consecutive
    pieces of a page into one (a page read in pieces around a task it cannot serve)."""

    body: Callable[[int, int], Awaitable[tuple[bytes, int]]]  # (bytes, answer order)
    decoded: Callable[..., Awaitable[Decoded[P]]]  # (page, size, retry_206=True)
    decode: PageDecoder[P]
    combine: PageCombiner[P]


class Horizon(Protocol):
    """Where a pass may end before the end of the space.

    ``plan(count, size)`` is how many pages the pass is expected to need (fetched at once; past
    them the pass reads on a few pages at a time). ``reached(page)`` is asked of the pages of a
    pass in page order (page 1 starts a pass) and says whether nothing past ``page`` is needed:
    the pass then ends there. It is asked of what the server served, before any repair, so it
    must only ever answer from tasks it has seen (a gap between pages never makes it true).
    """

    def plan(self, count: int | None, size: int) -> int: ...

    async def reached(self, page: Page[Any]) -> bool: ...


def ceil_div(count: int, size: int) -> int:
    # Integer arithmetic: a count of 10**400 is absurd but must not raise OverflowError.
    return -(-count // max(1, size))
