"""The lab and exam window (检验/检查窗口, DOMAIN 3.8), role ``lab``: a tap shows the
patient's orders for this window's department; Enter checks the selected one in (queue
number, charge, and for a lab order the specimen id and its label, printed on the
counter's ``printer`` and shown on screen); F5 collected, F6 executed, F7 the result.

Two lists: the tapped patient's orders (their orders at other windows too, dimmed, with
where to send them), and the window's worklist of the day by stage.  F4 switches which
list the cursor keys and F5–F7 work on (Enter works on the list it is pressed in; in the
card field, on the list the keys work on).  The worklist is read again whenever the
ledger moves — an order sent by a doctor arrives through sync — by polling
:meth:`LabService.changes` every :data:`POLL_S` seconds, and at once after this desk's
own steps.  Every step goes through :class:`~edge_node.lab.LabService`; a refusal is a
line on the screen in the counter's language.  A check-in that charges past the offline
limit asks a supervisor's approval in place (:meth:`Desk.ask_supervisor`).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Static

from edge_node.lab import CheckInReceipt, LabService, WorkItem
from edge_node.labels import Label as PrintedLabel
from edge_node.labels import code128_modules, label_text, print_label
from edge_node.service import CounterService, PatientView
from edge_node.staff import Approval
from edge_node.tui.cardsource import Tapped, refusal_text
from edge_node.tui.context import Counter
from edge_node.tui.screens.ask import AskScreen
from edge_node.tui.screens.base import KeySpec, bind_keys, error_text, refreshed
from edge_node.tui.screens.find import FindPatientScreen
from edge_node.tui.screens.shift import LIST_MOVES, Desk, desk_css
from edge_node.tui.widgets.keybar import KeyBar
from edge_node.tui.widgets.status import StatusBar
from protocol.domain import REGISTRY
from protocol.money import yuan
from protocol.order import Order

POLL_S = 2.0
PATIENT, WORKLIST = "orders", "worklist"


def bars(data: str, width: int, quiet: int = 4) -> str:
    """The Code 128 symbol of ``data`` in half blocks, two modules a column (a screen
    preview of the label's bars; "" when it does not fit ``width`` columns)."""
    try:
        modules = [False] * quiet + code128_modules(data) + [False] * quiet
    except ValueError:
        return ""
    if len(modules) % 2:
        modules.append(False)
    if len(modules) // 2 > width:
        return ""
    glyph = {(True, True): "█", (True, False): "▌", (False, True): "▐", (False, False): " "}
    return "".join(glyph[(modules[i], modules[i + 1])] for i in range(0, len(modules), 2))


class LabelScreen(ModalScreen[None]):
    """The specimen label just printed: the bars, the lines, and whether it printed."""

    DEFAULT_CSS = """
    LabelScreen { align: center middle; }
    LabelScreen > Vertical { width: 100%; max-width: 84; height: auto; max-height: 100%;
                             border: thick $primary; background: $surface; }
    LabelScreen #label-title { text-style: bold; background: $primary; padding: 0 1; }
    LabelScreen #label-bars { width: 100%; text-align: center; background: white;
                              color: black; }
    LabelScreen #label-text { padding: 0 1; }
    LabelScreen #label-print { padding: 0 1; color: $success; }
    LabelScreen #label-print.problem { color: $warning; text-style: bold; }
    LabelScreen #label-hint { padding: 0 1; color: $text-muted; }
    """

    def __init__(self, counter: Counter, label: PrintedLabel, printed: str,
                 problem: bool) -> None:
        super().__init__()
        self.counter, self.label, self.printed, self.problem = counter, label, printed, problem
        bind_keys(self, counter, [("enter,escape", "close", "key.close", True)])

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        with Vertical():
            yield Static(tr("lab.label_title", specimen=self.label.barcode), id="label-title",
                         markup=False)
            line = bars(self.label.barcode, 78)
            if line:
                yield Static(f"{line}\n{line}", id="label-bars", markup=False)
            yield Static(label_text(self.label, 76), id="label-text", markup=False)
            yield Static(self.printed, id="label-print", markup=False,
                         classes="problem" if self.problem else "")
            yield Static(tr("lab.label_hint"), id="label-hint", markup=False)
        yield KeyBar()

    def action_close(self) -> None:
        self.dismiss(None)


class LabDesk(Desk, Screen[None]):
    DEFAULT_CSS = desk_css("LabDesk", """
    LabDesk #card-row { height: 1; padding: 0 1; }
    LabDesk #card-row Label { width: auto; padding: 0 1 0 0; }
    LabDesk #card_no { width: 24; border: none; height: 1; padding: 0 1; background: $boost; }
    LabDesk #dept-name { width: 1fr; text-align: right; text-style: bold; }
    LabDesk #who { height: 1; padding: 0 1; text-style: bold; }
    LabDesk #orders { height: auto; max-height: 7; }
    LabDesk #worklist { height: 1fr; }
    LabDesk DataTable { border-left: tall $panel; }
    LabDesk DataTable.target { border-left: tall $accent; }
    LabDesk #message.done { text-style: bold; }
    LabDesk #counts { height: 1; padding: 0 1; color: $text-muted; }
    """)
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "check_in", "key.check_in", True),
        ("f4", "switch", "key.worklist", True),
        ("f5", "step('collected')", "key.collected", True),
        ("f6", "step('executed')", "key.executed", True),
        ("f7", "result", "key.result", True),
        ("f8", "label_again", "key.label", True),
        ("ctrl+f", "find", "key.find", True),
    ]
    #: the cursor keys move the selection of the list the keys work on, while typing
    MOVE_KEYS = LIST_MOVES

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.dept = counter.config.department
        self.view: PatientView | None = None
        self.balance = 0  # the patient's, as the ledger says now (a check-in moves it)
        self.orders: list[Order] = []  # the patient's: this window's, then elsewhere
        self.work: list[WorkItem] = []
        self.target = WORKLIST
        self.receipt: CheckInReceipt | None = None  # the last lab check-in (F8: its label)
        self._mark = -1
        self.bind_desk_keys()

    @property
    def lab(self) -> LabService:
        return self.lab_on(self.counter.service)

    def lab_on(self, service: CounterService) -> LabService:
        """The window's lab service on ``service``'s ledger, operator and dry run."""
        return LabService(service.ledger, service.operator, dept=self.dept,
                          queue_tag=self.counter.config.queue_tag, dry_run=service.dry_run,
                          roles=service.roles)

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        yield StatusBar(self.counter)
        with Vertical():
            with Horizontal(id="card-row"):
                yield Label(tr("lab.card_prompt"), id="card-prompt")
                yield Input(id="card_no", placeholder=tr("home.card_placeholder"),
                            max_length=32, restrict=r"[A-Za-z0-9]*")
                yield Static(id="dept-name")
            yield Static(tr("home.waiting"), id="who", markup=False)
            yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)
            yield Static(id="message", markup=False)
            yield Static(id="counts")
            yield DataTable(id="worklist", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self._columns()
        self._mark_target()
        self.query_one("#orders", DataTable).display = False
        self.query_one("#card_no", Input).focus()
        self.show_dept()
        self.refresh_lists(force=True)
        self.set_interval(POLL_S, self.refresh_lists)

    def _columns(self) -> None:
        tr = self.counter.tr
        cols = {PATIENT: ("lab.col_items", "lab.col_stage", "lab.col_number",
                          "lab.col_specimen", "lab.col_amount", "lab.col_order"),
                WORKLIST: ("lab.col_number", "lab.col_name", "lab.col_items",
                           "lab.col_stage", "lab.col_specimen", "lab.col_order")}
        for table_id, keys in cols.items():
            table = self.query_one(f"#{table_id}", DataTable)
            table.clear(columns=True)
            for key in keys:
                table.add_column(tr(key))

    def relabel(self) -> None:
        tr = self.counter.tr
        self.bind_desk_keys()
        self.query_one("#card-prompt", Label).update(tr("lab.card_prompt"))
        self.query_one("#card_no", Input).placeholder = tr("home.card_placeholder")
        self.query_one(StatusBar).relabel()
        self._columns()
        self.show_dept()
        self._show_patient()
        self.refresh_lists(force=True)
        self.say(tr("home.language"))
        self.refresh_bindings()

    def reset(self) -> None:
        """Log out: no patient, no card, no message (the worklist is the window's)."""
        self.workers.cancel_group(self, "lookup")
        self.clear_patient()
        self.receipt = None
        self.say("")
        self.query_one(StatusBar).refresh_status()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "label_again":
            return self.receipt is not None
        return True

    # -- the department ---------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="dept")
    async def show_dept(self) -> None:
        tr = self.counter.tr
        label = self.query_one("#dept-name", Static)
        if not self.dept:
            label.update(tr("lab.no_dept"))
            return
        name = await self._dept_name(self.dept)
        label.update(tr("lab.dept", dept=f"{name} ({self.dept})" if name else self.dept))

    async def _dept_name(self, code: str) -> str:
        from edge_node.visits import VisitService

        try:
            d = await VisitService(self.counter.ledger).department(code)
        except Exception:  # no catalogue yet: the code is all there is to show
            return ""
        return d.name if d is not None else ""

    # -- the lists --------------------------------------------------------------------------
    def _stage_text(self, o: Order) -> str:
        tr = self.counter.tr
        if o.exec_dept != self.dept:
            return tr("lab.stage.elsewhere", dept=o.exec_dept)
        key = f"lab.stage.{o.stage}"
        return tr(key) if tr.has(key) else o.stage

    def _items(self, o: Order) -> str:
        sep = "、" if self.counter.tr.language == "zh" else ", "
        return sep.join(ln[1] for ln in o.line_list())

    @staticmethod
    def _number(o: Order) -> str:
        return f"{o.queue_tag}-{o.queue_no:03d}" if o.queue_no else ""

    @work(exclusive=True, exit_on_error=False, group="lists")
    async def refresh_lists(self, force: bool = False) -> None:
        """Read the worklist (and the patient's orders) again if the ledger moved."""
        if not self.dept:
            self.query_one("#counts", Static).update(self.counter.tr("lab.no_dept"))
            return
        lab = self.lab
        try:
            mark = await lab.changes()
            if mark == self._mark and not force:
                return
            worklist = await lab.worklist()
            orders: list[Order] = []
            if self.view is not None:
                pid = self.view.patient.patient_id
                orders = await lab.waiting(pid) + await lab.elsewhere(pid)
                self.balance = await lab.balance(pid)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self._mark = mark
        self.work = worklist.items
        self._fill(WORKLIST, [(w.order.order_id, (
            self._number(w.order), w.name, self._items(w.order), self._stage_text(w.order),
            w.order.specimen_id, w.order.order_id)) for w in self.work])
        if self.view is not None:
            self.orders = orders
            self._show_patient()
            self._fill(PATIENT, [(o.order_id, (
                self._items(o), self._stage_text(o), self._number(o), o.specimen_id,
                self._amount(o), o.order_id)) for o in orders],
                dim={o.order_id for o in orders if o.exec_dept != self.dept})
        self.query_one("#counts", Static).update(
            self.counter.tr("lab.worklist", **worklist.counts()))

    def _amount(self, o: Order) -> str:
        paid = o.total > 0 and o.total_charged - o.refunded >= o.total
        return yuan(o.total) + (f" {self.counter.tr('lab.paid')}" if paid else "")

    def _fill(self, table_id: str, rows: list[tuple[str, tuple[str, ...]]],
              dim: set[str] | None = None) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        keep = table.cursor_row
        table.clear()
        for key, cells in rows:
            style = "dim" if dim and key in dim else ""
            table.add_row(*(Text(c, style=style) for c in cells), key=key)
        if rows:
            table.move_cursor(row=min(max(keep, 0), len(rows) - 1))

    def _mark_target(self) -> None:
        for table_id in (PATIENT, WORKLIST):
            self.query_one(f"#{table_id}", DataTable).set_class(self.target == table_id,
                                                                 "target")

    def action_switch(self) -> None:
        if self.target == WORKLIST and self.view is not None:
            self.target = PATIENT
        else:
            self.target = WORKLIST
        self._mark_target()

    def action_move(self, step: int) -> None:
        table = self.query_one(f"#{self.target}", DataTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def _selected(self, table_id: str = "") -> Order | None:
        table_id = table_id or self.target
        table = self.query_one(f"#{table_id}", DataTable)
        items = self.orders if table_id == PATIENT else [w.order for w in self.work]
        if not items or table.cursor_row < 0:
            return None
        return items[min(table.cursor_row, len(items) - 1)]

    def _select(self, order_id: str) -> None:
        for table_id in (PATIENT, WORKLIST):
            table = self.query_one(f"#{table_id}", DataTable)
            items = (self.orders if table_id == PATIENT else [w.order for w in self.work])
            ids = [o.order_id for o in items]
            if order_id in ids:
                table.move_cursor(row=ids.index(order_id))

    # -- checking in ---------------------------------------------------------------------------
    @on(DataTable.RowSelected)
    def _enter(self, event: DataTable.RowSelected) -> None:
        table_id = event.data_table.id or WORKLIST
        self.target = table_id
        self._mark_target()
        self.check_in(self._selected(table_id))

    def action_check_in(self) -> None:
        self.check_in(self._selected())

    @work(exclusive=True, exit_on_error=False, group="step")
    async def check_in(self, o: Order | None) -> None:
        tr = self.counter.tr
        if o is None:
            self.say(tr("lab.need_order"), "warning")
            return
        pid = self.view.patient.patient_id if self.view is not None else ""
        if not pid:  # the patient checks in at the window: their card first
            self.say(tr("lab.need_patient"), "warning")
            return
        try:
            r = await self.lab.check_in(o.order_id, pid)
        except Exception as exc:  # offline past the limit: a supervisor may approve it
            order_id = o.order_id

            async def step(service: CounterService, approval: Approval) -> CheckInReceipt:
                return await self.lab_on(service).check_in(order_id, pid, approval=approval)
            if not self.ask_supervisor(
                    exc, self.view, tr("lab.approve_about", order=order_id,
                                       items=self._items(o)),
                    step, self._question, self.checked_in):
                self.say(error_text(self.counter, exc), "problem")
            return
        await self._checked_in(r)

    def _question(self, r: CheckInReceipt) -> str:
        return self.counter.tr("lab.q_check_in", order=r.order.order_id,
                               items=self._items(r.order), name=r.patient.name,
                               amount=yuan(r.charged))

    @work(exclusive=True, exit_on_error=False, group="step")
    async def checked_in(self, r: CheckInReceipt) -> None:
        """A check-in done with a supervisor's approval: as any check-in after."""
        await self._checked_in(r)

    async def _checked_in(self, r: CheckInReceipt) -> None:
        tr = self.counter.tr
        key = "lab.checked_in" if r.charged else "lab.checked_in_paid"
        text = tr(key, order=r.order.order_id, number=r.number, charged=yuan(r.charged),
                  balance=yuan(r.balance))
        if r.specimen_id:
            text += "  " + tr("lab.specimen_no", specimen=r.specimen_id)
            self.receipt = r
            self.refresh_bindings()
        self.say(text, "done")
        await refreshed(lambda: self.refresh_lists(force=True))
        self._select(r.order.order_id)
        if r.specimen_id:
            await self._print_and_show(r)

    async def _print_and_show(self, r: CheckInReceipt) -> None:
        """Print the tube label where the counter's printer is, and show it."""
        cfg, tr = self.counter.config, self.counter.tr
        label = self.lab.label(r, timezone=cfg.timezone, language=tr.language)
        if label is None:
            return
        result = await asyncio.to_thread(print_label, label, cfg.printer,
                                         language=tr.language)
        note = (tr("lab.label_printed", device=cfg.printer) if result.printed
                else result.warning)
        self.app.push_screen(LabelScreen(self.counter, label, note, not result.printed),
                             self._back)

    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_label_again(self) -> None:
        if self.receipt is not None:
            await self._print_and_show(self.receipt)

    def _back(self, _: object = None) -> None:
        try:
            self.query_one("#card_no", Input).focus()
        except NoMatches:
            pass

    # -- the steps after it ----------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="step")
    async def action_step(self, step: str) -> None:
        tr = self.counter.tr
        o = self._selected()
        if o is None:
            self.say(tr("lab.need_order"), "warning")
            return
        try:
            if step == "collected":
                done = await self.lab.collect(o.order_id, o.patient_id)
            else:
                done = await self.lab.execute(o.order_id, o.patient_id)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.say(tr(f"lab.done.{step}", order=done.order_id), "done")
        await refreshed(lambda: self.refresh_lists(force=True))
        self._select(done.order_id)

    def action_result(self) -> None:
        tr = self.counter.tr
        o = self._selected()
        if o is None:
            self.say(tr("lab.need_order"), "warning")
            return
        lab = self.lab

        async def run(values: dict[str, str]) -> str:
            done = await lab.result(o.order_id, values["result"], values["report_ref"],
                                    o.patient_id)
            return tr("lab.done.resulted", order=done.order_id)
        fields: list[tuple[str, Widget]] = [
            (tr("field.result"), Input(o.result, id="result", max_length=500)),
            (tr("field.report_ref"), Input(o.report_ref, id="report_ref", max_length=64))]
        about = f"{o.order_id}  {self._items(o)}  {self._number(o)}"
        self.app.push_screen(AskScreen(self.counter, tr("lab.title_result"), about, fields,
                                       run, tr("lab.result_hint")), self._resulted)

    def _resulted(self, text: str | None) -> None:
        self._back()
        if text:
            self.say(text, "done")
            self.refresh_lists(force=True)

    # -- cards ----------------------------------------------------------------------------
    @on(Input.Submitted, "#card_no")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.lookup(text, "manual")
        else:  # Enter with nothing typed: check in the selected order
            self.action_check_in()

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def lookup(self, card_no: str, entry: str = "chip",
                     tapped: Tapped | None = None) -> None:
        """The patient behind the card (after every offline card check) and their
        orders for this window."""
        tr = self.counter.tr
        self.say(tr("home.loading"))
        service, desk = self.counter.service, self.counter.desk
        try:
            if desk is not None:
                check = await desk.check(card_no, entry, tapped)
                if check.refusal is not None:
                    self.clear_patient()
                    self.say(f"{tr('card.refused')} — {refusal_text(tr, check.refusal)}",
                             "problem")
                    return
                assert check.view is not None
                view = check.view
            else:
                view = await service.lookup_card(card_no)
        except Exception as exc:
            self.clear_patient()
            self.say(error_text(self.counter, exc), "problem")
            return
        await self._open(view)

    def action_find(self) -> None:
        typed = self.query_one("#card_no", Input).value.strip()
        self.app.push_screen(FindPatientScreen(self.counter, typed), self._found)

    def _found(self, patient_id: str | None) -> None:
        self._back()
        if patient_id:
            self.open_patient(patient_id)

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def open_patient(self, patient_id: str) -> None:
        try:
            view = await self.counter.service.open_patient(patient_id)
        except Exception as exc:
            self.clear_patient()
            self.say(error_text(self.counter, exc), "problem")
            return
        await self._open(view)

    async def _open(self, view: PatientView) -> None:
        tr = self.counter.tr
        self.view, self.balance = view, view.account.balance
        self.orders = []
        self.query_one("#card_no", Input).value = ""
        self.query_one("#orders", DataTable).display = True
        self.target = PATIENT
        self._mark_target()
        self._show_patient()
        await refreshed(lambda: self.refresh_lists(force=True))
        here = [o for o in self.orders if o.exec_dept == self.dept]
        there = sorted({o.exec_dept for o in self.orders if o.exec_dept != self.dept})
        if here:
            self.say(tr("lab.tapped", n=len(here)))
            self.query_one("#orders", DataTable).move_cursor(row=0)
        elif there:
            names = [f"{await self._dept_name(d) or d} ({d})" for d in there]
            self.say(tr("lab.elsewhere", depts="、".join(names) if tr.language == "zh"
                        else ", ".join(names)), "warning")
        else:
            self.say(tr("lab.none_here"), "warning")

    def _show_patient(self) -> None:
        who = self.query_one("#who", Static)
        if self.view is None:
            who.update(self.counter.tr("home.waiting"))
            return
        from edge_node.tui.describe import age

        tr, p = self.counter.tr, self.view.patient
        parts = []
        if f"sex.{p.sex}" in REGISTRY.labels:
            parts.append(REGISTRY.label(f"sex.{p.sex}", tr.language))
        years = age(p.birth_date, self.counter.clock(), self.counter.config.timezone)
        if years is not None:
            parts.append(tr("lab.age", n=years))
        who.update(tr("lab.patient", name=p.name, who=" ".join(parts), patient=p.patient_id,
                      balance=yuan(self.balance)))

    def clear_patient(self) -> None:
        self.view = None
        self.orders = []
        self.query_one("#card_no", Input).value = ""
        table = self.query_one("#orders", DataTable)
        table.clear()
        table.display = False
        self.target = WORKLIST
        self._mark_target()
        self._show_patient()

    def action_clear(self) -> None:
        self.clear_patient()
        self.query_one("#card_no", Input).focus()
        self.say(self.counter.tr("home.cleared"))
