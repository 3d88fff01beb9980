"""A page the server cannot serve because of one stored task in it: read it in pieces.

One stored task that fails the backend's response model makes every page holding it answer
206 "Tasks Fetch Failed", every time, while pages without it work. Such a page is read again
in smaller pieces (a piece of ``length`` at ``start`` is page ``start // length + 1`` of that
size: any divisor of the page size lines up), level by level down to single positions: only
the positions that still fail are skipped, every task that can be read is kept. When every
piece of a level fails, and there are three or more, the server is failing, not one task: the
page's own error is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._decode import Decoded
from ._errors import BusinessLogicError

__all__ = ["read_in_pieces"]

logger = logging.getLogger("unpod_async")

P = TypeVar("P")

# (page, length, retry_206) -> the piece: every passing fault is retried, and a 206 too when
# retry_206 is true.
ReadPiece = Callable[[int, int, bool], Awaitable[Decoded[P]]]


async def read_in_pieces(
    read: ReadPiece[P], number: int, size: int, error: BusinessLogicError
) -> tuple[list[Decoded[P]], list[int]]:
    """The readable pieces of page ``number`` (in order), and the positions skipped."""
    logger.info("page %d fails after its retries (%s): reading it in pieces", number, error)
    parts: dict[int, Decoded[P]] = {}
    failing = [(number - 1) * size]
    length = size
    while failing and length > 1:
        whole, length = length, length // smallest_factor(length)
        # A piece that answers 206 is split at once (it fails for the page's reason); a
        # single position gets its 206 retried too before it is skipped: never drop a
        # readable task for a passing fault. Every other fault (a reset, a 503) is retried.
        retry_206 = length == 1
        pieces = [f + i * length for f in failing for i in range(whole // length)]
        failing, ok = [], 0
        for start in pieces:
            try:
                part = await read(start // length + 1, length, retry_206)
            except BusinessLogicError as exc:
                if not exc.transient:
                    raise
                failing.append(start)
                continue
            ok += 1
            parts[start] = part
        if ok == 0 and len(failing) >= 3:
            raise error  # everything fails: the server, not one task
    skipped = failing if length == 1 else []
    for position in skipped:
        logger.warning(
            "skipped the task at position %d (page %d of %d): the server fails every "
            "read that includes it (%s)",
            position,
            number,
            size,
            error.message,
            extra={"unpod_in_stats": True},
        )
    if not parts:
        raise error  # nothing of the page could be read
    return [parts[start] for start in sorted(parts)], skipped


def smallest_factor(n: int) -> int:
    """The smallest prime factor of ``n`` (>= 2): how many pieces a failing range splits into."""
    factor = 2
    while factor * factor <= n:
        if n % factor == 0:
            return factor
        factor += 1
    return n
