"""The audit log (issue 11): who did what, when, where — the query of
``onecard-central audit log`` (:mod:`central.trail`), most recent first, filtered by who
(``w`` cycles the people in the log) and what (``k`` cycles the families of kinds)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from central import trail
from central.console.data import ConsoleData
from central.console.screens import Table, bind_keys

#: what ``k`` cycles through ("": everything the log lists)
FAMILIES = ("", "audit.login", "audit.record_opened", "audit", "account", "card", "approved",
            "staff")


def _next(options: list[str], current: str) -> str:
    i = options.index(current) if current in options else -1
    return options[(i + 1) % len(options)]


class AuditLogScreen(Screen[None]):
    DEFAULT_CSS = """
    AuditLogScreen #filters { height: auto; padding: 0 1; color: $text-muted; }
    AuditLogScreen #audit { height: 1fr; }
    """
    AUTO_FOCUS = "#audit"
    LIMIT = 500

    def __init__(self, data: ConsoleData) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        self.who, self.what = "", ""
        self.people: list[str] = []
        bind_keys(self, [("escape", "app.pop_screen", tr("key.back"), True),
                         ("q", "app.pop_screen", tr("key.close"), False),
                         ("w", "cycle_who", tr("key.audit_who"), True),
                         ("k", "cycle_what", tr("key.audit_what"), True),
                         ("x", "clear", tr("key.clear"), True),
                         ("r", "reload", tr("key.refresh"), True)])

    def compose(self) -> ComposeResult:
        tr = self.tr
        yield Header(show_clock=False)
        yield Static("", id="filters")
        table = Table(id="audit", cursor_type="row", zebra_stripes=True)
        table.add_columns(*(tr(f"audit.col.{c}") for c in ("when", "where", "who", "what",
                                                            "detail")))
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_cycle_who(self) -> None:
        self.who = _next(["", *self.people], self.who)
        self.load()

    def action_cycle_what(self) -> None:
        self.what = _next(list(FAMILIES), self.what)
        self.load()

    def action_clear(self) -> None:
        self.who = self.what = ""
        self.load()

    @work(exclusive=True, group="audit")
    async def load(self) -> None:
        tr = self.tr
        every = tr("audit.any")
        self.query_one("#filters", Static).update(
            tr("audit.filters", who=self.who or every, what=self.what or every))
        f = trail.Filters(who=self.who, what=(self.what,) if self.what else (),
                          limit=self.LIMIT)
        entries = await self.data.audit_log(f)
        if not self.who:
            self.people = sorted({p for e in entries for p in e.who.split(" + ") if p != "-"})
        table = self.query_one("#audit", DataTable)
        table.clear()
        for i, e in enumerate(entries):
            table.add_row(e.when, e.where, e.who, e.what, e.detail, key=f"{e.where}#{e.seq}#{i}")
