"""A desk's shift keys, one copy for every desk: F12 locks the screen, Ctrl+O logs out —
the operator's shift slip first (print, confirm), then the login screen for the next."""

from __future__ import annotations

from typing import Any

from textual.css.query import NoMatches
from textual.widgets import Input

from edge_node.tui.context import Counter
from edge_node.tui.screens.handover import HandoverScreen


class ShiftKeys:
    """Mixed into a desk screen (before ``Screen``), which binds ``lock`` and ``log_out``."""

    counter: Counter

    def _app(self) -> Any:
        return getattr(self, "app")  # noqa: B009 (the Screen's, once mixed in)

    def action_lock(self) -> None:
        lock = getattr(self._app(), "lock", None)
        if callable(lock):
            lock()

    def action_log_out(self) -> None:
        if self.counter.operator is not None:
            self._app().push_screen(HandoverScreen(self.counter), self._handed_over)

    def _handed_over(self, confirmed: bool | None) -> None:
        log_out = getattr(self._app(), "log_out", None)
        if confirmed and callable(log_out):
            log_out()
            return
        try:  # not confirmed: back to the card field, where the desk was
            getattr(self, "query_one")("#card_no", Input).focus()  # noqa: B009
        except NoMatches:
            pass
