"""The conflict queue: every conflict the reconciler raised, filtered, with counts per kind."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Static

from central.console.data import DATE_CYCLE, STATUS_CYCLE, ConsoleData, Filters
from central.console.format import when
from central.console.screens import MessageScreen, Table, bind_keys
from protocol.money import yuan


def _next(options: tuple[str, ...] | list[str], current: str) -> str:
    opts = list(options)
    return opts[(opts.index(current) + 1) % len(opts)] if current in opts else opts[0]


class QueueScreen(MessageScreen):
    DEFAULT_CSS = """
    QueueScreen #filters { height: 1; padding: 0 1; background: $boost; }
    QueueScreen #counts { height: auto; padding: 0 1; color: $warning; }
    QueueScreen #queue { height: 1fr; }
    """
    AUTO_FOCUS = "#queue"

    def __init__(self, data: ConsoleData, operator: str) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        bind_keys(self, [
            ("enter", "open", tr("key.open"), True),
            ("k", "cycle_kind", tr("key.kind"), True),
            ("s", "cycle_status", tr("key.status"), True),
            ("o", "cycle_node", tr("key.node"), True),
            ("d", "cycle_date", tr("key.date"), True),
            ("x", "clear", tr("key.clear"), True),
            ("a", "acknowledge", tr("key.ack"), True),
            ("slash", "search", tr("key.search"), True),
            ("n", "nodes", tr("key.nodes"), True),
            ("l", "audit_log", tr("key.audit_log"), False),
            ("p", "staff", tr("key.staff"), False),
            ("r", "reload", tr("key.refresh"), True),
            ("q", "app.quit", tr("key.quit"), True),
        ])
        self.operator = operator
        self.filters = Filters()
        self.kinds: list[str] = []
        self.nodes: list[str] = []
        self.ids: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="filters")
        yield Static(id="counts")
        table = Table(id="queue", cursor_type="row", zebra_stripes=True)
        tr = self.tr
        table.add_columns(*(tr(f"col.{c}") for c in (
            "status", "severity", "kind", "amount", "happened", "nodes", "title")))
        yield table
        yield Static(classes="message", id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @work(exclusive=True, group="queue")
    async def load(self) -> None:
        """Read the book (in a worker: the store may be busy with the server's writes)."""
        self.kinds, self.nodes = await self.data.kinds_and_nodes()
        every_kind = await self.data.conflicts(replace(self.filters, kind=""))
        rows = [r for r in every_kind if not self.filters.kind or r.kind == self.filters.kind]
        counts: dict[str, int] = {}
        for r in every_kind:
            counts[r.kind] = counts.get(r.kind, 0) + 1
        tr = self.tr
        self.query_one("#filters", Static).update(self.filters.describe(tr))
        self.query_one("#counts", Static).update(
            tr("queue.count", n=len(rows)) + "   " + "  ".join(
                f"{tr.word('conflict', k)} {n}" for k, n in sorted(counts.items()))
            if counts else tr("queue.none"))
        table = self.query_one("#queue", DataTable)
        keep = table.cursor_row
        table.clear()
        self.ids = []
        for r in rows:
            table.add_row(tr.word("status", r.status), tr.word("severity", r.severity),
                          tr.word("conflict", r.kind), yuan(r.amount) if r.amount else "",
                          when(r.wall_ms), ", ".join(r.nodes),
                          Text(self.data.named(tr.conflict_title(r.kind, r.title), r.patients)),
                          key=r.id)
            self.ids.append(r.id)
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))

    def selected(self) -> str | None:
        table = self.query_one("#queue", DataTable)
        if not self.ids or table.cursor_row < 0:
            return None
        return self.ids[min(table.cursor_row, len(self.ids) - 1)]

    # -- actions -------------------------------------------------------------------------
    def action_open(self) -> None:
        from central.console.screens.detail import DetailScreen

        cid = self.selected()
        if cid is not None:
            self.app.push_screen(DetailScreen(self.data, cid, self.operator))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def _filter(self, **changes: object) -> None:
        self.filters = replace(self.filters, **changes)  # type: ignore[arg-type]
        self.load()

    def action_cycle_kind(self) -> None:
        self._filter(kind=_next(["", *self.kinds], self.filters.kind))

    def action_cycle_status(self) -> None:
        self._filter(status=_next(STATUS_CYCLE, self.filters.status))

    def action_cycle_node(self) -> None:
        self._filter(node=_next(["", *self.nodes], self.filters.node))

    def action_cycle_date(self) -> None:
        days = list(DATE_CYCLE)
        self._filter(days=days[(days.index(self.filters.days) + 1) % len(days)])

    def action_clear(self) -> None:
        self._filter(kind="", status=Filters().status, node="", days=0)

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="ack")
    async def action_acknowledge(self) -> None:
        cid = self.selected()
        if cid is None:
            return
        if await self.data.acknowledge(cid, self.operator):
            self.say(self.tr("queue.acked", cid=cid, op=self.operator), "done")
        else:
            self.say(self.tr("queue.not_open", cid=cid), "problem")
        self.load()

    def action_search(self) -> None:
        from central.console.screens.search import SearchScreen

        self.app.push_screen(SearchScreen(self.data, self.operator))

    def action_audit_log(self) -> None:
        from central.console.screens.audit_log import AuditLogScreen

        self.app.push_screen(AuditLogScreen(self.data))

    def action_staff(self) -> None:
        from central.console.screens.staff import StaffScreen

        self.app.push_screen(StaffScreen(self.data, self.operator))

    def action_nodes(self) -> None:
        from central.console.screens.nodes import NodesScreen

        self.app.push_screen(NodesScreen(self.data))
