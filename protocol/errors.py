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

import dataclasses
from collections.abc import Mapping
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


class Amount(int):
    """An amount of money in fen, among a :class:`Problem`'s values: shown in yuan."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an event or an operation, for a person to read.

    ``code`` is stable and machine-readable (tests and translations key on it);
    ``message`` is plain English with the figures that matter; ``field`` names the body
    or form field at fault.  ``values`` are those figures as values, for a message in
    the staff's language (the counter's ``problem.<code>`` template): fen marked as
    :class:`Amount` print as yuan.  A ``variant`` value picks a more precise template
    (``problem.<code>.<variant>``), e.g. a range problem's ``above`` or ``below``.
    """

    code: str
    message: str
    field: str = ""
    values: Mapping[str, object] = dataclasses.field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"
