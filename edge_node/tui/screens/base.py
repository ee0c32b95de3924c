"""Screen helpers: footer bindings in the counter's language, and plain-language errors."""

from __future__ import annotations

import logging

from textual.screen import Screen

from edge_node.errors import EdgeError, OperationRefused, StorageError
from edge_node.tui.context import Counter

log = logging.getLogger("onecard.tui")

KeySpec = tuple[str, str, str, bool]  # key, action, i18n key of the footer label, priority


def bind_keys(screen: Screen[object], counter: Counter, keys: list[KeySpec]) -> None:
    """Bind ``keys`` with labels in the counter's language (BINDINGS are per class)."""
    for key, action, label, priority in keys:
        screen._bindings.bind(key, action, counter.tr(label), priority=priority)


def error_text(counter: Counter, exc: BaseException) -> str:
    """What staff read when an operation fails: never a traceback."""
    tr = counter.tr
    if isinstance(exc, OperationRefused):
        return tr("error.refused") + tr.problems(exc.problems)
    if isinstance(exc, StorageError):
        return tr("error.storage", msg=str(exc))
    if isinstance(exc, EdgeError):
        return f"{exc.title}: {exc}"
    log.exception("unexpected error in a counter operation", exc_info=exc)
    return tr("error.unexpected", msg=f"{type(exc).__name__}: {exc}")
