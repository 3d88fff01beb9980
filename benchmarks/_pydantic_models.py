"""Pydantic v2 models of a tasks page, field for field the msgspec models of ``unpod_async``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TranscriptTurn(_Model):
    role: str = ""
    content: str = ""
    user_id: str | int | None = None
    timestamp: str | float | None = None


class CallSummary(_Model):
    status: str | None = None
    summary: str | None = None
    name: str | None = None
    contact: str | None = None
    callback_datetime: str | None = None
    hours_from_now: float | str | None = None


class PostCallData(_Model):
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


class UserInfo(_Model):
    id: int | str | None = None
    email: str | None = None
    full_name: str | None = None
    user_token: str | None = None
    location: str | dict[str, Any] | None = None
    name: str | None = None
    contact_number: str | None = None


class TaskOutput(_Model):
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
    transcript: list[TranscriptTurn] | str | None = []
    call_summary: str | None = None
    post_call_data: PostCallData | None = None
    metadata: Any = None
    error: Any = None
    notes: Any = None
    status_update: Any = None
    user_info: UserInfo | None = None
    id: str | None = None
    type: str | None = None
    summary: str | None = None
    status: str | None = None


class TaskSpec(_Model):
    objective: str | None = None
    instructions: str | None = None


class Task(_Model):
    # By alias only: with populate_by_name the field ``id`` (alias ``_id``) would also take
    # the JSON key ``id``, which is ``doc_id``'s (as msgspec's ``name=`` reads it).
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=False)

    id: str | None = Field(default=None, alias="_id")
    doc_id: str | None = Field(default=None, alias="id")
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
    attachments: list[Any] | None = []
    created: str | None = None
    modified: str | None = None
    scheduled_timestamp: str | float | None = None
    retry_attempt: int | None = None
    invalid_fields: dict[str, Any] | None = None


class TasksPage(_Model):
    count: int = 0
    status_code: int | None = None
    message: str | None = None
    data: list[Task] = []
