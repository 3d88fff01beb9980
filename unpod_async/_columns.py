"""The columns of a CSV or Parquet export, and the ``extra`` column for everything else.

One tree of the task's documented fields drives both formats: CSV flattens it into dotted
columns (``output.post_call_data.summary.status``), Parquet keeps it as nested structs. A task
is read from its own JSON (not from the typed model), so nothing the server sent is lost:

- a value whose field has a column and fits it exactly goes there;
- everything else (a field no column names, at any depth, or a value of another type than its
  column's) goes into ``extra``, a JSON object shaped like the task. Its cell still shows what
  it can (``"45"`` in the duration column), but ``extra`` holds the value as sent.

So the columns and ``extra`` together give the task back, with one exception: an empty cell
stands for a null, an absent field or an empty object alike. A derived column (``outcome``, the
transcript as text) is a reading aid: it adds nothing and is left out of that accounting.

CSV cells a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return) get a ``'`` in front when the guard is on (OWASP's advice); so does
text that already starts with ``'``, which keeps the guard reversible (:func:`unguard`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

__all__ = [
    "CSV_HEADER",
    "csv_row",
    "outcome_of",
    "parquet_row",
    "parquet_schema",
    "split",
    "transcript_text_of",
    "unguard",
]

TEXT, NUMBER, INT, BOOL, JSON, TRANSCRIPT = "text", "number", "int", "bool", "json", "transcript"
TURN_FIELDS = ("role", "content", "user_id", "timestamp")
_INT64 = 2**63
_EXACT_FLOAT = 2**53

_encode = msgspec.json.Encoder().encode
_NONE: Any = object()

# name: kind | [children] | (kind, [children]) for a field that is text or an object.
Spec = str | list[tuple[str, Any]] | tuple[str, list[tuple[str, Any]]]
_TREE: list[tuple[str, Spec]] = [
    ("_id", TEXT),
    ("id", TEXT),
    ("task_id", TEXT),
    ("run_id", TEXT),
    ("thread_id", TEXT),
    ("space_id", INT),
    ("user", INT),
    ("user_org_id", INT),
    (
        "user_info",
        [
            ("id", INT),
            ("email", TEXT),
            ("full_name", TEXT),
            ("user_token", TEXT),
            ("location", TEXT),
        ],
    ),
    ("status", TEXT),
    ("run_mode", TEXT),
    ("execution_type", TEXT),
    ("assignee", TEXT),
    ("ref_id", TEXT),
    ("collection_ref", TEXT),
    ("created", TEXT),
    ("modified", TEXT),
    ("scheduled_timestamp", TEXT),
    ("retry_attempt", INT),
    ("task", [("objective", TEXT), ("instructions", TEXT)]),
    ("input", JSON),
    ("attachments", JSON),
    (
        "output",
        [
            ("call_id", TEXT),
            ("id", TEXT),
            ("type", TEXT),
            ("call_type", TEXT),
            ("status", TEXT),
            ("call_status", TEXT),
            ("customer", TEXT),
            ("contact_number", TEXT),
            ("assistant_number", TEXT),
            ("call_end_reason", TEXT),
            ("duration", NUMBER),
            ("start_time", TEXT),
            ("end_time", TEXT),
            ("recording_url", TEXT),
            ("cost", NUMBER),
            ("transcript", TRANSCRIPT),
            ("summary", TEXT),
            ("call_summary", TEXT),
            ("notes", TEXT),
            ("error", JSON),
            ("metadata", JSON),
            ("status_update", JSON),
            (
                "post_call_data",
                [
                    (
                        "summary",
                        (
                            TEXT,
                            [
                                ("status", TEXT),
                                ("summary", TEXT),
                                ("name", TEXT),
                                ("contact", TEXT),
                                ("callback_datetime", TEXT),
                                ("hours_from_now", NUMBER),
                            ],
                        ),
                    ),
                    ("outcome", TEXT),
                    ("sentiment", TEXT),
                    ("follow_up_required", BOOL),
                    ("classification", JSON),
                    ("success_evaluator", JSON),
                    ("follow_up", JSON),
                    ("call_evaluation", JSON),
                    ("profile_summary", JSON),
                    ("realtime_agent_evaluation", JSON),
                    ("structured_data", JSON),
                    ("redial", JSON),
                ],
            ),
            ("user_info", [("name", TEXT), ("contact_number", TEXT), ("email", TEXT)]),
        ],
    ),
]


class Node:
    """A field of the tree: a leaf (``kind``), a group (``children``), or both."""

    __slots__ = ("children", "index", "kind", "name", "path")

    def __init__(self, name: str, path: str, spec: Spec, leaves: list[Node]) -> None:
        self.name = name
        self.path = path
        self.kind: str | None = None
        self.children: dict[str, Node] | None = None
        self.index = -1
        children: list[tuple[str, Any]] | None = None
        if isinstance(spec, str):
            self.kind = spec
        elif isinstance(spec, tuple):
            self.kind, children = spec
        else:
            children = spec
        if self.kind is not None:
            self.index = len(leaves)
            leaves.append(self)
        if children is not None:
            prefix = f"{path}." if path else ""
            self.children = {n: Node(n, prefix + n, s, leaves) for n, s in children}


LEAVES: list[Node] = []
ROOT = Node("", "", _TREE, LEAVES)


def _fits_csv(kind: str, value: Any) -> bool:
    """Whether ``value`` reads back exactly from its CSV cell."""
    if kind == JSON:
        return True
    if kind in (TEXT, TRANSCRIPT):
        return type(value) is str and value != ""
    if kind == BOOL:
        return type(value) is bool
    if kind == INT:
        return type(value) is int
    return type(value) is int or type(value) is float


def _turns_fit(value: Any) -> bool:
    return isinstance(value, list) and all(
        type(turn) is dict
        and all(k in TURN_FIELDS and (v is None or type(v) is str) for k, v in turn.items())
        for turn in value
    )


def _fits_parquet(kind: str, value: Any) -> bool:
    """Whether ``value`` reads back exactly from its Parquet field."""
    if kind == JSON:
        return True
    if kind == TEXT:
        return type(value) is str
    if kind == TRANSCRIPT:
        return type(value) is str or _turns_fit(value)
    if kind == BOOL:
        return type(value) is bool
    if kind == INT:
        return type(value) is int and -_INT64 <= value < _INT64
    return type(value) is float or (type(value) is int and abs(value) <= _EXACT_FLOAT)


Fits = Callable[[str, Any], bool]


def _walk(node: Node, value: Any, values: list[Any], fits: Fits) -> Any:
    """Put ``value``'s parts into ``values`` (one per leaf); what no leaf holds exactly."""
    if value is None:
        return _NONE
    children = node.children
    if children is not None and type(value) is dict:
        residual = {}
        for key, item in value.items():
            child = children.get(key)
            if child is None:
                residual[key] = item
            else:
                rest = _walk(child, item, values, fits)
                if rest is not _NONE:
                    residual[key] = rest
        return residual or _NONE
    if node.kind is not None:
        values[node.index] = value
        return _NONE if fits(node.kind, value) else value
    return value  # a group given something else than an object: kept whole


def split(task: Any, *, parquet: bool = False) -> tuple[list[Any], Any]:
    """Each leaf's value (``None`` if absent) and the rest of the task (``None`` if nothing)."""
    values: list[Any] = [None] * len(LEAVES)
    if type(task) is not dict:
        return values, task
    rest = _walk(ROOT, task, values, _fits_parquet if parquet else _fits_csv)
    return values, None if rest is _NONE else rest


# --- derived values -------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def transcript_text_of(transcript: Any) -> str:
    """The transcript as text, like ``TaskOutput.transcript_text``, from plain JSON values."""
    if isinstance(transcript, str):
        return transcript
    if not isinstance(transcript, list):
        return ""
    return "\n".join(
        f"{_text(turn.get('role'))}: {_text(turn.get('content'))}"
        for turn in transcript
        if isinstance(turn, dict)
    )


def outcome_of(task: Any) -> str | None:
    """The call-outcome label, like ``Task.outcome``, from plain JSON values."""
    output = task.get("output") if isinstance(task, dict) else None
    if not isinstance(output, dict):
        return None
    data = output.get("post_call_data")
    if isinstance(data, dict):
        summary = data.get("summary")
        label = summary.get("status") if isinstance(summary, dict) else None
        if isinstance(label, str) and label:
            return label
        outcome = data.get("outcome")
        if isinstance(outcome, str) and outcome:
            return outcome
    status = output.get("status")
    return status if isinstance(status, str) and status else None


# --- CSV ------------------------------------------------------------------------------------

_GUARDED = frozenset("=+-@\t\r'")


def guard(text: str) -> str:
    """``text`` as a spreadsheet shows it as text (a ``'`` before a formula's first char)."""
    return "'" + text if text and text[0] in _GUARDED else text


def unguard(cell: str) -> str:
    """The text that :func:`guard` turned into ``cell``."""
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in _GUARDED else cell


def _header() -> list[str]:
    header: list[str] = []
    for leaf in LEAVES:
        header.append(leaf.path)
        if leaf.path == "status":
            header.append("outcome")  # derived, next to the task's own status
    header.append("extra")
    return header


CSV_HEADER: list[str] = _header()
_OUTCOME_AT = CSV_HEADER.index("outcome")


def _cell(kind: str, value: Any, guarded: bool) -> str:
    if value is None:
        return ""
    if kind == JSON:
        return _encode(value).decode()
    if type(value) is str:
        return guard(value) if guarded else value
    if kind == BOOL and type(value) is bool:
        return "True" if value else "False"
    if kind == TRANSCRIPT and type(value) is list:
        text = transcript_text_of(value)
        return guard(text) if guarded else text
    return _encode(value).decode()


def csv_row(task: Any, *, guarded: bool = True) -> list[str]:
    """One CSV row of ``task`` (its JSON decoded to plain values), in :data:`CSV_HEADER` order."""
    values, rest = split(task)
    row = [_cell(leaf.kind or TEXT, values[leaf.index], guarded) for leaf in LEAVES]
    outcome = outcome_of(task)
    row.insert(_OUTCOME_AT, "" if outcome is None else guard(outcome) if guarded else outcome)
    row.append("" if rest is None else _encode(rest).decode())
    return row


# --- Parquet --------------------------------------------------------------------------------


def _arrow_type(pa: Any, kind: str) -> Any:
    if kind == NUMBER:
        return pa.float64()
    if kind == INT:
        return pa.int64()
    if kind == BOOL:
        return pa.bool_()
    return pa.string()


def _fields(pa: Any, node: Node) -> Iterator[tuple[str, Any]]:
    assert node.children is not None
    for child in node.children.values():
        if child.kind == TRANSCRIPT:
            turn = pa.struct([(name, pa.string()) for name in TURN_FIELDS])
            yield child.name, pa.list_(turn)
            yield f"{child.name}_text", pa.string()
            continue
        if child.kind is not None:
            yield child.name, _arrow_type(pa, child.kind)
        if child.children is not None:
            name = f"{child.name}_object" if child.kind is not None else child.name
            yield name, pa.struct(list(_fields(pa, child)))
        if node is ROOT and child.name == "status":
            yield "outcome", pa.string()


def parquet_schema(pa: Any) -> Any:
    """The Parquet schema: the tree as nested structs, then ``extra`` (JSON text).

    A field that is text or an object has both: ``summary`` (the text) and ``summary_object``;
    the transcript has ``transcript`` (its turns) and ``transcript_text``.
    """
    return pa.schema([*_fields(pa, ROOT), ("extra", pa.string())])


def _parquet_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == JSON:
        return _encode(value).decode()
    if kind == TEXT:
        return value if type(value) is str else _encode(value).decode()
    if kind == BOOL:
        return value if type(value) is bool else None
    if kind == INT:
        if type(value) is int and -_INT64 <= value < _INT64:
            return value
        return None
    if type(value) is int or type(value) is float:
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _turns(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return [
        {k: v if type(v := turn.get(k)) is str else None for k in TURN_FIELDS}
        for turn in value
        if isinstance(turn, dict)
    ]


def _struct(node: Node, values: list[Any]) -> dict[str, Any] | None:
    assert node.children is not None
    out: dict[str, Any] = {}
    for child in node.children.values():
        if child.kind == TRANSCRIPT:
            value = values[child.index]
            out[child.name] = _turns(value)
            out[f"{child.name}_text"] = None if value is None else transcript_text_of(value)
            continue
        if child.kind is not None:
            out[child.name] = _parquet_value(child.kind, values[child.index])
        if child.children is not None:
            name = f"{child.name}_object" if child.kind is not None else child.name
            out[name] = _struct(child, values)
    return out if any(v is not None for v in out.values()) else None


def parquet_row(task: Any) -> dict[str, Any]:
    """One Parquet row of ``task`` (its JSON decoded to plain values)."""
    values, rest = split(task, parquet=True)
    row = _struct(ROOT, values) or {}
    row["outcome"] = outcome_of(task)
    row["extra"] = None if rest is None else _encode(rest).decode()
    return row
