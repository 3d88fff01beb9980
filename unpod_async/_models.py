"""Typed models of the Unpod API, as msgspec Structs (their decoders are in ``_decode``).

Every field that the server may leave out has a default, unknown fields are ignored, and
open sets (``status``, ``run_mode``) are plain strings, so a new server release never breaks
decoding. Fields the real server sends in more than one shape are unions (a transcript as turns
or as text, a summary as text or an object, a duration as a number or a numeric string); a
value of any other unexpected type does not fail its page either: that task alone is decoded
field by field (``_lenient``), the value is dropped to its default and kept, as sent, in
:attr:`Task.invalid_fields`.

Structs are frozen and ``gc=False``, and their sequences are tuples: they hold no reference
cycles, and the garbage collector need not track (nor, for a tuple of untracked items, keep
tracking) millions of them. Holding a whole space in memory, the collector's passes were a
fifth of the decode time with lists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ._dates import parse_datetime

__all__ = [
    "CallSummary",
    "Organization",
    "PostCallData",
    "Run",
    "RunsPage",
    "Space",
    "Task",
    "TaskOutput",
    "TaskSpec",
    "TasksPage",
    "TranscriptTurn",
    "UserInfo",
]


def _number(value: float | str | None) -> float | None:
    """A number, or a numeric string such as ``"45"``, as a float."""
    if value is None or isinstance(value, float):
        return value
    try:
        return float(value)
    except ValueError:
        return None


class _Stamped:
    """``created_at`` / ``modified_at`` of a model with ``created`` / ``modified`` strings."""

    __slots__ = ()
    created: str | None
    modified: str | None

    @property
    def created_at(self) -> datetime | None:
        """``created`` as an aware datetime (a value without a zone is UTC)."""
        return parse_datetime(self.created)

    @property
    def modified_at(self) -> datetime | None:
        """``modified`` as an aware datetime (a value without a zone is UTC)."""
        return parse_datetime(self.modified)


class TranscriptTurn(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One turn of a call transcript: ``role`` is ``"assistant"`` (or ``"agent"``) or
    ``"user"``; ``user_id`` names the speaker when the server knows it."""

    role: str = ""
    content: str = ""
    user_id: str | int | None = None
    timestamp: str | float | None = None


class CallSummary(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``post_call_data.summary`` in the object form the backend writes.

    ``status`` is the call-outcome label (``"Interested"``, ``"Call Back"``,
    ``"Not Interested"``, ``"Not Connected"``, ...): what the server's own ``status`` filter
    matches (``outcome=`` here).

    >>> task.output.post_call_data.summary.status  # doctest: +SKIP
    'Call Back'
    """

    status: str | None = None
    summary: str | None = None
    name: str | None = None
    contact: str | None = None
    callback_datetime: str | None = None
    hours_from_now: float | str | None = None


class PostCallData(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What the agent concluded after the call.

    ``summary`` is a :class:`CallSummary` in what the backend writes and a plain string in
    the docs' example (:attr:`summary_text` reads either). ``outcome``, ``sentiment`` and
    ``follow_up_required`` appear in the docs only; the other fields are free-form.
    """

    summary: str | CallSummary | None = None
    outcome: str | None = None
    sentiment: str | None = None
    follow_up_required: bool | None = None
    classification: dict[str, Any] | str | None = None
    success_evaluator: Any = None
    follow_up: Any = None
    call_evaluation: Any = None
    profile_summary: Any = None
    realtime_agent_evaluation: Any = None
    structured_data: Any = None
    redial: Any = None

    @property
    def summary_text(self) -> str | None:
        """The summary as text, whichever form it came in."""
        summary = self.summary
        return summary.summary if isinstance(summary, CallSummary) else summary


class UserInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A person: at the top level of a task, the platform user behind it (``id``, ``email``,
    ``full_name``, ``user_token``, ``location``); inside an output (older payloads), the
    person called (``name``, ``contact_number``, ``email``)."""

    id: int | str | None = None
    email: str | None = None
    full_name: str | None = None
    user_token: str | None = None
    location: str | dict[str, Any] | None = None
    name: str | None = None
    contact_number: str | None = None


class TaskOutput(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The result of a task's call; empty while the task is pending.

    It comes in two shapes, both modelled here and either of which may appear in one space:
    the call executor's (``call_id``, ``customer``, ``contact_number``, a ``transcript`` of
    turns, ``post_call_data``, ...) and a provider's (``id``, ``type`` such as
    ``"outboundPhoneCall"``, a ``transcript`` string, ``summary``, ``status``).
    """

    call_id: str | None = None
    call_type: str | None = None
    call_status: str | None = None
    customer: str | dict[str, Any] | None = None
    contact_number: str | None = None
    assistant_number: str | None = None
    call_end_reason: str | None = None
    duration: float | str | None = None
    start_time: str | None = None
    end_time: str | None = None
    recording_url: str | None = None
    cost: float | str | None = None
    transcript: tuple[TranscriptTurn, ...] | str | None = ()
    call_summary: str | None = None
    post_call_data: PostCallData | None = None
    metadata: Any = None
    error: Any = None
    notes: Any = None
    status_update: Any = None
    user_info: UserInfo | None = None
    # the provider-shaped output
    id: str | None = None
    type: str | None = None
    summary: str | None = None
    status: str | None = None

    @property
    def transcript_text(self) -> str:
        """The transcript as text: turns as ``role: content`` lines, a string as it is."""
        transcript = self.transcript
        if not transcript:
            return ""
        if isinstance(transcript, str):
            return transcript
        return "\n".join(f"{turn.role}: {turn.content}" for turn in transcript)

    @property
    def duration_seconds(self) -> float | None:
        """``duration`` as a float, also when the server sent it as a string (``"45"``)."""
        return _number(self.duration)

    @property
    def cost_amount(self) -> float | None:
        """``cost`` as a float, also when the server sent it as a string."""
        return _number(self.cost)


class TaskSpec(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What the agent was asked to do."""

    objective: str | None = None
    instructions: str | None = None


class Task(msgspec.Struct, _Stamped, kw_only=True, frozen=True, gc=False):
    """One unit of an agent's work inside a space.

    ``id`` is the server's ``_id`` (as in the docs' example) and ``doc_id`` the same value
    under the name ``id`` (as the backend code renames it); either or neither may be present,
    ``task_id`` always is. ``status`` and ``run_mode`` are open sets of strings
    (``"completed"``, ``"prod"``, ...): a value never seen before decodes fine.
    ``invalid_fields`` is ``None`` unless a value had a type no model allows: then it maps
    each such value's dotted path (``"output.duration"``, ``"output.transcript.3.content"``)
    to the value as sent, and the field holds its default.

    >>> task.status, task.outcome, task.created_at  # doctest: +SKIP
    ('completed', 'Call Back', datetime.datetime(2026, 2, 1, 1, 59, tzinfo=...utc))
    """

    id: str | None = msgspec.field(default=None, name="_id")
    doc_id: str | None = msgspec.field(default=None, name="id")
    task_id: str | None = None
    run_id: str | None = None
    thread_id: str | None = None
    space_id: int | str | None = None
    user: int | str | dict[str, Any] | None = None
    user_org_id: int | str | None = None
    user_info: UserInfo | None = None
    status: str | None = None
    run_mode: str | None = None
    execution_type: str | None = None
    assignee: str | None = None
    ref_id: str | None = None
    collection_ref: str | None = None
    task: TaskSpec | None = None
    input: Any = None
    output: TaskOutput | None = None
    attachments: tuple[Any, ...] | None = ()
    created: str | None = None
    modified: str | None = None
    scheduled_timestamp: str | float | None = None
    retry_attempt: int | None = None
    invalid_fields: dict[str, Any] | None = None

    @property
    def key(self) -> str | None:
        """The identity used to deduplicate: ``task_id``, else ``_id``, else ``id``."""
        return self.task_id or self.id or self.doc_id

    @property
    def transcript_text(self) -> str:
        """The call transcript as text, whatever its shape (``""`` when there is none)."""
        return self.output.transcript_text if self.output is not None else ""

    @property
    def outcome(self) -> str | None:
        """The call-outcome label wherever it lives: ``output.post_call_data.summary.status``
        (the backend's object form), else ``post_call_data.outcome`` (the docs' form), else
        a provider-shaped output's ``status``."""
        output = self.output
        if output is None:
            return None
        data = output.post_call_data
        if data is not None:
            summary = data.summary
            if isinstance(summary, CallSummary) and summary.status:
                return summary.status
            if data.outcome:
                return data.outcome
        return output.status or None


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
    # Added from the backend's serializer; free-form, so that a shape never seen cannot fail
    # a listing that decoded before.
    description: Any = None
    content_type: Any = None
    organization: Any = None


class Organization(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """An organization; ``domain_handle`` is the value of the ``Org-Handle`` header."""

    domain_handle: str
    name: str | None = None
    token: str | None = None
    domain: str | None = None
    privacy_type: str | None = None
    # Added from the backend's serializer; free-form (see Space).
    is_private_domain: Any = None
    role: Any = None


class Run(msgspec.Struct, _Stamped, kw_only=True, frozen=True, gc=False):
    """One run of a space: a batch of tasks started together (``GET spaces/{token}/runs/``).

    The backend's runs list keeps ``space_id, user, thread_id, run_id, collection_ref,
    run_mode, status, batch_count, created, modified``; the other fields appear in the stored
    run and may come through too. ``run_mode`` (``"dev"``, ``"prod"``, ``"prefect"``, ...) and
    ``status`` are open sets of strings, and ``invalid_fields`` is ``None`` unless a value had
    a type no field allows (as in :class:`Task`: the run is kept, the value moved there).

    >>> run.run_id, run.status, run.batch_count  # doctest: +SKIP
    ('R6f1c...', 'completed', 250)
    """

    id: str | None = msgspec.field(default=None, name="_id")
    doc_id: str | None = msgspec.field(default=None, name="id")
    run_id: str | None = None
    run_mode: str | None = None
    status: str | None = None
    batch_count: int | None = None
    created: str | None = None
    modified: str | None = None
    space_id: int | str | None = None
    user: int | str | dict[str, Any] | None = None
    user_org_id: int | str | None = None
    thread_id: str | None = None
    collection_ref: str | None = None
    run_type: str | None = None
    scheduled_timestamp: str | float | None = None
    invalid_fields: dict[str, Any] | None = None

    @property
    def key(self) -> str | None:
        """The identity used to deduplicate: ``run_id``, else ``_id``, else ``id``."""
        return self.run_id or self.id or self.doc_id


class RunsPage(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One page of ``GET spaces/{space_token}/runs/``, newest first, like the tasks list."""

    count: int = 0
    status_code: int | None = None
    message: str | None = None
    data: tuple[Run, ...] = ()
