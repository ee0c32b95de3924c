"""One conflict: the events side by side, the account timeline, the remedies and their effect."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static

from central.console.data import ConsoleData, Detail
from central.console.format import signed, when
from central.console.screens import MessageScreen, Table
from central.reconcile import RemedyOption
from protocol.money import yuan


class DetailScreen(MessageScreen):
    DEFAULT_CSS = """
    DetailScreen #head { text-style: bold; padding: 0 1; background: $boost; }
    DetailScreen #explanation { padding: 0 1; margin: 0 0 1 0; }
    DetailScreen #events { height: auto; }
    DetailScreen .event { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
    DetailScreen .section { text-style: bold; padding: 0 1; margin: 1 0 0 0; }
    DetailScreen DataTable { height: auto; max-height: 16; }
    DetailScreen #remedies { padding: 0 1; }
    DetailScreen #plan { padding: 0 1; border: round $warning; height: auto; }
    DetailScreen #plan.empty { display: none; }
    """
    AUTO_FOCUS = None  # digits and letters must work at once
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("1", "choose(1)", "Remedy 1"),
        Binding("2", "choose(2)", "Remedy 2"),
        Binding("3", "choose(3)", "Remedy 3"),
        Binding("c", "confirm", "Resolve…"),
        Binding("a", "acknowledge", "Ack"),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(self, data: ConsoleData, cid: str, operator: str) -> None:
        super().__init__()
        self.data = data
        self.cid = cid
        self.operator = operator
        self.detail: Detail | None = None
        self.chosen: RemedyOption | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll():
            yield Static(id="head")
            yield Static(id="explanation")
            yield Static("Events involved", classes="section")
            yield Horizontal(id="events")
            yield Static("Account timeline", classes="section")
            yield Static(id="timelines")
            yield Static("Remedies", classes="section")
            yield Static(id="remedies")
            yield Static(id="plan", classes="empty")
            yield Static(classes="message", id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        detail = await self.data.detail(self.cid)
        if detail is None:
            self.say(f"no conflict {self.cid}", "problem")
            return
        self.detail = detail
        c = detail.conflict
        self.query_one("#head", Static).update(
            f"{escape(c.title)}\n{c.id}   {c.kind}   severity {c.severity}   [b]{c.status}[/b]"
            + (f"   amount {yuan(c.amount)}" if c.amount else "")
            + f"   happened {when(c.wall_ms)}")
        self.query_one("#explanation", Static).update(escape(c.explanation))
        box = self.query_one("#events", Horizontal)
        await box.remove_children()
        await box.mount_all(Static(
            f"[b]{escape(e.ref)}[/b]  {escape(e.kind)}\n{when(e.wall_ms)}  by "
            f"{escape(e.operator)}\n" + "\n".join(escape(line) for line in e.lines),
            classes="event") for e in detail.events)
        await self._timelines(detail)
        self._remedies()

    async def _timelines(self, detail: Detail) -> None:
        holder = self.query_one("#timelines", Static)
        if not detail.timelines:
            holder.update("(no account involved)")
            return
        holder.update("")
        for old in self.query(".timeline"):
            await old.remove()
        for pid, rows in detail.timelines:
            table = Table(classes="timeline", cursor_type="none", show_cursor=False)
            table.add_columns(" ", "when", "event", "kind", "change", "balance")
            for r in rows:
                mark = "▶" if r.involved else ""
                table.add_row(mark, when(r.wall_ms), r.ref, r.kind, signed(r.delta),
                              yuan(r.balance))
            await self.query_one(VerticalScroll).mount(Static(f"  {pid}", classes="timeline"),
                                                       table, after=holder)

    def _remedies(self) -> None:
        assert self.detail is not None
        c = self.detail.conflict
        if c.status == "resolved":
            text = (f"Resolved by {escape(c.resolved_by)} with {c.resolved_kind} "
                    f"({c.resolved_event}) at {when(c.resolved_ms)}: {escape(c.resolved_reason)}")
        else:
            text = "\n".join(f"[b]{i}[/b] {escape(r.label)} ({r.code})"
                             for i, r in enumerate(c.remedies, 1))
            text += "\nPress the number to see what it will do, then c to resolve."
        self.query_one("#remedies", Static).update(text)

    # -- actions -------------------------------------------------------------------------
    def action_choose(self, n: int) -> None:
        if self.detail is None or self.detail.conflict.status == "resolved":
            return
        remedies = self.detail.conflict.remedies
        if not 1 <= n <= len(remedies):
            self.say(f"there is no remedy {n}", "problem")
            return
        self.chosen = remedies[n - 1]
        plan = self.query_one("#plan", Static)
        plan.remove_class("empty")
        signs = "\n".join(
            f"  • central signs {kind}: " + ", ".join(
                f"{k}={yuan(v) if k in ('amount', 'debit', 'moved') else v}"
                for k, v in body.items() if k != "conflict_id")
            for kind, body in self.chosen.events)
        plan.update(f"[b]{escape(self.chosen.label)}[/b] — what it will do:\n"
                    f"{escape(self.chosen.effect)}\n{escape(signs)}\nPress c to resolve with it.")
        self.say("")

    def action_confirm(self) -> None:
        from central.console.screens.resolve import ResolveScreen

        if self.detail is None:
            return
        if self.detail.conflict.status == "resolved":
            self.say("already resolved", "problem")
            return
        if self.chosen is None:
            self.say("choose a remedy first (1, 2, 3 …)", "problem")
            return

        def done(events: int | None) -> None:
            if events:
                self.say(f"resolved: {events} central event(s) signed; they sync to every "
                         "counter", "done")
                self.chosen = None
                self.query_one("#plan", Static).add_class("empty")
                self.load()

        self.app.push_screen(ResolveScreen(self.data, self.detail.conflict, self.chosen,
                                           self.operator), done)

    @work(exclusive=True, group="ack")
    async def action_acknowledge(self) -> None:
        if await self.data.acknowledge(self.cid, self.operator):
            self.say(f"acknowledged by {self.operator}", "done")
            self.load()
        else:
            self.say("only an open conflict can be acknowledged", "problem")

    def action_reload(self) -> None:
        self.load()
