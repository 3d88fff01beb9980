"""Typed models of the Unpod API, as msgspec Structs, and the decoders built once for them.

Every field that the server may leave out has a default, unknown fields are ignored, and
open sets (``status``, ``run_mode``) are plain strings, so a new server release never breaks
decoding. Structs are frozen and ``gc=False``, and their sequences are tuples: they hold no
reference cycles, and the garbage collector need not track (nor, for a tuple of untracked
items, keep tracking) millions of them. Holding a whole space in memory, the collector's
passes were a fifth of the decode time with lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec

__all__ = [
    "Organization",
    "PostCallData",
    "Space",
    "Task",
    "TaskOutput",
    "TaskSpec",
    "TasksPage",
    "TranscriptTurn",
    "UserInfo",
]


class TranscriptTurn(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One turn of a call transcript: ``role`` is ``"agent"`` or ``"user"``."""

    role: str = ""
    content: str = ""
    timestamp: str | None = None


class PostCallData(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What the agent concluded after the call."""

    summary: str | None = None
    outcome: str | None = None
    sentiment: str | None = None
    follow_up_required: bool | None = None
    classification: dict[str, Any] | None = None


class UserInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The person the task was about."""

    name: str | None = None
    contact_number: str | None = None
    email: str | None = None


class TaskOutput(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The result of a task's call or email; empty while the task is pending."""

    call_id: str | None = None
    call_type: str | None = None
    call_status: str | None = None
    duration: float | None = None
    start_time: str | None = None
    end_time: str | None = None
    recording_url: str | None = None
    cost: float | None = None
    transcript: tuple[TranscriptTurn, ...] = ()
    post_call_data: PostCallData | None = None
    user_info: UserInfo | None = None


class TaskSpec(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What the agent was asked to do."""

    objective: str | None = None
    instructions: str | None = None


class Task(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One unit of an agent's work inside a space.

    ``id`` is the server's ``_id``. ``status`` and ``run_mode`` are open sets of strings
    (``"completed"``, ``"prod"``, ...): a value never seen before decodes fine.

    >>> task.status, task.output.post_call_data.outcome if task.output else None
    """

    id: str | None = msgspec.field(default=None, name="_id")
    task_id: str | None = None
    run_id: str | None = None
    status: str | None = None
    run_mode: str | None = None
    execution_type: str | None = None
    assignee: str | None = None
    ref_id: str | None = None
    task: TaskSpec | None = None
    input: Any = None
    output: TaskOutput | None = None
    created: str | None = None
    modified: str | None = None
    scheduled_timestamp: str | float | None = None
    retry_attempt: int | None = None

    @property
    def key(self) -> str | None:
        """The identity used to deduplicate: ``task_id``, else ``_id``."""
        return self.task_id or self.id


class TasksPage(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One page of ``GET spaces/{space_token}/tasks/``.

    ``count`` is the server's total for the whole space (it can drift while you page).
    """

    count: int = 0
    status_code: int | None = None
    message: str | None = None
    data: tuple[Task, ...] = ()


class Space(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A space; ``token`` is what the tasks endpoints take as ``space_token``."""

    token: str
    name: str | None = None
    slug: str | None = None
    space_type: str | None = None
    privacy_type: str | None = None
    created: str | None = None


class Organization(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """An organization; ``domain_handle`` is the value of the ``Org-Handle`` header."""

    domain_handle: str
    name: str | None = None
    token: str | None = None
    domain: str | None = None
    privacy_type: str | None = None


# --- private views and decoders, each built once --------------------------------------------


class TaskKey(msgspec.Struct, gc=False):
    """Only the two fields dedupe needs: decoding a page into these skips everything else."""

    task_id: str | None = None
    id: str | None = msgspec.field(default=None, name="_id")


class RawPage(msgspec.Struct, gc=False):
    """A page whose tasks stay as the exact bytes the server sent (for lossless export)."""

    count: int = 0
    status_code: int | None = None
    message: str | None = None
    data: list[msgspec.Raw] = []


class KeysPage(msgspec.Struct, gc=False):
    count: int = 0
    data: list[TaskKey] = []


T = TypeVar("T")


class _ListEnvelope(msgspec.Struct, Generic[T], gc=False):
    """``{status_code, message, data: [...]}``; ``items`` unwraps it for the endpoints."""

    status_code: int | None = None
    message: str | None = None
    data: list[T] = []


# A task's identity for dedupe: task_id, else _id, else its own JSON (a task with neither is
# still yielded once; only an edit between two reads of it could make it look new).
Key = str | bytes | None
_ENCODER = msgspec.json.Encoder()


def typed_keys(tasks: Sequence[Task]) -> list[Key]:
    keys: list[Key] = [task.task_id or task.id for task in tasks]
    if None in keys:
        keys = [
            k if k is not None else _ENCODER.encode(t) for k, t in zip(keys, tasks, strict=True)
        ]
    return keys


def raw_keys(body: bytes, raws: Sequence[msgspec.Raw]) -> tuple[int, list[Key]]:
    """The count and the keys of a page whose tasks are kept raw: one typed decode, no
    per-task call."""
    page: KeysPage = KEYS_PAGE_DECODER.decode(body)
    keys: list[Key] = [k.task_id or k.id for k in page.data]
    if None in keys:
        keys = [k if k is not None else bytes(r) for k, r in zip(keys, raws, strict=True)]
    return page.count, keys


TASKS_PAGE_DECODER = msgspec.json.Decoder(TasksPage)
RAW_PAGE_DECODER = msgspec.json.Decoder(RawPage)
KEYS_PAGE_DECODER = msgspec.json.Decoder(KeysPage)
SPACES_ENVELOPE_DECODER = msgspec.json.Decoder(_ListEnvelope[Space])
ORGS_ENVELOPE_DECODER = msgspec.json.Decoder(_ListEnvelope[Organization])
ANY_DECODER = msgspec.json.Decoder()
