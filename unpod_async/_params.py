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
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypedDict

from yarl import URL

__all__ = [
    "DEFAULT_BASE_URL",
    "TaskFilter",
    "TaskFilterArgs",
    "Timestamp",
]

DEFAULT_BASE_URL = "https://unpod.ai"
API_PREFIX = "/api/v2/platform/"
TOKEN_ENV = "UNPOD_API_TOKEN"  # noqa: S105 (a variable's name, not a secret)
ORG_ENV = "UNPOD_ORG_HANDLE"
BASE_URL_ENV = "UNPOD_BASE_URL"

# An identifier that goes into a request path is opaque: anything else could steer the path.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9_\-]{1,256}")

Timestamp = datetime | float | int
Status = str | Sequence[str]
CallType = Literal["inbound", "outbound"]


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


class TaskFilterArgs(TypedDict, total=False):
    """The filter keywords every task method takes (see :class:`TaskFilter`)."""

    status: Status | None
    call_type: CallType | None
    created_after: Timestamp | None
    created_before: Timestamp | None
    search: str | None


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


@dataclass(frozen=True, slots=True, init=False)
class TaskFilter:
    """Which tasks a pull asks for; validated when built, before any request.

    >>> TaskFilter(status=["completed", "failed"], call_type="outbound").query()
    '&status=completed%2Cfailed&call_type=outbound'
    """

    status: tuple[str, ...] | None = None
    call_type: CallType | None = None
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    search: str | None = None

    def __init__(
        self,
        *,
        status: Status | None = None,
        call_type: CallType | None = None,
        created_after: Timestamp | None = None,
        created_before: Timestamp | None = None,
        search: str | None = None,
    ) -> None:
        if call_type is not None and call_type not in ("inbound", "outbound"):
            raise ValueError(f"call_type must be 'inbound' or 'outbound', got {call_type!r}")
        if search is not None and not isinstance(search, str):
            raise TypeError("search must be a str")
        for name, value in (("created_after", created_after), ("created_before", created_before)):
            if value is not None:
                _epoch(name, value)
        setattr_ = object.__setattr__
        setattr_(self, "status", split_list(status, "status"))
        setattr_(self, "call_type", call_type)
        setattr_(self, "created_after", created_after)
        setattr_(self, "created_before", created_before)
        setattr_(self, "search", search)

    def params(self) -> list[tuple[str, str]]:
        """The query parameters the server is sent for this filter."""
        params: list[tuple[str, str]] = []
        if self.status is not None:
            params.append(("status", ",".join(self.status)))
        if self.call_type is not None:
            params.append(("call_type", self.call_type))
        if self.created_after is not None:
            params.append(("from_ts", _epoch("created_after", self.created_after)))
        if self.created_before is not None:
            params.append(("to_ts", _epoch("created_before", self.created_before)))
        if self.search is not None:
            params.append(("search", self.search))
        return params

    def query(self) -> str:
        """The parameters as an encoded query suffix (``""`` or ``"&a=b..."``)."""
        params = self.params()
        return "&" + urllib.parse.urlencode(params) if params else ""


NO_FILTER = TaskFilter()
