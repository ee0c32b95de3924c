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
