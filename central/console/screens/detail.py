"""One conflict: the events side by side, the account timeline, the remedies and their effect."""

from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static

from central.console.data import ConsoleData, Detail, EventCard
from central.console.format import signed, when
from central.console.screens import MessageScreen, Table, bind_keys
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

    def __init__(self, data: ConsoleData, cid: str, operator: str) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        bind_keys(self, [
            ("escape", "app.pop_screen", tr("key.back"), True),
            ("q", "app.pop_screen", tr("key.close"), False),
            ("1", "choose(1)", tr("key.remedy", n=1), True),
            ("2", "choose(2)", tr("key.remedy", n=2), True),
            ("3", "choose(3)", tr("key.remedy", n=3), True),
            ("c", "confirm", tr("key.resolve"), True),
            ("a", "acknowledge", tr("key.ack"), True),
            ("r", "reload", tr("key.refresh"), True),
        ])
        self.cid = cid
        self.operator = operator
        self.detail: Detail | None = None
        self.chosen: RemedyOption | None = None

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll():
            yield Static(id="head")
            yield Static(id="explanation")
            yield Static(self.tr("detail.events"), classes="section")
            yield Horizontal(id="events")
            yield Static(self.tr("detail.timeline"), classes="section")
            yield Static(id="timelines")
            yield Static(self.tr("detail.remedies"), classes="section")
            yield Static(id="remedies")
            yield Static(id="plan", classes="empty")
            yield Static(classes="message", id="message")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        tr = self.tr
        detail = await self.data.detail(self.cid)
        if detail is None:
            self.say(tr("detail.no_conflict", cid=self.cid), "problem")
            return
        self.detail = detail
        c = detail.conflict
        self.query_one("#head", Static).update(
            f"{escape(self._named(tr.conflict_title(c.kind, c.title)))}\n"
            + tr("detail.head", cid=c.id, kind=escape(tr.word("conflict", c.kind)),
                 severity=tr.word("severity", c.severity), status=tr.word("status", c.status))
            + (tr("detail.amount", amount=yuan(c.amount)) if c.amount else "")
            + tr("detail.happened", when=when(c.wall_ms)))
        self.query_one("#explanation", Static).update(escape(self._named(
            tr.explanation(c.kind, c.explanation))))
        box = self.query_one("#events", Horizontal)
        await box.remove_children()
        await box.mount_all(Static(
            f"[b]{escape(e.ref)}[/b]  {escape(self._kind(e))}\n{when(e.wall_ms)}  "
            f"{tr('detail.by')} {escape(e.operator)}\n"
            + "\n".join(escape(line) for line in e.lines),
            classes="event") for e in detail.events)
        await self._timelines(detail)
        self._remedies()

    def _kind(self, e: EventCard) -> str:
        tr = self.tr
        if not e.kind:
            return tr("detail.not_merged")
        kind = tr.event_kind(e.kind)
        return tr("detail.quarantined", kind=kind, why=e.quarantined) if e.quarantined else kind

    async def _timelines(self, detail: Detail) -> None:
        tr = self.tr
        holder = self.query_one("#timelines", Static)
        if not detail.timelines:
            holder.update(tr("detail.no_account"))
            return
        holder.update("")
        for old in self.query(".timeline"):
            await old.remove()
        for pid, rows in detail.timelines:
            table = Table(classes="timeline", cursor_type="none", show_cursor=False)
            table.add_columns(*(tr(f"col.{c}") for c in (
                "mark", "when", "event", "kind", "change", "balance")))
            for r in rows:
                mark = "▶" if r.involved else ""
                table.add_row(mark, when(r.wall_ms), r.ref, tr.event_kind(r.kind),
                              signed(r.delta), yuan(r.balance))
            heading = Static(f"  {escape(self._named(pid))}", classes="timeline")
            await self.query_one(VerticalScroll).mount(heading, table, after=holder)

    def _remedies(self) -> None:
        assert self.detail is not None
        tr = self.tr
        c = self.detail.conflict
        if c.status == "resolved":
            text = tr("detail.resolved", op=escape(c.resolved_by),
                      kind=escape(tr.event_kind(c.resolved_kind)), event=escape(c.resolved_event),
                      when=when(c.resolved_ms), reason=escape(c.resolved_reason))
        else:
            text = "\n".join(f"[b]{i}[/b] {escape(self._label(r))} ({escape(r.code)})"
                             for i, r in enumerate(c.remedies, 1))
            text += "\n" + tr("detail.press_number")
        self.query_one("#remedies", Static).update(text)

    def _label(self, r: RemedyOption) -> str:
        assert self.detail is not None
        return self._named(self.tr.remedy_label(self.detail.conflict.kind, r.code, r.label,
                                                r.events))

    def _named(self, text: str) -> str:
        """``text`` with the conflict's patients' names beside their numbers (the book
        holds numbers only; the console opened the names: :meth:`ConsoleData.named`)."""
        return self.data.named(text, self.detail.names if self.detail is not None else ())

    # -- actions -------------------------------------------------------------------------
    def action_choose(self, n: int) -> None:
        if self.detail is None or self.detail.conflict.status == "resolved":
            return
        tr = self.tr
        remedies = self.detail.conflict.remedies
        if not 1 <= n <= len(remedies):
            self.say(tr("detail.no_remedy", n=n), "problem")
            return
        self.chosen = chosen = remedies[n - 1]
        plan = self.query_one("#plan", Static)
        plan.remove_class("empty")
        def shown(k: str, v: object) -> object:
            return yuan(v) if k in ("amount", "debit", "moved") and type(v) is int else \
                tr.value(k, v)

        signs = "\n".join(
            "  • " + tr("detail.signs", kind=tr.event_kind(kind)) + ", ".join(
                f"{tr.field(k)}={shown(k, v)}" for k, v in body.items() if k != "conflict_id")
            for kind, body in chosen.events)
        effect = self._named(tr.remedy_effect(chosen.code, chosen.effect, chosen.events))
        plan.update(f"[b]{escape(self._label(chosen))}[/b] — {tr('detail.will_do')}\n"
                    f"{escape(effect)}\n"
                    f"{escape(signs)}\n{tr('detail.press_c')}")
        self.say("")

    def action_confirm(self) -> None:
        from central.console.screens.resolve import ResolveScreen

        if self.detail is None:
            return
        if self.detail.conflict.status == "resolved":
            self.say(self.tr("detail.already"), "problem")
            return
        if self.chosen is None:
            self.say(self.tr("detail.choose_first"), "problem")
            return

        def done(events: int | None) -> None:
            if events:
                self.say(self.tr("detail.done", n=events), "done")
                self.chosen = None
                self.query_one("#plan", Static).add_class("empty")
                self.load()

        self.app.push_screen(ResolveScreen(self.data, self.detail.conflict, self.chosen,
                                           self.operator), done)

    @work(exclusive=True, group="ack")
    async def action_acknowledge(self) -> None:
        if await self.data.acknowledge(self.cid, self.operator):
            self.say(self.tr("detail.acked", op=self.operator), "done")
            self.load()
        else:
            self.say(self.tr("detail.only_open"), "problem")

    def action_reload(self) -> None:
        self.load()
