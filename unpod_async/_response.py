"""What an answer means: an HTTP status and an envelope in, a typed result or typed error out.

The one place where the HTTP status, the envelope's own ``status_code`` (a 200 may carry an
error), ``Retry-After`` and the server's message meet, whatever the caller asked to decode
(after openai's ``_make_status_error_from_response``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
from yarl import URL

from ._errors import (
    APIStatusError,
    BusinessLogicError,
    RedirectError,
    ResponseDecodeError,
    status_error_class,
)
from ._redact import Redactor
from ._retry import is_permanent_206, parse_retry_after
from ._transport import Response

__all__ = ["interpret", "status_error"]

T = TypeVar("T")

_BOM = b"\xef\xbb\xbf"
_ANY = msgspec.json.Decoder()
DECODE_ERRORS = (msgspec.DecodeError, RecursionError, ValueError)


def interpret(
    resp: Response,
    decode: Callable[[bytes], T],
    *,
    url: str,
    page: int | None,
    redact: Redactor,
    max_retry_after: float,
) -> T:
    """The decoded body of a successful answer, or the typed error the answer stands for.

    ``decode``'s result carries the envelope's ``status_code`` (every view of a body does):
    a 200 whose envelope says 401 or 206 is that error, whatever was asked for. A body that
    does not fit ``decode`` but is an error envelope (``"data": {}``) is that error too, not
    a decode problem.
    """
    status, body = resp.status, strip_bom(resp.body)
    if 200 <= status < 300 and status != 206:
        problem = ""
        try:
            result = decode(body)
        except DECODE_ERRORS as exc:
            problem = decode_problem(exc, body, resp.headers)
        if problem:  # raised outside the except block: no decoder error in the chain
            said = envelope_error(sniff_envelope(body))
            if said is None:
                raise ResponseDecodeError(problem, url=url, page=page)
            status = said
        else:
            said = envelope_error(getattr(result, "status_code", None))
            if said is None:
                return result
            status = said  # a 200 that carries an error envelope
    raise status_error(
        status,
        body,
        resp.headers,
        url=url,
        page=page,
        redact=redact,
        max_retry_after=max_retry_after,
    )


def strip_bom(body: bytes) -> bytes:
    return body[len(_BOM) :] if body.startswith(_BOM) else body


class _Envelope(msgspec.Struct, gc=False):
    status_code: Any = None


# Any JSON object to its ``status_code`` (raises on a body that is not JSON).
ENVELOPE_DECODER = msgspec.json.Decoder(_Envelope)


def sniff_envelope(body: bytes) -> object:
    """The envelope's ``status_code`` of any JSON object body, whatever else it holds."""
    try:
        return ENVELOPE_DECODER.decode(body).status_code
    except DECODE_ERRORS:
        return None


def envelope_error(status_code: object) -> int | None:
    """The error status an envelope's ``status_code`` says (206, or 400 and up), else None."""
    if isinstance(status_code, str) and status_code.strip().isdigit():
        status_code = int(status_code)
    if isinstance(status_code, bool) or not isinstance(status_code, int):
        return None
    return status_code if status_code == 206 or 400 <= status_code < 600 else None


def status_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    url: str,
    page: int | None,
    redact: Redactor,
    max_retry_after: float,
) -> APIStatusError:
    """The most specific :class:`APIStatusError` for an error answer, its message redacted."""
    # A server or proxy echoing the token must not put it into an error.
    message, data = error_message(redact.data(body))
    if 300 <= status < 400:
        location = headers.get("Location")
        host = URL(location).host if location else None
        return RedirectError(
            f"server redirected to {host or 'an unknown host'}; redirects are not followed "
            "so that credentials never leave the API host",
            status_code=status,
            url=url,
            page=page,
            location=location,
        )
    retry_after = parse_retry_after(headers.get("Retry-After"))
    text = message or f"HTTP {status} without a JSON message"
    if retry_after is not None:
        text += f" (server asked to wait {retry_after:g}s"
        if retry_after > max_retry_after:
            text += f", more than max_retry_after={max_retry_after:g}s"
        text += ")"
    if status == 206:
        return BusinessLogicError(
            text, url=url, page=page, body=data, transient=not is_permanent_206(message)
        )
    cls = status_error_class(status)
    return cls(text, status_code=status, url=url, page=page, body=data, retry_after=retry_after)


def error_message(body: bytes) -> tuple[str | None, Any]:
    """The server's message from any of the error shapes it uses, and the decoded body."""
    try:
        data = _ANY.decode(body)
    except DECODE_ERRORS:
        return None, None
    if not isinstance(data, dict):
        return None, data
    for candidate in (data.get("message"), data.get("detail"), data.get("error")):
        if isinstance(candidate, dict):
            candidate = candidate.get("message")
        if isinstance(candidate, str) and candidate:
            return candidate, data
    errors = data.get("errors")
    if isinstance(errors, str) and errors:
        return errors, data
    return None, data


def decode_problem(exc: BaseException, body: bytes, headers: Mapping[str, str]) -> str:
    """Why a body that should be JSON could not be decoded, in a sentence."""
    if isinstance(exc, RecursionError):
        return "body is nested too deeply to decode"
    if not body:
        return "empty body where JSON was expected"
    kind = headers.get("Content-Type", "no Content-Type")
    if isinstance(exc, msgspec.ValidationError):
        return f"unexpected JSON shape ({kind}): {exc}"
    if isinstance(exc, UnicodeDecodeError):
        return f"body is not valid UTF-8 ({kind}, byte {exc.start})"
    return f"body is not valid JSON ({kind}, {len(body)} bytes): {exc}"
