"""The exceptions raised by unpod-async.

Every error the client raises on purpose derives from :class:`UnpodError`::

    UnpodError
    ├── APIStatusError             the server answered, and the answer is an error
    │   ├── BusinessLogicError     206: Unpod's "business logic error" (transient or permanent)
    │   ├── RedirectError          3xx: never followed, so credentials never reach another host
    │   ├── BadRequestError        400
    │   ├── AuthenticationError    401
    │   ├── PermissionDeniedError  403
    │   ├── NotFoundError          404
    │   ├── RateLimitError         429
    │   └── ServerError            5xx
    ├── APIConnectionError         no usable answer: refused, reset, truncated, DNS, TLS
    │   └── APITimeoutError        one attempt took longer than ``timeout``
    │       └── DeadlineExceededError   a whole pull took longer than its ``deadline``
    ├── ResponseDecodeError        the body is not the JSON the API promises
    │   └── ResponseTooLargeError  the body is bigger than ``max_response_bytes``
    ├── IncompletePullError        ``strict=True``: a pull ended with fewer tasks than it knew of
    ├── ExportError                an export could not write its file
    └── SyncError                  a sync's store is busy, another server's, or unusable

Invalid arguments (a bad page number, a space token that could escape its path) raise
:class:`ValueError` (or :class:`TypeError`) before any request is sent.

None of these carries the API token: not in ``str``, not in ``repr``, not in a chained cause.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BusinessLogicError",
    "DeadlineExceededError",
    "ExportError",
    "IncompletePullError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "ResponseDecodeError",
    "ResponseTooLargeError",
    "ServerError",
    "SyncError",
    "UnpodError",
]


class UnpodError(Exception):
    """Base class of every error unpod-async raises on purpose.

    >>> try:
    ...     ...  # await client.get_all_tasks("space")
    ... except UnpodError as exc:
    ...     print(exc)
    """

    def __init__(self, message: str, *, url: str | None = None, page: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.page = page

    def __str__(self) -> str:
        where = []
        if self.page is not None:
            where.append(f"page {self.page}")
        if self.url:
            where.append(self.url)
        return f"{self.message} ({', '.join(where)})" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments defeat Exception's default pickling.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[UnpodError], state: dict[str, Any]) -> UnpodError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, state.get("message", ""))
    exc.__dict__.update(state)
    return exc


class APIStatusError(UnpodError):
    """The server answered with an error status (or an error envelope).

    ``status_code`` is the HTTP status (or the envelope's, when a 200 carries an error),
    ``message`` the server's own message, ``body`` the decoded JSON body when there was one,
    ``retry_after`` the seconds a ``Retry-After`` header asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        url: str | None = None,
        page: int | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, page=page)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        return headline(self.status_code, super().__str__())


class BusinessLogicError(APIStatusError):
    """HTTP 206, Unpod's "business logic error".

    ``transient`` tells "Tasks Fetch Failed" (retried) from "Invalid Space Token" or
    "You Don't have Access to this Space" (raised at once).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 206,
        url: str | None = None,
        page: int | None = None,
        body: object = None,
        transient: bool = True,
    ) -> None:
        super().__init__(message, status_code=status_code, url=url, page=page, body=body)
        self.transient = transient


class RedirectError(APIStatusError):
    """A 3xx answer. Redirects are never followed, so the token never reaches another host."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        url: str | None = None,
        page: int | None = None,
        body: object = None,
        location: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, url=url, page=page, body=body)
        self.location = location


class BadRequestError(APIStatusError):
    """HTTP 400."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the token is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403."""


class NotFoundError(APIStatusError):
    """HTTP 404."""


class RateLimitError(APIStatusError):
    """HTTP 429. ``retry_after`` is the wait the server asked for, in seconds, if it said."""


class ServerError(APIStatusError):
    """HTTP 5xx (including a proxy's HTML error page)."""


class APIConnectionError(UnpodError):
    """No usable answer: connection refused or reset, a truncated body, DNS or TLS failure."""


class APITimeoutError(APIConnectionError):
    """One attempt took longer than the client's ``timeout``."""


class DeadlineExceededError(APITimeoutError):
    """A whole pull outlasted its ``deadline``; ``pages`` and ``tasks`` say how far it got."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        page: int | None = None,
        pages: int = 0,
        tasks: int = 0,
    ) -> None:
        super().__init__(message, url=url, page=page)
        self.pages = pages
        self.tasks = tasks


class ResponseDecodeError(UnpodError):
    """The body is not the JSON the API promises; the message says what was wrong."""


class ResponseTooLargeError(ResponseDecodeError):
    """The body is bigger than the client's ``max_response_bytes``."""


class IncompletePullError(UnpodError):
    """A ``strict=True`` pull ended knowing it is short: ``missing`` fewer distinct tasks than
    the server's last ``count`` (after re-reading what could be re-read), or stopped early
    (``reason``). Without ``strict`` the same pull logs a WARNING and says so in its stats.
    """

    def __init__(
        self,
        message: str,
        *,
        tasks: int = 0,
        last_count: int | None = None,
        missing: int = 0,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tasks = tasks
        self.last_count = last_count
        self.missing = missing
        self.reason = reason


class ExportError(UnpodError):
    """An export could not write its output (disk full, permissions, a closed stream), or a
    local file is in its way (a checkpoint of another export, pyarrow missing for Parquet).

    ``path`` is the destination the caller gave (never a hidden working file), ``None`` for a
    stream; ``errno`` the operating system's error number when one caused it (``EPIPE``: the
    reader of a pipe went away).
    """

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


def headline(status_code: int, message: str) -> str:
    """``HTTP 503: message``, said once when the message already starts with the status."""
    prefix = f"HTTP {status_code}"
    return message if message.startswith(prefix) else f"{prefix}: {message}"


class SyncError(UnpodError):
    """A sync could not use its store: another sync holds it, it holds the space as synced
    from another server, organization or token, it is of a newer schema, or it cannot be
    written. Raised before any request when it can be known then."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific :class:`APIStatusError` subclass for an HTTP status."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status == 206:
        return BusinessLogicError
    if 300 <= status < 400:
        return RedirectError
    if status >= 500:
        return ServerError
    return APIStatusError
