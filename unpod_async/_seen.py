"""The keys of every task delivered so far, kept compact (about 16 bytes a task)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._decode import Key

__all__ = ["SeenKeys"]


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
