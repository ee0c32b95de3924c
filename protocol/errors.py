"""The one exception tree of ``protocol``.

    ProtocolError                 base: anything a peer or a stored byte string got wrong
    ├── DecodeError               bytes that are not a well-formed canonical value
    ├── SchemaError               a well-formed value of the wrong shape (field, type, size)
    └── SignatureError            a signature that does not verify

Data problems found by validators and rules are *values* (:class:`Problem`), not
exceptions: callers collect them, show them to staff and write nothing.  Programming
errors (calling an API wrongly) raise the built-in exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass


class ProtocolError(Exception):
    """Base class of every error a remote peer or corrupt data can cause."""

    code = "protocol"


class DecodeError(ProtocolError):
    """The bytes are not a well-formed, canonical msgpack value."""

    code = "decode"


class SchemaError(ProtocolError):
    """A decoded value does not have the required shape."""

    code = "schema"


class SignatureError(ProtocolError):
    """An Ed25519 signature does not verify."""

    code = "signature"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an event or an operation, for a person to read.

    ``code`` is stable and machine-readable (tests and translations key on it);
    ``message`` is plain English with the figures that matter.
    """

    code: str
    message: str
    field: str = ""

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"
