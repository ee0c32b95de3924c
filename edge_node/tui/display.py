"""The waiting-room display (候诊叫号屏): a read-only full-screen app for a second screen.

``onecard-edge display [--dept CODE]`` shows, in large text, the numbers being called
now with their room and the masked surname (张*: never a full name), and the next few
numbers waiting.  It reads the counter's ledger (beside the counter's app and sync
daemon) every :data:`POLL_S` seconds — reading the queue again only when the ledger
moved — writes nothing, needs no login (it shows nothing private) and no key; Ctrl+Q
quits.  The department is ``--dept``, else the config's ``department``, else every
clinic of the catalogue.  Words in the config's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import ClassVar
from zoneinfo import ZoneInfo

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Static

from edge_node.config import EdgeConfig
from edge_node.errors import EdgeError
from edge_node.i18n import Translator
from edge_node.ledger import Ledger, wall_ms
from edge_node.visits import Board, QueueEntry, VisitService

POLL_S = 2.0
CALLING = 4
WAITING = 8


class CallLine(Horizontal):
    """One number called: the number in big digits, the room and the masked name."""

    DEFAULT_CSS = """
    CallLine { height: 3; margin: 0 0 1 0; }
    CallLine Digits { width: auto; margin: 0 2 0 0; color: $success; }
    CallLine .tag { width: auto; height: 3; content-align: left middle; text-style: bold;
                    color: $success; }
    CallLine .where { width: 1fr; height: 3; content-align: left middle;
                      text-style: bold; }
    """

    def __init__(self, entry: QueueEntry, tr: Translator, dept_name: str) -> None:
        super().__init__()
        self.entry = entry
        self.tr = tr
        self.dept_name = dept_name

    def compose(self) -> ComposeResult:
        v = self.entry.visit
        yield Static(f"{v.queue_tag}-", classes="tag")
        yield Digits(f"{v.queue_no:03d}")
        where = [self.entry.masked]
        if v.room:
            where.append(self.tr("display.to_room", room=v.room))
        if self.dept_name:
            where.append(self.dept_name)
        yield Static("   ".join(where), classes="where")


class DisplayApp(App[None]):
    CSS = """
    Screen { background: $background; }
    #title { dock: top; height: 3; content-align: center middle; text-style: bold;
             background: $primary; color: $text; }
    #foot { dock: bottom; height: 1; color: $text-muted; padding: 0 1; }
    #calling-head, #next-head { text-style: bold reverse; padding: 0 1; margin: 1 0 0 0; }
    #calls { height: auto; padding: 1 2 0 2; }
    #next { height: auto; padding: 1 2; text-style: bold; }
    #problem { color: $error; text-style: bold; padding: 1 2; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit", priority=True)]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, config: EdgeConfig, dept: str = "", *, ledger: Ledger | None = None,
                 clock: Callable[[], int] = wall_ms) -> None:
        super().__init__()
        self.config = config
        self.dept = dept or config.department
        self.tr = Translator(config.language)
        self._ledger = ledger
        self._own_ledger = ledger is None
        self._clock = clock
        self._mark = -1
        self.board: Board | None = None
        self.names: dict[str, str] = {}  # department code → name

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        with Vertical():
            yield Static(id="problem")
            yield Static(self.tr("display.calling"), id="calling-head")
            yield Vertical(id="calls")
            yield Static(self.tr("display.next"), id="next-head")
            yield Static(id="next")
        yield Static(id="foot")

    async def on_mount(self) -> None:
        self.query_one("#title", Static).update(self.tr("display.title",
                                                        dept=self.dept or self.tr("display.all")))
        if self._ledger is None:
            try:  # no key: it only reads
                self._ledger = await Ledger.open(self.config.db, self.config.node_id,
                                                 rule_config=self.config.rules)
            except EdgeError as exc:
                self.query_one("#problem", Static).update(f"{exc.title}: {exc}")
                return
        self.refresh_board()
        self.set_interval(POLL_S, self.refresh_board)

    async def on_unmount(self) -> None:
        if self._own_ledger and self._ledger is not None:
            await self._ledger.close()

    @property
    def visits(self) -> VisitService:
        assert self._ledger is not None
        return VisitService(self._ledger)

    @work(exclusive=True, exit_on_error=False, group="board")
    async def refresh_board(self, force: bool = False) -> None:
        """The board again if the ledger moved (a call, a registration synced in)."""
        visits = self.visits
        problem = self.query_one("#problem", Static)
        try:
            mark = await visits.changes()
            if mark == self._mark and not force:
                return
            depts = [self.dept] if self.dept else []
            try:
                clinics = await visits.clinics()
                self.names = {d.code: d.name for d in clinics}
                if not depts:
                    depts = [d.code for d in clinics]
            except Exception:  # no catalogue yet: codes only (and no department list)
                pass
            board = await visits.board(depts, calling=CALLING, waiting=WAITING)
        except Exception as exc:  # the screen stays up and says what is wrong
            problem.update(str(exc) or type(exc).__name__)
            return
        problem.update("")
        self._mark = mark
        self.board = board
        await self.show(board)

    async def show(self, board: Board) -> None:
        tr = self.tr
        if self.dept:
            self.query_one("#title", Static).update(
                tr("display.title", dept=self.names.get(self.dept, self.dept)))
        calls = self.query_one("#calls", Vertical)
        await calls.remove_children()
        many = not self.dept
        if board.calling:
            await calls.mount_all(CallLine(e, tr, self.names.get(e.visit.dept, e.visit.dept)
                                           if many else "") for e in board.calling)
        else:
            await calls.mount(Static(tr("display.none")))
        waiting = [f"{e.visit.label} {e.masked}" for e in board.waiting]
        lines = ["    ".join(waiting[i:i + 4]) for i in range(0, len(waiting), 4)]
        self.query_one("#next", Static).update(Text("\n".join(lines) or tr("display.none")))
        when = dt.datetime.fromtimestamp(self._clock() / 1000, ZoneInfo(self.config.timezone))
        self.query_one("#foot", Static).update(
            f"{when:%H:%M}   {tr('display.waiting', n=board.waiting_count)}   "
            f"{tr('display.keys')}")

    @property
    def text(self) -> str:
        """What the board shows, as plain text (for tests)."""
        out = [str(self.query_one("#title", Static).render())]
        for line in self.query(CallLine):
            v = line.entry.visit
            out.append(f"CALL {v.label} {line.entry.masked} {v.room}".rstrip())
        out.append(str(self.query_one("#next", Static).render()))
        out.append(str(self.query_one("#foot", Static).render()))
        return "\n".join(out)


def run(config: EdgeConfig, dept: str = "") -> None:
    """``onecard-edge display``: until Ctrl+Q."""
    DisplayApp(config, dept).run()
