"""The keys of every task delivered so far, kept compact (16 to 32 bytes a task)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._decode import Key

__all__ = ["SeenKeys"]

_SHARD_BITS = 8
_SHARDS = 1 << _SHARD_BITS
_MOVE_AHEAD = 256  # keys moved past the set's size each time it overflows


class SeenKeys:
    """The keys of every task yielded so far, kept compact.

    Keys are held as their 64-bit hashes: the newest up to 2**13 in a set, older ones in 256
    open-addressing tables of 8-byte slots (half full at most), picked by the hash's low bits:
    16 to 32 bytes a task, ~5 MB for 200,000 tasks (a set of the strings would take ~60 MB).
    A page of new keys, the common case, is checked against the set in C and against the
    tables with one probe a key; a table grows on its own, so growing never stops the event
    loop for more than a 256th of the keys. Two distinct keys share a 64-bit hash with odds
    near n**2 / 2**65: about 1e-8 for half a million tasks.
    """

    __slots__ = ("_masks", "_recent", "_slots", "_stored", "_used")
    _RECENT_MAX = 1 << 13

    def __init__(self) -> None:
        self._recent: set[int] = set()
        self._stored = 0
        # One small table a shard; a shard's slots are probed from (hash >> 8) & mask.
        self._masks = [15] * _SHARDS
        self._used = [0] * _SHARDS
        self._slots = [memoryview(bytearray(8 * 16)).cast("q") for _ in range(_SHARDS)]

    def __len__(self) -> int:
        return len(self._recent) + self._stored

    def add_page(self, keys: Sequence[Key]) -> list[int] | None:
        """Record a page's keys; return the indexes of the new ones, or None if all are new."""
        recent = self._recent
        if None not in keys:
            hashes = [hash(k) or 1 for k in keys]  # 0 marks an empty slot
            distinct = set(hashes)
            if (
                len(distinct) == len(hashes)
                and recent.isdisjoint(distinct)
                and not (self._stored and self._any_stored(hashes))
            ):
                recent |= distinct
                if len(recent) > self._RECENT_MAX:
                    self._compact()
                return None
        return self._add_one_by_one(keys)

    def _any_stored(self, hashes: Iterable[int]) -> bool:
        all_slots, masks, low = self._slots, self._masks, _SHARDS - 1
        for h in hashes:
            shard = h & low
            slots, mask = all_slots[shard], masks[shard]
            j = (h >> _SHARD_BITS) & mask
            while v := slots[j]:
                if v == h:
                    return True
                j = (j + 1) & mask
        return False

    def _add_one_by_one(self, keys: Sequence[Key]) -> list[int] | None:
        recent = self._recent
        fresh: list[int] | None = None
        for i, key in enumerate(keys):
            if key is None:  # no identity to dedupe on: always yielded
                if fresh is not None:
                    fresh.append(i)
                continue
            h = hash(key) or 1
            if h in recent or (self._stored and self._any_stored((h,))):
                if fresh is None:
                    fresh = list(range(i))
                continue
            recent.add(h)
            if fresh is not None:
                fresh.append(i)
        if len(recent) > self._RECENT_MAX:
            self._compact()
        return fresh

    def _compact(self) -> None:
        """Move keys from the set into the tables, 8 bytes a key instead of ~70: a few hundred
        a page (the set stays near its size), never all of them at once (a pause)."""
        recent, low = self._recent, _SHARDS - 1
        moving = min(len(recent), len(recent) - self._RECENT_MAX + _MOVE_AHEAD)
        all_slots, masks, used = self._slots, self._masks, self._used
        for _ in range(moving):
            h = recent.pop()
            shard = h & low
            if 2 * (used[shard] + 1) > masks[shard] + 1:
                self._grow(shard)
            slots, mask = all_slots[shard], masks[shard]
            j = (h >> _SHARD_BITS) & mask
            while slots[j]:
                j = (j + 1) & mask
            slots[j] = h
            used[shard] += 1
        self._stored += moving

    def _grow(self, shard: int) -> None:
        """Double one shard's table (a 256th of the keys: never a long pause)."""
        old = self._slots[shard]
        mask = 2 * (self._masks[shard] + 1) - 1
        slots = memoryview(bytearray(8 * (mask + 1))).cast("q")
        for h in old:
            if h:
                j = (h >> _SHARD_BITS) & mask
                while slots[j]:
                    j = (j + 1) & mask
                slots[j] = h
        self._slots[shard], self._masks[shard] = slots, mask
