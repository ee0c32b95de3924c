"""The order form: an e-requisition (exams, lab tests) or an e-prescription (drugs).

Type a code, part of a name or its pinyin initials (``xcg``: 血常规) and press Enter to
add the best match with the quantity (and, for a drug, the dose, times a day and days)
typed beside it; ↓ into the list picks another; Ctrl+T lists the templates instead.
After every change the checks run (:meth:`~edge_node.clinic.ClinicService.check_order`)
and the panel shows them: blocks in red (the order cannot be sent until they are gone)
and warnings in yellow, which Ctrl+Y confirms — only then does Ctrl+S send.  Offline
past the limits an order charged when sent is blocked for want of a supervisor: Ctrl+S
then asks the supervisor's id and PIN and sends it with them.  The lines
are priced from the counter's current catalogue version; the order is split per
executing department when sent.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from edge_node.clinic import BLOCK, ClinicService, Finding, OrderLine, OrderReceipt
from edge_node.errors import OperationRefused
from edge_node.service import CounterService
from edge_node.staff import Approval
from edge_node.tui.context import Counter
from edge_node.tui.screens.approval import APPROVAL_CODES, ApprovalForm
from edge_node.tui.screens.base import KeySpec, bind_keys, error_text
from edge_node.tui.widgets.keybar import KeyBar
from protocol.money import yuan
from protocol.visit import Visit

TYPES = {"requisition": ("lab", "exam"), "prescription": ("drug",)}


class OrderScreen(Screen[OrderReceipt | None]):
    DEFAULT_CSS = """
    OrderScreen #order-title { text-style: bold; background: $primary; color: $text;
                               padding: 0 1; }
    OrderScreen #search-row { height: 1; }
    OrderScreen Input { border: none; height: 1; padding: 0 1; background: $boost;
                        margin: 0 1 0 0; }
    OrderScreen Input:focus { border: none; background: $primary 30%; }
    OrderScreen #search { width: 1fr; }
    OrderScreen #qty, OrderScreen #per_day, OrderScreen #days { width: 8; }
    OrderScreen #dose { width: 10; }
    OrderScreen #results { height: 4; border: none; }
    OrderScreen #lines { height: auto; max-height: 6; }
    OrderScreen #total { text-style: bold; padding: 0 1; }
    OrderScreen #checks { height: auto; max-height: 6; padding: 0 1; overflow-y: auto; }
    OrderScreen #message { height: auto; min-height: 1; padding: 0 1; }
    OrderScreen #message.problem { color: $error; text-style: bold; }
    OrderScreen #message.warning { color: $warning; }
    """
    KEYS: ClassVar[list[KeySpec]] = [
        ("ctrl+s", "send", "key.send_order", True),
        ("ctrl+y", "confirm_warnings", "key.confirm_warnings", True),
        ("ctrl+t", "templates", "key.templates", True),
        ("escape", "cancel", "key.cancel", True),
    ]

    def __init__(self, counter: Counter, kind: str, visit: Visit, patient_name: str) -> None:
        super().__init__()
        self.counter = counter
        self.kind = kind  # requisition | prescription
        self.visit = visit
        self.patient_name = patient_name
        self.lines: list[OrderLine] = []
        self.findings: list[Finding] = []
        self.accepted: set[str] = set()
        self.template = ""
        self.busy = False
        self.checked = False  # the findings are of the lines as they are now
        bind_keys(self, counter, self.KEYS)
        bind_keys(self, counter, [("delete", "remove_line", "key.remove_item", False)])

    @property
    def drugs(self) -> bool:
        return self.kind == "prescription"

    def service(self, service: CounterService | None = None) -> ClinicService:
        """The clinic service as the doctor, on ``service``'s ledger, operator and dry
        run (the counter's by default)."""
        service = service or self.counter.service
        return ClinicService(service.ledger, service.operator, dry_run=service.dry_run,
                             roles=service.roles)

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        with Vertical():
            yield Static(tr(f"order.title.{self.kind}", name=self.patient_name,
                            visit=self.visit.label or self.visit.visit_id),
                         id="order-title", markup=False)
            with Horizontal(id="search-row"):
                yield Input(id="search", placeholder=tr("order.search_placeholder"),
                            max_length=32)
                yield Input("1", id="qty", restrict=r"[0-9]*", max_length=5,
                            placeholder=tr("order.qty"), tooltip=tr("order.qty"))
                if self.drugs:
                    yield Input(id="dose", restrict=r"[0-9]*", max_length=7,
                                placeholder=tr("order.dose"), tooltip=tr("order.dose"))
                    yield Input(id="per_day", restrict=r"[0-9]*", max_length=2,
                                placeholder=tr("order.per_day"), tooltip=tr("order.per_day"))
                    yield Input(id="days", restrict=r"[0-9]*", max_length=3,
                                placeholder=tr("order.days"), tooltip=tr("order.days"))
            yield OptionList(id="results")
            yield DataTable(id="lines", cursor_type="row")
            yield Static(id="total")
            yield Static(id="checks")
            yield Static(id="message")
        yield KeyBar()

    def on_mount(self) -> None:
        self._columns()
        self._render_lines()
        self.search("")
        self.query_one("#search", Input).focus()

    def relabel(self) -> None:
        """After a language switch: keys, title, hints, columns and checks again."""
        tr = self.counter.tr
        bind_keys(self, self.counter, self.KEYS)
        bind_keys(self, self.counter, [("delete", "remove_line", "key.remove_item", False)])
        self.query_one("#order-title", Static).update(tr(
            f"order.title.{self.kind}", name=self.patient_name,
            visit=self.visit.label or self.visit.visit_id))
        for field in ("search", "qty", "dose", "per_day", "days"):
            found = self.query(f"#{field}")
            if found:
                w = found.first(Input)
                w.placeholder = tr(f"order.{field}" if field != "search"
                                   else "order.search_placeholder")
        table = self.query_one("#lines", DataTable)
        table.clear(columns=True)
        self._columns()
        self._render_lines()
        self.refresh_bindings()

    def _columns(self) -> None:
        tr = self.counter.tr
        table = self.query_one("#lines", DataTable)
        cols = ["order.col_item", "order.qty"]
        if self.drugs:
            cols += ["order.col_usage"]
        cols += ["order.col_dept", "order.col_amount"]
        for key in cols:
            table.add_column(tr(key))

    # -- searching ---------------------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @work(exclusive=True, exit_on_error=False, group="search")
    async def search(self, query: str) -> None:
        tr = self.counter.tr
        results = self.query_one("#results", OptionList)
        try:
            items = await self.service().search_items(query, TYPES[self.kind], limit=30)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        results.clear_options()
        for item in items:
            results.add_option(Option(
                f"{item.code:<8} {item.name} {item.strength}  {yuan(item.price)}/{item.unit}"
                f"  {tr('order.insurance_class', cls=item.insurance or '-')}",
                id=f"item:{item.code}"))
        if results.option_count:
            results.highlighted = 0

    def action_templates(self) -> None:
        self.list_templates()

    @work(exclusive=True, exit_on_error=False, group="search")
    async def list_templates(self) -> None:
        tr = self.counter.tr
        try:
            templates = await self.service().templates(self.kind)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        results = self.query_one("#results", OptionList)
        results.clear_options()
        for t in templates:
            results.add_option(Option(f"{tr('order.template')} {t.code:<10} {t.name}",
                                      id=f"tpl:{t.code}"))
        if results.option_count:
            results.highlighted = 0
            results.focus()
        else:
            self.say(tr("order.no_templates"), "warning")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        results = self.query_one("#results", OptionList)
        if results.option_count and results.highlighted is not None:
            option = results.get_option_at_index(results.highlighted)
            self.add(option.id or "")
        elif event.value.strip():
            self.say(self.counter.tr("order.not_found", q=event.value.strip()), "warning")

    @on(OptionList.OptionSelected, "#results")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.add(event.option.id or "")

    def _number(self, field: str, default: int = 0) -> int:
        text = self.query_one(f"#{field}", Input).value.strip()
        return int(text) if text.isdigit() else default

    @work(exclusive=True, exit_on_error=False, group="add")
    async def add(self, option: str) -> None:
        what, _, code = option.partition(":")
        svc = self.service()
        try:
            if what == "tpl":
                new = await svc.template_lines(code)
                self.template = code
            else:
                qty = max(1, self._number("qty", 1))
                if self.drugs:
                    new = [await svc.line(code, qty, self._number("dose"),
                                          self._number("per_day"), self._number("days"))]
                else:
                    new = [await svc.line(code, qty)]
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        for ln in new:
            self.lines = [x for x in self.lines if x.code != ln.code] + [ln]
        search = self.query_one("#search", Input)
        search.value = ""
        self.query_one("#qty", Input).value = "1"
        self.say("")
        self.changed()
        search.focus()

    def action_remove_line(self) -> None:
        table = self.query_one("#lines", DataTable)
        if self.lines and table.has_focus:
            del self.lines[min(table.cursor_row, len(self.lines) - 1)]
            self.changed()

    # -- lines and checks --------------------------------------------------------------------
    def changed(self) -> None:
        self.checked = False
        self._render_lines()
        self.run_checks()

    def _render_lines(self) -> None:
        tr = self.counter.tr
        table = self.query_one("#lines", DataTable)
        table.clear()
        for ln in self.lines:
            row: list[object] = [Text(f"{ln.code} {ln.name}", no_wrap=True,
                                      overflow="ellipsis"), f"{ln.qty}{ln.unit}"]
            if self.drugs:
                row.append(tr("order.usage", dose=ln.dose, unit=ln.dose_unit,
                              per_day=ln.per_day, days=ln.days))
            row += [ln.dept or "-", yuan(ln.amount)]
            table.add_row(*row, key=ln.code)
        total = sum(ln.amount for ln in self.lines)
        self.query_one("#total", Static).update(
            tr("order.total", total=yuan(total), n=len(self.lines)) if self.lines
            else tr("order.empty"))
        self._render_checks()

    @work(exclusive=True, exit_on_error=False, group="checks")
    async def run_checks(self) -> None:
        if not self.lines:
            self.findings = []
            self.checked = True
            self._render_checks()
            return
        try:
            findings = await self.service().check_order(self.visit.visit_id, self.lines,
                                                        self.template)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.findings = findings
        self.checked = True
        self._render_checks()

    @property
    def blocks(self) -> list[Finding]:
        return [f for f in self.findings if f.blocks]

    @property
    def approvable(self) -> bool:
        """Every block is one a supervisor's approval lifts (offline past the limits)."""
        return bool(self.blocks) and all(f.code in APPROVAL_CODES for f in self.blocks)

    @property
    def open_warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.blocks and f.key not in self.accepted]

    def _render_checks(self) -> None:
        tr = self.counter.tr
        out = Text()
        for f in self.findings:
            if out:
                out.append("\n")
            if f.level == BLOCK:
                out.append(f"✖ {tr('order.block')} ", style="bold red")
                out.append(tr.problem(f.problem), style="red")
            else:
                ok = f.key in self.accepted
                out.append(f"! {tr('order.warning')} ", style="bold yellow")
                out.append(tr.problem(f.problem), style="yellow")
                if ok:
                    out.append(f"  ✔ {tr('order.confirmed')}", style="green")
        if not self.lines:
            out = Text()
        elif not self.checked:
            out = Text(tr("order.checking"), style="dim")
        elif not self.findings:
            out = Text(f"✔ {tr('order.checks_passed')}", style="green")
        self.query_one("#checks", Static).update(out)
        if self.lines and self.checked:
            if self.blocks and not self.approvable:
                self.say(tr("order.blocked"), "problem")
            elif self.open_warnings:
                self.say(tr("order.confirm_hint", n=len(self.open_warnings)), "warning")
            elif self.blocks:
                self.say(tr("order.approval_hint"), "warning")
            else:
                self.say(tr("order.ready"))

    def say(self, text: str, kind: str = "") -> None:
        msg = self.query_one("#message", Static)
        msg.update(text)
        msg.set_class(kind == "problem", "problem")
        msg.set_class(kind == "warning", "warning")

    @property
    def message_text(self) -> str:
        return str(self.query_one("#message", Static).render())

    @property
    def checks_text(self) -> str:
        return str(self.query_one("#checks", Static).render())

    # -- confirm, send, cancel ---------------------------------------------------------------
    def action_confirm_warnings(self) -> None:
        if not self.checked or self.blocks:
            return
        self.accepted |= {f.key for f in self.findings if not f.blocks}
        self._render_checks()

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_send(self) -> None:
        tr = self.counter.tr
        if self.busy:
            return
        if not self.lines:
            self.say(tr("order.empty"), "warning")
        elif not self.checked:
            self.say(tr("order.checking"), "warning")
        elif self.blocks and not self.approvable:
            self.say(tr("order.blocked"), "problem")
        elif self.open_warnings:
            self.say(tr("order.confirm_hint", n=len(self.open_warnings)), "warning")
        elif self.blocks:
            self.ask_approval()
        else:
            self.send()

    def ask_approval(self) -> None:
        """Sent offline past the limits: the supervisor's id and PIN, then sent with them
        (:class:`~edge_node.tui.screens.approval.ApprovalForm`)."""
        counter = self.counter
        tr = counter.tr
        visit_id, lines = self.visit.visit_id, list(self.lines)
        accepted, template = set(self.accepted), self.template

        async def step(service: CounterService, approval: Approval) -> OrderReceipt:
            return await self.service(service).send_order(
                visit_id, lines, accept_warnings=accepted, template=template,
                approval=approval)

        def question(r: OrderReceipt) -> str:
            charged = sum(int(str(e.body.get("charged", 0))) for e in r.events)
            return tr("order.q_send", n=len(r.orders), name=self.patient_name,
                      amount=yuan(charged))
        total = sum(ln.amount for ln in lines)
        self.app.push_screen(ApprovalForm(
            counter, None, tr("order.total", total=yuan(total), n=len(lines)),
            [f.problem for f in self.blocks], step, question), self._approved)

    def _approved(self, receipt: OrderReceipt | None) -> None:
        if receipt is not None:
            self.dismiss(receipt)

    @work(exclusive=True, exit_on_error=False, group="form")
    async def send(self) -> None:
        self.busy = True
        try:
            receipt = await self.service().send_order(
                self.visit.visit_id, self.lines, accept_warnings=self.accepted,
                template=self.template)
        except OperationRefused as exc:  # something changed since the checks: show again
            self.say(error_text(self.counter, exc), "problem")
            self.run_checks()
            return
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        finally:
            self.busy = False
        self.dismiss(receipt)
