"""A department's queue of the day as a table: number, name, doctor, status, wait.

Shared by the triage desk and the doctor's station: it takes a list of
:class:`edge_node.visits.QueueEntry` (as :meth:`VisitService.queue` returns them) and
keeps the selected visit selected across refreshes (the queue is read again whenever
the ledger moves: a visit registered at another counter, a call from the doctor).
Staff screens show the full name; ``masked=True`` shows only the surname (张*).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from edge_node.i18n import Translator
from edge_node.visits import QueueEntry

#: how each status is drawn (what the eye looks for first: who is called now)
STATUS_STYLE = {"called": "bold reverse", "consulting": "bold", "waiting": "",
                "skipped": "italic", "done": "dim", "no_show": "dim strike"}
FINAL = ("done", "no_show")


def wait_minutes(entry: QueueEntry, now_ms: int) -> int | None:
    """Minutes since registration, for a visit still in the queue (None once it ended)."""
    v = entry.visit
    if v.status in FINAL or not v.registered_ms:
        return None
    return max(0, (now_ms - v.registered_ms) // 60_000)


class QueueTable(DataTable[Text]):
    DEFAULT_CSS = """
    QueueTable { height: 1fr; border: round $primary; }
    QueueTable:focus { border: round $accent; }
    """

    def __init__(self, tr: Translator, *, masked: bool = False, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.tr = tr
        self.masked = masked
        self.entries: list[QueueEntry] = []
        self.doctors: dict[str, str] = {}

    def on_mount(self) -> None:
        self._columns()

    def _columns(self) -> None:
        tr = self.tr
        self.clear(columns=True)
        for key, label in (("no", "queue.col_no"), ("name", "queue.col_name"),
                           ("doctor", "queue.col_doctor"), ("status", "queue.col_status"),
                           ("wait", "queue.col_wait")):
            self.add_column(tr(label), key=key)

    def relabel(self, tr: Translator) -> None:
        """The same queue in the counter's (new) language."""
        self.tr = tr
        self._columns()
        self.show(self.entries, self.doctors, self._now)

    _now = 0

    def show(self, entries: list[QueueEntry], doctors: dict[str, str], now_ms: int) -> None:
        """Show ``entries`` (in their order); the selected visit stays selected."""
        keep = self.selected
        self.entries, self.doctors, self._now = list(entries), dict(doctors), now_ms
        tr = self.tr
        self.clear()
        for e in self.entries:
            v = e.visit
            style = STATUS_STYLE.get(v.status, "")
            mins = wait_minutes(e, now_ms)
            status = tr(f"status.{v.status}")
            if v.status == "called" and v.room:
                status = f"{status} {v.room}"
            self.add_row(Text(v.label or "-", style="bold"),
                         Text(e.masked if self.masked else e.name or "-"),
                         Text(self.doctors.get(v.doctor_id, v.doctor_id) or "-"),
                         Text(status, style=style),
                         Text(tr("queue.minutes", n=mins) if mins is not None else "-",
                              justify="right"),
                         key=v.visit_id)
        if keep is not None:
            for i, e in enumerate(self.entries):
                if e.visit.visit_id == keep.visit.visit_id:
                    self.move_cursor(row=i, animate=False)
                    break

    @property
    def selected(self) -> QueueEntry | None:
        """The visit under the cursor (None if the queue is empty)."""
        if not self.entries or not 0 <= self.cursor_row < len(self.entries):
            return None
        return self.entries[self.cursor_row]

    def select(self, visit_id: str) -> bool:
        for i, e in enumerate(self.entries):
            if e.visit.visit_id == visit_id:
                self.move_cursor(row=i, animate=False)
                return True
        return False

    def rows_text(self) -> list[str]:
        """Each row as shown, cells joined by two spaces (for tests)."""
        out = []
        for row in range(self.row_count):
            out.append("  ".join(str(c) for c in self.get_row_at(row)))
        return out
