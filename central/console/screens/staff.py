"""Staff (issue 11): every member of staff central signed — ``onecard-central staff
list``'s records (:func:`central.staff.members`) — with their state, roles, last change
and the counters they may log in at; ``d``/``e`` disable or enable the selected one
after a confirmation, signed as central like ``staff disable|enable`` (the event names
the console's operator and is on the audit log)."""

from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, Static

from central.console.data import ConsoleData
from central.console.format import when
from central.console.i18n import Translator
from central.console.screens import MessageScreen, Table, bind_keys
from central.staff import StaffFailed
from protocol.core import say, wall_of
from protocol.staff import LABELS, StaffMember, last_change


def role_words(tr: Translator, roles: str) -> str:
    """``cashier,supervisor`` in the console's language (an unknown role as it is)."""
    words = [say(LABELS[f"role.{r}"], tr.language) if f"role.{r}" in LABELS else r
             for r in roles.split(",") if r]
    return ("、" if tr.zh else ", ").join(words)


def changed(tr: Translator, m: StaffMember, timezone: str) -> str:
    """When and what the latest signed change to ``m`` was (minutes, the hospital's time)."""
    order, kind = last_change(m)
    if not order:
        return "-"
    return f"{when(wall_of(order), timezone)[:16]} {tr(f'staffview.kind.{kind}')}"


class StaffScreen(MessageScreen):
    DEFAULT_CSS = """
    StaffScreen #legend { height: auto; padding: 0 1; color: $text-muted; }
    StaffScreen #staff { height: 1fr; }
    """
    AUTO_FOCUS = "#staff"

    def __init__(self, data: ConsoleData, operator: str) -> None:
        super().__init__()
        self.data = data
        self.operator = operator
        tr = self.tr = data.tr
        self.members: list[StaffMember] = []
        bind_keys(self, [("escape", "app.pop_screen", tr("key.back"), True),
                         ("q", "app.pop_screen", tr("key.close"), False),
                         ("d", "disable", tr("key.disable"), True),
                         ("e", "enable", tr("key.enable"), True),
                         ("r", "reload", tr("key.refresh"), True)])

    def compose(self) -> ComposeResult:
        tr = self.tr
        yield Header(show_clock=False)
        yield Static("", id="legend")
        table = Table(id="staff", cursor_type="row", zebra_stripes=True)
        table.add_columns(*(tr(f"staffview.col.{c}") for c in (
            "id", "name", "state", "roles", "changed", "counters")))
        yield table
        yield Static(classes="message", id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="staff")
    async def load(self) -> None:
        tr = self.tr
        self.members = await self.data.staff()
        off = sum(1 for m in self.members if m.disabled)
        self.query_one("#legend", Static).update(
            tr("staffview.legend", n=len(self.members), off=off) if self.members
            else tr("staffview.none"))
        table = self.query_one("#staff", DataTable)
        keep = table.cursor_row
        table.clear()
        for m in self.members:
            table.add_row(m.staff_id, m.name,
                          tr("staffview.disabled" if m.disabled else "staffview.active"),
                          role_words(tr, m.roles), changed(tr, m, self.data.timezone),
                          m.at_nodes.replace(",", ", ") or tr("staffview.everywhere"),
                          key=m.staff_id)
        if self.members:
            table.move_cursor(row=min(max(keep, 0), len(self.members) - 1))

    def selected(self) -> StaffMember | None:
        table = self.query_one("#staff", DataTable)
        if not self.members or table.cursor_row < 0:
            return None
        return self.members[min(table.cursor_row, len(self.members) - 1)]

    def action_disable(self) -> None:
        self._change(True)

    def action_enable(self) -> None:
        self._change(False)

    def _change(self, disable: bool) -> None:
        m = self.selected()
        if m is None:
            return
        tr = self.tr
        if bool(m.disabled) == disable:
            state = tr("staffview.disabled" if disable else "staffview.active")
            self.say(tr("staffview.already", sid=m.staff_id, state=state), "problem")
            return

        def done(seq: int | None) -> None:
            if seq is not None:
                what = tr("staffview.kind.staff.disabled" if disable else
                          "staffview.kind.staff.enabled")
                self.say(tr("staffview.done", seq=seq, sid=m.staff_id, what=what), "done")
                self.load()

        self.app.push_screen(StaffChangeScreen(self.data, m, disable, self.operator), done)


class StaffChangeScreen(ModalScreen[int | None]):
    """Confirm disabling or enabling one member of staff, with an optional reason.
    Dismissed with central's seq of the signed event, or ``None`` when cancelled."""

    DEFAULT_CSS = """
    StaffChangeScreen { align: center middle; }
    StaffChangeScreen #box { width: 76; height: auto; border: thick $warning; padding: 1 2;
                             background: $panel; }
    StaffChangeScreen #reason { margin: 1 0 0 0; }
    StaffChangeScreen #error { color: $error; text-style: bold; height: auto; }
    """

    def __init__(self, data: ConsoleData, member: StaffMember, disable: bool,
                 operator: str) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        self.member = member
        self.disable = disable
        self.operator = operator
        # letters type into the reason here; escape cancels, enter signs
        self._bindings.bind("escape", "cancel", tr("key.cancel_short"))
        self._bindings.bind("enter", "submit", tr("key.disable" if disable else "key.enable"),
                            priority=True)

    def compose(self) -> ComposeResult:
        tr, m = self.tr, self.member
        question = tr("staffview.confirm_disable" if self.disable else
                      "staffview.confirm_enable", sid=m.staff_id, name=m.name)
        what = "disabled" if self.disable else "enabled"
        with Vertical(id="box"):
            yield Static(f"[b]{escape(question)}[/b]\n\n"
                         + escape(tr("staffview.signed_by", op=self.operator, what=what)))
            yield Input(placeholder=tr("staffview.reason"), id="reason", max_length=200)
            yield Static(id="error")
        yield Footer()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        self.sign(self.query_one("#reason", Input).value)

    @work(exclusive=True, group="staff_change")
    async def sign(self, reason: str) -> None:
        try:
            seq = await self.data.set_staff_disabled(self.member.staff_id, self.disable,
                                                     reason=reason, operator=self.operator)
        except StaffFailed as exc:
            self.query_one("#error", Static).update(
                self.tr("staffview.refused", msg=escape(str(exc))))
            return
        self.dismiss(seq)
