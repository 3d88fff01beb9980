"""Keeping the API token out of everything a person or a log can read.

One rule for the library and the command line: every occurrence of a secret is replaced with
``<redacted>``. A secret shorter than 16 characters (a test token such as ``x``) is replaced only
where it stands alone, not inside a longer word, so that it cannot mangle every message that
happens to contain the letter; a real token is replaced wherever it appears.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["REDACTED", "Redactor", "Secret"]

REDACTED = "<redacted>"
_WHOLE_WORD_BELOW = 16


class Redactor:
    """Replaces every known secret in a text (``str`` or ``bytes``) with ``<redacted>``.

    >>> redact = Redactor("s3cr3t-token-0123456789")
    >>> redact("Invalid token s3cr3t-token-0123456789.")
    'Invalid token <redacted>.'
    """

    __slots__ = ("_bytes", "_secrets", "_text")

    def __init__(self, *secrets: str | None) -> None:
        self._secrets: set[str] = set()
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Scrub ``secret`` too (``None`` and blank values are ignored)."""
        if not secret or not secret.strip():
            return
        self._secrets.update((secret, secret.strip()))
        # Longest first, so that a secret containing another is replaced whole.
        parts = []
        for s in sorted(self._secrets, key=len, reverse=True):
            escaped = re.escape(s)
            if len(s) < _WHOLE_WORD_BELOW:
                escaped = rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
            parts.append(escaped)
        pattern = "|".join(parts)
        self._text = re.compile(pattern)
        self._bytes = re.compile(pattern.encode("utf-8", "surrogateescape"))

    def __call__(self, text: str) -> str:
        return text if self._text is None else self._text.sub(REDACTED, text)

    def data(self, data: bytes) -> bytes:
        """``data`` with every secret blanked out (a server or proxy may echo the token)."""
        return data if self._bytes is None else self._bytes.sub(REDACTED.encode(), data)


class Secret:
    """A string that never shows itself in a ``repr``, a traceback's locals or ``vars()``."""

    __slots__ = ("_value", "redact")

    def __init__(self, value: str) -> None:
        self._value = value
        self.redact = Redactor(value)

    def reveal(self) -> str:
        return self._value

    def fingerprint(self, salt: str) -> str:
        """A salted hash that tells two tokens apart without revealing either (16 hex digits)."""
        digest = hmac.new(salt.encode(), self._value.encode(), hashlib.sha256).hexdigest()
        return digest[:16]

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__
