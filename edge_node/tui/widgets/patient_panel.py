"""The patient panel: who is at the counter, their card, money, flags and recent activity."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from edge_node.notices import Notice
from edge_node.notices import notices as conflict_notices
from edge_node.service import PatientView, masked
from edge_node.tui.context import Counter
from edge_node.tui.describe import (
    age,
    event_amount,
    event_detail,
    event_title,
    family_of,
    local_time,
    shown,
    signed_yuan,
)
from protocol.event import Event
from protocol.money import yuan

RECENT = 6


class PatientPanel(Vertical):
    DEFAULT_CSS = """
    PatientPanel { height: 1fr; border: round $primary; padding: 0 1; }
    PatientPanel #who { text-style: bold; }
    PatientPanel #flags { color: $error; text-style: bold; }
    PatientPanel #flags.calm { color: $warning; }
    PatientPanel #money { margin: 1 0 0 0; }
    PatientPanel #recent { margin: 1 0 0 0; height: auto; }
    PatientPanel.empty #who { color: $text-muted; text-style: none; }
    """

    def __init__(self, counter: Counter) -> None:
        super().__init__(classes="empty")
        self.counter = counter
        self.view: PatientView | None = None
        self.history: list[Event] = []
        self.notes: tuple[str, ...] = ()
        self._shown_recent = RECENT  # recent lines that fit (see _fit_recent)

    def compose(self) -> ComposeResult:
        yield Static(self.counter.tr("home.waiting"), id="who")
        yield Static(id="ident")
        yield Static(id="card")
        yield Static(id="money")
        yield Static(id="flags")
        yield Static(id="recent")

    def clear(self) -> None:
        self.view, self.history, self.notes = None, [], ()
        self.add_class("empty")
        self.query_one("#who", Static).update(self.counter.tr("home.waiting"))
        for name in ("ident", "card", "money", "flags", "recent"):
            self.query_one(f"#{name}", Static).update("")

    def show(self, view: PatientView, history: list[Event], notes: tuple[str, ...] = ()) -> None:
        """Show the patient; ``notes`` are the card checks' flags (clone, manual entry …)."""
        self.view, self.history, self.notes = view, history, notes
        self.remove_class("empty")
        tr = self.counter.tr
        tz = self.counter.config.timezone
        p, acct = view.patient, view.account
        years = age(p.birth_date, self.counter.clock(), tz)
        sex = tr(f"sex.{p.sex}") if p.sex in ("M", "F") else "-"
        age_text = tr("age", n=years) if years is not None else "-"
        self.query_one("#who", Static).update(
            f"{escape(p.name)}   {tr('panel.patient_id')} {p.patient_id}   {sex} / {age_text}")
        d = masked(view.details)
        ident = [f"{tr('panel.national_id')} {shown(tr, d.national_id)}"]
        if d.phone != "":
            ident.append(f"{tr('panel.phone')} {shown(tr, d.phone)}")
        self.query_one("#ident", Static).update("   ".join(ident))
        card = view.card
        cards = ", ".join(f"{c.card_no} {tr('card.' + c.status)}" for c in view.cards)
        this = (f"{tr('panel.card')} {card.card_no} [b]{tr('card.' + card.status)}[/b]   "
                if card else "")
        self.query_one("#card", Static).update(f"{this}{tr('panel.cards')}: {cards or '-'}")
        money = Text()
        money.append(f"{tr('panel.balance')} ", style="bold")
        money.append(yuan(acct.balance), style="bold reverse" if acct.balance >= 0 else "bold red")
        if acct.credit_limit:
            money.append(f"   {tr('panel.credit')} {yuan(acct.credit_limit)}")
        money.append(f"   {tr('panel.available')} {yuan(acct.available)}")
        self.query_one("#money", Static).update(money)
        # what to do about conflicts central resolved (debts, blocked cards, merges)
        told = conflict_notices(p, acct, view.cards, history)
        flags = [*(n.text(tr) for n in told if n.urgent), *self._flags(view, told), *notes,
                 *(n.text(tr) for n in told if not n.urgent)]
        flag_widget = self.query_one("#flags", Static)
        flag_widget.update("\n".join(f"! {f}" for f in flags))
        self._shown_recent = RECENT
        self._show_recent()
        self.call_after_refresh(self._fit_recent)

    def _show_recent(self) -> None:
        view, history = self.view, self.history
        if view is None:
            return
        self.query_one("#recent", Static).update(
            self._recent(history[:self._shown_recent],
                         family_of(view.patient.patient_id, history),
                         self.counter.config.timezone))

    def on_resize(self) -> None:
        self._fit_recent()

    def _fit_recent(self) -> None:
        """As many recent lines as the panel has room for (a 25-line console has fewer
        than six below a flagged patient): never a line cut in half."""
        if self.view is None or not self.is_mounted:
            return
        recent = self.query_one("#recent", Static)
        room = self.content_region.bottom - recent.region.y - 1  # its title takes one
        rows = max(0, min(RECENT, room))
        if rows != self._shown_recent and (rows < self._shown_recent
                                           or self._shown_recent < RECENT):
            self._shown_recent = rows
            self._show_recent()

    def relabel(self) -> None:
        """The same patient in the counter's (new) language.

        The card checks' notes stay as they were written at the tap (the next tap
        writes them in the new language).
        """
        if self.view is None:
            self.clear()
        else:
            self.show(self.view, self.history, self.notes)

    def _flags(self, view: PatientView, told: list[Notice]) -> list[str]:
        tr = self.counter.tr
        said = {n.code for n in told}  # a notice says it better (with why): no plain flag
        out = []
        card, acct = view.card, view.account
        if card is not None and card.status == "lost":
            out.append(tr("flag.card_lost"))
        elif card is not None and card.status == "replaced":
            out.append(tr("flag.card_replaced", new=card.replaced_by))
        if acct.balance < 0 and not said & {"debt", "open"}:  # open: collect nothing yet
            out.append(tr("flag.debt", amount=yuan(-acct.balance)))
        if acct.closed:
            out.append(tr("flag.closed"))
        if acct.credit_limit:
            out.append(tr("flag.credit", amount=yuan(acct.credit_limit)))
        if view.patient.merged_into and "merged_into" not in said:
            out.append(tr("flag.merged", pid=view.patient.merged_into))
        return out

    def _recent(self, events: list[Event], family: frozenset[str], tz: str) -> Table | str:
        tr = self.counter.tr
        if not events:
            return ""
        table = Table(title=tr("panel.recent"), title_justify="left", box=None, expand=True,
                      show_header=False, padding=(0, 1))
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
        for ev in events:
            table.add_row(local_time(ev.hlc.wall, tz), event_title(tr, ev),
                          signed_yuan(event_amount(ev, family)), escape(event_detail(tr, ev)))
        return table
