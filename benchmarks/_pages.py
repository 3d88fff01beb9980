"""Deterministic task JSON and whole pre-rendered pages for the benchmark server.

A pool of distinct, realistic tasks is rendered once (by the simulator's ``render_real_task``,
the real backend's shape, when it is importable; else its ``render_task``; else a small built-in
generator); task ``serial`` reuses pool entry ``serial % POOL_SIZE`` with its ``task_id`` and
``_id`` (or ``id``) swapped for ids unique to ``serial``. So every task of a space is distinct by
identity, the bytes stay realistic (~2.6 KB, transcripts, non-ASCII text), and rendering
500,000 tasks takes a few seconds instead of a minute.

The server order is newest first: page 1 holds the highest serials.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterable, Iterator

import msgspec

__all__ = [
    "POOL_SIZE",
    "empty_page",
    "ids_digest",
    "make_pool",
    "page_head",
    "page_serials",
    "render_pages",
    "render_tasks",
    "task_id",
    "task_ids",
]

POOL_SIZE = 4096
MESSAGE = "Tasks Fetched Successfully"
_BASE_EPOCH = 1_767_225_600
_encode = msgspec.json.Encoder().encode


class _Ids(msgspec.Struct):
    task_id: str
    id: str | None = msgspec.field(default=None, name="_id")
    plain_id: object = msgspec.field(default=None, name="id")  # the real shape's other spelling


_IDS = msgspec.json.Decoder(_Ids)


def task_id(seed: int, serial: int) -> str:
    """The unique ``task_id`` of task ``serial``: "T" and 32 hex digits, like the real ones."""
    return "T" + hashlib.blake2b(b"%d:%d" % (seed, serial), digest_size=16).hexdigest()


def _object_id(serial: int) -> str:
    return f"{_BASE_EPOCH + serial * 60:08x}{serial:016x}"


def page_serials(n_tasks: int, page_size: int, page: int) -> range:
    """The serials on ``page`` (1-based), newest first."""
    top = n_tasks - 1 - (page - 1) * page_size
    return range(top, max(-1, top - page_size), -1)


def task_ids(seed: int, n_tasks: int) -> list[str]:
    """Every ``task_id`` of a space in server order (newest first)."""
    return [task_id(seed, serial) for serial in range(n_tasks - 1, -1, -1)]


def ids_digest(ids: Iterator[str] | list[str]) -> int:
    """An order-independent 64-bit digest of a collection of ids (a sum of their hashes)."""
    total = 0
    for value in ids:
        total += int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")
    return total & 0xFFFF_FFFF_FFFF_FFFF


def _fallback_task(seed: int, serial: int) -> bytes:
    """A realistic task when the simulator is not available (same shape, ~2.4 KB)."""
    rng = random.Random(seed * 1_000_003 + serial)
    turns = [
        {
            "role": "agent" if i % 2 == 0 else "user",
            "content": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 22))) + ".",
            "timestamp": f"2026-01-01T00:{i:02d}:00Z",
        }
        for i in range(rng.randint(4, 16))
    ]
    first = rng.choice(("José", "Zoë", "Priya", "Liam", "Mei"))
    name = f"{first} {rng.choice(('Smith', 'Müller'))}"
    doc = {
        "_id": _object_id(serial),
        "task_id": task_id(seed, serial),
        "run_id": "R" + hashlib.md5(b"%d" % serial).hexdigest(),
        "space_id": 4242,
        "ref_id": f"ref-{serial}",
        "attachments": [],
        "status": rng.choice(("completed", "completed", "failed", "pending")),
        "run_mode": "prod",
        "execution_type": "call",
        "assignee": f"agent-{serial % 8 + 1}",
        "task": {"objective": "Confirm the appointment.", "instructions": "Be polite, concise."},
        "input": {"name": name, "contact_number": f"+1555{serial % 10_000_000:07d}"},
        "output": {
            "call_id": f"call_{serial:016x}",
            "call_type": "outbound",
            "call_status": "completed",
            "duration": float(rng.randint(30, 600)),
            "start_time": "2026-01-01T00:00:00Z",
            "end_time": "2026-01-01T00:10:00Z",
            "recording_url": f"https://recordings.example/4242/call_{serial:016x}.mp3",
            "cost": 0.42,
            "transcript": turns,
            "post_call_data": {
                "summary": "Customer confirmed the appointment and asked for an SMS reminder.",
                "outcome": "interested",
                "sentiment": "positive",
                "follow_up_required": False,
                "classification": {"label": "appointment_confirmed", "confidence": 0.93},
            },
            "user_info": {"name": name, "contact_number": "+15550000000", "email": None},
        },
        "created": "2026-01-01T00:00:00Z",
        "modified": "2026-01-01T00:15:00Z",
        "scheduled_timestamp": None,
        "retry_attempt": 0,
    }
    return _encode(doc)


_WORDS = (
    *("please", "confirm", "the", "delivery", "window", "appointment", "invoice", "number"),
    *("thanks", "sure", "call", "back", "tomorrow", "morning", "price", "premium", "plan"),
    *("support", "🙂", "café", "北京", '"quoted"', "line"),
)


def _renderer() -> tuple[str, Callable[[int, int], bytes]]:
    """The simulator's real-backend shape when it has one, else its earlier shape, else ours."""
    try:
        from unpod_async.testing._data import render_real_task
    except ImportError:
        pass
    else:
        return "unpod_async.testing._data.render_real_task (the real backend's shape)", (
            lambda seed, serial: render_real_task(seed, serial)
        )
    try:
        from unpod_async.testing._data import render_task
    except ImportError:
        return "built-in generator", _fallback_task
    return "unpod_async.testing._data.render_task", render_task


def generator_name() -> str:
    return _renderer()[0]


class _Pool:
    """Distinct rendered tasks, each cut around its ids so a copy with new ids is one join."""

    def __init__(self, seed: int, size: int) -> None:
        _, render = _renderer()
        self.entries: list[tuple[bytes, ...]] = []
        for serial in range(size):
            body = render(seed, serial)
            ids = _IDS.decode(body)
            cuts = [(body.index(ids.task_id.encode()), len(ids.task_id), 0)]
            for other in (ids.id, ids.plain_id):
                if isinstance(other, str) and other and other != ids.task_id:
                    cuts.append((body.index(b'"%s"' % other.encode()) + 1, len(other), 1))
            cuts.sort()
            # segments[0], slot, segments[1], slot, ...; slot kinds: 0 task_id, 1 _id or id
            parts: list[bytes] = []
            kinds: list[int] = []
            pos = 0
            for start, length, kind in cuts:
                parts.append(body[pos:start])
                kinds.append(kind)
                pos = start + length
            parts.append(body[pos:])
            self.entries.append((*parts, bytes(kinds)))

    def add_task(self, out: list[bytes], seed: int, serial: int) -> None:
        """Append the pieces of task ``serial`` to ``out`` (joined later, once per page)."""
        *parts, kinds = self.entries[serial % len(self.entries)]
        new = (task_id(seed, serial).encode(), _object_id(serial).encode())
        for part, kind in zip(parts, kinds, strict=False):
            out.append(part)
            out.append(new[kind])
        out.append(parts[-1])


def page_head(count: int) -> bytes:
    return b'{"count":%d,"status_code":200,"message":"%s","data":[' % (count, MESSAGE.encode())


def empty_page(n_tasks: int) -> bytes:
    """What the API answers past the last page: 200, ``data: []``, the full ``count``."""
    return page_head(n_tasks) + b"]}"


def render_tasks(seed: int, serials: Iterable[int], pool: _Pool | None = None) -> list[bytes]:
    """The JSON bytes of each task of ``serials`` (for a space that changes while it is read)."""
    pool = pool or make_pool(seed)
    out = []
    for serial in serials:
        pieces: list[bytes] = []
        pool.add_task(pieces, seed, serial)
        out.append(b"".join(pieces))
    return out


def make_pool(seed: int, n_tasks: int = POOL_SIZE) -> _Pool:
    return _Pool(seed, min(POOL_SIZE, max(1, n_tasks)))


def render_pages(seed: int, n_tasks: int, page_size: int) -> list[bytes]:
    """Every page of a space of ``n_tasks`` tasks, as the exact response bytes."""
    pool = _Pool(seed, min(POOL_SIZE, max(1, n_tasks)))
    head = page_head(n_tasks)
    pages = []
    for page in range(1, math.ceil(n_tasks / page_size) + 1):
        pieces = [head]
        for i, serial in enumerate(page_serials(n_tasks, page_size, page)):
            if i:
                pieces.append(b",")
            pool.add_task(pieces, seed, serial)
        pieces.append(b"]}")
        pages.append(b"".join(pieces))
    return pages
