"""Edit a patient's details: name, phone, other contact / address.

Only the fields changed are sent (``patient.updated``); the event names the operator,
and the history shows each field from what to what.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import FormScreen, Plan
from protocol.errors import Problem

#: field id -> (label key, the patient record's attribute)
EDITABLE = {"name": "form.name", "phone": "form.phone", "contact": "form.address"}


class EditPatientScreen(FormScreen):
    title_key = "title.edit"

    def fields(self) -> Iterable[Widget]:
        assert self.view is not None
        yield from self.labelled("form.name", Input(self.current("name"), id="name",
                                                    max_length=64))
        yield from self.labelled("form.phone", Input(self.current("phone"), id="phone",
                                                     max_length=20, restrict=r"[0-9 +-]*"))
        yield from self.labelled("form.address", Input(self.current("contact"), id="contact",
                                                       max_length=128))

    def current(self, field: str) -> str:
        """A field's value now: the phone and address as opened for this counter (sealed
        in the ledger; "" if this counter may not open them — then it may not change them
        either, and the service says so)."""
        assert self.view is not None
        if field == "name":
            return self.view.patient.name
        return getattr(self.view.details, field) or ""

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def changes(self) -> dict[str, str]:
        return {f: self.value(f) for f in EDITABLE if self.value(f) != self.current(f)}

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        tr = self.counter.tr
        changes = self.changes()
        if not changes:
            return [Problem("form.nothing_changed", tr("form.nothing_changed"), "name")]
        problems = [Problem("form.required", tr("form.required", field=tr(EDITABLE[f])), f)
                    for f, v in changes.items() if not v]  # a detail is corrected, not erased
        if problems:
            return problems
        pid = self.view.patient.patient_id

        async def call(service: CounterService) -> Receipt:
            return await service.update_patient(pid, **changes)
        text = "; ".join(tr("history.changed", field=tr(EDITABLE[f]), old=self.current(f) or
                            tr("history.empty_value"), new=v) for f, v in changes.items())
        return Plan(tr("confirm.edit", name=self.view.patient.name, changes=text), call)
