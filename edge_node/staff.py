"""Counter staff: who may operate this counter, and their login by staff id + PIN.

Two sources, central's winning: the staff central signed (:mod:`protocol.staff`,
folded into ``staff_members`` from events that sync to every counter), and this
counter's own ``staff`` table (``onecard-edge staff add``: a counter with no central
staff yet, the demo, tests).  A staff id central knows logs in only as central says —
its own table's row of the same id is not looked at — so disabling someone at central
reaches every counter with its next sync.  Both log in offline.

Central's PIN hashes are *peppered*: Argon2id of HMAC-SHA256(pepper, PIN), where the
pepper is the hospital's secret in a file beside the node key (``pepper_file``, mode
0600, made by ``onecard-central init`` and copied to each counter when it is set up),
never in the ledger.  A copied ledger file alone cannot confirm a PIN guess.

PINs are stored only as Argon2id hashes (argon2-cffi's encoded form, which carries its
own cost parameters, so a hash made with cheaper test parameters still verifies).
Hashing is deliberately slow, so it runs in a worker thread, never on the event loop
and never in the ledger's thread.  After :data:`MAX_FAILED` wrong PINs in a row a staff
id is locked for :data:`LOCKOUT_MS`: a PIN has few digits, guessing must be slow.

The staff table lives in the counter's ledger file (migration 2) but is not an event
projection: it is local to this counter and is neither synced nor rebuilt.  The count
of wrong PINs of central's staff is local too (``staff_attempts``, migration 9): it is
not a signed fact.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge_node.errors import EdgeError
from edge_node.ledger import Ledger, Op
from edge_node.roles import DESK_ROLE
from protocol.staff import STAFF_ID_RE, StaffMember, expand_roles

#: the roles of this counter's own staff table (central's: protocol.staff.ROLES)
ROLES = ("cashier", "supervisor", "admin")
PEPPER_BYTES = 32
PIN_RE = re.compile(r"^[0-9]{4,12}$")
MAX_FAILED = 5
LOCKOUT_MS = 5 * 60 * 1000

_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
log = logging.getLogger("onecard.staff")
#: how a refusal's code reads as an ``audit.login`` outcome (protocol.trail.OUTCOMES)
_OUTCOME = {"login.wrong": "wrong_pin", "login.locked": "locked",
            "login.disabled": "disabled"}
UNKNOWN_OPERATOR = "-"  # the envelope's operator of an attempt with an id no one has


@dataclass(frozen=True, slots=True)
class Staff:
    """Who is logged in: ``role`` as recorded (central's: comma-joined), ``roles`` what
    they may do here (:mod:`edge_node.roles`; empty: read from ``role``)."""

    staff_id: str
    name: str
    role: str = "cashier"
    roles: frozenset[str] = field(default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        if not self.roles:
            object.__setattr__(self, "roles", expand_roles(self.role))

    @property
    def is_supervisor(self) -> bool:
        return "supervisor" in self.roles


# -- the pepper ---------------------------------------------------------------------------
class PepperError(EdgeError):
    """The pepper file is there but unusable (not 64 hex digits, readable by others)."""

    title = "Staff pepper"


def new_pepper() -> bytes:
    return secrets.token_bytes(PEPPER_BYTES)


def write_pepper(path: Path, pepper: bytes) -> None:
    """Write the pepper with mode 0600 from the start (like the node key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pepper.hex() + "\n")


def load_pepper(path: Path) -> bytes:
    """The pepper in ``path``: FileNotFoundError when there is none, PepperError when it
    is not one or others may read it."""
    text = path.read_text().strip()
    if path.stat().st_mode & 0o077:
        raise PepperError(f"the staff pepper {path} is readable by others: chmod 600 {path}")
    try:
        pepper = bytes.fromhex(text)
    except ValueError:
        pepper = b""
    if len(pepper) != PEPPER_BYTES:
        raise PepperError(f"{path} does not hold a staff pepper ({PEPPER_BYTES * 2} hex digits)")
    return pepper


def peppered(pepper: bytes, pin: str) -> str:
    """What is hashed for a PIN: HMAC-SHA256 of it keyed with the pepper (hex)."""
    return hmac.new(pepper, pin.encode(), hashlib.sha256).hexdigest()


def hash_pin(pin: str, pepper: bytes, *, hasher: PasswordHasher | None = None) -> str:
    """The peppered Argon2id hash central signs (slow: call it off the event loop)."""
    if len(pepper) != PEPPER_BYTES:
        raise PepperError("no staff pepper: central's PIN hashes need one")
    return (hasher or _HASHER).hash(peppered(pepper, pin))


class LoginRefused(EdgeError):
    """Wrong staff id or PIN, a disabled id, or too many wrong PINs; ``code`` says which."""

    title = "Login refused"

    def __init__(self, code: str, message: str, **values: object) -> None:
        super().__init__(message)
        self.code = code
        self.values = values  # for the message in the staff's language (``minutes`` …)


class StaffError(EdgeError):
    """A staff record could not be added (bad id, PIN or role, or the id exists)."""

    title = "Staff"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def add_staff(ledger: Ledger, staff_id: str, name: str, pin: str, role: str = "cashier",
                    *, hasher: PasswordHasher | None = None, now_ms: int | None = None,
                    replace: bool = False) -> Staff:
    """Add (or with ``replace``, reset) a staff member who may log in at this counter.

    For the CLI (``onecard-edge staff add``) and the demo.  Raises :class:`StaffError`.
    """
    if not STAFF_ID_RE.match(staff_id):
        raise StaffError("staff id: letters, digits, . _ - (up to 32), e.g. wang.li")
    if not PIN_RE.match(pin):
        raise StaffError("PIN: 4 to 12 digits")
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    if not name.strip():
        raise StaffError("name is required")
    pin_hash = await asyncio.to_thread((hasher or _HASHER).hash, pin)
    created = _now_ms() if now_ms is None else now_ms

    def tx(conn: sqlite3.Connection) -> None:
        exists = conn.execute("SELECT 1 FROM staff WHERE staff_id=?", (staff_id,)).fetchone()
        if exists and not replace:
            raise StaffError(f"staff id {staff_id} already exists")
        conn.execute("INSERT OR REPLACE INTO staff (staff_id, name, role, pin_hash, "
                     "created_ms) VALUES (?, ?, ?, ?, ?)",
                     (staff_id, name.strip(), role, pin_hash, created))
    await ledger.write(tx)
    return Staff(staff_id, name.strip(), role)


async def list_staff(ledger: Ledger) -> list[Staff]:
    """Everyone who may log in here: central's staff (not disabled, this counter among
    theirs) and this counter's own (an id central knows is central's)."""
    members: list[StaffMember] = await ledger.find(StaffMember, "disabled", 0, limit=1_000_000)
    central = {m.staff_id for m in await ledger.find(StaffMember, "disabled", 1,
                                                          limit=1_000_000)}
    out = {m.staff_id: Staff(m.staff_id, m.name, m.roles, m.role_set) for m in members
           if m.pin_hash and m.may_use(ledger.node_id)}
    central |= {m.staff_id for m in members}
    rows = await ledger.run(lambda c: c.execute(
        "SELECT staff_id, name, role FROM staff WHERE disabled=0 ORDER BY staff_id").fetchall())
    out.update({r[0]: Staff(*r) for r in rows if r[0] not in central})
    return [out[k] for k in sorted(out)]


async def disable_staff(ledger: Ledger, staff_id: str) -> bool:
    def tx(conn: sqlite3.Connection) -> bool:
        n = conn.execute("UPDATE staff SET disabled=1 WHERE staff_id=?", (staff_id,)).rowcount
        return bool(n)
    return bool(await ledger.write(tx))


@dataclass(frozen=True, slots=True)
class Approval:
    """A supervisor's credential, checked at this counter by :func:`approve` (their PIN,
    their role, not disabled or locked, not the operator): what the service takes for
    the businesses that need a second person, and whose id the signed event names."""

    staff_id: str
    name: str
    role: str


def supervisor_field(approval: Approval | None) -> dict[str, str]:
    """The event field naming the supervisor who approved (only a checked approval)."""
    return {"supervisor": approval.staff_id} if isinstance(approval, Approval) else {}


async def approve(ledger: Ledger, staff_id: str, pin: str, *, operator: str,
                  now_ms: int | None = None, pepper: bytes = b"") -> Approval:
    """A supervisor approving what ``operator`` is doing, by their own id and PIN.

    The PIN is checked as at login (the same count of wrong PINs and lockout, the same
    records: a supervisor central disabled cannot approve); then the approver must be a
    supervisor and another person than the operator.  Raises :class:`LoginRefused`
    (``approval.self``, ``approval.not_supervisor`` or a login code).
    """
    if staff_id.strip() == operator:
        raise LoginRefused("approval.self", "another person must approve: a supervisor, "
                           "not the operator")
    s = await login(ledger, staff_id, pin, now_ms=now_ms, pepper=pepper, purpose="approval")
    if not s.is_supervisor:
        raise LoginRefused("approval.not_supervisor",
                           f"{s.staff_id} is not a supervisor: ask a supervisor to approve",
                           staff=s.staff_id)
    return Approval(s.staff_id, s.name, s.role)


async def login(ledger: Ledger, staff_id: str, pin: str, *, now_ms: int | None = None,
                pepper: bytes = b"", desk: str = "", purpose: str = "login") -> Staff:
    """The staff member whose id and PIN these are; :class:`LoginRefused` otherwise
    (:func:`_login`), every attempt written to the audit trail (``audit.login``).

    The trail event is appended after the outcome is known and before it is returned
    or raised, on every path alike (a good PIN, a wrong one, a locked or disabled id),
    so writing it costs every attempt the same.  It cannot fail the login: a ledger
    that cannot sign (no key, recovering, a full disk) logs a warning and the outcome
    stands.  The wrong-PIN count and lockout are untouched by it (they are reserved in
    their own transaction before the PIN is checked, as before).  An id that no one has
    is not written (it may be a PIN typed in the wrong box): the event says ``unknown``.
    """
    sid = staff_id.strip()
    try:
        staff = await _login(ledger, staff_id, pin, now_ms=now_ms, pepper=pepper, desk=desk)
    except LoginRefused as exc:
        outcome = _OUTCOME.get(exc.code, "refused")
        known = outcome != "wrong_pin" or await _known(ledger, sid)
        await _audit(ledger, sid if known else "", outcome if known else "unknown", desk,
                     purpose)
        raise
    await _audit(ledger, staff.staff_id, "ok", desk, purpose)
    return staff


async def _known(ledger: Ledger, sid: str) -> bool:
    """Whether someone has staff id ``sid`` here (central's staff or this counter's)."""
    if not sid or not STAFF_ID_RE.match(sid):
        return False
    if await ledger.get(StaffMember, sid) is not None:
        return True
    rows = await ledger.run(lambda conn: conn.execute(
        "SELECT 1 FROM staff WHERE staff_id=?", (sid,)).fetchall())
    return bool(rows)


async def _audit(ledger: Ledger, sid: str, outcome: str, desk: str, purpose: str) -> None:
    """Append ``audit.login``; never raises (the login's outcome stands whatever)."""
    body = {"outcome": outcome, "purpose": purpose}
    if sid:
        body["staff_id"] = sid
    if desk and STAFF_ID_RE.match(desk):
        body["desk"] = desk
    try:
        await ledger.append(Op("audit.login", body), sid or UNKNOWN_OPERATOR)
    except Exception:  # the trail must not stop anyone logging in
        log.warning("audit.login not written (%s %s)", sid or "-", outcome, exc_info=True)


async def _login(ledger: Ledger, staff_id: str, pin: str, *, now_ms: int | None = None,
                 pepper: bytes = b"", desk: str = "") -> Staff:
    """The staff member whose id and PIN these are; :class:`LoginRefused` otherwise.

    Central's record of the id wins (:mod:`protocol.staff`, checked with ``pepper``);
    else this counter's own table, whose staff also act in the role of ``desk`` (the
    counter's config role, :data:`edge_node.roles.DESK_ROLE`).

    Wrong PINs are counted; the count resets on a good login.  An unknown id and a
    wrong PIN get the same message, so the screen does not confirm which ids exist.

    Each attempt is counted as a failure *before* its PIN is checked, in the ledger's
    one writer, and only then checked (slowly, in a thread): so attempts made at the
    same time cannot all slip past the lockout while the hashes are being checked — at
    most :data:`MAX_FAILED` are ever checked before the id locks.  A right PIN then
    takes its attempt back.
    """
    now = _now_ms() if now_ms is None else now_ms
    sid = staff_id.strip()
    member: StaffMember | None = await ledger.get(StaffMember, sid) if sid else None
    if member is not None:
        return await _login_central(ledger, member, pin, now, pepper)

    def reserve(conn: sqlite3.Connection) -> tuple[str, str, str, int, int] | None:
        row = conn.execute("SELECT name, role, pin_hash, disabled, failed, locked_until_ms "
                           "FROM staff WHERE staff_id=?", (sid,)).fetchone()
        if row is None:
            return None
        name, role, pin_hash, disabled, failed, locked_until = row
        if disabled or locked_until > now:
            return name, role, "", disabled, locked_until
        return name, role, pin_hash, 0, _count(conn, "staff", sid, failed, now)
    got = await ledger.write(reserve)
    if got is None:
        raise LoginRefused("login.wrong", "staff id or PIN is wrong")
    name, role, pin_hash, disabled, locked = got
    if disabled:
        raise LoginRefused("login.disabled", f"staff id {sid} is disabled: ask a supervisor")
    _refuse_locked(locked, now)
    if await _verify(pin_hash, pin):
        await ledger.write(lambda conn: conn.execute(
            "UPDATE staff SET failed=0, locked_until_ms=0 WHERE staff_id=?", (sid,)))
        desk_role = DESK_ROLE.get(desk)
        return Staff(sid, name, role, expand_roles(role) | ({desk_role} if desk_role else set()))
    _refuse_wrong(locked)


async def _login_central(ledger: Ledger, m: StaffMember, pin: str, now: int,
                         pepper: bytes) -> Staff:
    sid = m.staff_id
    if m.disabled:
        raise LoginRefused("login.disabled", f"staff id {sid} is disabled: ask a supervisor")
    if not pepper:
        raise LoginRefused("login.no_pepper", "this counter has no staff pepper installed, so "
                           "it cannot check central's staff PINs: ask IT (pepper_file)")

    def reserve(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT OR IGNORE INTO staff_attempts (staff_id) VALUES (?)", (sid,))
        failed, locked_until = conn.execute("SELECT failed, locked_until_ms FROM "
                                            "staff_attempts WHERE staff_id=?", (sid,)).fetchone()
        if locked_until > now:
            return int(locked_until)
        return _count(conn, "staff_attempts", sid, failed, now)
    locked = await ledger.write(reserve)
    _refuse_locked(locked, now)
    if await _verify(m.pin_hash, peppered(pepper, pin)):
        await ledger.write(lambda conn: conn.execute(
            "UPDATE staff_attempts SET failed=0, locked_until_ms=0 WHERE staff_id=?", (sid,)))
        if not m.may_use(ledger.node_id):
            raise LoginRefused("login.not_here", f"staff id {sid} may not log in at this "
                               "counter: ask IT", staff=sid)
        return Staff(sid, m.name, m.roles, m.role_set)
    _refuse_wrong(locked)


def _count(conn: sqlite3.Connection, table: str, sid: str, failed: int, now: int) -> int:
    """Count one more attempt in ``table`` (``staff`` or ``staff_attempts``): 0, or
    minus the time the id is locked until when this attempt locks it."""
    n = failed + 1
    until = now + LOCKOUT_MS if n >= MAX_FAILED else 0
    conn.execute(f"UPDATE {table} SET failed=?, locked_until_ms=? WHERE staff_id=?",
                 (0 if until else n, until, sid))
    return -until


def _refuse_locked(locked: int, now: int) -> None:
    if locked > 0:
        minutes = max(1, (locked - now + 59_999) // 60_000)
        raise LoginRefused("login.locked", f"too many wrong PINs: try again in {minutes} min "
                           "or ask a supervisor", minutes=minutes)


def _refuse_wrong(locked: int) -> NoReturn:
    if locked < 0:
        raise LoginRefused("login.locked", "too many wrong PINs: this id is locked for "
                           f"{LOCKOUT_MS // 60_000} min", minutes=LOCKOUT_MS // 60_000)
    raise LoginRefused("login.wrong", "staff id or PIN is wrong")


async def _verify(pin_hash: str, secret: str) -> bool:
    try:
        ok: bool = await asyncio.to_thread(_HASHER.verify, pin_hash, secret)
    except (VerificationError, InvalidHashError):
        ok = False
    return ok


def cheap_hasher() -> PasswordHasher:
    """Argon2id with minimal cost: for tests and the throwaway demo only."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
