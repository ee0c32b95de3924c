"""The audit trail (issue 11): sensitive actions that are not business, as signed events.

Theory of operation
-------------------
Most sensitive actions already are signed business events (refunds, loss reports,
replacements, green channel, supervisors' approvals named in charges, central's
remedies, staff changes).  The rest — a login or a wrong PIN at a counter, a patient's
record opened at a desk, an export, a counter enrolled, revoked or given a new key at
central, a setting changed at central — are declared here as kinds that fold into no
record and move no money: they *are* the trail.  Being ordinary signed, hash-chained
events, they sync like the rest and cannot be edited afterwards;
``onecard-central audit log`` (:mod:`central.trail`) reads them beside the business
kinds.

A body never carries a national ID or a phone number: a record opened names the patient
id only, a login names a staff id only when that id exists (an id typed at the login
screen that no one has may be a PIN typed in the wrong box: it is not written), and a
setting's old and new values are refused when they hold a long run of digits.

Kinds:

- ``audit.login`` (counter) — an attempt to log in or approve at a counter, and its
  outcome.
- ``audit.record_opened`` (counter) — a desk opened a patient's record: by card, from a
  search or from its queue.
- ``audit.exported`` (counter or central) — something was exported: what, how many
  rows, where to.
- ``audit.node_changed`` (central) — a counter enrolled, revoked or given a new key; or
  central's own key rotated (node ``central``, action ``rotate``): then the body names
  the new key (``public_key``) and its first seq, and, signed with central's old key as
  the last event that key signs, it is the statement counters that pinned the old key
  follow to the new one (:mod:`protocol.rotation`).
- ``audit.config_changed`` (central) — a setting central holds changed.
"""

from __future__ import annotations

import re
from typing import Any

from protocol.core import (
    CENTRAL_ONLY,
    COUNTER,
    At,
    Kind,
    Tx,
    no_money,
    no_notice,
    no_records,
    no_report,
    no_rule,
    say,
)
from protocol.crypto import fingerprint as key_fingerprint
from protocol.errors import Problem
from protocol.event import CENTRAL
from protocol.fields import Body, Field, body, choice, ident, spec, text

OUTCOMES = ("ok", "wrong_pin", "locked", "disabled", "unknown", "refused")
PURPOSES = ("login", "approval")
HOW = ("card", "search", "queue")
DESTINATIONS = ("file", "stdout", "printer", "screen")
NODE_ACTIONS = ("enrol", "revoke", "rotate")
_LONG_DIGITS = re.compile(r"[0-9]{11,}")  # a phone (11) or national ID (18)
_KEY_HEX = re.compile(r"^[0-9a-f]{64}$")

LABELS = {
    "outcome.ok": ("成功", "ok"), "outcome.wrong_pin": ("密码错误", "wrong PIN"),
    "outcome.locked": ("已锁定", "locked"), "outcome.disabled": ("已停用", "disabled"),
    "outcome.unknown": ("无此工号", "unknown id"), "outcome.refused": ("被拒绝", "refused"),
    "how.card": ("刷卡", "card"), "how.search": ("查询", "search"),
    "how.queue": ("队列", "queue"),
    "action.enrol": ("登记", "enrolled"), "action.revoke": ("吊销", "revoked"),
    "action.rotate": ("换密钥", "new key"),
}


def _word(key: str, lang: str) -> str:
    return say(LABELS.get(key, (key.split(".", 1)[-1],) * 2), lang)


def _optional_ident() -> Field:
    return ident(required=False)


# -- bodies -----------------------------------------------------------------------------
@body
class Login(Body):
    #: "" when the id typed is no one's (it may be a PIN typed in the wrong box)
    staff_id: str = spec(_optional_ident(), "")
    outcome: str = spec(choice(OUTCOMES))
    desk: str = spec(_optional_ident(), "")  # the counter's role (cashier, doctor …)
    purpose: str = spec(choice(PURPOSES, required=False), "login")


@body
class RecordOpened(Body):
    patient_id: str = spec(ident())
    how: str = spec(choice(HOW))
    desk: str = spec(_optional_ident(), "")


@body
class Exported(Body):
    what: str = spec(ident())  # e.g. report.daily, audit.log, conflicts
    rows: int = spec(Field(int, lo=0, hi=1_000_000_000))
    destination: str = spec(choice(DESTINATIONS))


@body
class NodeChanged(Body):
    node: str = spec(ident())
    action: str = spec(choice(NODE_ACTIONS))
    role: str = spec(_optional_ident(), "")
    fingerprint: str = spec(text(64, required=False, lo=0), "")
    from_seq: int = spec(Field(int, False, lo=0, hi=1_000_000_000_000), 0)
    #: the new public key in hex: required when central rotates its own key (counters
    #: follow it), optional otherwise
    public_key: str = spec(text(64, required=False, lo=64), "")

    def problems(self) -> list[Problem]:
        if self.public_key and not _KEY_HEX.match(self.public_key):
            return [Problem("trail.public_key", "a public key is 64 lowercase hex digits",
                            "public_key")]
        if self.public_key and self.fingerprint and self.fingerprint != key_fingerprint(
                bytes.fromhex(self.public_key)):
            return [Problem("trail.fingerprint", "the fingerprint is not the public key's",
                            "fingerprint")]
        if self.node == CENTRAL and self.action == "rotate" and (
                not self.public_key or self.from_seq < 2):
            return [Problem("trail.central_rotation", "central's key rotation names its new "
                            "public key and the seq it signs from (2 or later)",
                            "public_key" if not self.public_key else "from_seq")]
        return []


@body
class ConfigChanged(Body):
    key: str = spec(ident())
    old: str = spec(text(200, required=False, lo=0), "")
    new: str = spec(text(200, required=False, lo=0), "")

    def problems(self) -> list[Problem]:
        for name in ("old", "new"):
            if _LONG_DIGITS.search(getattr(self, name)):
                return [Problem("trail.identifies", "a setting's value must not carry a "
                                "national ID or phone number", name)]
        return []


# -- describing ---------------------------------------------------------------------------
def _describe_login(b: Login, lang: str) -> str:
    who = b.staff_id or say(("（未知工号）", "(unknown id)"), lang)
    what = _word(f"outcome.{b.outcome}", lang)
    purpose = say(("主管批准", "approval"), lang) if b.purpose == "approval" else ""
    parts = [who, what, *( [purpose] if purpose else []), *([b.desk] if b.desk else [])]
    return " ".join(parts)


def _describe_opened(b: RecordOpened, lang: str) -> str:
    return " ".join([b.patient_id, _word(f"how.{b.how}", lang), *([b.desk] if b.desk else [])])


def _describe_exported(b: Exported, lang: str) -> str:
    return say((f"{b.what}：{b.rows} 行 → {b.destination}",
                f"{b.what}: {b.rows} rows → {b.destination}"), lang)


def _describe_node(b: NodeChanged, lang: str) -> str:
    parts = [b.node, _word(f"action.{b.action}", lang)]
    if b.role:
        parts.append(b.role)
    if b.fingerprint:
        parts.append(b.fingerprint)
    if b.from_seq:
        parts.append(say((f"自 #{b.from_seq}", f"from #{b.from_seq}"), lang))
    return " ".join(parts)


def _describe_config(b: ConfigChanged, lang: str) -> str:
    none = say(("（无）", "(none)"), lang)
    return f"{b.key}: {b.old or none} → {b.new or none}"


def _nothing(tx: Tx, at: At, b: Any) -> None:
    """The kind changes no record: the event itself is the trail."""


def _kind(name: str, b: type[Any], signer: str, title: tuple[str, str],
          describe: Any) -> Kind[Any]:
    return Kind(name=name, body=b, signer=signer, title=title, records=no_records,
                patients=lambda x: (), fold=_nothing, money=no_money, rule=no_rule,
                describe=describe, report=no_report, notice=no_notice)


LOGIN = _kind("audit.login", Login, COUNTER, ("登录", "Login"), _describe_login)
RECORD_OPENED = _kind("audit.record_opened", RecordOpened, COUNTER,
                      ("查看档案", "Record opened"), _describe_opened)
EXPORTED = _kind("audit.exported", Exported, COUNTER, ("导出", "Export"), _describe_exported)
NODE_CHANGED = _kind("audit.node_changed", NodeChanged, CENTRAL_ONLY,
                     ("柜台变更", "Counter changed"), _describe_node)
CONFIG_CHANGED = _kind("audit.config_changed", ConfigChanged, CENTRAL_ONLY,
                       ("设置变更", "Setting changed"), _describe_config)

KINDS = (LOGIN, RECORD_OPENED, EXPORTED, NODE_CHANGED, CONFIG_CHANGED)
RECORDS: tuple[type, ...] = ()
