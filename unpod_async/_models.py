"""Typed models of the Unpod API, as msgspec Structs (their decoders are in ``_decode``).

Every field that the server may leave out has a default, unknown fields are ignored, and
open sets (``status``, ``run_mode``) are plain strings, so a new server release never breaks
decoding. Structs are frozen and ``gc=False``, and their sequences are tuples: they hold no
reference cycles, and the garbage collector need not track (nor, for a tuple of untracked
items, keep tracking) millions of them. Holding a whole space in memory, the collector's
passes were a fifth of the decode time with lists.
"""

from __future__ import annotations

from typing import Any

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
