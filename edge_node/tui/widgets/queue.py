"""A department's queue of the day as a table: number, name, doctor, status, wait.

Shared by the triage desk and the doctor's desk: it takes a list of
:class:`edge_node.visits.QueueEntry` (as :meth:`VisitService.queue` returns them) and
keeps the selected visit selected across refreshes (the queue is read again whenever
the ledger moves: a visit registered at another counter, a call from the doctor).
Staff screens show the full name; ``masked=True`` shows only the surname (张*).
``columns`` picks which columns, in which order and under which headings (the triage
desk's :data:`COLUMNS` by default; the doctor's desk shows the registration time,
:data:`DOCTOR_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from edge_node.i18n import Translator
from edge_node.tui.describe import local_time
from edge_node.visits import QueueEntry

#: how each status is drawn (what the eye looks for first: who is called now)
STATUS_STYLE = {"called": "bold reverse", "consulting": "bold", "waiting": "",
                "skipped": "italic", "done": "dim", "no_show": "dim strike"}
FINAL = ("done", "no_show")
#: (column, heading key) of each column shown: what a cell holds is named by ``column``
#: — no, name, doctor, status, wait (minutes since registration) or registered (its time)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("no", "queue.col_no"), ("name", "queue.col_name"), ("doctor", "queue.col_doctor"),
    ("status", "queue.col_status"), ("wait", "queue.col_wait"))
DOCTOR_COLUMNS: tuple[tuple[str, str], ...] = (
    ("no", "doctor.col_no"), ("name", "doctor.col_name"), ("status", "doctor.col_status"),
    ("doctor", "doctor.col_doctor"), ("registered", "doctor.col_time"))


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

    def __init__(self, tr: Translator, *, masked: bool = False, id: str | None = None,
                 columns: Sequence[tuple[str, str]] = COLUMNS, timezone: str = "UTC") -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.tr = tr
        self.masked = masked
        self.columns_shown = tuple(columns)
        self.timezone = timezone  # of the registration time
        self.entries: list[QueueEntry] = []
        self.doctors: dict[str, str] = {}

    def on_mount(self) -> None:
        self._columns()

    def _columns(self) -> None:
        tr = self.tr
        self.clear(columns=True)
        for key, label in self.columns_shown:
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
        self.clear()
        for e in self.entries:
            self.add_row(*(self._cell(key, e, now_ms) for key, _ in self.columns_shown),
                         key=e.visit.visit_id)
        if keep is not None:
            for i, e in enumerate(self.entries):
                if e.visit.visit_id == keep.visit.visit_id:
                    self.move_cursor(row=i, animate=False)
                    break

    def _cell(self, column: str, e: QueueEntry, now_ms: int) -> Text:
        tr, v = self.tr, e.visit
        if column == "no":
            return Text(v.label or "-", style="bold")
        if column == "name":
            return Text(e.masked if self.masked else e.name or "-")
        if column == "doctor":
            return Text(self.doctors.get(v.doctor_id, v.doctor_id) or "-")
        if column == "status":
            status = tr(f"status.{v.status}")
            if v.status == "called" and v.room:
                status = f"{status} {v.room}"
            return Text(status, style=STATUS_STYLE.get(v.status, ""))
        if column == "registered":
            return Text(local_time(v.registered_ms, self.timezone, "%H:%M")
                        if v.registered_ms else "-")
        mins = wait_minutes(e, now_ms)  # "wait"
        return Text(tr("queue.minutes", n=mins) if mins is not None else "-", justify="right")

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
