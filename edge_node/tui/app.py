"""The counter's terminal app: wiring only (ledger, service, reader, screens, idle lock).

``run(config, reader=None)`` is what ``onecard-edge run`` calls.  Everything a screen
does lives in its own module under ``screens/`` and ``widgets/``.

The app's own keys: F1 lists every key of the screen in front; Ctrl+L switches
中文/English for the rest of this login (log out returns to the config's language);
Ctrl+Q quits after a confirmation, never while a business is being done.  Log out
(on the home screen) shows the operator's shift slip, then clears the screen for the
next operator's login.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen

from edge_node import pricelist
from edge_node.config import EdgeConfig
from edge_node.errors import EdgeError
from edge_node.i18n import Translator
from edge_node.ledger import Ledger, wall_ms
from edge_node.service import CounterService
from edge_node.staff import Staff
from edge_node.tui.cardsource import CardDesk, CardSource, Notice, Tapped, interpret
from edge_node.tui.context import Counter
from edge_node.tui.desks import desk_for
from edge_node.tui.messages import CardTapped, ReaderNotice
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.fatal import FatalScreen
from edge_node.tui.screens.form import FormScreen
from edge_node.tui.screens.keyhelp import KeyHelpScreen
from edge_node.tui.screens.login import LoginScreen
from edge_node.tui.widgets.keybar import screen_keys

log = logging.getLogger("onecard.tui")

IDLE_CHECK_S = 5.0


class CounterApp(App[None]):
    CSS_PATH = Path(__file__).with_name("counter.tcss")
    TITLE = "onecard"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "key_help", "Help", priority=True),
        Binding("ctrl+l", "language", "Language", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]
    #: app key action → i18n key of its label (the class bindings are in English)
    KEY_LABELS: ClassVar[dict[str, str]] = {"key_help": "key.help", "language": "key.language",
                                            "quit": "key.quit"}
    #: the app's keys that work while the login screen covers the counter (the others,
    #: such as the demo's card keys, wait for an operator)
    LOGIN_KEYS: ClassVar[frozenset[str]] = frozenset({"key_help", "language", "quit"})
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, config: EdgeConfig, *, reader: CardSource | None = None,
                 ledger: Ledger | None = None, clock: Callable[[], int] = wall_ms,
                 ledger_clock: Callable[[], int] | None = None,
                 idle_clock: Callable[[], float] = time.monotonic,
                 prices: pricelist.PriceList | None = None,
                 blanks: Callable[[], str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.reader = reader
        self._ledger = ledger
        self._own_ledger = ledger is None
        self._clock = clock
        self._ledger_clock = ledger_clock
        self._idle_clock = idle_clock
        self._prices = prices
        #: puts a blank card on the reader and returns the number printed on it (the
        #: demo's pile of cards); None at a real counter, where staff type that number
        self.blanks = blanks
        self.tr = Translator(config.language)
        self.counter: Counter | None = None
        self.home: Any = None  # the role's desk (edge_node.tui.desks)
        self.last_activity = idle_clock()
        self.locked = False  # the login screen covers the counter (locked or logged out)
        self._relabel_keys()

    # -- start and stop ------------------------------------------------------------------
    async def on_mount(self) -> None:
        self.title = self.tr.app_title(self.config.role)
        try:
            prices = self._prices or pricelist.load(self.config.price_list)
            if self._ledger is None:
                kw: dict[str, Any] = {"rule_config": self.config.rules}
                if self._ledger_clock is not None:
                    kw["clock"] = self._ledger_clock
                self._ledger = await Ledger.open(self.config.db, self.config.node_id,
                                                 self.config.load_key(), **kw)
            pepper = self.config.load_pepper()
        except EdgeError as exc:
            await self.push_screen(FatalScreen(exc.title, str(exc)))
            return
        # nothing may be done until someone logs in (Counter.log_in sets their roles)
        service = CounterService(self._ledger, "", roles=frozenset(), pepper=pepper,
                                 desk=self.config.role)
        self.counter = Counter(self.config, self._ledger, service, prices, self.tr, self._clock)
        self.counter.desk = CardDesk(service, self.tr, self.reader, chip=_writes_chips(self.reader),
                                     clock=self._clock)
        self.home = desk_for(self.counter)
        await self.push_screen(self.home)
        self.locked = True
        await self.push_screen(LoginScreen(self.counter), self._logged_in)
        self.set_interval(IDLE_CHECK_S, self.lock_if_idle)
        if self.reader is not None:
            self.read_cards()

    async def on_unmount(self) -> None:
        if self.reader is not None:
            try:
                await self.reader.stop()
            except Exception:
                log.warning("card reader did not stop cleanly", exc_info=True)
        if self._own_ledger and self._ledger is not None:
            await self._ledger.close()

    def _logged_in(self, staff: Staff | None) -> None:
        self.locked = False
        self.last_activity = self._idle_clock()
        if self.home is not None and staff is not None:
            self.home.query_one("StatusBar").refresh_status()  # type: ignore[attr-defined]

    # -- log out, language, keys, quit -----------------------------------------------------
    def log_out(self) -> None:
        """End the operator's session: nothing of theirs left on screen, login for anyone.

        The shift slip was shown and confirmed before this (HandoverScreen); the language
        goes back to the counter's own (a switch lasts one login).
        """
        if self.counter is None:
            return
        self.counter.log_out()
        if self.counter.desk is not None:
            self.counter.desk.current = None
        if self.home is not None:
            self.home.reset()
        if self.tr.language != Translator(self.config.language).language:
            self.set_language(self.config.language)
        self.locked = True
        self.push_screen(LoginScreen(self.counter), self._logged_in)

    def set_language(self, language: str) -> None:
        """Every word from now on in ``language``: the screens up now are relabelled in
        place (the patient stays on screen), later screens and receipts follow."""
        tr = Translator(language)
        self.tr = tr
        if self.counter is not None:
            self.counter.tr = tr
            if self.counter.desk is not None:
                self.counter.desk.tr = tr
        self.title = tr.app_title(self.config.role)
        self._relabel_keys()
        for screen in self.screen_stack:
            relabel = getattr(screen, "relabel", None)
            if callable(relabel):
                relabel()
        self.refresh_bindings()

    def _relabel_keys(self) -> None:
        """The app's keys in the counter's language, in KEY_LABELS' order (the footer's)."""
        order = list(self.KEY_LABELS)
        keys = self._bindings.key_to_bindings

        def rank(key: str) -> int:
            actions = [b.action for b in keys[key]]
            return min((order.index(a) for a in actions if a in order), default=len(order))
        relabelled = {key: [dataclasses.replace(b, description=self.tr(self.KEY_LABELS[b.action]))
                            if b.action in self.KEY_LABELS else b for b in keys[key]]
                      for key in sorted(keys, key=rank)}
        keys.clear()
        keys.update(relabelled)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.locked and action in self.KEY_LABELS and action not in self.LOGIN_KEYS:
            return False  # the login screen covers the counter: no business keys
        if action == "language":  # at home or a login screen, no form (or slip) under it:
            # what was typed into one stays in one language
            return self.counter is not None and not any(isinstance(s, ModalScreen)
                                                        for s in self.screen_stack)
        if action == "key_help":
            return self.counter is not None and not isinstance(self.screen, KeyHelpScreen)
        # a patient at the kiosk cannot quit it (IT stops the service)
        return not (action == "quit" and self.config.role == "kiosk" and not self.locked)

    def action_language(self) -> None:
        self.set_language("en" if self.tr.language == "zh" else "zh")

    def action_key_help(self) -> None:
        if self.counter is not None:
            self.push_screen(KeyHelpScreen(self.counter, screen_keys(self.screen)))

    def business_working(self) -> bool:
        """A form is committing (or a card is being written after it): not a time to quit."""
        if any(isinstance(s, FormScreen) and s.busy for s in self.screen_stack):
            return True
        return any(w.group in ("form", "stamp") and not w.is_finished for w in self.workers)

    async def action_quit(self) -> None:
        """Ctrl+Q: ask first, and refuse while a business is being done."""
        if self.counter is None:  # nothing started (a fatal error): just go
            self.exit()
            return
        tr = self.tr
        if self.business_working():
            self.notify(tr("quit.busy"), severity="warning")
            return
        if isinstance(self.screen, QuitConfirmScreen):
            return
        self.push_screen(QuitConfirmScreen(self.counter, tr("confirm.quit")), self._quit_answered)

    def _quit_answered(self, yes: bool | None) -> None:
        if yes and not self.business_working():
            self.exit()

    # -- card reader -----------------------------------------------------------------------
    @work(exit_on_error=False, group="reader")
    async def read_cards(self) -> None:
        assert self.reader is not None
        try:
            await self.reader.start()
            async for event in self.reader.events():
                if self.counter is not None and self.counter.desk is not None:
                    self.counter.desk.saw(event)
                meaning = interpret(event)
                if self.home is None or meaning is None:
                    continue
                if isinstance(meaning, Tapped):
                    self.last_activity = self._idle_clock()
                    if not self.locked:
                        self.home.post_message(CardTapped(meaning.card_no, meaning.entry,
                                                          meaning))
                elif isinstance(meaning, Notice):
                    text = (self.tr("home.blank_card") if meaning.blank else meaning.text)
                    self.home.post_message(ReaderNotice(text, meaning.problem))
        except Exception as exc:  # a dead reader: say so, keep the counter (typing) working
            log.warning("card reader stopped: %s", exc)
            if self.home is not None:
                self.home.post_message(ReaderNotice(str(exc) or type(exc).__name__, True))

    # -- idle lock -------------------------------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown):
            self.last_activity = self._idle_clock()
        await super().on_event(event)

    def idle_seconds(self) -> float:
        """Seconds since the last key, click or card tap (a kiosk times out by it)."""
        return self._idle_clock() - self.last_activity

    def lock_if_idle(self) -> None:
        limit = self.config.idle_lock_s
        if not limit or self.locked or self.counter is None or self.counter.operator is None:
            return
        if not getattr(self.home, "locks_when_idle", True):  # a kiosk: no staff to lock out
            return
        if self._idle_clock() - self.last_activity >= limit:
            self.lock()

    def lock(self) -> None:
        """Cover everything with the login screen; the same or another operator unlocks."""
        if self.locked or self.counter is None:
            return
        self.locked = True
        self.push_screen(LoginScreen(self.counter, locked=True), self._logged_in)


class QuitConfirmScreen(ConfirmScreen):
    """Ctrl+Q's question (its own class: a second Ctrl+Q while it is up does nothing)."""


def _writes_chips(reader: object) -> bool:
    """A chip reader (PC/SC, simulated) writes cards; a keyboard wedge or none does not."""
    if reader is None or not callable(getattr(reader, "write_file", None)):
        return False
    from edge_node.card.wedge import WedgeReader

    return not isinstance(reader, WedgeReader)


def run(config: EdgeConfig, reader: CardSource | None = None) -> None:
    """Run the counter app until staff quit (``onecard-edge run``)."""
    CounterApp(config, reader=reader).run()
