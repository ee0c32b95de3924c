"""Staff and their roles, signed by central: who may log in at which counter, as what.

Theory of operation
-------------------
IT enrols each member of staff at central (``onecard-central staff add``); central signs
``staff.enrolled`` and every later change (``staff.changed``, ``staff.disabled``,
``staff.enabled``, ``staff.pin_reset``), and the events sync to every counter like any
other.  A counter folds them into :class:`StaffMember` records and logs people in from
those records alone, offline (:mod:`edge_node.staff`); disabling someone at central
reaches every counter with its next sync.

The PIN hash in the events is peppered: an Argon2id hash of the PIN keyed (HMAC-SHA256)
with the hospital's pepper, a secret that is never in the ledger (a file beside the node
key, :mod:`edge_node.staff`).  A copied ledger file alone therefore cannot confirm a PIN
guess.  What a counter counts locally — wrong PINs in a row, the lockout — is not a
signed fact and stays in the counter's own table.

The fold is order-independent: each field group (name, roles, counters, PIN hash) is
the last writer by :attr:`~protocol.core.At.order` among the events that set it, and
``disabled`` is the latest of ``staff.disabled``/``staff.enabled``.  All five kinds are
central's alone (a counter's is flagged and never folded).

Roles: :data:`ROLES`.  What each role may do at a counter is one table in
:mod:`edge_node.roles`.  Ledgers from before central staff know ``admin`` (the counter's
own staff table): it reads as IT and supervisor (:data:`LEGACY_ROLES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.core import (
    CENTRAL_ONLY,
    At,
    Kind,
    Record,
    State,
    Tx,
    later,
    no_money,
    no_notice,
    no_report,
    no_rule,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import Body, Field, body, choice, ident, spec, text

ROLES = ("cashier", "triage", "doctor", "lab", "pharmacist", "supervisor", "it")
#: the counter-local roles of ledgers from before central staff, as today's roles
LEGACY_ROLES: dict[str, tuple[str, ...]] = {"admin": ("it", "supervisor")}
STAFF_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
PIN_HASH_PREFIX = "$argon2"
LABELS = {"role.cashier": ("收费员", "cashier"), "role.triage": ("分诊", "triage"),
          "role.doctor": ("医生", "doctor"), "role.lab": ("检验/检查", "lab"),
          "role.pharmacist": ("药剂师", "pharmacist"), "role.supervisor": ("主管", "supervisor"),
          "role.it": ("信息科", "IT")}


def expand_roles(roles: str | tuple[str, ...] | list[str]) -> frozenset[str]:
    """Today's roles of a comma-joined or listed set of roles (``admin`` read as IT and
    supervisor; unknown words dropped)."""
    words = roles.split(",") if isinstance(roles, str) else list(roles)
    out: set[str] = set()
    for w in (x.strip() for x in words):
        out.update(LEGACY_ROLES.get(w, (w,) if w in ROLES else ()))
    return frozenset(out)


# -- the record -------------------------------------------------------------------------
@record("staff_members", ("staff_id",))
@dataclass(frozen=True, slots=True)
class StaffMember(Record):
    """One member of staff as central signed them (the fold of their staff events)."""

    staff_id: str
    name: str = ""
    name_at: str = ""
    roles: str = ""  # comma-joined, sorted
    roles_at: str = ""
    at_nodes: str = ""  # comma-joined counter ids ("": every counter)
    nodes_at: str = ""
    pin_hash: str = ""  # Argon2id of the peppered PIN ("": none yet: cannot log in)
    pin_at: str = ""
    disabled: int = 0
    status_at: str = ""  # the latest of staff.disabled / staff.enabled
    enrolled_at: str = ""  # the latest staff.enrolled ("": only changes have arrived)

    @property
    def role_set(self) -> frozenset[str]:
        return expand_roles(self.roles)

    def may_use(self, node: str) -> bool:
        """Whether this person may log in at counter ``node``."""
        return not self.at_nodes or node in self.at_nodes.split(",")


def member(state: State, staff_id: str) -> StaffMember | None:
    return state.get(StaffMember, staff_id)


def last_change(m: StaffMember) -> tuple[str, str]:
    """The merge order of the latest signed change to ``m`` and its kind: ``staff.enrolled``
    (which sets every field at once), ``staff.disabled``/``staff.enabled``,
    ``staff.pin_reset`` or ``staff.changed``; ``("", "")`` when no event set anything."""
    status = "staff.disabled" if m.disabled else "staff.enabled"
    order, kind = max(((m.enrolled_at, "staff.enrolled"), (m.status_at, status),
                       (m.pin_at, "staff.pin_reset"), (m.name_at, "staff.changed"),
                       (m.roles_at, "staff.changed"), (m.nodes_at, "staff.changed")),
                      key=lambda x: x[0])  # the first of equals: enrolled over its fields
    return (order, kind) if order else ("", "")


# -- bodies -----------------------------------------------------------------------------

def _roles(required: bool = True) -> Field:
    return Field(list, required, lo=1 if required else 0, hi=len(ROLES), each=choice(ROLES))


def _pin_hash() -> Field:
    return Field(str, lo=20, hi=256)


def _role_problems(roles: tuple[str, ...]) -> list[Problem]:
    if len(set(roles)) != len(roles):
        return [Problem("staff.role_twice", "a role is listed twice", "roles")]
    return []


def _hash_problems(pin_hash: str) -> list[Problem]:
    if not pin_hash.startswith(PIN_HASH_PREFIX):
        return [Problem("staff.pin_hash", "the PIN hash is not an Argon2 hash", "pin_hash")]
    return []


@body
class Enrolled(Body):
    staff_id: str = spec(ident())
    name: str = spec(text(64))
    roles: tuple[str, ...] = spec(_roles())
    pin_hash: str = spec(_pin_hash())
    #: the counters this person may log in at (none: every counter)
    at_nodes: tuple[str, ...] = spec(Field(list, False, lo=0, hi=50, each=ident()), ())

    def problems(self) -> list[Problem]:
        return _role_problems(self.roles) + _hash_problems(self.pin_hash)


@body
class Changed(Body):
    """A new name, roles or set of counters (only what is given changes; ``at_nodes``
    given empty: every counter)."""

    staff_id: str = spec(ident())
    name: str = spec(text(64, required=False, lo=0), "")
    roles: tuple[str, ...] = spec(_roles(False), ())
    at_nodes: tuple[str, ...] | None = spec(Field(list, False, lo=0, hi=50, each=ident()),
                                            None)

    def problems(self) -> list[Problem]:
        if not self.name and not self.roles and self.at_nodes is None:
            return [Problem("staff.no_change", "say what changes: name, roles or counters",
                            "roles")]
        return _role_problems(self.roles)


@body
class Status(Body):
    staff_id: str = spec(ident())
    reason: str = spec(text(200, required=False, lo=0), "")


@body
class PinReset(Body):
    staff_id: str = spec(ident())
    pin_hash: str = spec(_pin_hash())

    def problems(self) -> list[Problem]:
        return _hash_problems(self.pin_hash)


# -- folds ------------------------------------------------------------------------------
def _set(m: StaffMember, at: At, *, name: str = "", roles: tuple[str, ...] = (),
         at_nodes: tuple[str, ...] | None = None, pin_hash: str = "") -> StaffMember:
    changes: dict[str, object] = {}
    if name and later(at.order, m.name_at):
        changes["name"], changes["name_at"] = name, at.order
    if roles and later(at.order, m.roles_at):
        changes["roles"], changes["roles_at"] = ",".join(sorted(set(roles))), at.order
    if at_nodes is not None and later(at.order, m.nodes_at):
        changes["at_nodes"], changes["nodes_at"] = ",".join(sorted(set(at_nodes))), at.order
    if pin_hash and later(at.order, m.pin_at):
        changes["pin_hash"], changes["pin_at"] = pin_hash, at.order
    return m.evolve(**changes) if changes else m


def _fold_enrolled(tx: Tx, at: At, b: Enrolled) -> None:
    m = tx.get_or_new(StaffMember, b.staff_id)
    m = _set(m, at, name=b.name, roles=b.roles, at_nodes=b.at_nodes, pin_hash=b.pin_hash)
    if later(at.order, m.enrolled_at):
        m = m.evolve(enrolled_at=at.order)
    tx.put(m)


def _fold_changed(tx: Tx, at: At, b: Changed) -> None:
    m = tx.get_or_new(StaffMember, b.staff_id)
    tx.put(_set(m, at, name=b.name, roles=b.roles, at_nodes=b.at_nodes))


def _fold_status(disabled: int) -> Callable[[Tx, At, Status], None]:
    def fold(tx: Tx, at: At, b: Status) -> None:
        m = tx.get_or_new(StaffMember, b.staff_id)
        if later(at.order, m.status_at):
            m = m.evolve(disabled=disabled, status_at=at.order)
        tx.put(m)
    return fold


def _fold_pin(tx: Tx, at: At, b: PinReset) -> None:
    m = tx.get_or_new(StaffMember, b.staff_id)
    tx.put(_set(m, at, pin_hash=b.pin_hash))


def _role_words(roles: tuple[str, ...], lang: str) -> str:
    return "、".join(say(LABELS["role." + r], lang) for r in roles) if lang != "en" \
        else ", ".join(say(LABELS["role." + r], lang) for r in roles)


def _describe_enrolled(b: Enrolled, lang: str) -> str:
    where = ", ".join(b.at_nodes)
    return say((f"{b.staff_id} {b.name}：{_role_words(b.roles, 'zh')}"
                + (f"（仅 {where}）" if where else ""),
                f"{b.staff_id} {b.name}: {_role_words(b.roles, 'en')}"
                + (f" (only at {where})" if where else "")), lang)


def _describe_changed(b: Changed, lang: str) -> str:
    zh, en = [b.staff_id], [b.staff_id]
    if b.name:
        zh.append(f"姓名 {b.name}")
        en.append(f"name {b.name}")
    if b.roles:
        zh.append(f"角色 {_role_words(b.roles, 'zh')}")
        en.append(f"roles {_role_words(b.roles, 'en')}")
    if b.at_nodes is not None:
        zh.append("柜台 " + (", ".join(b.at_nodes) or "全部"))
        en.append("counters " + (", ".join(b.at_nodes) or "all"))
    return say(("，".join(zh), ", ".join(en)), lang)


def _describe_status(b: Status, lang: str) -> str:
    return b.staff_id + (f" — {b.reason}" if b.reason else "")


def _kind(name: str, b: type[Any], title: tuple[str, str], fold: Callable[[Tx, At, Any], None],
          describe: Callable[[Any, str], str]) -> Kind[Any]:
    return Kind(name=name, body=b, signer=CENTRAL_ONLY, title=title,
                records=lambda x: refs(StaffMember, x.staff_id), patients=lambda x: (),
                fold=fold, money=no_money, rule=no_rule, describe=describe,
                report=no_report, notice=no_notice)


ENROLLED = _kind("staff.enrolled", Enrolled, ("员工登记", "Staff enrolled"), _fold_enrolled,
                 _describe_enrolled)
CHANGED = _kind("staff.changed", Changed, ("员工信息变更", "Staff changed"), _fold_changed,
                _describe_changed)
DISABLED = _kind("staff.disabled", Status, ("员工停用", "Staff disabled"), _fold_status(1),
                 _describe_status)
ENABLED = _kind("staff.enabled", Status, ("员工启用", "Staff enabled"), _fold_status(0),
                _describe_status)
PIN_RESET = _kind("staff.pin_reset", PinReset, ("员工密码重置", "Staff PIN reset"), _fold_pin,
                  lambda b, lang: b.staff_id)

KINDS = (ENROLLED, CHANGED, DISABLED, ENABLED, PIN_RESET)
RECORDS = (StaffMember,)
