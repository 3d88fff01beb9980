"""An aiohttp.web simulator of the Unpod platform API, with scriptable faults.

By default it behaves like the real backend as the project's API notes describe it: real-shaped
tasks, the server's own filter semantics (``status`` is the call-outcome label, ``search`` a
regular expression), its lenient page parsing, its envelopes and error bodies. The earlier,
simpler behaviour stays available behind ``legacy_shapes``, ``legacy_filters`` and
``legacy_params``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Final

import msgspec
from aiohttp import web

from ._data import (
    OUTCOME_LABELS,
    SPACE_ID,
    TaskRecord,
    make_record,
    phone_of,
    render_real_task,
    render_task,
    thread_id_of,
)
from ._faults import (
    FAULT_KINDS,
    IMMEDIATE,
    RESET,
    Aborted,
    Fault,
    body_response,
    fetch_failed,
    immediate_response,
    invalid_space_token,
    json_response,
    random_fault,
)
from ._org import (
    API_PREFIX,
    PAGED_ROUTES,
    BadRequest,
    org_route,
    parse_int,
    serve_org,
    slice_page,
    space_document,
)

__all__ = ["FAULT_KINDS", "Fault", "RequestRecord", "Simulator", "serve"]

# aiohttp transparently retries an idempotent request once when the connection drops before
# the response; a "reset" fault also resets that retry if it comes within this many seconds.
_ECHO_WINDOW: Final = 2.0

_TASKS_OK_HEAD: Final = (
    b'{"count":%d,"status_code":200,"message":"Tasks Fetched Successfully","data":['
)
_TASKS_OK_TAIL: Final = b"]}"
_SPACE_CREATED: Final = "2025-06-01T12:00:00Z"
_MAX_SKIP: Final = 2**63
_ORG_HANDLE_REQUIRED: Final = "Organization handle is required in Org-Handle header"
_NOT_FOUND_HTML: Final = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n'
    "<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n"
    "</body>\n</html>\n"
)
_CALL_TYPES: Final = {
    "inbound": frozenset({"inbound", "inboundPhoneCall"}),
    "outbound": frozenset({"outbound", "outboundPhoneCall"}),
}
_LABEL_INDEX: Final = {label: i for i, label in enumerate(OUTCOME_LABELS) if label}
_ID_STYLES: Final = ("mixed", "_id", "id", "none")
_OPEN_STATUSES: Final = frozenset({"pending", "in_progress", "hold"})
#: The options every space of an organization shares: its ``spaces`` are built with this
#: space's (the attributes of the same names). A space's own are ``tasks``, ``seed``,
#: ``space_token``, ``poisoned`` and its id; ``spaces`` and ``latency`` are the
#: organization's, served by the first space.
_SHARED_OPTIONS: Final = (
    "token",
    "org_handle",
    "page_size_cap",
    "default_page_size",
    "fault_rate",
    "fault_kinds",
    "retry_after",
    "strip_ids",
    "count_offset",
    "reset_includes_auto_retry",
    "legacy_shapes",
    "legacy_filters",
    "legacy_params",
    "ids",
    "spaces_auth",
    "strict",
    "utc_offset",
)

_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class RequestRecord:
    """One request received by the simulator.

    ``status`` is the HTTP status sent (0 when the connection was reset without a response);
    ``page`` is the parsed ``page`` of a tasks-list request (``None`` elsewhere or if it is not
    a number, which the real server reads as page 1);
    ``fault`` is the kind of the fault applied, if any. ``headers`` keep the case as sent.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    page: int | None = None
    fault: str | None = None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC during bulk generation: the new objects hold no cycles, and full
    collections over a growing heap otherwise cost ~40% of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# legacy: (statuses, call_type, from_ts, to_ts, search)
# real:   ("real", label indexes, call types, from_ts, to_ts, pattern, thread_id, user_id)
_FilterKey = tuple[Any, ...]
_NO_FILTER: Final[_FilterKey] = (None, None, None, None, None)


class Simulator:
    """In-process fake of the Unpod platform API (tasks, spaces, organizations).

    Task content is a pure function of ``(seed, serial)``; JSON bytes are rendered on first
    use and cached (call :meth:`warm` to render everything up front, e.g. before a benchmark).

    Faults (see :class:`Fault`) apply to authenticated tasks-list requests for the right space
    token: scripted :attr:`faults` first, then ``fault_rate`` (seeded RNG) picking from
    ``fault_kinds``, where a numeric kind such as ``"503"`` means kind ``"status"`` with that
    status.

    A plain aiohttp session silently re-sends a GET once when a pooled connection drops before
    any response (``UnpodClient`` turns that off: its own retry policy is the only one). Set
    :attr:`reset_includes_auto_retry` to True so that a ``"reset"`` fault also resets that
    immediate re-send (same path and query, within 2 s) and a plain session sees the error.

    :attr:`on_request` (sync or async) is called as ``hook(page, sim)`` for each valid
    tasks-list request that is about to be answered with a page (not for faults answered
    without a page), before the tasks are filtered and sliced.

    Real-server behaviour (the default) and the switches that turn parts of it off:

    - ``legacy_shapes=False``: tasks as the backend sends them (top-level ``user_info`` and
      ``thread_id``, ``id``/``_id``/neither per ``ids``, zone-less timestamps, native and
      provider-shaped outputs, ``post_call_data.summary`` objects with outcome labels, numbers
      as strings now and then), envelopes without ``count`` outside the tasks list, the real
      Org-Handle message, Django's HTML 404 for an unknown route and its 301 to the slashed
      path. ``True``: the earlier shapes (``_id``, ``...Z``, ``call_status``, ...).
    - ``legacy_filters=False``: ``status`` matches the outcome label (comma list, ``+`` read
      as a space), ``call_type`` ``inbound``/``outbound`` also matches the provider variants on
      ``output.call_type`` or ``output.type``, ``search`` is a case-insensitive regular
      expression over the contact's name and phone (an invalid one answers 206 "Tasks Fetch
      Failed"), ``from_ts``/``to_ts`` are read in the server's time zone (``utc_offset``
      seconds east of UTC) and an unparsable one is ignored, ``thread_id`` and ``user_id``
      filter. ``True``: ``status`` is the task status, ``search`` a substring of the name or
      task_id, an unparsable date is a 206.
    - ``legacy_params=False``: a non-numeric ``page``/``page_size`` means page 1 / the default
      size, ``page <= 0`` and a skip below zero (a negative size past page 1) answer 206, a skip
      beyond 8 bytes answers 206 "MongoDB can only handle up to 8-byte ints", a negative size
      serves ``abs(n)`` tasks on page 1, and ``space_id`` replaces the space (only this space's
      own id, ``4242``, finds its tasks). ``True``: anything odd is a 206, ``space_id`` a 400.

    Further options: ``poisoned`` (serials or task_ids) makes every page holding one of those
    tasks answer 206 "Tasks Fetch Failed" every time (as one stored task that fails the
    server's response model does), while the other pages work; ``spaces_auth`` lists the
    ``Authorization`` schemes the spaces and organizations views accept (the backend code
    takes only ``("JWT", "Bearer")``; the docs say ``Token``, the default); ``strict=True``
    answers 415 to an API request without ``Content-Type: application/json``.

    The organization (``_org``): ``spaces={"token": n_tasks, ...}`` adds more spaces beside
    this one (listed after it by ``GET spaces/``, each with tasks of its own seed and its own
    ``space_id``, and this one's other options but ``poisoned`` and ``latency``); :meth:`space`
    returns the simulator of one of them, whose ``faults``, ``insert``/``delete`` and ``poison``
    are that space's. Every space serves its runs
    (``GET spaces/{token}/runs/``: a run is ``RUN_SIZE`` = 250 consecutive tasks) and each run's
    tasks (``GET spaces/{token}/runs/{run_id}/tasks/``), and ``GET agents/{handle}/tasks/``
    serves an agent's tasks across the spaces (``agent-1`` .. ``agent-8`` take the runs in
    turn). A :class:`Fault` with ``route=`` aims at those lists. :attr:`in_flight` and
    :attr:`peak_in_flight` count the requests the server is handling at once.
    """

    def __init__(
        self,
        tasks: int = 1000,
        *,
        seed: int = 0,
        space_token: str = "space-demo",  # noqa: S107
        token: str = "test-token",  # noqa: S107
        org_handle: str = "demo-org",
        latency: float = 0.0,
        page_size_cap: int | None = None,
        default_page_size: int = 50,
        fault_rate: float = 0.0,
        fault_kinds: Iterable[str] = ("503", "206", "429", "reset"),
        retry_after: str | None = "0.05",
        strip_ids: bool = False,
        count_offset: int = 0,
        reset_includes_auto_retry: bool = False,
        legacy_shapes: bool = False,
        legacy_filters: bool = False,
        legacy_params: bool = False,
        ids: str | None = None,
        poisoned: Iterable[int | str] = (),
        spaces_auth: Iterable[str] = ("Token",),
        strict: bool = False,
        utc_offset: float = 0.0,
        spaces: Mapping[str, int] | None = None,
        _space_id: int = SPACE_ID,  # private: the id of one of another's ``spaces``
    ) -> None:
        if tasks < 0:
            raise ValueError("tasks must be >= 0")
        if ids is not None and ids not in _ID_STYLES:
            raise ValueError(f"ids must be one of {', '.join(_ID_STYLES)}, got {ids!r}")
        self.legacy_shapes = legacy_shapes
        self.legacy_filters = legacy_filters
        self.legacy_params = legacy_params
        self.strict = strict
        self.utc_offset = float(utc_offset)
        self.spaces_auth: tuple[str, ...] = tuple(spaces_auth)
        if not self.spaces_auth:
            raise ValueError("spaces_auth must name at least one scheme")
        self._ids = ids or ("_id" if legacy_shapes else "mixed")
        self._poisoned_serials: set[int] = set()
        self._poisoned_ids: set[str] = set()
        self.seed = seed
        self.space_token = space_token
        self.token = token
        self.org_handle = org_handle
        self.latency = latency
        self.page_size_cap = page_size_cap
        self.default_page_size = default_page_size
        self.fault_rate = fault_rate
        self.fault_kinds: tuple[str, ...] = tuple(fault_kinds)
        for kind in self.fault_kinds:
            random_fault(kind, retry_after)  # validate early
        self.retry_after = retry_after
        self.count_offset = count_offset
        self.faults: list[Fault] = []
        self.on_request: Callable[[int, Simulator], Awaitable[None] | None] | None = None
        self.requests: list[RequestRecord] = []

        self._strip_ids = strip_ids
        self._next_serial = tasks
        self._tasks = self._records(0, tasks)
        self._fault_rng = random.Random(seed)
        self.reset_includes_auto_retry = reset_includes_auto_retry
        self._reset_echo: dict[str, float] = {}
        self._filter_cache: dict[_FilterKey, list[TaskRecord]] = {}
        self._overrides: dict[int, dict[str, Any]] = {}  # serial -> fields set by update()
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None
        self.poison(*poisoned)
        # The organization: more spaces beside this one (each a simulator of its own, served
        # through this one), their runs, and the agents' views (``_org``).
        self._space_id = _space_id
        self._agent_cache: dict[int, str] = {}
        self._agent_raw: dict[tuple[str, int], bytes] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self._others: dict[str, Simulator] = {}
        for index, (other, n) in enumerate((spaces or {}).items()):
            self._add_space(other, n, index)

    # ------------------------------------------------------------------ data

    @property
    def strip_ids(self) -> bool:
        """Whether ``_id`` is omitted from tasks (settable; cached bytes are re-rendered)."""
        return self._strip_ids

    @strip_ids.setter
    def strip_ids(self, value: bool) -> None:
        if value != self._strip_ids:
            self._strip_ids = value
            for rec in self._tasks:
                rec.raw = None

    @property
    def ids(self) -> str:
        """Which id field real-shaped tasks carry: ``"mixed"``, ``"_id"``, ``"id"``, ``"none"``."""
        return self._ids

    def poison(self, *tasks: int | str) -> None:
        """Make these tasks (serials, or task_ids) fail every page that holds them with 206
        "Tasks Fetch Failed", as a stored task that fails the server's response model does.

        Their documents carry ``execution_type: null`` (in the real shape), what makes the
        real server refuse them.
        """
        for item in tasks:
            if isinstance(item, str):
                self._poisoned_ids.add(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                self._poisoned_serials.add(item)
            else:
                raise TypeError(f"poisoned takes serials (int) or task_ids (str), not {item!r}")
        if tasks:
            for rec in self._tasks:
                if self._is_poisoned(rec):
                    rec.raw = None

    def poisoned_task_ids(self) -> list[str]:
        """The task_ids of the current poisoned tasks, in server order."""
        return [rec.task_id for rec in self._tasks if self._is_poisoned(rec)]

    def _is_poisoned(self, rec: TaskRecord) -> bool:
        return rec.serial in self._poisoned_serials or rec.task_id in self._poisoned_ids

    def __len__(self) -> int:
        return len(self._tasks)

    def _add_space(self, space_token: str, tasks: int, index: int) -> None:
        """One more space of the organization: a simulator with this one's
        :data:`_SHARED_OPTIONS`, and a seed and a ``space_id`` of its own."""
        if space_token == self.space_token or not isinstance(space_token, str) or not space_token:
            raise ValueError(f"spaces: {space_token!r} must be a new, non-empty space token")
        self._others[space_token] = Simulator(
            tasks,
            seed=self.seed * 1009 + index + 1,
            space_token=space_token,
            _space_id=SPACE_ID + index + 1,
            **{name: getattr(self, name) for name in _SHARED_OPTIONS},
        )

    @property
    def space_tokens(self) -> list[str]:
        """The tokens of the organization's spaces: this one first, then ``spaces``."""
        return [self.space_token, *self._others]

    def space(self, space_token: str) -> Simulator:
        """The simulator of one space of the organization (this one for its own token): its
        tasks, ``faults``, ``insert``/``delete``, ``poison`` and ``on_request`` are that
        space's. Requests are recorded here, in :attr:`requests`, and ``latency`` is this one's.
        """
        if space_token == self.space_token:
            return self
        return self._others[space_token]

    def _changed(self) -> None:
        self._filter_cache.clear()

    def insert(self, n: int) -> list[str]:
        """Add ``n`` new tasks at the front (newest first); return their task_ids in that order."""
        if n < 0:
            raise ValueError("n must be >= 0")
        first = self._next_serial
        self._next_serial += n
        new = self._records(first, n)
        self._tasks[0:0] = new
        self._changed()
        return [rec.task_id for rec in new]

    def _records(self, first: int, n: int) -> list[TaskRecord]:
        """New records for serials ``first`` .. ``first + n - 1``, in server order (newest, the
        highest serial, first)."""
        real = not self.legacy_shapes
        with _gc_paused():
            return [
                make_record(self.seed, s, real=real) for s in range(first + n - 1, first - 1, -1)
            ]

    def delete(self, n: int, *, at: int = 0) -> list[str]:
        """Remove ``n`` tasks starting at index ``at`` of the current order; return their ids."""
        if n < 0 or at < 0:
            raise ValueError("n and at must be >= 0")
        removed = self._tasks[at : at + n]
        del self._tasks[at : at + n]
        self._changed()
        return [rec.task_id for rec in removed]

    def delete_ids(self, task_ids: Iterable[str]) -> None:
        """Remove the tasks with these task_ids (unknown ids are ignored)."""
        doomed = set(task_ids)
        self._tasks = [rec for rec in self._tasks if rec.task_id not in doomed]
        self._changed()

    def update(self, *task_ids: str, bump: bool = True, **changes: Any) -> list[str]:
        """Change existing tasks in place, as the backend does when a call ends or post-call
        data lands; return the task_ids found, in server order.

        ``changes`` set fields of each task's JSON; a dotted name reaches into nested objects
        (``**{"output.post_call_data.summary.status": "Interested"}``). ``modified`` becomes
        now, unless ``changes`` set it or ``bump=False``. The JSON is rendered again when next
        served; the server's filters keep reading the original draws (``status`` aside).
        """
        if bump and "modified" not in changes:
            changes["modified"] = self._now()
        wanted = set(task_ids)
        found = []
        for rec in self._tasks:
            if rec.task_id in wanted:
                self._override(rec, changes)
                found.append(rec.task_id)
        self._changed()
        return found

    def settle(self, keep: int = 0, status: str = "completed") -> int:
        """Give every task in an open status (pending, in_progress, hold) past the newest
        ``keep`` the final ``status``, as the tasks of a space that has aged are; ``modified``
        is left alone. Returns how many changed."""
        changed = 0
        for rec in self._tasks[keep:]:
            if rec.status in _OPEN_STATUSES:
                self._override(rec, {"status": status})
                changed += 1
        self._changed()
        return changed

    def _override(self, rec: TaskRecord, changes: dict[str, Any]) -> None:
        self._overrides.setdefault(rec.serial, {}).update(changes)
        status = changes.get("status")
        if isinstance(status, str):
            rec.status = status
        rec.raw = None

    def _now(self) -> str:
        """Now, as this simulator's tasks write times (``modified``)."""
        now = datetime.now(timezone.utc)
        if self.legacy_shapes:
            return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return now.strftime("%Y-%m-%dT%H:%M:%S.%f")

    def task_ids(self) -> list[str]:
        """Current task_ids in server order (newest first)."""
        return [rec.task_id for rec in self._tasks]

    def tasks_json(self) -> list[bytes]:
        """Each current task's exact JSON bytes, in server order."""
        render = self._render
        with _gc_paused():
            return [rec.raw if rec.raw is not None else render(rec) for rec in self._tasks]

    def warm(self) -> None:
        """Render and cache every task's JSON now (otherwise done on first request)."""
        self.tasks_json()

    def _render(self, rec: TaskRecord) -> bytes:
        if self.legacy_shapes:
            raw = render_task(self.seed, rec.serial, strip_ids=self._strip_ids)
        else:
            raw = render_real_task(
                self.seed,
                rec.serial,
                space_id=self._space_id,
                ids="none" if self._strip_ids else self._ids,
                poisoned=bool(self._poisoned_serials or self._poisoned_ids)
                and self._is_poisoned(rec),
            )
        if self._overrides and rec.serial in self._overrides:
            raw = _overridden(raw, self._overrides[rec.serial])
        rec.raw = raw
        return raw

    # --------------------------------------------------------------- serving

    @property
    def app(self) -> web.Application:
        """The aiohttp application (one catch-all route)."""
        if self._app is None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._app = app
        return self._app

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running simulator (no trailing slash).

        Served on every interface (``0.0.0.0``, ``::`` or ``""``), it names the loopback
        address: a URL a client can connect to, and the only plain-http one it accepts.
        """
        host = _WILDCARDS.get(self._host, self._host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Simulator:
        """Serve on ``host:port`` (port 0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("simulator is already started")
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.25,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        self._port = int(runner.addresses[0][1])
        return self

    async def close(self) -> None:
        """Stop serving (idempotent). In-flight handlers are cancelled after 0.25 s."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._port = None
            self._app = None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -------------------------------------------------------------- handlers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
        self.requests.append(record)
        self.in_flight += 1  # measured where the bound matters: at the server
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            resp = await self._dispatch(request, record)
        finally:
            self.in_flight -= 1
        if not isinstance(resp, Aborted) and not record.status:
            record.status = resp.status
        return resp

    @staticmethod
    def _route(path: str) -> tuple[str | None, str]:
        parts = path[len(API_PREFIX) :].split("/") if path.startswith(API_PREFIX) else []
        if parts == ["organizations", ""]:
            return "organizations", ""
        if parts == ["spaces", ""]:
            return "spaces", ""
        if len(parts) == 4 and parts[0] == "spaces" and parts[1] and parts[2:] == ["tasks", ""]:
            return "tasks", parts[1]
        return None, ""

    def _not_found(self, request: web.Request) -> web.Response:
        if self.legacy_shapes:
            return json_response(404, {"message": "Not found."})
        path = request.path
        slashed = path + "/"
        if not path.endswith("/") and (
            self._route(slashed)[0] is not None or org_route(slashed) is not None
        ):
            # Django's APPEND_SLASH: a redirect to the slashed path, query kept.
            location = path + "/" + (f"?{request.query_string}" if request.query_string else "")
            return web.Response(status=301, headers={"Location": location})
        return web.Response(status=404, text=_NOT_FOUND_HTML, content_type="text/html")

    async def _dispatch(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        route, space = self._route(request.path)
        org = org_route(request.path) if route is None else None
        if org is not None:
            route = org[0]
        if route is None:
            return self._not_found(request)
        if request.method != "GET":
            return json_response(
                405, {"message": f'Method "{request.method}" not allowed.', "status_code": 405}
            )
        if self.strict:
            media = request.headers.get("Content-Type", "")
            if media.partition(";")[0].strip().lower() != "application/json":
                return json_response(
                    415,
                    {
                        "status_code": 415,
                        "message": f'Unsupported media type "{media}" in request.',
                        "data": {},
                    },
                )
        schemes = ("Token",) if route in PAGED_ROUTES else self.spaces_auth
        denied = self._check_auth(request, schemes)
        if denied is not None:
            return denied
        if org is not None:
            return await serve_org(self, request, record, *org)
        if route == "organizations":
            return self._organizations()
        if route == "spaces":
            return self._spaces(request)
        return await self._tasks_list(request, record, space)

    def _check_auth(self, request: web.Request, schemes: tuple[str, ...]) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() not in {s.lower() for s in schemes}:
            # An authentication class ignores a header with another keyword: no credentials.
            message = "Authentication credentials were not provided."
        elif not credentials.strip():
            message = "Invalid token header. No credentials provided."
        elif credentials.strip() != self.token:
            message = "Invalid token."
        else:
            return None
        return json_response(
            401,
            {"message": message, "status_code": 401},
            headers={"WWW-Authenticate": schemes[0]},
        )

    def _organizations(self) -> web.Response:
        org: dict[str, Any] = {
            "name": "Demo Org",
            "token": "org-token-1",
            "domain": "demo.example",
            "domain_handle": self.org_handle,
            "privacy_type": "private",
        }
        envelope: dict[str, Any] = {
            "status_code": 200,
            "message": "Organizations Fetched Successfully",
            "data": [org],
        }
        if self.legacy_shapes:
            envelope = {"count": 1, **envelope}
        else:
            org.update(is_private_domain=False, role="owner")
        return json_response(200, envelope)

    def _spaces(self, request: web.Request) -> web.Response:
        handle = request.headers.get("Org-Handle")
        legacy = self.legacy_shapes
        if not handle:
            if legacy:
                return json_response(
                    400, {"message": "Org-Handle header is required", "status_code": 400}
                )
            return json_response(
                400, {"status_code": 400, "message": _ORG_HANDLE_REQUIRED, "data": {}}
            )
        if handle != self.org_handle:
            return json_response(404, {"message": "Organization not found"})
        space: dict[str, Any]
        if legacy:
            space = {
                "name": "Demo space",
                "token": self.space_token,
                "slug": "demo-space",
                "space_type": "general",
                "privacy_type": "private",
                "created": _SPACE_CREATED,
            }
        else:
            space = {
                "name": "Demo space",
                "token": self.space_token,
                "slug": "demo-space",
                "description": "Outbound calls of the demo agent",
                "logo": None,
                "content_type": "general",
                "privacy_type": "private",
                "organization": {"name": "Demo Org", "domain_handle": self.org_handle},
                "created": _SPACE_CREATED[:-1],
            }
        envelope: dict[str, Any] = {
            "status_code": 200,
            "message": "Spaces Fetched Successfully",
            "data": [space, *(space_document(s, self.org_handle) for s in self._others.values())],
        }
        count = len(envelope["data"])
        return json_response(200, {"count": count, **envelope} if legacy else envelope)

    async def _tasks_list(
        self, request: web.Request, record: RequestRecord, space: str
    ) -> web.StreamResponse:
        """A tasks-list request: a page of ``space``'s tasks, or a fault's or a bad query's
        answer."""
        if space in self._others:
            return await self._others[space]._tasks_list(request, record, space)
        if space != self.space_token:
            return invalid_space_token()
        query = record.query
        page = record.page = parse_int(query.get("page", "1"))
        legacy_params = self.legacy_params
        if legacy_params and "space_id" in query:
            return json_response(400, {"message": "space_id must not be sent", "status_code": 400})

        echo = self._reset_echoed(request, record)
        if echo is not None:
            return echo
        fault = self._take_fault(page)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind in IMMEDIATE:
                return self._immediate(request, record, fault)
            if fault.kind == "stall":
                await asyncio.sleep(fault.delay)

        try:
            page, size = self._tasks_page(page, query.get("page_size"), legacy=legacy_params)
            key = _filter_key(query) if self.legacy_filters else _real_filter_key(query)
        except BadRequest as exc:
            return fetch_failed(exc.errors)
        cap = self.page_size_cap
        await self._call_hook(page)

        selected = self._select(key)
        space_id = query.get("space_id")
        if not legacy_params and space_id is not None and space_id != str(self._space_id):
            selected = []  # the query's space_id replaced the URL's space: another space
        count = len(selected) + self.count_offset
        chunk = slice_page(selected, page, size, cap)
        if (self._poisoned_serials or self._poisoned_ids) and any(
            self._is_poisoned(rec) for rec in chunk
        ):
            return fetch_failed("Internal Server Error")
        return await body_response(request, record, fault, self._tasks_body(count, chunk))

    def _reset_echoed(self, request: web.Request, record: RequestRecord) -> web.Response | None:
        """The reset of aiohttp's own immediate retry of a reset GET (see
        :attr:`reset_includes_auto_retry`), so that the client code sees the connection error."""
        if self._reset_echo:
            deadline = self._reset_echo.pop(request.path_qs, None)
            if deadline is not None and asyncio.get_running_loop().time() <= deadline:
                record.fault = "reset"
                return immediate_response(request, record, RESET)
        return None

    def _immediate(self, request: web.Request, record: RequestRecord, fault: Fault) -> web.Response:
        """The answer of a fault that needs no page; a reset also awaits its echo if told to."""
        if fault.kind == "reset" and self.reset_includes_auto_retry:
            now = asyncio.get_running_loop().time()
            echoes = self._reset_echo
            if len(echoes) > 64:  # forget echoes nobody came back for
                for stale in [k for k, v in echoes.items() if v < now]:
                    del echoes[stale]
            echoes[request.path_qs] = now + _ECHO_WINDOW
        return immediate_response(request, record, fault)

    def _tasks_page(
        self, page: int | None, size_text: str | None, *, legacy: bool
    ) -> tuple[int, int]:
        """``page`` and ``page_size`` of a tasks list, the ``legacy_params`` way or the
        backend's."""
        if not legacy:
            return self._real_page(page, size_text)
        if page is None or page <= 0:
            raise BadRequest("Invalid page.")
        size = self.default_page_size if size_text is None else parse_int(size_text)
        if size is None or size < 0:
            raise BadRequest("Invalid page size.")
        return page, size

    async def _call_hook(self, page: int) -> None:
        hook = self.on_request
        if hook is not None:
            result = hook(page, self)
            if inspect.isawaitable(result):
                await result

    def _tasks_body(self, count: int, chunk: list[TaskRecord]) -> bytes:
        """The tasks list's envelope around ``chunk``'s JSON, saying ``count``."""
        render = self._render
        return b"".join(
            (
                _TASKS_OK_HEAD % count,
                b",".join([rec.raw if rec.raw is not None else render(rec) for rec in chunk]),
                _TASKS_OK_TAIL,
            )
        )

    def _take_fault(self, page: int | None, route: str = "tasks") -> Fault | None:
        for index, fault in enumerate(self.faults):
            if fault.times <= 0 or (fault.page is not None and fault.page != page):
                continue
            if fault.route != route:
                continue
            if fault.times == 1:
                del self.faults[index]
            else:
                self.faults[index] = replace(fault, times=fault.times - 1)
            return fault
        if self.fault_rate > 0 and self.fault_kinds and self._fault_rng.random() < self.fault_rate:
            kind = self.fault_kinds[int(self._fault_rng.random() * len(self.fault_kinds))]
            return random_fault(kind, self.retry_after)
        return None

    def _real_page(
        self, page: int | None, size_text: str | None, *, default: int | None = None
    ) -> tuple[int, int]:
        """``page`` and ``page_size`` as the backend reads them (Mongo's skip and limit)."""
        page = 1 if page is None else page
        size = parse_int(size_text) if size_text is not None else None
        if size is None:
            size = self.default_page_size if default is None else default
        if page <= 0 or (page - 1) * size < 0:
            raise BadRequest({"detail": "skip must be >= 0"})
        if (page - 1) * size >= _MAX_SKIP or abs(size) >= _MAX_SKIP:
            raise BadRequest({"detail": "MongoDB can only handle up to 8-byte ints"})
        return page, size

    def _select(self, key: _FilterKey) -> list[TaskRecord]:
        if all(part is None for part in key) or key == ("real", *_NO_FILTER, None, None):
            return self._tasks
        cached = self._filter_cache.get(key)
        if cached is not None:
            return cached
        out = self._select_real(key) if key[0] == "real" else self._select_legacy(key)
        if len(self._filter_cache) >= 64:
            self._filter_cache.clear()
        self._filter_cache[key] = out
        return out

    def _select_real(self, key: _FilterKey) -> list[TaskRecord]:
        _, labels, call_types, from_ts, to_ts, pattern, thread_id, user_id = key
        seed = self.seed
        out = self._tasks
        if labels is not None:
            out = [rec for rec in out if rec.bits & 7 in labels]
        if call_types is not None:
            out = [rec for rec in out if rec.call_type in call_types]
        if from_ts is not None:
            low = from_ts + self.utc_offset
            out = [rec for rec in out if rec.created >= low]
        if to_ts is not None:
            high = to_ts + self.utc_offset
            out = [rec for rec in out if rec.created <= high]
        if thread_id is not None:
            out = [rec for rec in out if thread_id_of(seed, rec.serial) == thread_id]
        if user_id is not None:
            out = [rec for rec in out if str(rec.user["id"]) == user_id]
        if pattern is not None:
            found = re.compile(pattern, re.IGNORECASE).search
            # input.name / output.customer, input.phone / output.contact_number
            out = [rec for rec in out if found(rec.name) or found(phone_of(seed, rec.serial))]
        return out

    def _select_legacy(self, key: _FilterKey) -> list[TaskRecord]:
        statuses, call_type, from_ts, to_ts, search = key
        out = self._tasks
        if statuses is not None:
            out = [rec for rec in out if rec.status in statuses]
        if call_type is not None:
            out = [rec for rec in out if rec.call_type == call_type]
        if from_ts is not None:
            low = from_ts
            out = [rec for rec in out if rec.created >= low]
        if to_ts is not None:
            high = to_ts
            out = [rec for rec in out if rec.created <= high]
        if search is not None:
            needle = search
            out = [rec for rec in out if needle in f"{rec.name}\n{rec.task_id}".lower()]
        return out


def _overridden(raw: bytes, changes: dict[str, Any]) -> bytes:
    """A task's JSON with ``changes`` (dotted names reach into nested objects) applied."""
    doc = msgspec.json.decode(raw)
    for name, value in changes.items():
        *path, last = name.split(".")
        target = doc
        for part in path:
            inner = target.get(part)
            if not isinstance(inner, dict):
                inner = target[part] = {}
            target = inner
        target[last] = value
    return _encode(doc)


def _parse_ts(query: dict[str, str], name: str) -> float | None:
    text = query.get(name)
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise BadRequest(f"Invalid {name}.") from None


def _real_filter_key(query: dict[str, str]) -> _FilterKey:
    """The real backend's reading of the filters (see :class:`Simulator`)."""
    labels = None
    status = query.get("status")
    if status is not None:
        wanted = [s.strip() for s in status.replace("+", " ").split(",") if s.strip()]
        if wanted:
            labels = frozenset(_LABEL_INDEX.get(label, -1) for label in wanted)
    call_types = None
    call_type = query.get("call_type")
    if call_type:
        call_types = _CALL_TYPES.get(call_type, frozenset({call_type}))
    pattern = query.get("search") or None
    if pattern is not None:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise BadRequest({"detail": f"Regular expression is invalid: {exc}"}) from None
    return (
        "real",
        labels,
        call_types,
        _lenient_ts(query.get("from_ts")),
        _lenient_ts(query.get("to_ts")),
        pattern,
        query.get("thread_id") or None,
        query.get("user_id") or None,
    )


def _lenient_ts(text: str | None) -> float | None:
    """An epoch-seconds parameter; anything unparsable drops the filter, as the server does."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _filter_key(query: dict[str, str]) -> _FilterKey:
    status = query.get("status")
    statuses = None
    if status is not None:
        wanted = frozenset(s.strip() for s in status.split(",") if s.strip())
        statuses = wanted or None
    call_type = query.get("call_type") or None
    search = query.get("search")
    needle = search.strip().lower() if search else None
    return (
        statuses,
        call_type,
        _parse_ts(query, "from_ts"),
        _parse_ts(query, "to_ts"),
        needle or None,
    )


_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


@contextlib.asynccontextmanager
async def serve(
    tasks: int = 1000, *, host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> AsyncIterator[Simulator]:
    """Build a :class:`Simulator` (``kwargs`` go to its constructor), serve it, close it."""
    sim = Simulator(tasks, **kwargs)
    await sim.start(host, port)
    try:
        yield sim
    finally:
        await sim.close()
