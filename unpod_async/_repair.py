"""Repairing one boundary of a pass where a task may have slipped between two pages.

Between two adjacent pages read at different moments, tasks can shift: a delete pulls later
tasks up, an arrival (while the pages were served out of order) pushes earlier ones down, and
a task can then be on neither page. Tasks that exist throughout the pull keep their order, so a
missed task lies after the last task of the earlier page and before the first task of the
later one, in every response. One response that holds a task of each side (an *anchor*) shows
exactly what lies between them: that is the repair.

The server's counts tell where to look: the boundary has moved by the count's change since the
earlier page was read, and the gap is at most the change across the boundary. A read that
misses an anchor shows which way to move, and the window doubles on each attempt. Page size is
ours to choose, so one request covers the range wherever it falls.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from ._decode import Key

__all__ = [
    "Boundary",
    "RepairPlan",
    "anchors",
    "anchors_in",
    "cover",
    "head_anchor",
    "pack_anchors",
    "suspect",
]


@dataclass(frozen=True, slots=True)
class Boundary:
    """Two adjacent pages that did not overlap: ``position`` is the index (0-based) the later
    page started at when the earlier one was read; ``tail``/``head`` the hashes of the last
    keys of the earlier page and the first keys of the later one; the counts and answer
    orders are those of the two pages, ``moved`` the count's total movement between them."""

    position: int
    tail: bytes  # the anchors' hashes, packed (see pack_anchors): one boundary a page is kept
    head: bytes
    count_before: int
    count_after: int
    seq_before: int = 0
    seq_after: int = 0
    moved: int = 0

    @property
    def gap(self) -> int:
        """About the most tasks that can have slipped between the two pages."""
        return max(1, self.moved, abs(self.count_before - self.count_after))


def pack_anchors(keys: Sequence[Key]) -> bytes:
    """The hashes of ``keys`` as 8 bytes each (a boundary is kept for every page of a pass)."""
    return array("q", map(hash, keys)).tobytes()


def anchors(packed: bytes) -> frozenset[int]:
    """The hashes :func:`pack_anchors` packed."""
    table = array("q")
    table.frombytes(packed)
    return frozenset(table)


def cover(lo: int, hi: int) -> tuple[int, int]:
    """A ``(page, page_size)`` whose one page holds every index in ``[lo, hi)``."""
    span = max(1, hi - lo)
    for size in range(span, 4 * span + 16):
        if lo % size <= size - span:
            return lo // size + 1, size
    return 1, hi  # not reached in practice: page 1 holds everything up to hi


class RepairPlan:
    """Successive reads around one boundary, each wider than the last."""

    def __init__(self, boundary: Boundary, slack: int = 0) -> None:
        self._boundary = boundary
        self._slack = slack  # how far the boundary may move while the read is in flight
        self._shift = 0
        self._attempt = 0
        self._margin = 0

    def next_read(self, latest_count: int | None) -> tuple[int, int]:
        b = self._boundary
        now = latest_count if latest_count is not None else b.count_after
        # Arrivals and deletes since the earlier page moved the boundary by about the count's
        # change; the earlier page's last tasks sit just before it.
        center = b.position + (now - b.count_before) + self._shift
        self._margin = (b.gap + len(b.tail) // 8 + 2 + self._slack) * 2**self._attempt
        self._attempt += 1
        lo = max(0, center - self._margin)
        return cover(lo, center + b.gap + self._margin)

    def missed(self, keys: Sequence[Key]) -> None:
        """The last read held no pair of anchors: move toward the side it did not reach."""
        b = self._boundary
        tail, head = anchors(b.tail), anchors(b.head)
        hashes = set(map(hash, keys))
        saw_tail = not tail.isdisjoint(hashes)
        saw_head = not head.isdisjoint(hashes)
        if saw_head and not saw_tail:
            self._shift -= self._margin  # the read started after the earlier page's end
        elif saw_tail and not saw_head:
            self._shift += self._margin
        elif not saw_tail and not saw_head and not head and keys:
            self._shift -= self._margin  # past the end's boundary: look earlier


def anchors_in(
    keys: Sequence[Key], boundary: Boundary, *, reached_end: bool = False
) -> tuple[int, int] | None:
    """``(lo, hi)``: the indexes of ``keys`` strictly between the last task of the earlier
    page and the first following task of the later one, if the response holds both. A later
    page that was empty (the end of the space) has no anchor: then what follows the earlier
    page's last task up to the end counts, if the response ``reached_end``."""
    tail, head = anchors(boundary.tail), anchors(boundary.head)
    hashes = [hash(k) for k in keys]
    last_tail = None
    for i in range(len(hashes) - 1, -1, -1):
        if hashes[i] in tail:
            last_tail = i
            break
    if last_tail is None:
        return None
    if not head:
        return (last_tail + 1, len(keys)) if reached_end else None
    for j in range(last_tail + 1, len(hashes)):
        if hashes[j] in head:
            return last_tail + 1, j
    return None


def head_anchor(keys: Sequence[Key], head: Sequence[Key]) -> int | None:
    """The index of the first of ``keys`` that was on page 1 of the pass, if any."""
    known = set(head)
    for i, key in enumerate(keys):
        if key in known:
            return i
    return None


def suspect(
    boundaries: Sequence[Boundary], samples: Sequence[tuple[int, int]], *, arrived: bool = False
) -> tuple[list[Boundary], int]:
    """The boundaries across which a task can have slipped, from the counts.

    Every answer carries the count at its moment, and answers are numbered in the order
    they arrived. Tasks that stay keep their order, so across a boundary the later page
    moved by ``arrivals - deletes ahead of it`` between the two answers, never less than
    the count's change: pages answered in order with a count that did not drop cannot
    have missed a task, whatever happened between them. Pages answered out of order can
    have, if any task arrived between them, and an arrival and a delete landing between
    the same two answers leave the count unchanged: so once the pull has seen tasks
    arrive, every such boundary is suspect. A count that dropped is suspect too.

    ``samples`` are the ``(answer order, count)`` of the pass's pages; ``arrived`` says tasks
    are known to have arrived anyway (a task seen twice: as many deletes as arrivals keep the
    count level while tasks move). The second value returned is the count's total movement.
    """
    ordered = sorted(samples)
    if not boundaries or (len({count for _, count in ordered}) <= 1 and not arrived):
        return [], 0  # the count never moved and nothing was seen twice: a still space
    seqs = [seq for seq, _ in ordered]
    moves = [0]  # moves[i]: the count's total movement over ordered[0..i]
    for (_, before), (_, after) in pairwise(ordered):
        moves.append(moves[-1] + abs(after - before))
        arrived = arrived or after > before
    suspects = []
    for b in boundaries:
        if b.seq_before < b.seq_after:
            if b.count_after >= b.count_before:
                continue
        elif not arrived:
            continue  # out of order, but deletes only ever pull the later page up
        lo, hi = sorted((b.seq_before, b.seq_after))
        i, j = bisect_left(seqs, lo), bisect_right(seqs, hi) - 1
        suspects.append(replace(b, moved=moves[j] - moves[i] if j > i else 0))
    return suspects, moves[-1]
