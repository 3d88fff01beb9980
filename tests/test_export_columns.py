"""CSV and Parquet keep every field: columns plus ``extra`` give each task's JSON back."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from unpod_async import BusinessLogicError, UnpodClient, _decode
from unpod_async._columns import (
    BOOL,
    CSV_HEADER,
    INT,
    JSON,
    LEAVES,
    NUMBER,
    ROOT,
    TRANSCRIPT,
    Node,
    outcome_of,
    transcript_text_of,
    unguard,
)
from unpod_async._writers import seen_from_csv
from unpod_async.testing import Simulator

from .helpers import SPACE, TOKEN, cli_env, run_here, tasks_server
from .helpers import docs as sim_docs

pq = pytest.importorskip("pyarrow.parquet")


# --------------------------------------------------------------------------- reconstruction


def normalized(value: Any) -> Any:
    """A null, an absent field and an empty object are one (an empty cell stands for each)."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def merged(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = merged(base.get(key), value) if key in base else value
        return out
    return extra


def _parse(kind: str, cell: str) -> Any:
    if kind == BOOL:
        return {"True": True, "False": False}[cell]
    if kind == INT:
        return int(cell)
    if kind in (NUMBER, JSON):
        return json.loads(cell)
    return cell


def from_csv(row: dict[str, str], *, guarded: bool) -> Any:
    task: dict[str, Any] = {}
    for leaf in LEAVES:
        cell = row[leaf.path]
        if cell == "":
            continue
        if guarded:
            cell = unguard(cell)
        try:
            value = _parse(leaf.kind or "", cell)
        except (KeyError, ValueError):
            continue  # a best-effort cell: the exact value is in extra
        node = task
        *parents, name = leaf.path.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                break
        else:
            node[name] = value
    return merged(task, json.loads(row["extra"])) if row["extra"] else task


def _from_struct(node: Node, struct: dict[str, Any]) -> dict[str, Any]:
    assert node.children is not None
    out: dict[str, Any] = {}
    for child in node.children.values():
        value: Any
        if child.kind == TRANSCRIPT:
            turns = struct.get(child.name)
            value = turns if turns is not None else struct.get(f"{child.name}_text")
        elif child.children is not None:
            name = f"{child.name}_object" if child.kind is not None else child.name
            sub = struct.get(name)
            value = _from_struct(child, sub) if sub is not None else None
            if value is None and child.kind is not None:
                value = struct.get(child.name)
        else:
            value = struct.get(child.name)
            if child.kind == JSON and value is not None:
                value = json.loads(value)
        if value is not None:
            out[child.name] = value
    return out


def from_parquet(row: dict[str, Any]) -> Any:
    task = _from_struct(ROOT, row)
    return merged(task, json.loads(row["extra"])) if row["extra"] else task


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- real-shaped tasks


@pytest.mark.parametrize("guarded", [False, True])
async def test_csv_columns_and_extra_give_back_every_real_task(
    sim: Simulator, client: UnpodClient, tmp_path: Path, guarded: bool
) -> None:
    out = tmp_path / "t.csv"
    await client.export_tasks(SPACE, out, format="csv", csv_formula_guard=guarded)
    rows = read_csv(out)
    docs = sim_docs(sim)
    assert len(rows) == len(docs)
    for row, doc in zip(rows, docs, strict=True):
        assert normalized(from_csv(row, guarded=guarded)) == normalized(doc)
        assert row["outcome"] == (outcome_of(doc) or "")
        transcript = doc["output"].get("transcript")
        assert unguard(row["output.transcript"]) == transcript_text_of(transcript)
        # extra holds something exactly when the columns alone would not give the task back
        columns_alone = from_csv({**row, "extra": ""}, guarded=guarded)
        assert (row["extra"] == "") == (normalized(columns_alone) == normalized(doc))


@pytest.mark.parametrize("resume", [False, True])
async def test_parquet_columns_and_extra_give_back_every_real_task(
    sim: Simulator, client: UnpodClient, tmp_path: Path, resume: bool
) -> None:
    out = tmp_path / "t.parquet"
    await client.export_tasks(SPACE, out, format="parquet", resume=resume)
    table = pq.read_table(out)
    docs = sim_docs(sim)
    rows = table.to_pylist()
    assert len(rows) == len(docs)
    for row, doc in zip(rows, docs, strict=True):
        assert normalized(from_parquet(row)) == normalized(doc)
        assert row["outcome"] == outcome_of(doc)
    # The real tasks fit their columns: extra holds only a provider's own fields and the
    # numbers sent as strings.
    provider_own = {"endedReason", "startedAt", "endedAt", "recordingUrl"}
    for row in rows:
        if row["extra"] is not None:
            extra = json.loads(row["extra"])
            assert set(extra) == {"output"}
            for key, value in extra["output"].items():
                assert key in provider_own or (
                    key in ("duration", "cost") and isinstance(value, str)
                )
    names = table.schema.names
    assert {"thread_id", "user_info", "outcome", "extra", "id", "_id"} <= set(names)
    output = table.schema.field("output").type
    fields = ("customer", "contact_number", "call_end_reason", "assistant_number")
    for field in (*fields, "call_summary", "metadata", "error", "notes", "transcript_text"):
        assert output.get_field_index(field) >= 0, field
    post = output.field("post_call_data").type
    assert post.field("summary_object").type.get_field_index("status") >= 0


def test_the_header_has_a_column_for_every_documented_field() -> None:
    for name in (
        "thread_id", "space_id", "user", "user_org_id", "collection_ref", "attachments",
        "user_info.id", "user_info.email", "user_info.full_name", "user_info.user_token",
        "user_info.location", "output.customer", "output.contact_number",
        "output.call_end_reason", "output.assistant_number", "output.call_summary",
        "output.cost", "output.metadata", "output.error", "output.notes",
        "output.status_update", "output.id", "output.type", "output.summary", "output.status",
        "output.post_call_data.summary.status", "output.post_call_data.summary.callback_datetime",
        "output.post_call_data.classification", "output.post_call_data.success_evaluator",
        "output.post_call_data.follow_up", "output.post_call_data.structured_data",
        "output.post_call_data.redial", "outcome", "extra",
        # the columns of before are all still there
        "_id", "task_id", "output.call_status", "output.post_call_data.outcome",
        "output.post_call_data.follow_up_required", "output.user_info.name",
    ):  # fmt: skip
        assert name in CSV_HEADER, name
    assert len(set(CSV_HEADER)) == len(CSV_HEADER)
    assert CSV_HEADER[-1] == "extra"


# --------------------------------------------------------------------------- odd tasks

ODD = [
    {
        "task_id": "T-odd-1",
        "brand_new": {"nested": [1, {"x": None}]},
        "created": 1767225600,
        "status": "",
        "input": {"phone": "+15550100"},
        "output": {
            "duration": "45",
            "cost": -0.5,
            "transcript": [{"role": "user", "content": "hi", "emotion": "calm"}],
            "customer": {"number": "+15550100"},
            "post_call_data": {"summary": {"status": "Call Back", "mood": 3}, "score": 0.9},
            "unknown_output_field": True,
        },
        "user_info": "not an object",
    },
    {
        "task_id": '=HYPERLINK("http://evil")',
        "_id": "-5",
        "output": {"contact_number": "+15550100", "notes": "@SUM(A1:A9)", "call_id": "\tx"},
        "assignee": "\rcarriage",
        "ref_id": "'quoted",
        "run_mode": "-1+1",
        "retry_attempt": 7,
        "space_id": "4242",
    },
    {"task_id": 5, "id": 9, "output": "oops", "task": ["a"]},
]


async def _odd_server(tasks: list[Any], fail_page: int | None = None) -> Any:
    async def handler(request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["page_size"])
        if fail_page is not None and page == fail_page and not handler.failed:  # type: ignore[attr-defined]
            handler.failed = True  # type: ignore[attr-defined]
            body = {"status_code": 206, "message": "Invalid Space Token", "data": {}}
            return web.json_response(body, status=206)
        data = tasks[(page - 1) * size : page * size]
        body = {"count": len(tasks), "status_code": 200, "data": data}
        return web.json_response(body)

    handler.failed = False  # type: ignore[attr-defined]
    return tasks_server(handler)


@pytest.mark.parametrize("guarded", [False, True])
async def test_fields_no_column_names_go_to_extra(tmp_path: Path, guarded: bool) -> None:
    async with await _odd_server(ODD) as base_url, UnpodClient(TOKEN, base_url=base_url) as c:
        await c.export_tasks(SPACE, tmp_path / "o.csv", format="csv", csv_formula_guard=guarded)
        await c.export_tasks(SPACE, tmp_path / "o.parquet", format="parquet")
    rows = read_csv(tmp_path / "o.csv")
    for row, doc in zip(rows, ODD, strict=True):
        assert normalized(from_csv(row, guarded=guarded)) == normalized(doc)
    extra = json.loads(rows[0]["extra"])
    assert extra == {
        "brand_new": {"nested": [1, {"x": None}]},
        "created": 1767225600,
        "status": "",
        "output": {
            "duration": "45",
            "transcript": [{"role": "user", "content": "hi", "emotion": "calm"}],
            "customer": {"number": "+15550100"},
            "post_call_data": {"summary": {"mood": 3}, "score": 0.9},
            "unknown_output_field": True,
        },
        "user_info": "not an object",
    }
    assert rows[0]["output.duration"] == "45"  # the cell still shows it
    assert rows[0]["output.post_call_data.summary.status"] == "Call Back"
    assert rows[0]["outcome"] == "Call Back"
    parquet = pq.read_table(tmp_path / "o.parquet").to_pylist()
    for row, doc in zip(parquet, ODD, strict=True):
        assert normalized(from_parquet(row)) == normalized(doc)


# --------------------------------------------------------------------------- formula guard


async def test_formula_guard_neutralises_cells_a_spreadsheet_would_run(tmp_path: Path) -> None:
    async with await _odd_server(ODD) as base_url, UnpodClient(TOKEN, base_url=base_url) as c:
        await c.export_tasks(SPACE, tmp_path / "g.csv", format="csv")
        await c.export_tasks(SPACE, tmp_path / "p.csv", format="csv", csv_formula_guard=False)
    guarded, plain = read_csv(tmp_path / "g.csv"), read_csv(tmp_path / "p.csv")
    row = guarded[1]
    assert row["output.contact_number"] == "'+15550100"  # reads +15550100 in a spreadsheet
    assert row["task_id"] == '\'=HYPERLINK("http://evil")'
    assert row["_id"] == "'-5"
    assert row["output.notes"] == "'@SUM(A1:A9)"
    assert row["output.call_id"] == "'\tx"
    assert row["assignee"] == "'\rcarriage"
    assert row["run_mode"] == "'-1+1"
    assert row["ref_id"] == "''quoted"  # one more ', so that the guard reads back exactly
    assert guarded[0]["output.cost"] == "-0.5"  # a number the server sent as one: not text
    assert json.loads(guarded[0]["input"]) == {"phone": "+15550100"}  # JSON cells start { [ "
    for g, p in zip(guarded, plain, strict=True):
        assert {k: unguard(v) for k, v in g.items()} == p
    assert plain[1]["output.contact_number"] == "+15550100"
    assert plain[1]["task_id"] == '=HYPERLINK("http://evil")'
    # No guarded cell starts like a formula, but for a number the server sent as a number.
    cells = [value for r in guarded for value in r.values() if value]
    assert [c for c in cells if c[0] in "=+-@\t\r"] == ["-0.5"]


async def test_cli_formula_guard_flag(sim: Simulator, tmp_path: Path) -> None:
    for flag, prefix in (((), "'+1555"), (("--no-csv-formula-guard",), "+1555")):
        out = tmp_path / f"t{len(flag)}.csv"
        code, _, err = await run_here(
            "tasks", "export", sim.space_token, "-o", str(out), *flag, env=cli_env(sim)
        )
        assert code == 0, err
        phones = [r["output.contact_number"] for r in read_csv(out) if r["output.contact_number"]]
        assert phones
        assert all(p.startswith(prefix) for p in phones)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("guarded", [False, True])
async def test_resumed_csv_rebuilds_its_keys(tmp_path: Path, guarded: bool) -> None:
    # Keys a guard changes (a leading - = + @ ') and keys only extra holds exactly (5).
    tasks = [*ODD, *({"task_id": f"{'-=+@'[i % 4]}T{i}", "status": "done"} for i in range(30))]
    body = json.dumps({"count": len(tasks), "data": tasks}).encode()
    keys = list(_decode.decode_raw_page(body).keys)  # what the export dedupes on
    out = tmp_path / "r.csv"
    partial = out.with_name(f".{out.name}.unpod-partial")
    options: dict[str, Any] = {"format": "csv", "page_size": 10, "resume": True}
    async with (
        await _odd_server(tasks, fail_page=3) as base_url,
        UnpodClient(TOKEN, base_url=base_url, max_retries=0) as c,
    ):
        with pytest.raises(BusinessLogicError):
            await c.export_tasks(SPACE, out, csv_formula_guard=guarded, **options)
        seen = seen_from_csv(partial, partial.stat().st_size, formula_guard=guarded)
        assert seen.add_page(keys[:20]) == []  # every key of the two pages written is known
        assert seen.add_page(keys[20:]) is None  # None: all new
        stats = await c.export_tasks(SPACE, out, csv_formula_guard=guarded, **options)
    assert stats.resumed_pages == 2
    rows = read_csv(out)
    assert [from_csv(r, guarded=guarded)["task_id"] for r in rows] == [t["task_id"] for t in tasks]
    assert seen_from_csv(out, out.stat().st_size, formula_guard=guarded).add_page(keys) == []
