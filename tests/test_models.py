"""The msgspec models: field mapping, defaults, schema evolution, and decoders built once."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unpod_async import (
    PostCallData,
    Task,
    TaskOutput,
    TasksPage,
    TaskSpec,
    TranscriptTurn,
    UnpodClient,
    UserInfo,
    _decode,
)
from unpod_async.testing import Simulator

from .helpers import SPACE

NESTED = [Task, TaskOutput, TaskSpec, PostCallData, UserInfo, TranscriptTurn, TasksPage]


def decode_task(doc: Any) -> Task:
    return msgspec.json.decode(json.dumps(doc).encode(), type=Task)


def test_task_id_maps_underscore_id() -> None:
    task = decode_task({"_id": "65f0c0ffee", "task_id": "T1"})
    assert task.id == "65f0c0ffee"
    assert task.task_id == "T1"
    # "id" is not the server's name for it: it is an unknown field, ignored.
    assert decode_task({"id": "nope"}).id is None
    assert json.loads(msgspec.json.encode(task))["_id"] == "65f0c0ffee"


def test_key_prefers_task_id_then_underscore_id() -> None:
    assert decode_task({"_id": "a", "task_id": "b"}).key == "b"
    assert decode_task({"_id": "a"}).key == "a"
    assert decode_task({}).key is None


@pytest.mark.parametrize("model", NESTED, ids=lambda m: m.__name__)
def test_every_field_has_a_default(model: type[msgspec.Struct]) -> None:
    required = [f.name for f in msgspec.structs.fields(model) if f.required]
    assert required == []
    assert msgspec.json.decode(b"{}", type=model) == model()


def test_empty_object_decodes_into_a_default_task() -> None:
    task = msgspec.json.decode(b"{}", type=Task)
    assert task == Task()
    assert task.id is None
    assert task.task_id is None
    assert task.output is None


def test_empty_page_decodes() -> None:
    page = _decode.TASKS_PAGE_DECODER.decode(b"{}")
    assert page.count == 0
    assert page.data == ()


def test_unknown_fields_are_ignored_at_every_level() -> None:
    doc = {
        "_id": "x",
        "task_id": "T",
        "space_id": 42,
        "user": {"id": 1},
        "user_org_id": 7,
        "collection_ref": "c",
        "attachments": [{"url": "u"}],
        "output": {
            "call_id": "c1",
            "brand_new": [1, 2, 3],
            "transcript": [{"role": "agent", "content": "hi", "emotion": "calm"}],
            "post_call_data": {"summary": "ok", "score": 0.9},
            "user_info": {"name": "Zoë", "twitter": "@z"},
        },
        "task": {"objective": "call", "priority": "high"},
    }
    task = decode_task(doc)
    assert task.id == "x"
    assert task.task_id == "T"
    assert task.output is not None
    assert task.output.call_id == "c1"
    assert task.output.transcript == (TranscriptTurn(role="agent", content="hi"),)
    assert task.output.post_call_data == PostCallData(summary="ok")
    assert task.output.user_info == UserInfo(name="Zoë")
    assert task.task == TaskSpec(objective="call")


@pytest.mark.parametrize("status", ["completed", "archived_by_robot", "", "NEW-ONE"])
@pytest.mark.parametrize("run_mode", ["prod", "shadow", "canary-2027"])
def test_open_set_values_decode(status: str, run_mode: str) -> None:
    task = decode_task({"status": status, "run_mode": run_mode})
    assert (task.status, task.run_mode) == (status, run_mode)


def test_input_is_free_form() -> None:
    for value in ({"name": "a", "n": [1, {"x": None}]}, [1, 2], "text", 3.5, None):
        assert decode_task({"input": value}).input == value


def test_tasks_are_immutable() -> None:
    task = decode_task({"task_id": "T"})
    with pytest.raises(AttributeError):
        task.task_id = "other"  # type: ignore[misc]


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)
_TASK_NAMES = {f.encode_name for f in msgspec.structs.fields(Task)}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text().filter(lambda k: k not in _TASK_NAMES), _JSON, max_size=6))
def test_any_unknown_fields_decode_to_the_default_task(doc: dict[str, Any]) -> None:
    assert decode_task(doc) == Task()


@pytest.mark.simulator(ids="_id")  # asserts on every task's _id
def test_every_simulated_task_decodes(sim: Simulator) -> None:
    raws = sim.tasks_json()[:300]
    for raw in raws:
        task = msgspec.json.decode(raw, type=Task)
        doc = json.loads(raw)
        assert task.id == doc["_id"]
        assert task.task_id == doc["task_id"]
        assert task.status == doc["status"]


# --------------------------------------------------------------------------- decoders


def test_decoders_are_module_level_singletons() -> None:
    import unpod_async._decode as again

    assert isinstance(_decode.TASKS_PAGE_DECODER, msgspec.json.Decoder)
    assert again.TASKS_PAGE_DECODER is _decode.TASKS_PAGE_DECODER
    assert _decode.TASKS_PAGE_DECODER.type is TasksPage


class _CountingDecoder:
    def __init__(self, inner: msgspec.json.Decoder[Any]) -> None:
        self.inner = inner
        self.calls = 0

    def decode(self, buf: bytes) -> Any:
        self.calls += 1
        return self.inner.decode(buf)


async def test_client_decodes_pages_with_the_shared_decoder(
    sim: Simulator, client: UnpodClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # get_tasks decodes a public TasksPage; a pull, the pager's view of the same page.
    single = _CountingDecoder(_decode.TASKS_PAGE_DECODER)
    pulled = _CountingDecoder(_decode.TYPED_PAGE_DECODER)
    monkeypatch.setattr(_decode, "TASKS_PAGE_DECODER", single)
    monkeypatch.setattr(_decode, "TYPED_PAGE_DECODER", pulled)
    built: list[object] = []
    real_decoder = msgspec.json.Decoder

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real_decoder(*args, **kwargs)

    monkeypatch.setattr(msgspec.json, "Decoder", spy)

    page = await client.get_tasks(SPACE, page=2, page_size=10)
    assert isinstance(page, TasksPage)
    assert len(page.data) == 10
    assert (single.calls, pulled.calls) == (1, 0)
    tasks = await client.get_all_tasks(SPACE, page_size=250)
    assert len(tasks) == len(sim)
    # One decode per page answered, no other.
    assert single.calls + pulled.calls == len(sim.requests)
    assert built == []  # no decoder is built per call
