"""What every staff desk shares, one copy: the shift keys (F12 locks the screen, Ctrl+O
logs out — the operator's shift slip first (print, confirm), then the login screen for
the next), a card tap handed to the desk, the reader's notices in the status bar, and
the message line under the patient.

:class:`Desk` is the base of a desk screen (the cashier's home, triage, the doctor's
desk; the lab window and the pharmacy next).  The kiosk is not one: it is the
patient's own screen (no operator, no status bar, reader problems go to the log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Input, Static

from edge_node.service import PatientView
from edge_node.tui.cardsource import Tapped
from edge_node.tui.context import Counter
from edge_node.tui.messages import CardTapped, ReaderNotice
from edge_node.tui.screens.approval import ApprovalForm, Step, lifted_by_approval
from edge_node.tui.screens.base import KeySpec, bind_keys, error_text
from edge_node.tui.screens.handover import HandoverScreen
from edge_node.tui.widgets.status import StatusBar

#: the message line's rules, one copy (:func:`desk_css` scopes them to a screen; a desk's
#: own CSS adds what it does differently, e.g. ``LabDesk #message.done { text-style:
#: bold; }``)
MESSAGE_CSS = """
#message { height: auto; min-height: 1; padding: 0 1; }
#message.problem { color: $error; text-style: bold; }
#message.done { color: $success; }
#message.warning { color: $warning; }
"""


#: the cursor keys moving a desk's list (``action_move``) while the card field has the focus
LIST_MOVES: list[tuple[str, str]] = [("up", "move(-1)"), ("down", "move(1)")]


def desk_css(screen: str, css: str = "") -> str:
    """A screen's DEFAULT_CSS: its own rules, then the message line's scoped to it."""
    return css + MESSAGE_CSS.replace("#message", f"{screen} #message")


def say_in(widget: Static, text: str, kind: str = "") -> None:
    """Show ``text`` in a message line; ``kind`` (problem, done, warning or none) is its
    class, which the screen's CSS colours."""
    widget.update(text)
    for cls in ("problem", "done", "warning"):
        widget.set_class(cls == kind, cls)


class ShiftKeys:
    """Mixed into a desk screen (before ``Screen``), which binds ``lock`` and ``log_out``."""

    counter: Counter

    def _app(self) -> Any:
        return getattr(self, "app")  # noqa: B009 (the Screen's, once mixed in)

    def action_lock(self) -> None:
        lock = getattr(self._app(), "lock", None)
        if callable(lock):
            lock()

    def action_log_out(self) -> None:
        if self.counter.operator is not None:
            self._app().push_screen(HandoverScreen(self.counter), self._handed_over)

    def _handed_over(self, confirmed: bool | None) -> None:
        log_out = getattr(self._app(), "log_out", None)
        if confirmed and callable(log_out):
            log_out()
            return
        self.focus_card()  # not confirmed: back to the card field, where the desk was

    def focus_card(self) -> None:
        try:
            getattr(self, "query_one")("#card_no", Input).focus()  # noqa: B009
        except NoMatches:
            pass


class Desk(ShiftKeys):
    """The base of a staff desk: ``class LabDesk(Desk, Screen[None])`` (Desk first).

    To build a desk on it:

    - set ``self.counter`` in ``__init__`` and call :meth:`bind_desk_keys` (again in
      ``relabel``): the desk's own ``KEYS``, then the shift's (F12 lock, Ctrl+O log out:
      their actions are here), then Esc ``clear`` (unless ``CLEARS`` is False), and the
      ``MOVE_KEYS`` unshown;
    - give the message line its colours with :func:`desk_css` (``DEFAULT_CSS =
      desk_css("LabDesk", own_rules)``);
    - compose a :class:`StatusBar` (reader notices go there), an ``Input`` with id
      ``card_no`` (focused again after a shift slip is not confirmed) and a ``Static``
      with id ``message`` (what :meth:`say` writes);
    - override :meth:`lookup`: what a tapped card does at this desk (usually a
      ``@work(exclusive=True, exit_on_error=False, group="lookup")`` worker running
      ``counter.desk.check(card_no, entry, tapped)`` first, so every offline card check
      holds).  A card number typed into ``#card_no`` is the desk's own
      ``@on(Input.Submitted, "#card_no")`` handler, usually ``lookup(text, "manual")``;
    - give it ``relabel()`` (after a language switch) and ``reset()`` (log out: nothing
      of the last operator's left on screen), which the app calls.

    A step that charges the deposit (a check-in, a dispensing, a consultation) may be
    refused for want of a supervisor (offline past the limits, a card number typed by
    hand): the desk hands the refusal to :meth:`ask_supervisor`, which asks for the
    approval and does the step again with it.

    Do not define ``on_card_tapped`` or ``on_reader_notice`` in the desk as well:
    Textual calls every class's handler along the MRO, so both would run.
    """

    #: the desk's own keys (key, action, label key, priority), shown in this order
    KEYS: ClassVar[list[KeySpec]] = []
    #: the shift's keys, after the desk's own
    SHIFT_KEYS: ClassVar[list[KeySpec]] = [("f12", "lock", "key.lock", True),
                                           ("ctrl+o", "log_out", "key.log_out", True)]
    #: Esc clears the patient off the desk (``action_clear``), shown last
    CLEARS: ClassVar[bool] = True
    #: keys bound but not shown: (key, action), e.g. the cursor keys moving a list's
    #: selection while the card field has the focus
    MOVE_KEYS: ClassVar[list[tuple[str, str]]] = []

    def bind_desk_keys(self) -> None:
        """Bind the desk's keys with labels in the counter's language (again after a
        language switch)."""
        keys = [*self.KEYS, *self.SHIFT_KEYS]
        if self.CLEARS:
            keys.append(("escape", "clear", "key.clear", True))
        bind_keys(self._node(), self.counter, keys)
        bindings = self._node()._bindings.key_to_bindings
        for key, action in self.MOVE_KEYS:
            bindings[key] = [Binding(key, action, show=False)]

    def _node(self) -> Any:
        return self  # (the Screen, once mixed in)

    def _one(self, *query: Any) -> Any:
        return getattr(self, "query_one")(*query)  # noqa: B009 (the Screen's)

    def on_card_tapped(self, message: CardTapped) -> None:
        tapped = message.tapped if isinstance(message.tapped, Tapped) else None
        self.lookup(message.card_no, message.entry, tapped=tapped)

    def lookup(self, card_no: str, entry: str = "chip", tapped: Tapped | None = None) -> Any:
        """What a card tap does at this desk: every desk overrides it."""
        raise NotImplementedError(f"{type(self).__name__} does not say what a tap does")

    def on_reader_notice(self, message: ReaderNotice) -> None:
        status = self._one(StatusBar)
        status.reader_text = message.text
        status.reader_problem = message.problem

    # -- the message line -------------------------------------------------------------------
    def say(self, text: str, kind: str = "") -> None:
        say_in(self._one("#message", Static), text, kind)

    @property
    def message_text(self) -> str:
        return str(self._one("#message", Static).render())

    # -- a step a supervisor must approve ---------------------------------------------------
    def ask_supervisor(self, exc: BaseException, view: PatientView | None, about: str,
                       step: Step, question: Callable[[Any], str],
                       done: Callable[[Any], object],
                       cancelled: Callable[[], object] | None = None) -> bool:
        """If ``exc`` refused a step for want of a supervisor (past the offline limit, a
        card number typed by hand), say so on the message line and ask for the approval
        (:class:`~edge_node.tui.screens.approval.ApprovalForm`: ``about`` the step,
        ``step(service, approval)`` done again with it, ``question(dry run's receipt)``
        to confirm); ``done(receipt)`` once it is done, ``cancelled()`` if it is not.
        False for any other refusal (nothing asked: the desk says it)."""
        problems = lifted_by_approval(exc)
        if not problems:
            return False
        self.say(error_text(self.counter, exc), "warning")

        def back(receipt: object) -> None:
            self.focus_card()
            if receipt is not None:
                done(receipt)
            elif cancelled is not None:
                cancelled()
        self._app().push_screen(ApprovalForm(self.counter, view, about, problems, step,
                                             question), back)
        return True
