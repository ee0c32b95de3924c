"""Which desk a counter shows: one home screen per role, sharing ledger, sync and reader.

A counter shows only its role's desk (``role`` in its config): the cashier's desk
(:class:`~edge_node.tui.screens.home.HomeScreen`) for ``cashier``, and each other role's
own.  A desk is a :class:`~textual.screen.Screen` made from the
:class:`~edge_node.tui.context.Counter` that

* handles :class:`~edge_node.tui.messages.CardTapped` and
  :class:`~edge_node.tui.messages.ReaderNotice` (the app posts every tap to it),
* has ``reset()``, which clears every patient detail from it (log out),
* holds a ``StatusBar`` (refreshed at login) and a ``KeyBar``.

A role with no desk of its own yet (the pharmacy, for now) gets the cashier's.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.screen import Screen

from edge_node.tui.context import Counter
from edge_node.tui.screens.doctor import DoctorDesk
from edge_node.tui.screens.home import HomeScreen


def _cashier(counter: Counter) -> Screen[None]:
    return HomeScreen(counter)


def _triage(counter: Counter) -> Screen[None]:
    from edge_node.tui.screens.triage import TriageScreen

    return TriageScreen(counter)


def _kiosk(counter: Counter) -> Screen[None]:
    from edge_node.tui.screens.kiosk import KioskScreen

    return KioskScreen(counter)


def _doctor(counter: Counter) -> Screen[None]:
    return DoctorDesk(counter)


def _pharmacy(counter: Counter) -> Screen[None]:
    from edge_node.tui.screens.pharmacy import PharmacyDesk

    return PharmacyDesk(counter)


def _lab(counter: Counter) -> Screen[None]:
    from edge_node.tui.screens.lab import LabDesk

    return LabDesk(counter)


#: role → the desk it shows
DESKS: dict[str, Callable[[Counter], Screen[None]]] = {
    "cashier": _cashier,
    "triage": _triage,
    "kiosk": _kiosk,
    "doctor": _doctor,
    "pharmacy": _pharmacy,
    "lab": _lab,
}


def desk_for(counter: Counter) -> Screen[None]:
    return DESKS.get(counter.config.role, _cashier)(counter)
