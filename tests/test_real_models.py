"""Models that never break on a real payload: real-shaped tasks, unions, lenient repair."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unpod_async import (
    AuthenticationError,
    CallSummary,
    PostCallData,
    Task,
    TaskOutput,
    TranscriptTurn,
    UnpodClient,
    UserInfo,
    _decode,
)
from unpod_async._columns import outcome_of, transcript_text_of
from unpod_async._lenient import lenient_task
from unpod_async.testing import Simulator
from unpod_async.testing._data import render_real_task

from .helpers import SPACE, TOKEN, tasks_server

# Real-shaped tasks from the simulator's generator, as plain JSON values.
REAL = [json.loads(render_real_task(7, serial)) for serial in range(400)]


def page_of(tasks: list[Any], count: int | None = None) -> bytes:
    body = {"count": len(tasks) if count is None else count, "status_code": 200, "data": tasks}
    return json.dumps(body).encode()


class Counting:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def decode(self, buf: Any) -> Any:
        self.calls += 1
        return self.inner.decode(buf)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> tuple[Counting, Counting]:
    # The pager's page view (a pull's typed decode of one page).
    page, task = Counting(_decode.TYPED_PAGE_DECODER), Counting(_decode.TASK_DECODER)
    monkeypatch.setattr(_decode, "TYPED_PAGE_DECODER", page)
    monkeypatch.setattr(_decode, "TASK_DECODER", task)
    return page, task


# --------------------------------------------------------------------------- real shapes


def test_every_real_shaped_task_decodes_in_one_typed_decode(
    counted: tuple[Counting, Counting],
) -> None:
    page_calls, task_calls = counted
    decoded = _decode.decode_typed_page(page_of(REAL))
    assert (page_calls.calls, task_calls.calls, decoded.repaired) == (1, 0, 0)
    tasks = decoded.payload.data
    assert [t.task_id for t in tasks] == [d["task_id"] for d in REAL]
    for task, doc in zip(tasks, REAL, strict=True):
        assert task.invalid_fields is None
        assert task.id == doc.get("_id")
        assert task.doc_id == doc.get("id")
        assert task.key == doc["task_id"]
        assert task.thread_id == doc["thread_id"]
        assert task.space_id == doc["space_id"]
        assert task.user == doc["user"]
        assert task.user_info == UserInfo(**doc["user_info"])
        assert task.collection_ref == doc["collection_ref"]
        assert task.created == doc["created"]  # the raw string, as sent
        assert task.created_at is not None
        assert task.created_at.tzinfo is timezone.utc
        assert task.outcome == outcome_of(doc)
        assert task.transcript_text == transcript_text_of(doc["output"].get("transcript"))
    # Every variant of the real payloads is in the sample: both output shapes, both summary
    # forms, numbers as strings, null transcripts, each id style.
    outputs = [t.output for t in tasks if t.output is not None]
    assert any(isinstance(o.transcript, str) and o.type for o in outputs)
    assert any(isinstance(o.transcript, tuple) and o.transcript for o in outputs)
    assert any(o.transcript is None for o in outputs)
    assert any(isinstance(o.duration, str) for o in outputs)
    summaries = [o.post_call_data.summary for o in outputs if o.post_call_data]
    assert any(isinstance(s, CallSummary) for s in summaries)
    assert any(isinstance(s, str) for s in summaries)
    assert {t.id is not None for t in tasks} == {True, False}
    assert {t.doc_id is not None for t in tasks} == {True, False}


def test_unions_cover_the_shapes_the_server_sends() -> None:
    doc = {
        "task_id": "T1",
        "output": {
            "transcript": "Agent: hi\nCustomer: hello",
            "duration": "45",
            "cost": "0.07",
            "type": "outboundPhoneCall",
            "status": "ended",
            "customer": {"number": "+15550100"},
        },
    }
    task = msgspec.json.decode(json.dumps(doc).encode(), type=Task)
    assert task.output is not None
    assert task.transcript_text == "Agent: hi\nCustomer: hello"
    assert (task.output.duration_seconds, task.output.cost_amount) == (45.0, 0.07)
    assert task.outcome == "ended"  # a provider-shaped output's status
    null = msgspec.json.decode(b'{"output": {"transcript": null, "duration": 12}}', type=Task)
    assert null.transcript_text == ""
    assert null.output is not None
    assert null.output.duration_seconds == 12.0
    assert TaskOutput(duration="n/a").duration_seconds is None


def test_outcome_wherever_it_lives() -> None:
    summary = CallSummary(status="Call Back", summary="call tomorrow")
    data = PostCallData(summary=summary, outcome="interested")
    assert Task(output=TaskOutput(post_call_data=data, status="ended")).outcome == "Call Back"
    docs_form = PostCallData(summary="text", outcome="interested")
    assert Task(output=TaskOutput(post_call_data=docs_form, status="x")).outcome == "interested"
    assert docs_form.summary_text == "text"
    assert data.summary_text == "call tomorrow"
    assert Task(output=TaskOutput(status="ended")).outcome == "ended"
    assert Task(output=TaskOutput()).outcome is None
    assert Task().outcome is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-01T01:59:00", datetime(2026, 2, 1, 1, 59, tzinfo=timezone.utc)),
        ("2026-02-01T01:59:00Z", datetime(2026, 2, 1, 1, 59, tzinfo=timezone.utc)),
        ("2026-02-01 00:00:00", datetime(2026, 2, 1, tzinfo=timezone.utc)),
        ("2026-02-01T01:59:00.5", datetime(2026, 2, 1, 1, 59, 0, 500000, tzinfo=timezone.utc)),
        (
            "2026-02-01T01:59:00.123456789+05:30",
            datetime(2026, 2, 1, 1, 59, 0, 123456, tzinfo=timezone(timedelta(hours=5.5))),
        ),
        ("2026-02-01", datetime(2026, 2, 1, tzinfo=timezone.utc)),
        ("2026-02-30T00:00:00", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_created_and_modified_as_aware_datetimes(text: str, expected: datetime | None) -> None:
    task = Task(created=text, modified=text)
    assert task.created_at == expected
    assert task.modified_at == expected
    assert task.created == text


# --------------------------------------------------------------------------- lenient repair


def test_a_wrong_type_is_kept_in_invalid_fields_and_the_rest_survives(
    counted: tuple[Counting, Counting],
) -> None:
    page_calls, task_calls = counted
    broken = copy.deepcopy(REAL[0])
    broken["output"]["post_call_data"] = {"summary": ["not", "a", "summary"], "outcome": "x"}
    broken["output"]["transcript"] = [{"role": "user", "content": 5}, "junk", {"role": "a"}]
    broken["created"] = 1767225600
    body = page_of([REAL[1], broken, REAL[2]])
    decoded = _decode.decode_typed_page(body)
    assert page_calls.calls == 1  # the typed page decode, which failed
    assert task_calls.calls == 3  # then each task typed once
    assert decoded.repaired == 1
    first, task, third = decoded.payload.data
    assert first.invalid_fields is None
    assert third.invalid_fields is None
    assert task.task_id == broken["task_id"]
    assert task.invalid_fields == {
        "output.post_call_data.summary": ["not", "a", "summary"],
        "output.transcript.0.content": 5,
        "output.transcript.1": "junk",
        "created": 1767225600,
    }
    assert task.output is not None
    assert task.output.post_call_data is not None
    assert task.output.post_call_data.outcome == "x"
    assert task.output.transcript == (TranscriptTurn(role="user"), TranscriptTurn(role="a"))
    assert task.created is None
    assert task.user_info == UserInfo(**broken["user_info"])
    assert list(decoded.keys) == [first.task_id, task.task_id, third.task_id]


def test_task_id_survives_as_a_string_and_odd_items_stay_tasks() -> None:
    assert lenient_task(msgspec.Raw(b'{"task_id": 123, "status": 5}')).task_id == "123"
    odd = lenient_task(msgspec.Raw(b"[1, 2]"))
    assert odd == Task(invalid_fields={"": [1, 2]})
    decoded = _decode.decode_typed_page(b'{"count": 2, "data": [{"task_id": 7}, null]}')
    assert decoded.repaired == 2
    assert decoded.keys[0] == "7"
    assert isinstance(decoded.keys[1], bytes)  # no id at all: keyed by its own JSON
    # The raw view (JSONL) keys the same task the same way.
    raw = _decode.decode_raw_page(b'{"count": 2, "data": [{"task_id": 7}, null]}')
    assert raw.keys[0] == "7"


def test_an_envelope_that_is_not_a_page_still_fails_as_before() -> None:
    # One page asked for (get_tasks): a count that is not a count is a decode error. A pull
    # judges the count itself (tests/test_no_silent_loss.py): its views take what comes.
    with pytest.raises(msgspec.ValidationError, match="count"):
        _decode.decode_tasks_page(b'{"count": "many", "data": []}')
    assert _decode.decode_typed_page(b'{"count": "many", "data": []}').count is None
    with pytest.raises(msgspec.ValidationError):
        _decode.decode_raw_page(b'{"count": 1, "data": {}}')


async def test_a_200_whose_failure_envelope_says_401_raises_authentication_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {"status_code": 401, "message": "Invalid token.", "data": {}}
        return web.json_response(body)

    async with tasks_server(handler) as base_url, UnpodClient(TOKEN, base_url=base_url) as c:
        with pytest.raises(AuthenticationError, match="Invalid token"):
            await c.get_tasks(SPACE)
        with pytest.raises(AuthenticationError):
            await c.export_tasks(SPACE, "-")


# --------------------------------------------------------------------------- the property


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the value itself included)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


_OTHER_TYPES = st.sampled_from(
    [None, True, 0, -1, 3.5, "", "text", "45", [], [1, "a"], {}, {"k": [None]}]
)
_SHAPES = st.recursive(
    _OTHER_TYPES, lambda c: st.lists(c, max_size=2) | st.dictionaries(st.text(max_size=3), c)
)


@st.composite
def mutated_pages(draw: st.DrawFn) -> tuple[list[Any], int]:
    """Real-shaped tasks with one field's value (not task_id) replaced by another type."""
    count = draw(st.integers(1, 6))
    start = draw(st.integers(0, len(REAL) - count))
    tasks = copy.deepcopy(REAL[start : start + count])
    victim = draw(st.integers(0, count - 1))
    paths = [p for p in _paths(tasks[victim]) if p and p != ("task_id",)]
    path = draw(st.sampled_from(paths))
    replacement = draw(_SHAPES)
    parent = tasks[victim]
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = replacement
    return tasks, victim


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_pages())
def test_any_type_change_keeps_the_page_and_every_task_id(case: tuple[list[Any], int]) -> None:
    tasks, victim = case
    body = page_of(tasks)
    decoded = _decode.decode_typed_page(body)
    typed = decoded.payload.data
    assert [t.task_id for t in typed] == [t["task_id"] for t in tasks]
    assert decoded.repaired <= 1
    for index, task in enumerate(typed):
        if index != victim:
            assert task.invalid_fields is None
    # The typed and the raw views agree on every key, so dedupe and resume agree too.
    assert list(decoded.keys) == list(_decode.decode_raw_page(body).keys)
    # What was dropped is kept: re-applying invalid_fields' values gives the task's JSON back
    # where the model has a field for it.
    repaired = typed[victim]
    for path, value in (repaired.invalid_fields or {}).items():
        node: Any = tasks[victim]
        for step in path.split(".") if path else []:
            node = node[int(step)] if isinstance(node, list) else node[step]
        assert node == value


# --------------------------------------------------------------------------- end to end


async def test_a_space_with_broken_tasks_comes_out_whole(tmp_path: Any) -> None:
    tasks = copy.deepcopy(REAL[:120])
    tasks[5]["output"]["post_call_data"]["summary"] = 12
    tasks[70]["user_info"] = "nobody"
    tasks[119]["output"] = ["not", "an", "object"]

    async def handler(request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["page_size"])
        body = page_of(tasks[(page - 1) * size : page * size], count=len(tasks))
        return web.Response(body=body, content_type="application/json")

    async with tasks_server(handler) as base_url, UnpodClient(TOKEN, base_url=base_url) as c:
        got = await c.get_all_tasks(SPACE, page_size=50)
        assert [t.task_id for t in got] == [t["task_id"] for t in tasks]
        assert got[5].invalid_fields == {"output.post_call_data.summary": 12}
        assert got[70].invalid_fields == {"user_info": "nobody"}
        assert got[119].output is None
        assert got[119].invalid_fields is not None
        for fmt in ("jsonl", "csv", "parquet"):
            stats = await c.export_tasks(SPACE, tmp_path / f"t.{fmt}", format=fmt, page_size=50)
            assert stats.tasks == 120, fmt


async def test_the_real_simulator_serves_tasks_the_client_decodes(sim: Simulator) -> None:
    async with UnpodClient(TOKEN, base_url=sim.base_url) as client:
        tasks = await client.get_all_tasks(SPACE, page_size=100)
    assert [t.task_id for t in tasks] == sim.task_ids()
    assert all(t.invalid_fields is None for t in tasks)
    assert {t.outcome for t in tasks} >= {"Interested", "Call Back", "Not Connected", "ended"}


def _representatives() -> list[dict[str, Any]]:
    """A native output with a summary object, a provider-shaped one, a docs-form one."""
    native = next(
        t
        for t in REAL
        if isinstance(t["output"].get("post_call_data", {}) or None, dict)
        and isinstance(t["output"]["post_call_data"].get("summary"), dict)
        and t["output"]["post_call_data"].get("redial")
    )
    provider = next(t for t in REAL if "type" in t["output"])
    docs = next(
        t
        for t in REAL
        if isinstance(t["output"].get("post_call_data"), dict)
        and isinstance(t["output"]["post_call_data"].get("summary"), str)
    )
    return [native, provider, docs]


@pytest.mark.parametrize("replacement", [None, True, 7, 2.5, "x", [], {"z": 1}])
def test_every_field_of_real_tasks_may_change_type(replacement: Any) -> None:
    for original in _representatives():
        for path in _paths(original):
            if not path or path == ("task_id",):
                continue
            task = copy.deepcopy(original)
            parent: Any = task
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = replacement
            decoded = _decode.decode_typed_page(page_of([REAL[0], task]))
            assert [t.task_id for t in decoded.payload.data] == [
                REAL[0]["task_id"],
                task["task_id"],
            ]
            assert decoded.payload.data[0].invalid_fields is None
