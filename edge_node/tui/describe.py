"""How events and patients read on screen: one place, so panel and history agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from zoneinfo import ZoneInfo

from edge_node.i18n import Translator
from edge_node.search import mask_phone as mask_phone  # the panel's and the search's
from protocol.domain import REGISTRY
from protocol.event import Event
from protocol.money import yuan
from protocol.remedy import Merged


def shown(tr: Translator, value: str | None) -> str:
    """A patient detail for a screen: "-" when there is none, and a sealed one this counter
    or operator may not open (:mod:`protocol.privacy`) says so."""
    if value is None:
        return tr("privacy.sealed")
    return value or "-"


def local_time(ms: int, timezone: str, fmt: str = "%m-%d %H:%M") -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).strftime(fmt)


def age(birth_date: str, now_ms: int, timezone: str) -> int | None:
    """Whole years since ``birth_date``; None when unknown or after today (a wrong date
    from elsewhere shows as unknown, never as a negative age)."""
    try:
        born = dt.date.fromisoformat(birth_date)
    except ValueError:
        return None
    today = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone)).date()
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years if years >= 0 else None


def event_amount(ev: Event, family: Collection[str]) -> int | None:
    """The event's effect in fen on the balance of the patient whose records are
    ``family`` (one id, or a survivor with the records merged into it; moving money
    between those is no effect).  ``None``: an event that moves no money."""
    money = REGISTRY.money(ev)
    if not money.flow:
        return None
    return sum(money.delta(pid) for pid in family)


def family_of(pid: str, events: Iterable[Event]) -> frozenset[str]:
    """``pid`` and every record merged into it (directly or through another), as far as
    the ``patient.merged`` events among ``events`` say."""
    merged_into: dict[str, list[str]] = {}
    for e in events:
        f = REGISTRY.fact(e)
        if f is not None and isinstance(f.body, Merged):
            merged_into.setdefault(f.body.survivor_id, []).append(f.body.merged_id)
    out, todo = {pid}, [pid]
    while todo:
        for m in merged_into.get(todo.pop(), ()):
            if m not in out:
                out.add(m)
                todo.append(m)
    return frozenset(out)


def event_title(tr: Translator, ev: Event) -> str:
    """The kind's name in the counter's language (its own id for a kind this version
    does not know)."""
    return REGISTRY.title(ev.kind, tr.language)


def event_detail(tr: Translator, ev: Event) -> str:
    """The event's detail line (a bad body or an unknown kind says so; never raises)."""
    return REGISTRY.describe(ev, tr.language)


def signed_yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    return ("+" if fen > 0 else "") + yuan(fen)
