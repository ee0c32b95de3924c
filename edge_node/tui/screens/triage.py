"""The triage desk (分诊台): tap → the patient and a visit registered; the department's
queue of the day, called, skipped, recalled and marked no-show from here.

The department is the counter's ``department`` (config); with none configured the nurse
picks one of the catalogue's clinics (F7).  The queue is read again whenever the ledger
moves — a visit registered at another counter arrives through sync, a doctor calls a
patient — by polling :meth:`VisitService.changes` (one index lookup) every
:data:`POLL_S` seconds, and at once after this desk's own steps.  Every step goes
through :class:`~edge_node.visits.VisitService`; a refusal is a line on the screen.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from edge_node.service import PatientView, Receipt
from edge_node.tui.cardsource import Tapped, refusal_text
from edge_node.tui.context import Counter
from edge_node.tui.screens.base import KeySpec, error_text, refreshed
from edge_node.tui.screens.picker import PickScreen
from edge_node.tui.screens.shift import LIST_MOVES, Desk, desk_css
from edge_node.tui.screens.visit import VisitForm
from edge_node.tui.widgets.keybar import KeyBar
from edge_node.tui.widgets.patient_panel import PatientPanel
from edge_node.tui.widgets.queue import QueueTable
from edge_node.tui.widgets.status import StatusBar
from edge_node.visits import VisitService
from protocol.event import Event
from protocol.money import yuan

POLL_S = 2.0


class TriageScreen(Desk, Screen[None]):
    DEFAULT_CSS = desk_css("TriageScreen", """
    TriageScreen #card-row { height: 1; padding: 0 1; }
    TriageScreen #card-row Label { width: auto; padding: 0 1 0 0; }
    TriageScreen #card_no { width: 24; border: none; height: 1; padding: 0 1;
                            background: $boost; }
    TriageScreen #dept-name { width: 1fr; text-align: right; text-style: bold; }
    TriageScreen PatientPanel { height: auto; max-height: 8; }
    TriageScreen PatientPanel #card, TriageScreen PatientPanel #recent,
    TriageScreen PatientPanel #money { margin: 0; }
    TriageScreen PatientPanel #recent { display: none; }
    TriageScreen #message.done { text-style: bold; }
    TriageScreen #counts { height: 1; padding: 0 1; color: $text-muted; }
    """)
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "register", "key.visit", True),
        ("f3", "call_next", "key.call_next", True),
        ("f4", "recall", "key.recall", True),
        ("f5", "skip", "key.skip", True),
        ("f6", "no_show", "key.no_show", True),
        ("f7", "pick_dept", "key.pick_dept", True),
    ]
    #: the cursor keys move the queue's selection while typing a card number
    MOVE_KEYS = LIST_MOVES

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.dept = counter.config.department
        self.card_no = ""
        self.card_entry = "chip"
        self.view: PatientView | None = None
        self._mark = -1  # the ledger's change mark the queue was last read at
        self.bind_desk_keys()

    @property
    def visits(self) -> VisitService:
        c = self.counter
        return VisitService(c.ledger, c.service.operator, queue_tag=c.config.queue_tag,
                            roles=c.service.roles)

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        yield StatusBar(self.counter)
        with Vertical():
            with Horizontal(id="card-row"):
                yield Label(tr("home.card_prompt"), id="card-prompt")
                yield Input(id="card_no", placeholder=tr("home.card_placeholder"),
                            max_length=32, restrict=r"[A-Za-z0-9]*")
                yield Static(id="dept-name")
            yield PatientPanel(self.counter)
            yield Static(id="message")
            yield QueueTable(tr, id="queue")
            yield Static(id="counts")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#card_no", Input).focus()
        self.show_dept()
        self.refresh_queue(force=True)
        self.set_interval(POLL_S, self.refresh_queue)

    def relabel(self) -> None:
        tr = self.counter.tr
        self.bind_desk_keys()
        self.query_one("#card-prompt", Label).update(tr("home.card_prompt"))
        self.query_one("#card_no", Input).placeholder = tr("home.card_placeholder")
        self.query_one(StatusBar).relabel()
        self.panel.relabel()
        self.queue_table.relabel(tr)
        self.show_dept()
        self.refresh_queue(force=True)
        self.say(tr("home.language"))
        self.refresh_bindings()

    def reset(self) -> None:
        """Log out: no patient, no card, no message (the queue is the department's)."""
        self.workers.cancel_group(self, "lookup")
        self.clear_patient()
        self.say("")
        self.query_one(StatusBar).refresh_status()

    @property
    def panel(self) -> PatientPanel:
        return self.query_one(PatientPanel)

    @property
    def queue_table(self) -> QueueTable:
        return self.query_one("#queue", QueueTable)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pick_dept":  # a configured department is this desk's for good
            return not self.counter.config.department
        return True

    # -- the department ---------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="dept")
    async def show_dept(self) -> None:
        tr = self.counter.tr
        label = self.query_one("#dept-name", Static)
        if not self.dept:
            label.update(tr("triage.no_dept"))
            return
        try:
            d = await self.visits.department(self.dept)
        except Exception:  # no catalogue yet: the code is all there is to show
            d = None
        label.update(tr("triage.dept", dept=f"{d.name} ({self.dept})" if d else self.dept))

    @work(exclusive=True, exit_on_error=False, group="dept")
    async def action_pick_dept(self) -> None:
        if self.counter.config.department:
            return
        try:
            clinics = await self.visits.clinics()
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        options = [(d.code, f"{d.code}  {d.name}") for d in clinics]
        self.app.push_screen(PickScreen(self.counter, self.counter.tr("triage.pick_dept"),
                                        options), self._picked)

    def _picked(self, code: str | None) -> None:
        self.query_one("#card_no", Input).focus()
        if code:
            self.dept = code
            self.show_dept()
            self.refresh_queue(force=True)

    # -- the queue --------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="queue")
    async def refresh_queue(self, force: bool = False) -> None:
        """Read the queue again if the ledger moved since (or ``force``)."""
        if not self.dept:
            self.queue_table.show([], {}, self.counter.clock())
            self.query_one("#counts", Static).update("")
            return
        visits = self.visits
        try:
            mark = await visits.changes()
            if mark == self._mark and not force:
                return
            entries = await visits.queue(self.dept)
            try:
                doctors = await visits.doctor_names()
            except Exception:  # no catalogue: doctors by id
                doctors = {}
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self._mark = mark
        self.queue_table.show(entries, doctors, self.counter.clock())
        counts = {s: 0 for s in ("waiting", "called", "consulting", "skipped", "done",
                                 "no_show")}
        for e in entries:
            counts[e.visit.status] = counts.get(e.visit.status, 0) + 1
        tr = self.counter.tr
        self.query_one("#counts", Static).update(
            tr("triage.counts", total=len(entries),
               parts="  ".join(f"{tr('status.' + s)} {n}" for s, n in counts.items())))

    def action_move(self, step: int) -> None:
        table = self.queue_table
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def action_call_next(self) -> None:
        if self.dept:
            self._step("call_next", "")
        else:
            self.say(self.counter.tr("triage.need_dept"), "warning")

    def action_recall(self) -> None:
        self._selected_step("recall")

    def action_skip(self) -> None:
        self._selected_step("skip")

    def action_no_show(self) -> None:
        self._selected_step("no_show")

    def _selected_step(self, step: str) -> None:
        entry = self.queue_table.selected
        if entry is None:
            self.say(self.counter.tr("triage.need_visit"), "warning")
            return
        self._step(step, entry.visit.visit_id)

    @work(exclusive=True, exit_on_error=False, group="step")
    async def _step(self, step: str, visit_id: str) -> None:
        tr, visits, room = self.counter.tr, self.visits, self.counter.config.room
        try:
            if step == "call_next":
                v = await visits.call_next(self.dept, room)
                if v is None:
                    self.say(tr("triage.none_waiting"), "warning")
                    return
            elif step == "recall":
                v = await visits.recall(visit_id, room)
            elif step == "skip":
                v = await visits.skip(visit_id)
            else:
                v = await visits.no_show(visit_id)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.say(tr(f"triage.done_{step}", number=v.label), "done")
        await refreshed(lambda: self.refresh_queue(force=True))
        self.queue_table.select(v.visit_id)

    # -- cards ----------------------------------------------------------------------------
    @on(Input.Submitted, "#card_no")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.lookup(text, "manual")

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def lookup(self, card_no: str, entry: str = "chip",
                     tapped: Tapped | None = None) -> None:
        """The patient behind the card, after every offline card check."""
        tr = self.counter.tr
        self.say(tr("home.loading"))
        service, desk = self.counter.service, self.counter.desk
        notes: tuple[str, ...] = ()
        try:
            if desk is not None:
                check = await desk.check(card_no, entry, tapped)
                if check.refusal is not None:
                    self.clear_patient()
                    self.say(f"{tr('card.refused')} — {refusal_text(tr, check.refusal)}",
                             "problem")
                    return
                assert check.view is not None
                view, notes, entry, card_no = check.view, check.notes, check.entry, check.card_no
            else:
                view = await service.lookup_card(card_no)
            history: list[Event] = await service.history(view.patient.patient_id, 20)
        except Exception as exc:
            self.clear_patient()
            self.say(error_text(self.counter, exc), "problem")
            return
        self.card_no, self.card_entry, self.view = card_no, entry, view
        self.panel.show(view, history, notes)
        self.query_one("#card_no", Input).value = ""
        self.say(tr("triage.tapped"))

    def clear_patient(self) -> None:
        self.card_no, self.card_entry, self.view = "", "chip", None
        self.panel.clear()
        self.query_one("#card_no", Input).value = ""

    def action_clear(self) -> None:
        self.clear_patient()
        self.query_one("#card_no", Input).focus()
        self.say(self.counter.tr("home.cleared"))

    # -- registering a visit ------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def action_register(self) -> None:
        tr = self.counter.tr
        if self.view is None or not self.card_no:
            self.say(tr("home.need_card"), "warning")
            return
        try:
            offer = await self.visits.offer()
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        form = VisitForm(self.counter, self.view, self.card_no, self.card_entry, offer,
                         channel="triage", dept=self.dept)
        self.app.push_screen(form, self._registered)

    def _registered(self, result: Receipt | None) -> None:
        self.query_one("#card_no", Input).focus()
        if result is None:
            return
        tr = self.counter.tr
        ev = result.events[0]
        dept = str(ev.body.get("dept", ""))
        self.say(tr("triage.registered", number=result.number, name=result.patient.name,
                    dept=dept, balance=yuan(result.balance)), "done")
        if self.card_no:
            self.lookup_quietly(self.card_no)
        self.refresh_queue(force=True)

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def lookup_quietly(self, card_no: str) -> None:
        """The patient panel again after a registration (its balance moved)."""
        try:
            view = await self.counter.service.lookup_card(card_no)
            history = await self.counter.service.history(view.patient.patient_id, 20)
        except Exception:
            return
        self.view = view
        self.panel.show(view, history, self.panel.notes)
