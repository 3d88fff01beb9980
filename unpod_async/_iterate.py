"""The simplest consumers of a page stream: an async iterator of tasks, and a list."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from contextlib import aclosing
from typing import Any, Generic, TypeVar

from ._page import Page, PullStats

__all__ = ["TaskIterator", "collect"]

T = TypeVar("T")


ItemsOf = Callable[[Page[Any]], Sequence[Any]]


async def _items(
    pages: AsyncGenerator[Page[Any], None], items_of: ItemsOf
) -> AsyncGenerator[Any, None]:
    async with aclosing(pages):
        async for page in pages:
            for item in items_of(page):
                yield item


class TaskIterator(AsyncGenerator[T, None], Generic[T]):
    """Every item of a pull, once each, in server order; ``stats`` fills in as it goes.

    An async generator like any other: ``async for`` it, and close it early with
    ``contextlib.aclosing`` (or ``await it.aclose()``) to cancel what is in flight.

    >>> tasks = client.iter_tasks("SPACE_TOKEN")
    >>> async with aclosing(tasks):
    ...     async for task in tasks:
    ...         ...
    >>> tasks.stats.tasks, tasks.stats.complete
    """

    def __init__(
        self, pages: AsyncGenerator[Page[Any], None], stats: PullStats, items_of: ItemsOf
    ) -> None:
        self._gen: AsyncGenerator[T, None] = _items(pages, items_of)
        self.stats = stats

    def __aiter__(self) -> TaskIterator[T]:
        return self

    # Plain methods handing back the generator's own awaitables: no extra coroutine per item.
    def __anext__(self) -> Coroutine[Any, Any, T]:
        return self._gen.__anext__()

    def asend(self, value: None) -> Coroutine[Any, Any, T]:
        return self._gen.asend(value)

    def athrow(self, typ: Any, val: Any = None, tb: Any = None) -> Coroutine[Any, Any, T]:
        return self._gen.athrow(typ, val, tb)

    def aclose(self) -> Coroutine[Any, Any, None]:
        return self._gen.aclose()

    def __repr__(self) -> str:
        return f"<TaskIterator {self.stats.tasks} tasks so far>"


async def collect(pages: AsyncGenerator[Page[Any], None], items_of: ItemsOf) -> list[Any]:
    """Every item of a pull in one list, a page at a time (no await per item)."""
    items: list[Any] = []
    async with aclosing(pages):
        async for page in pages:
            items.extend(items_of(page))
    return items
