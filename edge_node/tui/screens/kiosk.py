"""The self-service kiosk (自助挂号机): tap → register a visit → a big queue number.

No staff stand at this screen (the kiosk account logs in once, when it is switched on)
and it does nothing else: no cash, no other business — the patient taps, picks the
department (unless the kiosk's config names one) and the doctor by number keys, sees
the fee and the balance, confirms with Enter, and gets the queue number and where to
wait.  Every refusal is plain words saying where to go (not enough deposit: to the
cashier).  Left alone for :data:`IDLE_S` seconds anywhere but the welcome, it goes back
to the welcome and forgets the patient; the idle lock does not apply (a kiosk is never
locked for want of staff: ``locks_when_idle``).

Steps (``self.step``): ``welcome`` → (``dept``) → ``doctor`` → ``confirm`` → ``done``;
``refused`` shows why and goes back to the welcome with Esc/Enter or the timeout.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Center, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from edge_node.errors import OperationRefused
from edge_node.service import PatientView
from edge_node.tui.cardsource import Tapped
from edge_node.tui.context import Counter
from edge_node.tui.messages import CardTapped, ReaderNotice
from edge_node.tui.screens.base import error_text
from edge_node.tui.widgets.status import StatusBar
from edge_node.visits import Offer, VisitReceipt, VisitService, mask_name
from protocol.money import yuan

IDLE_S = 45.0
TICK_S = 1.0
MAX_OPTIONS = 9  # one digit key each


class KioskScreen(Screen[None]):
    DEFAULT_CSS = """
    KioskScreen { align: center middle; }
    KioskScreen > Vertical { width: 100%; max-width: 100; height: auto; padding: 1 2; }
    KioskScreen #kiosk-title { text-style: bold; background: $primary; color: $text;
                               text-align: center; padding: 0 1; width: 100%; }
    KioskScreen #kiosk-head { text-style: bold; text-align: center; width: 100%;
                              margin: 1 0 0 0; }
    KioskScreen #kiosk-body { text-align: center; width: 100%; margin: 1 0; }
    KioskScreen #kiosk-body.problem { color: $error; text-style: bold; }
    KioskScreen #kiosk-number { width: auto; min-width: 24; text-align: center;
                                text-style: bold; border: double $success; padding: 1 4;
                                display: none; }
    KioskScreen #kiosk-number.shown { display: block; }
    KioskScreen #kiosk-keys { text-align: center; width: 100%; color: $text-muted; }
    KioskScreen #card_no { width: 30; }
    KioskScreen #card-box { height: auto; width: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm", show=False),
        Binding("escape", "back", show=False, priority=True),
        *[Binding(str(i), f"pick({i})", show=False) for i in range(1, MAX_OPTIONS + 1)],
    ]
    #: the app's idle lock leaves this desk alone (see the module docstring)
    locks_when_idle = False

    def __init__(self, counter: Counter, idle_s: float = IDLE_S) -> None:
        super().__init__()
        self.counter = counter
        self.idle_s = idle_s
        self.step = "welcome"
        self.view: PatientView | None = None
        self.card_no = ""
        self.card_entry = "chip"
        self.offer: Offer | None = None
        self.dept = counter.config.department
        self.doctor_id = ""
        self.options: list[str] = []  # what each digit picks now
        self.receipt: VisitReceipt | None = None

    @property
    def visits(self) -> VisitService:
        c = self.counter
        return VisitService(c.ledger, c.service.operator, queue_tag=c.config.queue_tag,
                            roles=c.service.roles)

    def compose(self) -> ComposeResult:
        yield StatusBar(self.counter)
        with Vertical():
            yield Static(id="kiosk-title")
            yield Static(id="kiosk-head")
            yield Static(id="kiosk-body")
            with Center():
                yield Static(id="kiosk-number")
            with Center(id="card-box"):
                yield Input(id="card_no", max_length=32, restrict=r"[A-Za-z0-9]*")
            yield Static(id="kiosk-keys")

    def on_mount(self) -> None:
        self.welcome()
        self.set_interval(TICK_S, self.check_idle)

    # -- what is shown --------------------------------------------------------------------
    def _show(self, head: str, body: str = "", keys: str = "", *, number: str = "",
              problem: bool = False) -> None:
        tr = self.counter.tr
        self.query_one("#kiosk-title", Static).update(tr("kiosk.title"))
        self.query_one("#kiosk-head", Static).update(head)
        b = self.query_one("#kiosk-body", Static)
        b.update(body)
        b.set_class(problem, "problem")
        n = self.query_one("#kiosk-number", Static)
        n.update(number)
        n.set_class(bool(number), "shown")
        self.query_one("#card-box").display = self.step == "welcome"
        self.query_one("#kiosk-keys", Static).update(keys)

    @property
    def text(self) -> str:
        """Everything the screen says now, one block (for tests)."""
        parts = [str(self.query_one(f"#kiosk-{n}", Static).render())
                 for n in ("head", "body", "number", "keys")]
        return "\n".join(p for p in parts if p.strip())

    def welcome(self) -> None:
        """Back to the start: nothing of the last patient left."""
        self.workers.cancel_group(self, "kiosk")
        self.step = "welcome"
        self.view, self.card_no, self.offer, self.receipt = None, "", None, None
        self.dept, self.doctor_id, self.options = self.counter.config.department, "", []
        tr = self.counter.tr
        self._show(tr("kiosk.welcome"), tr("kiosk.welcome_dept", dept=self.dept)
                   if self.dept else "")
        field = self.query_one("#card_no", Input)
        field.value = ""
        field.focus()
        self.load_dept_name()

    @work(exclusive=True, exit_on_error=False, group="kiosk-name")
    async def load_dept_name(self) -> None:
        if not self.dept:
            return
        try:
            d = await self.visits.department(self.dept)
        except Exception:
            return
        if d is not None and self.step == "welcome":
            self.query_one("#kiosk-body", Static).update(
                self.counter.tr("kiosk.welcome_dept", dept=d.name))

    def reset(self) -> None:
        """Log out (the kiosk account's session ended): the welcome again."""
        self.welcome()

    def relabel(self) -> None:
        self.welcome()

    def refuse(self, text: str) -> None:
        self.step = "refused"
        self._show(self.counter.tr("kiosk.title"), text, self.counter.tr("kiosk.back_keys"),
                   problem=True)

    # -- idle ------------------------------------------------------------------------------
    def check_idle(self) -> None:
        """Back to the welcome after ``idle_s`` seconds with no key or tap."""
        if self.step == "welcome":
            return
        idle = getattr(self.app, "idle_seconds", None)
        if callable(idle) and idle() >= self.idle_s:
            self.welcome()

    # -- a tap ----------------------------------------------------------------------------
    @on(Input.Submitted, "#card_no")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip() and self.step == "welcome":
            self.tapped(event.value.strip(), "manual")

    def on_card_tapped(self, message: CardTapped) -> None:
        tapped = message.tapped if isinstance(message.tapped, Tapped) else None
        self.tapped(message.card_no, message.entry, tapped)

    def on_reader_notice(self, message: ReaderNotice) -> None:
        pass  # a kiosk's reader problems are for IT (the log), not the patient

    @work(exclusive=True, exit_on_error=False, group="kiosk")
    async def tapped(self, card_no: str, entry: str, tapped: Tapped | None = None) -> None:
        tr = self.counter.tr
        self.step = "working"
        self._show(tr("kiosk.working"))
        desk = self.counter.desk
        try:
            if desk is not None:
                check = await desk.check(card_no, entry, tapped)
                if check.refusal is not None or check.view is None:
                    self.refuse(tr("kiosk.card_refused"))
                    return
                view, card_no, entry = check.view, check.card_no, check.entry
            else:
                view = await self.counter.service.lookup_card(card_no)
        except OperationRefused:
            self.refuse(tr("kiosk.card_refused"))
            return
        except Exception as exc:
            self.refuse(tr("kiosk.refused", reason=error_text(self.counter, exc)))
            return
        if view.card is not None and view.card.status != "active":
            self.refuse(tr("kiosk.lost" if view.card.status == "lost"
                           else "kiosk.card_refused"))
            return
        try:
            offer = await self.visits.offer()
        except OperationRefused:
            self.refuse(tr("kiosk.no_catalogue"))
            return
        except Exception as exc:
            self.refuse(tr("kiosk.refused", reason=error_text(self.counter, exc)))
            return
        self.view, self.card_no, self.card_entry, self.offer = view, card_no, entry, offer
        if self.dept and offer.clinic(self.dept) is None:
            self.refuse(tr("kiosk.no_clinics"))
        elif self.dept:
            self.ask_doctor()
        else:
            self.ask_dept()

    def _hello(self) -> str:
        assert self.view is not None
        tr = self.counter.tr
        return (f"{tr('kiosk.hello', name=mask_name(self.view.patient.name))}    "
                f"{tr('kiosk.balance', balance=yuan(self.view.account.balance))}")

    def ask_dept(self) -> None:
        assert self.offer is not None
        tr = self.counter.tr
        clinics = self.offer.clinics[:MAX_OPTIONS]
        if not clinics:
            self.refuse(tr("kiosk.no_clinics"))
            return
        self.step = "dept"
        self.options = [d.code for d in clinics]
        lines = [tr("kiosk.pick_dept"), ""]
        lines += [tr("kiosk.option", n=i, label=d.name, fee="").rstrip()
                  for i, d in enumerate(clinics, start=1)]
        self._show(self._hello(), "\n".join(lines), tr("kiosk.back_keys"))

    def ask_doctor(self) -> None:
        assert self.offer is not None
        tr = self.counter.tr
        clinic = self.offer.clinic(self.dept)
        self.step = "doctor"
        doctors = [("", tr("visit.any_doctor"))]
        doctors += [(d.doctor_id, f"{d.name} {d.title}".strip())
                    for d in self.offer.doctors.get(self.dept, ())]
        doctors = doctors[:MAX_OPTIONS]
        self.options = [d for d, _ in doctors]
        lines = [tr("kiosk.pick_doctor", dept=clinic.name if clinic else self.dept), ""]
        for i, (doc, label) in enumerate(doctors, start=1):
            item = self.offer.fee(doc)
            lines.append(tr("kiosk.option", n=i, label=label,
                            fee=yuan(item.price) if item else ""))
        self._show(self._hello(), "\n".join(lines), tr("kiosk.back_keys"))

    def action_pick(self, n: int) -> None:
        if not 1 <= n <= len(self.options):
            return
        if self.step == "dept":
            self.dept = self.options[n - 1]
            self.ask_doctor()
        elif self.step == "doctor":
            self.doctor_id = self.options[n - 1]
            self.check_visit()

    @work(exclusive=True, exit_on_error=False, group="kiosk")
    async def check_visit(self) -> None:
        """The registration on the dry run: refused now, or the question with the fee."""
        tr = self.counter.tr
        self.step = "working"
        try:
            preview = await self.visits.dry().register(
                dept=self.dept, channel="kiosk", card_no=self.card_no,
                doctor_id=self.doctor_id, card_entry=self.card_entry)
        except Exception as exc:
            self.refuse(self.refusal(exc))
            return
        assert self.offer is not None
        clinic = self.offer.clinic(self.dept)
        names = {d.doctor_id: d.name for d in self.offer.doctors.get(self.dept, ())}
        self.step = "confirm"
        self._show(self._hello(), tr("kiosk.confirm", dept=clinic.name if clinic else self.dept,
                                     doctor=names.get(self.doctor_id)
                                     or tr("visit.any_doctor"),
                                     fee=yuan(preview.visit.fee),
                                     after=yuan(preview.balance)),
                   tr("kiosk.confirm_keys"))

    def refusal(self, exc: BaseException) -> str:
        """A refusal in the patient's words: where to go about it."""
        tr = self.counter.tr
        if isinstance(exc, OperationRefused):
            codes = {p.code: p for p in exc.problems}
            short = codes.get("charge.insufficient")
            if short is not None:
                amount = short.values.get("short", 0)
                return tr("kiosk.short", short=yuan(amount if isinstance(amount, int) else 0))
            if "catalogue.none" in codes or "catalogue.stale" in codes:
                return tr("kiosk.no_catalogue")
            if "card.lost" in codes:
                return tr("kiosk.lost")
            if any(c.startswith("card.") for c in codes):
                return tr("kiosk.card_refused")
            return tr("kiosk.refused", reason=tr.problems(exc.problems))
        return tr("kiosk.refused", reason=error_text(self.counter, exc))

    def action_confirm(self) -> None:
        if self.step == "confirm":
            self.register()
        elif self.step in ("done", "refused"):
            self.welcome()

    @work(exclusive=True, exit_on_error=False, group="kiosk")
    async def register(self) -> None:
        tr = self.counter.tr
        self.step = "working"
        self._show(tr("kiosk.working"))
        try:
            r = await self.visits.register(dept=self.dept, channel="kiosk",
                                           card_no=self.card_no, doctor_id=self.doctor_id,
                                           card_entry=self.card_entry)
        except Exception as exc:
            self.refuse(self.refusal(exc))
            return
        self.receipt = r
        assert self.offer is not None
        clinic = self.offer.clinic(self.dept)
        self.step = "done"
        self._show(tr("kiosk.your_number"),
                   f"{tr('kiosk.wait_at', dept=clinic.name if clinic else self.dept)}\n"
                   f"{tr('kiosk.done_balance', fee=yuan(r.visit.fee), balance=yuan(r.balance))}",
                   tr("kiosk.done_keys"), number=r.visit.label)

    def action_back(self) -> None:
        if self.step == "doctor" and not self.counter.config.department:
            self.dept = ""
            self.ask_dept()
        elif self.step != "welcome":
            self.welcome()
