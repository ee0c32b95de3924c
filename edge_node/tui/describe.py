"""How events and patients read on screen: one place, so panel and history agree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from zoneinfo import ZoneInfo

from edge_node.i18n import Translator
from protocol.event import CENTRAL, Event
from protocol.money import yuan
from protocol.remedies import MONEY_KINDS, balance_delta, family


def local_time(ms: int, timezone: str, fmt: str = "%m-%d %H:%M") -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).strftime(fmt)


def age(birth_date: str, now_ms: int, timezone: str) -> int | None:
    try:
        born = dt.date.fromisoformat(birth_date)
    except ValueError:
        return None
    today = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone)).date()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def mask_phone(phone: str) -> str:
    digits = phone.replace(" ", "").replace("-", "")
    if len(digits) < 7:
        return phone
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def event_amount(ev: Event, family: Collection[str]) -> int | None:
    """The event's effect in fen on the balance of the patient whose records are
    ``family`` (one id, or a survivor with the records merged into it; moving money
    between those is no effect).  ``None``: a kind that moves no money."""
    if ev.kind not in MONEY_KINDS:
        return None
    return sum(balance_delta(ev, pid) for pid in family)


def family_of(pid: str, events: Iterable[Event]) -> frozenset[str]:
    """``pid`` and every record merged into it (directly or through another), as far as
    the ``patient.merged`` events among ``events`` say."""
    merged_into: dict[str, list[str]] = {}
    for e in events:
        if e.kind == "patient.merged" and e.node == CENTRAL:
            merged_into.setdefault(e.body["survivor_id"], []).append(e.body["merged_id"])
    return family(pid, merged_into)


def event_detail(tr: Translator, ev: Event) -> str:
    b = ev.body
    match ev.kind:
        case "account.deposited":
            return f"{tr('method.' + b['method'])} {b.get('receipt_no', '')}"
        case "account.charged":
            names = ", ".join(f"{i['name']}×{i['qty']}" for i in b["items"][:3])
            more = "…" if len(b["items"]) > 3 else ""
            return f"{b['charge_id']} {names}{more}"
        case "account.refunded":
            return f"{tr('to.' + b['to'])} {yuan(b['amount'])} {b['charge_id']}"
        case "account.settled":
            return f"{tr('method.' + b['method'])} {b['invoice_no']}"
        case "account.credit_granted":
            return f"{yuan(b['limit'])} {b['reason']}"
        case "card.issued":
            return str(b["card_no"])
        case "card.reported_lost":
            return f"{b['card_no']} ({tr('proof.' + b['verified_by'])})"
        case "card.replaced":
            return f"{b['old_card_no']} → {b['new_card_no']}"
        case "debt.recorded":
            return f"{yuan(b['amount'])} {b['reason']}"
        case "charge.reversed":
            return f"{b['charge_id']} {b['reason']}"
        case "patient.merged":
            return f"{b['merged_id']} → {b['survivor_id']} {b['reason']}"
        case "card.blocked":
            return f"{b['card_no']} {b['reason']}"
        case "conflict.accepted" | "conflict.withdrawn":
            return str(b["reason"])
        case "conflict.raised":
            return str(b["summary"])
    return ""


def signed_yuan(fen: int | None) -> str:
    if fen is None:
        return ""
    return ("+" if fen > 0 else "") + yuan(fen)
