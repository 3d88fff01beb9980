"""SeenKeys, the compact dedupe set, against a plain Python set as the reference."""

from __future__ import annotations

import random

import pytest

from unpod_async._seen import SeenKeys


@pytest.mark.parametrize("recent_max", [4, 64, 1 << 17])
def test_matches_a_set_across_compactions(monkeypatch: pytest.MonkeyPatch, recent_max: int) -> None:
    monkeypatch.setattr(SeenKeys, "_RECENT_MAX", recent_max)
    rng = random.Random(recent_max)
    seen = SeenKeys()
    reference: set[str] = set()
    for _ in range(400):
        page: list[str | None] = [
            None if rng.random() < 0.02 else f"T{rng.randrange(5000)}" for _ in range(25)
        ]
        expected: list[int] = []
        for i, key in enumerate(page):
            if key is None or key not in reference:
                expected.append(i)
            if key is not None:
                reference.add(key)
        fresh = seen.add_page(page)
        assert (list(range(len(page))) if fresh is None else fresh) == expected
        assert (fresh is None) == (expected == list(range(len(page))))
    assert len(seen) == len(reference)
