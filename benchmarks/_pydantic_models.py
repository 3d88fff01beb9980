"""Pydantic v2 models of a tasks page, field for field the msgspec models of ``unpod_async``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TranscriptTurn(_Model):
    role: str = ""
    content: str = ""
    timestamp: str | None = None


class PostCallData(_Model):
    summary: str | None = None
    outcome: str | None = None
    sentiment: str | None = None
    follow_up_required: bool | None = None
    classification: dict[str, Any] | None = None


class UserInfo(_Model):
    name: str | None = None
    contact_number: str | None = None
    email: str | None = None


class TaskOutput(_Model):
    call_id: str | None = None
    call_type: str | None = None
    call_status: str | None = None
    duration: float | None = None
    start_time: str | None = None
    end_time: str | None = None
    recording_url: str | None = None
    cost: float | None = None
    transcript: list[TranscriptTurn] = []
    post_call_data: PostCallData | None = None
    user_info: UserInfo | None = None


class TaskSpec(_Model):
    objective: str | None = None
    instructions: str | None = None


class Task(_Model):
    id: str | None = Field(default=None, alias="_id")
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


class TasksPage(_Model):
    count: int = 0
    status_code: int | None = None
    message: str | None = None
    data: list[Task] = []
