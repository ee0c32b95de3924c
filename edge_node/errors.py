"""The exception tree of ``edge_node``.

    EdgeError                    base: something staff or the operator must act on
    ├── OperationRefused         a counter operation broke a rule or had bad input; nothing
    │                            was written; ``problems`` says what, field by field
    ├── StorageError             the ledger could not be written (disk full, read-only, …);
    │                            nothing was written
    │   └── DamagedFile          the ledger file is damaged, truncated or empty: restore a
    │                            backup or recover from central (the message says how)
    └── ConfigError              a config or key file is missing or wrong

Each carries a short ``title`` for the counter's screen; ``str()`` is the detail.
"""

from __future__ import annotations

import os
import sys

from protocol.errors import Problem


class EdgeError(Exception):
    title = "Error"


class OperationRefused(EdgeError):
    title = "Not done"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(p.message for p in self.problems))

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]


class StorageError(EdgeError):
    title = "Ledger not written"


class DamagedFile(StorageError):
    title = "Ledger damaged"


class ConfigError(EdgeError):
    title = "Configuration"


# -- what both command lines (onecard-edge, onecard-central) do at the very end ----------
def quiet_broken_pipe() -> int:
    """The reader of our stdout went away (``export | head``): stop quietly, like ``cat``.

    Points stdout at /dev/null so the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it


def unexpected_error(prog: str, exc: Exception) -> int:
    """A bug: still one line for the person at the terminal (``ONECARD_DEBUG=1``: the
    traceback, re-raised by the caller's ``raise`` when this returns -1)."""
    if os.environ.get("ONECARD_DEBUG"):
        return -1
    print(f"{prog}: unexpected error: {type(exc).__name__}: {exc} "
          "(ONECARD_DEBUG=1 shows where)", file=sys.stderr)
    return 1
