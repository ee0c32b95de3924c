"""Screen helpers: footer bindings in the counter's language, and plain-language errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from textual.binding import Binding
from textual.dom import DOMNode
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from edge_node.errors import EdgeError, OperationRefused, StorageError
from edge_node.tui.context import Counter

log = logging.getLogger("onecard.tui")

KeySpec = tuple[str, str, str, bool]  # key, action, i18n key of the footer label, priority


def bind_keys(node: DOMNode, counter: Counter, keys: list[KeySpec]) -> None:
    """Bind ``keys`` with labels in the counter's language (BINDINGS are per class).

    Binding a key again replaces it, so a screen relabels its keys after a language
    switch by calling this once more with the same list.
    """
    for keys_text, action, label, priority in keys:
        for key in (k.strip() for k in keys_text.split(",")):
            node._bindings.key_to_bindings[key] = [
                Binding(key, action, counter.tr(label), priority=priority)]


def key_name(key: str, long: bool = False) -> str:
    """How a key is written for staff: ``F2``, ``Esc``, ``^Q`` (``Ctrl+Q`` when ``long``)."""
    names = {"escape": "Esc", "enter": "Enter", "delete": "Del", "plus": "+", "minus": "-",
             "left_square_bracket": "[", "right_square_bracket": "]", "tab": "Tab",
             "question_mark": "?", "space": "Space"}
    parts = key.split("+")
    base = parts[-1]
    text = names.get(base, base.upper() if len(base) <= 3 else base.capitalize())
    mods = parts[:-1]
    if mods == ["ctrl"]:
        return f"Ctrl+{text}" if long else f"^{text}"
    return "+".join([*(m.capitalize() for m in mods), text])


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


async def refreshed(start: Callable[[], Worker[Any]], tries: int = 5) -> None:
    """Start a desk's list refresh and wait until one has run to its end.

    The desk's own poll starts the same exclusive worker every few seconds, which cancels
    a refresh under way: on a busy machine the one a step waits for may be cancelled, and
    the step after it (a tube label printed and shown) must not be lost with it.  A
    cancelled refresh is started again (``tries`` at most); one that failed has said why
    on the desk, and the step goes on."""
    for _ in range(tries):
        try:
            await start().wait()
            return
        except WorkerCancelled:
            continue
        except WorkerFailed:
            return
