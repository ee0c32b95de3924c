"""Rules checked before an operation is appended: what this counter may do, given what it knows.

Each rule is a plain function ``(state, body, config) -> list[Problem]``.  The fold
never consults them (a remote event is a fact); the ledger runs :func:`check` on every
*local* operation before signing it, inside the same transaction, so nothing that
breaks a rule is ever written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.errors import Problem
from protocol.fold import Card, State
from protocol.money import yuan

Fen = int


@dataclass(frozen=True, slots=True)
class RuleConfig:
    registration_fee: Fen = 500  # ¥5.00: the first deposit must cover it (DOMAIN 3.2)


def _patient_known(state: State, pid: str) -> list[Problem]:
    if pid not in state.patients:
        return [Problem("patient.unknown", f"no patient {pid} is known at this counter",
                        "patient_id")]
    merged = state.patients[pid].merged_into
    if merged:
        return [Problem("patient.merged", f"patient {pid} was merged into {merged}; use that "
                        "record", "patient_id")]
    return []


def _usable_card(state: State, card_no: str, pid: str, field: str = "card_no") -> list[Problem]:
    card: Card | None = state.cards.get(card_no)
    if card is None:
        return [Problem("card.unknown", f"card {card_no} is not known at this counter", field)]
    if card.patient_id != pid:
        return [Problem("card.wrong_patient", f"card {card_no} belongs to another patient", field)]
    if card.status == "lost":
        return [Problem("card.lost", f"card {card_no} was reported lost: keep it and ask for ID",
                        field)]
    if card.status == "replaced":
        return [Problem("card.replaced", f"card {card_no} was replaced by {card.replaced_by}",
                        field)]
    if card.status != "active":
        return [Problem("card.blocked", f"card {card_no} is blocked", field)]
    return []


def _registered(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    if b["patient_id"] in state.patients:
        return [Problem("patient.exists", f"patient {b['patient_id']} already exists",
                        "patient_id")]
    return []


def _updated(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    return _patient_known(state, b["patient_id"])


def _issued(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    out = _patient_known(state, b["patient_id"])
    if b["card_no"] in state.cards:
        out.append(Problem("card.exists", f"card {b['card_no']} has already been issued",
                           "card_no"))
    return out


def _lost(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    return _patient_known(state, b["patient_id"]) or _usable_card(state, b["card_no"],
                                                                   b["patient_id"])


def _replaced(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    out = _patient_known(state, b["patient_id"])
    old = state.cards.get(b["old_card_no"])
    if old is None:
        out.append(Problem("card.unknown", f"card {b['old_card_no']} is not known at this counter",
                           "old_card_no"))
    elif old.patient_id != b["patient_id"]:
        out.append(Problem("card.wrong_patient", f"card {b['old_card_no']} belongs to another "
                           "patient", "old_card_no"))
    elif old.status not in ("active", "lost"):
        out.append(Problem("card.already_replaced", f"card {b['old_card_no']} was already "
                           f"replaced by {old.replaced_by or 'another card'}", "old_card_no"))
    if b["new_card_no"] in state.cards:
        out.append(Problem("card.exists", f"card {b['new_card_no']} has already been issued",
                           "new_card_no"))
    return out


def _card_if_given(state: State, b: dict[str, Any]) -> list[Problem]:
    return _usable_card(state, b["card_no"], b["patient_id"]) if "card_no" in b else []


def _deposited(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    out = _patient_known(state, b["patient_id"]) or _card_if_given(state, b)
    acct = state.account(b["patient_id"])
    if acct.deposited == 0 and b["amount"] < cfg.registration_fee:
        out.append(Problem("deposit.below_registration_fee",
                           f"the first deposit must cover the registration fee "
                           f"{yuan(cfg.registration_fee)}; got {yuan(b['amount'])}", "amount"))
    return out


def _charged(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    out = _patient_known(state, b["patient_id"]) or _card_if_given(state, b)
    if out:
        return out
    if b["charge_id"] in state.charges:
        return [Problem("charge.exists", f"charge {b['charge_id']} already exists", "charge_id")]
    acct = state.account(b["patient_id"])
    if acct.closed:
        return [Problem("account.closed", "the account was settled; a new deposit reopens it")]
    if acct.available < b["amount"]:
        short = b["amount"] - acct.available
        credit = f" + credit {yuan(acct.credit_limit)}" if acct.credit_limit else ""
        return [Problem("charge.insufficient",
                        f"balance {yuan(acct.balance)}{credit} does not cover {yuan(b['amount'])}"
                        f": {yuan(short)} short", "amount")]
    return []


def _refunded(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    out = _patient_known(state, b["patient_id"])
    charge = state.charges.get(b["charge_id"])
    if charge is None or charge.amount == 0:
        return [*out, Problem("refund.unknown_charge", f"charge {b['charge_id']} is not known "
                              "at this counter", "charge_id")]
    if charge.patient_id != b["patient_id"]:
        return [*out, Problem("refund.wrong_patient", "that charge belongs to another patient",
                              "charge_id")]
    if b["amount"] > charge.refundable:
        out.append(Problem("refund.exceeds_charge",
                           f"only {yuan(charge.refundable)} of charge {b['charge_id']} "
                           f"({yuan(charge.amount)}) is left to refund; asked {yuan(b['amount'])}",
                           "amount"))
    return out


def _settled(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    out = _patient_known(state, b["patient_id"])
    if out:
        return out
    acct = state.account(b["patient_id"])
    if acct.balance < 0:
        return [Problem("settle.owing", f"the patient owes {yuan(-acct.balance)}: collect it "
                        "before settling", "amount")]
    if acct.closed and acct.balance == 0:
        return [Problem("settle.already", "the account is already settled")]
    if b["amount"] != acct.balance:
        return [Problem("settle.partial", f"settlement returns the whole balance "
                        f"{yuan(acct.balance)}, not {yuan(b['amount'])}", "amount")]
    return []


def _credit(state: State, b: dict[str, Any], cfg: RuleConfig) -> list[Problem]:
    return _patient_known(state, b["patient_id"])


Rule = Callable[[State, dict[str, Any], RuleConfig], list[Problem]]

RULES: dict[str, Rule] = {
    "patient.registered": _registered,
    "patient.updated": _updated,
    "card.issued": _issued,
    "card.reported_lost": _lost,
    "card.replaced": _replaced,
    "account.deposited": _deposited,
    "account.charged": _charged,
    "account.refunded": _refunded,
    "account.settled": _settled,
    "account.credit_granted": _credit,
}


def check(state: State, kind: str, body: dict[str, Any], config: RuleConfig) -> list[Problem]:
    """Every rule problem with appending ``kind``/``body`` to a ledger in ``state``."""
    rule = RULES.get(kind)
    if rule is None:
        return [Problem("kind.not_local", f"{kind} events cannot be written at a counter")]
    return rule(state, body, config)
