"""Counter staff: who may operate this counter, and their login by staff id + PIN.

PINs are stored only as Argon2id hashes (argon2-cffi's encoded form, which carries its
own cost parameters, so a hash made with cheaper test parameters still verifies).
Hashing is deliberately slow, so it runs in a worker thread, never on the event loop
and never in the ledger's thread.  After :data:`MAX_FAILED` wrong PINs in a row a staff
id is locked for :data:`LOCKOUT_MS`: a PIN has few digits, guessing must be slow.

The staff table lives in the counter's ledger file (migration 2) but is not an event
projection: it is local to this counter and is neither synced nor rebuilt.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge_node.errors import EdgeError
from edge_node.ledger import Ledger

ROLES = ("cashier", "supervisor", "admin")
STAFF_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
PIN_RE = re.compile(r"^[0-9]{4,12}$")
MAX_FAILED = 5
LOCKOUT_MS = 5 * 60 * 1000

_HASHER = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)


@dataclass(frozen=True, slots=True)
class Staff:
    staff_id: str
    name: str
    role: str = "cashier"

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


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
    rows = await ledger.run(lambda c: c.execute(
        "SELECT staff_id, name, role FROM staff WHERE disabled=0 ORDER BY staff_id").fetchall())
    return [Staff(*r) for r in rows]


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
                  now_ms: int | None = None) -> Approval:
    """A supervisor approving what ``operator`` is doing, by their own id and PIN.

    The PIN is checked as at login (the same count of wrong PINs and lockout); then the
    approver must be a supervisor (or admin) and another person than the operator.
    Raises :class:`LoginRefused` (``approval.self``, ``approval.not_supervisor`` or a
    login code).
    """
    if staff_id.strip() == operator:
        raise LoginRefused("approval.self", "another person must approve: a supervisor, "
                           "not the operator")
    s = await login(ledger, staff_id, pin, now_ms=now_ms)
    if not s.is_supervisor:
        raise LoginRefused("approval.not_supervisor",
                           f"{s.staff_id} is not a supervisor: ask a supervisor to approve",
                           staff=s.staff_id)
    return Approval(s.staff_id, s.name, s.role)


async def login(ledger: Ledger, staff_id: str, pin: str, *, now_ms: int | None = None) -> Staff:
    """The staff member whose id and PIN these are; :class:`LoginRefused` otherwise.

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

    def reserve(conn: sqlite3.Connection) -> tuple[str, str, str, int, int] | None:
        row = conn.execute("SELECT name, role, pin_hash, disabled, failed, locked_until_ms "
                           "FROM staff WHERE staff_id=?", (sid,)).fetchone()
        if row is None:
            return None
        name, role, pin_hash, disabled, failed, locked_until = row
        if disabled or locked_until > now:
            return name, role, "", disabled, locked_until
        n = failed + 1
        until = now + LOCKOUT_MS if n >= MAX_FAILED else 0
        conn.execute("UPDATE staff SET failed=?, locked_until_ms=? WHERE staff_id=?",
                     (0 if until else n, until, sid))
        return name, role, pin_hash, 0, -until  # (negative: this attempt locks the id)
    got = await ledger.write(reserve)
    if got is None:
        raise LoginRefused("login.wrong", "staff id or PIN is wrong")
    name, role, pin_hash, disabled, locked = got
    if disabled:
        raise LoginRefused("login.disabled", f"staff id {sid} is disabled: ask a supervisor")
    if locked > 0:
        minutes = max(1, (locked - now + 59_999) // 60_000)
        raise LoginRefused("login.locked", f"too many wrong PINs: try again in {minutes} min "
                           "or ask a supervisor", minutes=minutes)
    try:
        ok: bool = await asyncio.to_thread(_HASHER.verify, pin_hash, pin)
    except (VerificationError, InvalidHashError):
        ok = False
    if ok:
        await ledger.write(lambda conn: conn.execute(
            "UPDATE staff SET failed=0, locked_until_ms=0 WHERE staff_id=?", (sid,)))
        return Staff(sid, name, role)
    if locked < 0:
        raise LoginRefused("login.locked", "too many wrong PINs: this id is locked for "
                           f"{LOCKOUT_MS // 60_000} min", minutes=LOCKOUT_MS // 60_000)
    raise LoginRefused("login.wrong", "staff id or PIN is wrong")


def cheap_hasher() -> PasswordHasher:
    """Argon2id with minimal cost: for tests and the throwaway demo only."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
