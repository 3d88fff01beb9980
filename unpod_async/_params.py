"""Arguments, checked before any request: identifiers, numbers, the base-URL policy, filters.

Everything here raises :class:`ValueError` or :class:`TypeError` with a message that names
the argument; nothing here sends a request or touches aiohttp.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict, TypeVar

from yarl import URL

from ._dates import epoch_of

__all__ = [
    "AUTH_SCHEMES",
    "DEFAULT_BASE_URL",
    "TaskFilter",
    "TaskFilterArgs",
    "Timestamp",
    "literal_pattern",
]

DEFAULT_BASE_URL = "https://unpod.ai"
API_PREFIX = "/api/v2/platform/"
TOKEN_ENV = "UNPOD_API_TOKEN"  # noqa: S105 (a variable's name, not a secret)
ORG_ENV = "UNPOD_ORG_HANDLE"
BASE_URL_ENV = "UNPOD_BASE_URL"
AUTH_SCHEME_ENV = "UNPOD_AUTH_SCHEME"
#: The ``Authorization`` schemes the API's views accept, in their canonical spelling.
AUTH_SCHEMES: tuple[str, ...] = ("Token", "Bearer", "JWT")

# An identifier that goes into a request path is opaque: anything else could steer the path.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_\-]{1,256}")

Timestamp = datetime | float | int
Status = str | Sequence[str]
# Any other non-empty string is sent as it is (the server then matches it exactly).
CallType = Literal["inbound", "outbound", "inboundPhoneCall", "outboundPhoneCall"] | str
T = TypeVar("T")


# --- identity and connection ----------------------------------------------------------------


def env_token(token: str | None) -> str | None:
    """``token``, else ``$UNPOD_API_TOKEN``; blank counts as none."""
    value = token if token is not None else os.environ.get(TOKEN_ENV)
    return value if value and value.strip() else None


def env_org_handle(org_handle: str | None) -> str | None:
    value = org_handle if org_handle is not None else os.environ.get(ORG_ENV)
    return value or None


def env_base_url(base_url: str | None) -> str:
    return base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL


def env_auth_scheme(auth_scheme: str | None) -> str:
    """``auth_scheme``, else ``$UNPOD_AUTH_SCHEME``, else ``"Token"``, spelled canonically.

    >>> env_auth_scheme("bearer")
    'Bearer'
    """
    where = "auth_scheme"
    value: object = auth_scheme
    if auth_scheme is None:
        value = os.environ.get(AUTH_SCHEME_ENV, "").strip() or "Token"
        where = AUTH_SCHEME_ENV
    if not isinstance(value, str):
        raise TypeError(f"auth_scheme must be a str, got {type(value).__name__}")
    for scheme in AUTH_SCHEMES:
        if value.strip().lower() == scheme.lower():
            return scheme
    raise ValueError(f"{where} must be one of {', '.join(AUTH_SCHEMES)} (any case), got {value!r}")


def check_header_value(name: str, value: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"{name} is empty")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{name} contains a line break or NUL; refusing to send it as a header")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{name} contains characters that cannot be sent in a header") from None
    return value.strip()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, allow_insecure_http: bool) -> str:
    """The base URL without a trailing slash; plain ``http://`` only to a loopback host."""
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    if url.user or url.password or url.query_string or url.fragment:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    if url.scheme == "http" and not is_loopback(url.host) and not allow_insecure_http:
        raise ValueError(
            f"refusing plain http:// to {url.host}: the token would travel in clear text "
            "(pass allow_insecure_http=True to override)"
        )
    return str(url).rstrip("/")


def path_segment(name: str, value: str) -> str:
    """``value`` as one segment of a request path: 1-256 letters, digits, ``-`` or ``_``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not _PATH_SEGMENT.fullmatch(value):
        raise ValueError(f"invalid {name} {value!r}: expected 1-256 letters, digits, '-' or '_'")
    return value


def space_tasks_path(space_token: str) -> str:
    return f"spaces/{path_segment('space_token', space_token)}/tasks/"


def space_runs_path(space_token: str) -> str:
    return f"spaces/{path_segment('space_token', space_token)}/runs/"


def run_tasks_path(space_token: str, run_id: str) -> str:
    return f"{space_runs_path(space_token)}{path_segment('run_id', run_id)}/tasks/"


def agent_tasks_path(agent_handle: str) -> str:
    return f"agents/{path_segment('agent_handle', agent_handle)}/tasks/"


# --- numbers --------------------------------------------------------------------------------


def check_positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def check_seconds(name: str, value: float | None) -> float | None:
    """A positive, finite number of seconds (or ``None``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _epoch(name: str, value: Timestamp) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc))")
        value = value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"{name} must be a datetime or epoch seconds, got {value!r}")
    return str(int(value))


# --- filters --------------------------------------------------------------------------------

# What a regular expression gives a meaning to, in Python's ``re`` and in PCRE (MongoDB's
# ``$regex``) alike; every other character, spaces and ``&`` included, stands for itself there.
_REGEX_SPECIAL = str.maketrans({c: "\\" + c for c in "\\.^$|?*+()[]{}"})


def literal_pattern(text: str) -> str:
    """``text`` as a regular expression that matches exactly that text.

    The server treats ``search`` as a regular expression; this escapes only what has a meaning
    there, so that ordinary text goes out unchanged.

    >>> literal_pattern("+1555 (cell)")
    '\\\\+1555 \\\\(cell\\\\)'
    """
    return text.translate(_REGEX_SPECIAL)


class TaskFilterArgs(TypedDict, total=False):
    """The filter keywords every task method takes (see :class:`TaskFilter`)."""

    status: Status | None
    outcome: Status | None
    call_type: CallType | None
    created_after: Timestamp | None
    created_before: Timestamp | None
    search: str | None
    search_pattern: str | None
    thread_id: str | None
    user_id: str | int | None


def split_list(value: Status | None, name: str) -> tuple[str, ...] | None:
    """A string (comma-separated) or a list of strings as a tuple of non-blank values."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(s, str) for s in items):
        raise ValueError(f"{name} must be a non-empty string or list of strings: {value!r}")
    cleaned = tuple(s.strip() for s in items if s.strip())
    if not cleaned:
        raise ValueError(f"{name} must be a non-empty string or list of strings: {value!r}")
    return cleaned


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def _bound(name: str, value: Timestamp | None) -> float | None:
    if value is None:
        return None
    _epoch(name, value)  # the checks and their messages
    return value.timestamp() if isinstance(value, datetime) else float(value)


@dataclass(frozen=True, slots=True, init=False)
class TaskFilter:
    """Which tasks a pull asks for; validated when built, before any request.

    Each keyword means what it says, whatever the server's parameter is called:

    - ``status``: the task's own status (``"completed"``, ``"failed"``, ...; a string with
      commas or a list). The server has no such filter, so it is applied here, on what the
      server sends: no parameter goes out.
    - ``outcome``: the call-outcome label (``"Interested"``, ``"Call Back"``, ...), sent as
      the server's ``status`` parameter, which matches ``output.post_call_data.summary.status``.
    - ``call_type``: ``"inbound"`` or ``"outbound"`` (the server also matches the provider
      variants ``inboundPhoneCall`` / ``outboundPhoneCall``), or any other value, matched
      exactly.
    - ``created_after`` / ``created_before``: inclusive bounds on ``created``, sent as
      ``from_ts`` / ``to_ts`` (epoch seconds, which the server converts with its own local time
      zone) and checked here again on each task's ``created`` (a value without a zone is UTC),
      so that no task outside the range comes out.
    - ``search``: literal text, sent escaped (the server reads a regular expression,
      case-insensitive, over the contact's name and phone number); ``search_pattern`` sends a
      regular expression as it is. Not both.
    - ``thread_id``, ``user_id``: sent as they are.

    >>> TaskFilter(outcome=["Interested", "Call Back"], call_type="outbound").query()
    '&status=Interested%2CCall+Back&call_type=outbound'
    """

    status: tuple[str, ...] | None = None
    outcome: tuple[str, ...] | None = None
    call_type: str | None = None
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    search: str | None = None
    search_pattern: str | None = None
    thread_id: str | None = None
    user_id: str | None = None
    _after: float | None = field(default=None, repr=False)
    _before: float | None = field(default=None, repr=False)
    _statuses: frozenset[str] | None = field(default=None, repr=False)

    def __init__(
        self,
        *,
        status: Status | None = None,
        outcome: Status | None = None,
        call_type: CallType | None = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        search: str | None = None,
        search_pattern: str | None = None,
        thread_id: str | None = None,
        user_id: str | int | None = None,
    ) -> None:
        call_type = _text("call_type", call_type)
        search = _text("search", search)
        search_pattern = _text("search_pattern", search_pattern)
        if search is not None and search_pattern is not None:
            raise ValueError("pass search (literal text) or search_pattern (a regex), not both")
        thread_id = _text("thread_id", thread_id)
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        user_id = _text("user_id", user_id)
        statuses = split_list(status, "status")
        setattr_ = object.__setattr__
        setattr_(self, "status", statuses)
        setattr_(self, "outcome", split_list(outcome, "outcome"))
        setattr_(self, "call_type", call_type)
        setattr_(self, "created_after", created_after)
        setattr_(self, "created_before", created_before)
        setattr_(self, "search", search)
        setattr_(self, "search_pattern", search_pattern)
        setattr_(self, "thread_id", thread_id)
        setattr_(self, "user_id", user_id)
        setattr_(self, "_after", _bound("created_after", created_after))
        setattr_(self, "_before", _bound("created_before", created_before))
        setattr_(self, "_statuses", None if statuses is None else frozenset(statuses))

    def params(self) -> list[tuple[str, str]]:
        """The query parameters the server is sent for this filter (never ``space_id``)."""
        params: list[tuple[str, str]] = []
        if self.outcome is not None:
            params.append(("status", ",".join(self.outcome)))
        if self.call_type is not None:
            params.append(("call_type", self.call_type))
        if self.created_after is not None:
            params.append(("from_ts", _epoch("created_after", self.created_after)))
        if self.created_before is not None:
            params.append(("to_ts", _epoch("created_before", self.created_before)))
        if self.search is not None:
            params.append(("search", literal_pattern(self.search)))
        elif self.search_pattern is not None:
            params.append(("search", self.search_pattern))
        if self.thread_id is not None:
            params.append(("thread_id", self.thread_id))
        if self.user_id is not None:
            params.append(("user_id", self.user_id))
        return params

    def query(self) -> str:
        """The parameters as an encoded query suffix (``""`` or ``"&a=b..."``)."""
        params = self.params()
        return "&" + urllib.parse.urlencode(params) if params else ""

    def query_for(self, endpoint: str, honoured: Sequence[str]) -> str:
        """:meth:`query` for an endpoint whose server reads only the ``honoured`` parameters.

        The client-side checks (``status``, the ``created`` bounds) still apply to what it
        sends; any other filter would be silently ignored there, so it is refused here.

        >>> TaskFilter(thread_id="th_1").query_for("a run's tasks", ("thread_id", "user_id"))
        '&thread_id=th_1'
        """
        client_only = {"from_ts", "to_ts"}  # checked again on each task: sent nowhere else
        params = [(k, v) for k, v in self.params() if k not in client_only]
        refused = [k for k, _ in params if k not in honoured]
        if refused:
            names = {"status": "outcome", "search": "search/search_pattern"}
            listed = ", ".join(names.get(k, k) for k in refused)
            raise ValueError(
                f"{endpoint} cannot be filtered by {listed} (the server ignores it there); "
                "status= and the created bounds are checked on each task and work everywhere"
            )
        return "&" + urllib.parse.urlencode(params) if params else ""

    def identity(self) -> str:
        """Everything that decides which tasks come out (for a resumable export's checkpoint)."""
        return f"{self.query()}|status={self.status}|after={self._after}|before={self._before}"

    # --- the client-side part -------------------------------------------------------------

    @property
    def client_side(self) -> bool:
        """Whether some tasks the server sends may still be left out here."""
        return self._statuses is not None or self._after is not None or self._before is not None

    def keep(self, statuses: Sequence[Any], created: Sequence[Any]) -> list[int] | None:
        """The indexes of the tasks that pass the client-side checks, given each task's
        ``status`` and ``created`` as sent; ``None`` when every task passes.

        A task whose ``created`` cannot be read is left out when a date bound is set (the
        server could not have matched it either).
        """
        if not self.client_side:
            return None
        wanted, low, high = self._statuses, self._after, self._before
        dated = low is not None or high is not None
        kept: list[int] = []
        for index, status in enumerate(statuses):
            if wanted is not None and status not in wanted:
                continue
            if dated:
                when = epoch_of(created[index])
                if when is None or (low is not None and when < low):
                    continue
                if high is not None and when > high:
                    continue
            kept.append(index)
        return None if len(kept) == len(statuses) else kept

    def select(
        self, items: Sequence[T], statuses: Sequence[Any], created: Sequence[Any]
    ) -> Sequence[T]:
        """``items`` (one per task, aligned with ``statuses`` and ``created``) that pass the
        client-side checks. Apply it to what a consumer receives, after deduplication."""
        kept = self.keep(statuses, created)
        return items if kept is None else [items[i] for i in kept]


NO_FILTER = TaskFilter()
