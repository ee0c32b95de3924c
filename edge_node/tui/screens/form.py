"""The shape of every business form: fields, Enter to the next, Ctrl+S to submit, check,
confirm, then the service call in a worker; refusals are shown in the form, field focused.

A subclass provides :meth:`fields` (its widgets), :meth:`prepare` (check what was
typed; return problems to show, or a question to confirm and the call to make), and
the form dismisses with the :class:`Receipt` when the ledger committed.

The plan's call takes the service to call.  Before asking to confirm, the form runs it
on the service's dry run (:meth:`CounterService.dry`: the very same operation, checked
by the ledger's one append path and rolled back), so everything the counter can know
is refused in the form, before the question; confirming runs it for real (checked
again inside its transaction).  A call must do nothing outside the service when the
service is a dry run (``service.dry_run``: no chip written).  An error line goes once
the field it names is edited.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from rich.cells import cell_len
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from edge_node.errors import OperationRefused
from edge_node.service import CardWallet, CounterService, PatientView, Receipt
from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys, error_text
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.widgets.keybar import KeyBar
from protocol.domain import REGISTRY
from protocol.errors import Problem
from protocol.money import parse_yuan, yuan

Call = Callable[[CounterService], Awaitable[Receipt]]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a checked form will do: ``call(service.dry())`` to check, ask ``question``
    (or ``ask(the dry run's receipt)``, when the question says what it would do), then
    ``call(service)``."""

    question: str
    call: Call
    ask: Callable[[Any], str] | None = None

    def __post_init__(self) -> None:
        try:
            inspect.signature(self.call).bind(None)
        except TypeError:
            raise TypeError("a Plan's call takes the service to call: "
                            "async def call(service: CounterService) -> Receipt (it is run "
                            "on service.dry() before the confirm question)") from None


LABEL_MAX = 34  # cells: at 80 columns an input beside the widest label keeps 40


class FormScreen(ModalScreen[Receipt | None]):
    # Compact, so a tty console's 80×25 shows as many fields as fit: a label beside its
    # input on one line, inputs without borders, the box no wider than the screen.  The
    # title and the patient stay at the top and the hint and error line at the bottom
    # (docked); the fields between them scroll to the focused one.
    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical { width: 100; max-width: 100%; height: auto; max-height: 100%;
                            border: thick $primary; background: $surface; padding: 0 1; }
    FormScreen #form-head { dock: top; height: auto; }
    FormScreen #form-title { text-style: bold; background: $primary; color: $text;
                             padding: 0 1; }
    FormScreen #form-patient { color: $text-muted; padding: 0 1; }
    FormScreen #form-foot { dock: bottom; height: auto; }
    FormScreen VerticalScroll { height: auto; max-height: 100%; padding: 1 0 0 0; }
    FormScreen .field { height: auto; }
    FormScreen .field > Label { padding: 0 1 0 0; color: $text-muted; }
    FormScreen Input { border: none; height: 1; padding: 0 1; background: $boost; }
    FormScreen Input:focus { border: none; background: $primary 30%; }
    FormScreen #form-error { color: $error; text-style: bold; height: auto; }
    FormScreen #form-hint { color: $text-muted; height: auto; }
    """
    #: the id of this form's card-number input, if it has one: Ctrl+B puts a blank card
    #: on the reader (where the counter has a supply, as the demo does) and fills it in
    card_field = ""
    title_key = "title.deposit"
    #: a refusal's field → this form's widget id, where they differ (the registration
    #: form's ``first_deposit`` is the deposit event's ``amount``)
    field_ids: ClassVar[dict[str, str]] = {}

    def __init__(self, counter: Counter, view: PatientView | None = None,
                 card_no: str = "", card_entry: str = "chip") -> None:
        super().__init__()
        self.counter = counter
        self.view = view
        self.card_no = card_no
        self.card_entry = card_entry
        self.busy = False
        self.error_fields: set[str] = set()  # the fields the shown error line is about
        bind_keys(self, counter, [("ctrl+s", "submit", "key.submit", True),
                                  ("escape", "cancel", "key.cancel", True)])
        if self.card_field:
            bind_keys(self, counter, [("ctrl+b", "blank_card", "key.blank_card", True)])
        # Enter on a choice (not in an input, list or table, which use it) submits too.
        self._bindings.bind("enter", "submit", show=False)
        self._labels: list[Label] = []  # the fields' labels, one column (see compose)

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        with Vertical():
            with Vertical(id="form-head"):
                yield Static(tr(self.title_key), id="form-title")
                if self.view is not None:
                    p = self.view.patient
                    yield Static(f"{p.name}  {p.patient_id}  {self.card_no}",
                                 id="form-patient")
            with VerticalScroll():
                yield from self.fields()
            # one column of labels, as wide as this form's longest (long ones wrap)
            width = min(LABEL_MAX, max((cell_len(str(lb.content)) + 1 for lb in self._labels),
                                       default=0))
            for label in self._labels:
                label.styles.width = width
            with Vertical(id="form-foot"):
                yield Static(id="form-hint")
                yield Static(id="form-error")
        yield KeyBar()

    def fields(self) -> Iterable[Widget]:
        return []

    def labelled(self, label_key: str, widget: Widget, *, row_id: str | None = None,
                 **values: object) -> Iterable[Widget]:
        """One field: its label beside it (wrapped when long), on one row (``row_id``:
        the row's, to show or hide label and field together)."""
        label = Label(self.counter.tr(label_key, **values))
        self._labels.append(label)
        yield Horizontal(label, widget, classes="field", id=row_id)

    # -- blank cards (Ctrl+B) ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "blank_card":  # shown only where blank cards can be had
            return bool(self.card_field) and getattr(self.app, "blanks", None) is not None
        return True

    def action_blank_card(self) -> None:
        blanks = getattr(self.app, "blanks", None)
        if blanks is None or not self.card_field or self.busy:
            return
        number = str(blanks())
        field = self.query_one(f"#{self.card_field}", Input)
        field.value = number
        field.cursor_position = len(number)
        self.query_one("#form-hint", Static).update(
            self.counter.tr("form.blank_filled", card=number))

    # -- flow ----------------------------------------------------------------------------
    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.on_enter(event.input)

    def on_enter(self, field: Input) -> None:
        """Enter goes to the next field; on the last input it submits."""
        inputs = [w for w in self.query(Input) if self._shown(w)]
        if inputs and field is inputs[-1]:
            self.action_submit()
        else:
            self.focus_next()

    def _shown(self, widget: Widget) -> bool:
        """Displayed, and so is the row it is in (a hidden row hides its field)."""
        node: Widget | None = widget
        while node is not None and node is not self:
            if not node.display:
                return False
            node = node.parent if isinstance(node.parent, Widget) else None
        return True

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_submit(self) -> None:
        if self.busy:
            return
        result = self.prepare()
        if isinstance(result, Plan):
            self.show_error("")
            self.check(result)
        else:
            self.show_problems(result)

    def prepare(self) -> Plan | list[Problem]:
        raise NotImplementedError

    @work(exclusive=True, exit_on_error=False, group="form")
    async def check(self, plan: Plan) -> None:
        """Run the plan's call on the dry run; ask to confirm only if it would be done."""
        preview = await self._run(plan.call, self.counter.service.dry())
        if preview is None:
            return
        try:
            question = plan.ask(preview) if plan.ask is not None else plan.question
        except Exception as exc:  # a bug: plain words in the form, never a silent stop
            self.show_error(error_text(self.counter, exc))
            return
        if any(REGISTRY.money(ev).flow for ev in preview.events):
            question += "\n" + self.counter.tr("confirm.balance_after",
                                               balance=yuan(preview.balance))
        self.app.push_screen(ConfirmScreen(self.counter, question),
                             lambda yes: self.perform(plan.call) if yes else None)

    @work(exclusive=True, exit_on_error=False, group="form")
    async def perform(self, call: Call) -> None:
        receipt = await self._run(call, self.counter.service)
        if receipt is not None:
            self.dismiss(receipt)

    async def _run(self, call: Call, service: CounterService) -> Receipt | None:
        """``call(service)``, or None with its refusal or error shown in the form."""
        self.busy = True
        self.query_one("#form-hint", Static).update(self.counter.tr("form.working"))
        try:
            return await call(service)
        except OperationRefused as exc:
            self.show_problems(exc.problems, refused=True)
            return None
        except Exception as exc:  # StorageError, or a bug: plain words, never a traceback
            self.show_error(error_text(self.counter, exc))
            return None
        finally:
            self.busy = False
            self.query_one("#form-hint", Static).update("")

    # -- showing problems ----------------------------------------------------------------
    def show_error(self, text: str, fields: Iterable[str] = ()) -> None:
        """Show ``text`` as the error line (cleared once one of ``fields`` is edited)."""
        self.error_fields = set(fields)
        self.query_one("#form-error", Static).update(text)

    def show_problems(self, problems: list[Problem], refused: bool = False) -> None:
        tr = self.counter.tr
        problems = [replace(p, field=self.field_ids.get(p.field, p.field)) for p in problems]
        text = tr.problems(problems)
        self.show_error((tr("error.refused") + text) if refused else text,
                        [p.field for p in problems if p.field])
        for p in problems:
            target = self.field_widget(p.field)
            if target is not None:
                target.focus()
                break

    @on(Input.Changed)
    def _field_edited(self, event: Input.Changed) -> None:
        """Editing a field the error line is about clears it (it may be fixed now)."""
        if event.input.id and event.input.id in self.error_fields and not self.busy:
            self.show_error("")

    def field_widget(self, field: str) -> Widget | None:
        if not field or not field.isidentifier():
            return None
        found = self.query(f"#{field}")
        return found.first() if found else None

    # -- helpers for subclasses ------------------------------------------------------------
    def money_context(self) -> tuple[CardWallet | None, bool]:
        """What the tapped card's wallet stamp said, and whether to stamp it after."""
        desk = self.counter.desk
        return desk.money_context(self.card_no) if desk is not None else (None, False)

    def value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def amount(self, field: str, problems: list[Problem]) -> int:
        """The fen typed in ``field`` (> 0), or 0 with a problem added."""
        parsed = parse_yuan(self.value(field), field)
        if isinstance(parsed, Problem):
            problems.append(Problem("form.amount", "type an amount like 100 or 12.50", field))
            return 0
        if parsed <= 0:
            problems.append(Problem("form.zero", "the amount must be more than zero", field))
        return parsed

    def required(self, field: str, label_key: str, problems: list[Problem]) -> str:
        text = self.value(field)
        if not text:
            problems.append(Problem("form.required", f"{field}: required", field))
        return text
