"""Operator login (and the idle lock screen): staff id + PIN before anything else."""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from edge_node.i18n import Translator
from edge_node.staff import LoginRefused, Staff, list_staff, login
from edge_node.tui.context import Counter
from edge_node.tui.screens.base import error_text
from edge_node.tui.widgets.keybar import KeyBar

Hint = str | Callable[[Translator], str]


class LoginScreen(Screen[Staff]):
    DEFAULT_CSS = """
    LoginScreen { align: center middle; }
    LoginScreen > Vertical { width: 50; height: auto; border: thick $primary; padding: 1 2; }
    LoginScreen #title { text-style: bold; margin: 0 0 1 0; }
    LoginScreen #error { color: $error; height: auto; margin: 1 0 0 0; }
    LoginScreen #hint { color: $text-muted; height: auto; margin: 1 0 0 0; }
    """

    def __init__(self, counter: Counter, *, locked: bool = False,
                 hint: Hint | None = None) -> None:
        super().__init__()
        self.counter = counter
        self.locked = locked
        self.hint = hint
        self.no_staff = False

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        yield KeyBar()  # F1, Ctrl+L (language before logging in), Ctrl+Q
        with Vertical():
            yield Static(tr.app_title(self.counter.config.role), id="app-title")
            yield Static(tr("login.locked_title" if self.locked else "login.title"), id="title")
            yield Label(tr("login.staff_id"), id="staff-label")
            yield Input(id="staff_id", value=self._last_staff_id())
            yield Label(tr("login.pin"), id="pin-label")
            yield Input(id="pin", password=True, restrict=r"[0-9]*", max_length=12)
            yield Static(id="error")
            if hint := self.hint_text():  # e.g. the demo's staff id and PIN, on the screen
                yield Static(hint, id="hint", markup=False)

    def hint_text(self) -> str:
        """The hint line: given here, else the app's ``login_hint`` (none: no line).

        A callable is given the counter's translator, so the hint follows its language."""
        hint = self.hint if self.hint is not None else getattr(self.app, "login_hint", "")
        return hint(self.counter.tr) if callable(hint) else str(hint)

    def relabel(self) -> None:
        """After a language switch (Ctrl+L before logging in): the same screen, new words."""
        tr = self.counter.tr
        self.query_one("#app-title", Static).update(tr.app_title(self.counter.config.role))
        self.query_one("#title", Static).update(
            tr("login.locked_title" if self.locked else "login.title"))
        self.query_one("#staff-label", Label).update(tr("login.staff_id"))
        self.query_one("#pin-label", Label).update(tr("login.pin"))
        self.query_one("#error", Static).update(tr("login.no_staff") if self.no_staff else "")
        for hint in self.query("#hint").results(Static):
            hint.update(self.hint_text())

    def _last_staff_id(self) -> str:
        op = self.counter.operator
        return op.staff_id if (self.locked and op) else ""

    def on_mount(self) -> None:
        self.query_one("#pin" if self.locked and self.counter.operator else "#staff_id",
                       Input).focus()
        if not self.locked:
            self.check_staff_exists()

    @work(exit_on_error=False)
    async def check_staff_exists(self) -> None:
        if not await list_staff(self.counter.ledger):
            self.no_staff = True
            self.query_one("#error", Static).update(self.counter.tr("login.no_staff"))

    @on(Input.Changed)
    def _edited(self, event: Input.Changed) -> None:
        """Typing again clears the last error (a PIN emptied after a refusal does not; the
        hint that there is no staff yet stays)."""
        if event.value and not self.no_staff:
            self.query_one("#error", Static).update("")

    @on(Input.Submitted, "#staff_id")
    def next_field(self) -> None:
        self.query_one("#pin", Input).focus()

    @on(Input.Submitted, "#pin")
    def submit(self) -> None:
        staff_id = self.query_one("#staff_id", Input).value.strip()
        pin = self.query_one("#pin", Input).value
        if not staff_id or not pin:
            self.query_one("#error", Static).update(self.counter.tr("login.missing"))
            return
        self.attempt(staff_id, pin)

    @work(exclusive=True, exit_on_error=False)
    async def attempt(self, staff_id: str, pin: str) -> None:
        try:
            staff = await login(self.counter.ledger, staff_id, pin,
                                pepper=self.counter.service.pepper,
                                desk=self.counter.config.role)
        except LoginRefused as exc:
            tr = self.counter.tr
            text = tr(exc.code, **exc.values) if tr.has(exc.code) else str(exc)
            self.query_one("#error", Static).update(text)
            pin_input = self.query_one("#pin", Input)
            pin_input.value = ""
            pin_input.focus()
            return
        except Exception as exc:
            self.query_one("#error", Static).update(error_text(self.counter, exc))
            return
        self.counter.log_in(staff)
        self.dismiss(staff)
