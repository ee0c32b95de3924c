"""``onecard-central staff …``: enrol staff, change their roles, disable them, reset PINs.

Every change is a central-signed event (:mod:`protocol.staff`) that syncs to every
counter; counters log staff in from the folded records, offline.  PIN hashes are
peppered with the hospital's pepper (``pepper_file``, made by ``onecard-central init``
or ``staff pepper``, copied to each counter as its ``pepper_file``): see
docs/deployment.md.

Each command reads central's own staff events and signs under the store's write lock
(:meth:`~central.store.CentralStore.append_central`), checking again there that the id
is (or is not yet) known, so two IT people at once cannot enrol one id twice.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from central.config import CentralConfig, CentralConfigError, load_key
from central.store import CentralStore, Query, Statements
from edge_node.staff import PIN_RE, PepperError, hash_pin, load_pepper, new_pepper, write_pepper
from protocol import staff as st
from protocol.core import State
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import CENTRAL, NODE_ID_RE, decode_event

_CENTRAL_ROWS = "SELECT pos, data FROM events WHERE node = ? ORDER BY pos"
KINDS = {k.name for k in st.KINDS}


class StaffFailed(Exception):
    """The command cannot be done; the message says why (nothing was signed)."""


def fold_staff(rows: Iterable[tuple[Any, Any]]) -> State:
    """Central's staff records from its own events ``rows`` (pos, data)."""
    state = State()
    for _, data in rows:
        try:
            ev = decode_event(bytes(data))
        except ProtocolError:
            continue
        if ev.kind in KINDS:
            REGISTRY.apply(state, ev)
    return state


async def staff_state(store: CentralStore) -> State:
    return fold_staff(await store.read(_CENTRAL_ROWS, (CENTRAL,)))


async def members(store: CentralStore) -> list[st.StaffMember]:
    """Every member of staff central signed, by id (``staff list`` and the console)."""
    state = await staff_state(store)
    return sorted(state.all(st.StaffMember), key=lambda m: m.staff_id)


def ensure_pepper(path: Path) -> tuple[bytes, bool]:
    """The pepper at ``path``, made (mode 0600) if there is none; and whether it was."""
    try:
        return load_pepper(path), False
    except FileNotFoundError:
        pepper = new_pepper()
        write_pepper(path, pepper)
        return pepper, True


def _pepper(cfg: CentralConfig) -> bytes:
    try:
        return load_pepper(cfg.pepper_file)
    except FileNotFoundError:
        raise StaffFailed(f"{cfg.pepper_file}: no staff pepper yet: `onecard-central staff "
                          "pepper` makes it (then install it on every counter)") from None
    except PepperError as exc:
        raise StaffFailed(str(exc)) from None


def check_roles(roles: list[str]) -> list[str]:
    out: list[str] = []
    for r in roles:
        for word in r.split(","):
            w = word.strip()
            if w not in st.ROLES:
                raise StaffFailed(f"role {w!r}: one of {', '.join(st.ROLES)}")
            if w not in out:
                out.append(w)
    return out


def check_nodes(nodes: list[str]) -> list[str]:
    for n in nodes:
        if not NODE_ID_RE.match(n) or n == CENTRAL:
            raise StaffFailed(f"{n!r} is not a counter's node id")
    return sorted(set(nodes))


async def sign(store: CentralStore, key: Any, staff_id: str, kind: str, body: dict[str, Any],
               *, operator: str, must_exist: bool) -> int:
    """Check ``body`` and whether ``staff_id`` is known under the write lock; sign it.
    Central's seq of the event."""
    problems = REGISTRY.validate(kind, body, CENTRAL)
    if problems:
        raise StaffFailed(f"{kind}: {problems[0].message}")

    async def plan(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        state = fold_staff(await query(_CENTRAL_ROWS, (CENTRAL,)))
        known = st.member(state, staff_id)
        if must_exist and known is None:
            raise StaffFailed(f"no staff id {staff_id} at central (`staff add` enrols one)")
        if not must_exist and known is not None:
            raise StaffFailed(f"staff id {staff_id} exists: `staff set-role`, `reset-pin` or "
                              "`enable` change it")
        return [(kind, body)], []

    events = await store.append_central(key, plan, operator=operator)
    return events[0].seq


async def set_disabled(store: CentralStore, key: Any, staff_id: str, disabled: bool, *,
                       reason: str, operator: str) -> int:
    """Sign ``staff.disabled`` (or ``staff.enabled``) for a known ``staff_id`` as
    ``operator``, with ``reason`` if any (``staff disable|enable`` and the console).
    Central's seq of the event; :class:`StaffFailed` (nothing signed) otherwise."""
    if not 0 < len(operator) <= 64:
        raise StaffFailed("say who you are: --operator STAFF")
    body: dict[str, Any] = {"staff_id": staff_id}
    if reason.strip():
        body["reason"] = reason.strip()[:200]
    kind = "staff.disabled" if disabled else "staff.enabled"
    return await sign(store, key, staff_id, kind, body, operator=operator, must_exist=True)


def read_pin(pin_stdin: bool, pin: str | None, staff_id: str, err: TextIO) -> str | None:
    """The new PIN: ``--pin`` (tests only), one line of stdin, or asked twice unechoed."""
    if pin is not None:
        return pin
    if pin_stdin:
        return sys.stdin.readline().strip()
    if sys.stdin is None or not sys.stdin.isatty():
        print("onecard-central: no terminal to ask the PIN on: give it on one line of stdin "
              f"with --pin-stdin, e.g.  echo 2468 | onecard-central staff add {staff_id} NAME "
              "--role cashier --pin-stdin", file=err)
        return None
    import getpass

    try:
        first = getpass.getpass("PIN (4-12 digits): ")
        again = getpass.getpass("PIN again: ")
    except EOFError:
        print("no PIN given: nothing was changed", file=err)
        return None
    if first != again:
        print("the two PINs differ: nothing was changed", file=err)
        return None
    return first


async def run(cfg: CentralConfig, args: Any, *, out: TextIO | None = None,
              err: TextIO | None = None) -> int:
    """One ``staff`` action: 0 done, 1 refused (nothing signed), 2 usage."""
    out = out or sys.stdout
    err = err or sys.stderr
    action: str = args.action
    if action == "pepper":
        try:
            _, made = ensure_pepper(cfg.pepper_file)
        except PepperError as exc:
            print(f"onecard-central: {exc}", file=err)
            return 1
        print(f"{'made' if made else 'kept'} the staff pepper {cfg.pepper_file} (mode 0600)",
              file=out)
        print("install it on every counter as its pepper_file (mode 0600), like the node "
              "key: docs/deployment.md", file=out)
        return 0
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        if action == "list":
            print(f"{'staff id':<16} {'state':<9} {'roles':<28} {'counters':<20} name", file=out)
            for m in await members(store):
                print(f"{m.staff_id:<16} {'disabled' if m.disabled else 'active':<9} "
                      f"{m.roles:<28} {m.at_nodes or '(all)':<20} {m.name}", file=out)
            return 0
        return await _change(cfg, store, args, out, err)
    except StaffFailed as exc:
        print(f"onecard-central: {exc}", file=err)
        return 1
    finally:
        await store.close()


async def _change(cfg: CentralConfig, store: CentralStore, args: Any, out: TextIO,
                  err: TextIO) -> int:
    action: str = args.action
    sid = args.staff_id.strip()
    if not st.STAFF_ID_RE.match(sid):
        raise StaffFailed("staff id: letters, digits, . _ - (up to 32), e.g. wang.li")
    operator = args.operator or ""
    if not 0 < len(operator) <= 64:
        raise StaffFailed("say who you are: --operator STAFF")
    try:
        key = load_key(cfg.key_file)
    except CentralConfigError as exc:
        raise StaffFailed(str(exc)) from None
    body: dict[str, Any] = {"staff_id": sid}
    if action in ("add", "reset-pin"):
        pepper = _pepper(cfg)
        pin = read_pin(args.pin_stdin, args.pin, sid, err)
        if pin is None:
            return 1
        if not PIN_RE.match(pin):
            raise StaffFailed("PIN: 4 to 12 digits")
        body["pin_hash"] = await asyncio.to_thread(hash_pin, pin, pepper)
    if action == "add":
        if not args.name.strip():
            raise StaffFailed("name is required")
        roles = check_roles(args.role or [])
        if not roles:
            raise StaffFailed(f"give at least one --role ({', '.join(st.ROLES)})")
        body.update(name=args.name.strip(), roles=roles)
        if args.at:
            body["at_nodes"] = check_nodes(args.at)
        seq = await sign(store, key, sid, "staff.enrolled", body, operator=operator,
                         must_exist=False)
        print(f"signed staff.enrolled as central #{seq}: {sid} ({args.name.strip()}, "
              f"{', '.join(roles)}) may log in at "
              f"{', '.join(body.get('at_nodes', [])) or 'every counter'} once it syncs",
              file=out)
        return 0
    if action == "reset-pin":
        seq = await sign(store, key, sid, "staff.pin_reset", body, operator=operator,
                         must_exist=True)
        print(f"signed staff.pin_reset as central #{seq}: {sid}'s new PIN works at each "
              "counter once it syncs", file=out)
        return 0
    if action == "set-role":
        if args.role:
            body["roles"] = check_roles(args.role)
        if args.name:
            body["name"] = args.name.strip()
        if args.everywhere:
            body["at_nodes"] = []
        elif args.at:
            body["at_nodes"] = check_nodes(args.at)
        seq = await sign(store, key, sid, "staff.changed", body, operator=operator,
                         must_exist=True)
        print(f"signed staff.changed as central #{seq}: {sid}", file=out)
        return 0
    if action in ("disable", "enable"):
        kind = f"staff.{action}d"
        seq = await set_disabled(store, key, sid, action == "disable", reason=args.reason or "",
                                 operator=operator)
        what = "can no longer log in" if action == "disable" else "may log in again"
        print(f"signed {kind} as central #{seq}: {sid} {what} at each counter once it "
              "syncs", file=out)
        return 0
    return 2
