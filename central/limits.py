"""Offline limits, set centrally (issue 11): ``onecard-central limits set|show``.

Counters may charge offline down to what they know; central bounds what one counter
may take from one account before it syncs again: a *floor* limit per charge and a
cumulative *cap* per account per counter since the counter's last successful sync
(fen; 0 = no such limit).  Central signs them as a ``limits.set`` event
(:mod:`protocol.account`), which syncs to every counter like the catalogue; a counter
folds the latest into its ``offline_limits`` record and its rules refuse, while it is
offline, a charge past them unless a supervisor approves at the counter.  Every overrun
is flagged on reconnect (:func:`central.reconcile.detect_offline_overrun`).

The config's ``[limits]`` (:mod:`central.config`) is the durable setting: ``serve``
publishes it at start when it differs from the limits in force.  ``limits set`` publishes
now (``--floor``/``--cap``, else the config's): with a ``[limits]`` section that says
otherwise, the next ``serve`` puts the config's back, so the command says so.
"""

from __future__ import annotations

import logging
from typing import Any, TextIO

from central.config import CentralConfig, load_key
from central.store import CentralStore, Query, Statements, enrol_central
from protocol.account import LimitsSet
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, decode_event
from protocol.money import yuan

log = logging.getLogger("onecard.central.limits")

KIND = "limits.set"
TRAIL = "audit.config_changed"
SCAN = 100_000  # central's own events read back at most, newest first


async def in_force(read: Query) -> tuple[int, int] | None:
    """The (floor, cap) of central's latest ``limits.set`` (None: none was published);
    ``read`` is a store's query (``store.read``, or a plan's inside its transaction).

    Central's own chain is in its clock's order, so the highest seq is the latest."""
    rows = await read("SELECT data FROM events WHERE node = ? ORDER BY seq DESC LIMIT ?",
                            (CENTRAL, SCAN))
    for (data,) in rows:
        ev = decode_event(bytes(data))
        if ev.kind != KIND:
            continue
        fact = REGISTRY.fact(ev)
        if fact is not None and isinstance(fact.body, LimitsSet):
            return fact.body.floor, fact.body.cap
    return None


async def publish(store: CentralStore, cfg: CentralConfig, floor: int, cap: int, *,
                  operator: str) -> bool:
    """Sign ``limits.set`` with ``floor`` and ``cap`` unless they are the ones in force;
    whether it was signed."""
    key = load_key(cfg.key_file)
    await enrol_central(store, key)
    body = {"floor": floor, "cap": cap}
    problems = REGISTRY.validate(KIND, body, CENTRAL)
    if problems:
        raise ValueError("; ".join(p.message for p in problems))

    async def plan(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
        old = await in_force(query)
        if old == (floor, cap):
            return [], []
        # the setting and its trail (audit.config_changed) in one transaction
        trail = {"key": "limits", "old": _short(old), "new": _short((floor, cap))}
        return [(KIND, body), (TRAIL, trail)], []

    events = await store.append_central(key, plan, operator=operator)
    if events:
        log.info("offline limits published: floor %s cap %s", floor, cap)
    return bool(events)


async def publish_configured(store: CentralStore, cfg: CentralConfig) -> bool:
    """At ``serve`` start: the config's ``[limits]``, if it has them and they are not
    the ones in force."""
    if cfg.offline_limits is None:
        return False
    floor, cap = cfg.offline_limits
    return await publish(store, cfg, floor, cap, operator="central-config")


def _short(limits: tuple[int, int] | None) -> str:
    """The limits as the audit trail states them (yuan: no long runs of digits)."""
    if limits is None:
        return ""
    return f"floor {yuan(limits[0])} cap {yuan(limits[1])}"


def say(limits: tuple[int, int] | None) -> str:
    if limits is None:
        return "no offline limits published (counters charge offline down to what they know)"
    floor, cap = limits
    return (f"offline limits: per charge {yuan(floor) if floor else 'none'}, per account per "
            f"counter between syncs {yuan(cap) if cap else 'none'}")


async def run(cfg: CentralConfig, action: str, *, floor: int | None = None,
              cap: int | None = None, operator: str = "", out: TextIO,
              err: TextIO) -> int:
    """``limits show`` / ``limits set``: 0 done, 2 usage."""
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        if action == "show":
            print(say(await in_force(store.read)), file=out)
            if cfg.offline_limits is not None:
                print(f"config [limits]: floor {cfg.offline_limits[0]} cap "
                      f"{cfg.offline_limits[1]} (fen)", file=out)
            return 0
        conf = cfg.offline_limits or (0, 0)
        f = conf[0] if floor is None else floor
        c = conf[1] if cap is None else cap
        if floor is None and cap is None and cfg.offline_limits is None:
            print("onecard-central: limits set: give --floor and/or --cap (fen), or a "
                  "[limits] section in the config", file=err)
            return 2
        if not 0 <= f <= 10**10 or not 0 <= c <= 10**10:
            print("onecard-central: limits: --floor and --cap are fen, 0–10000000000 "
                  "(0: no limit)", file=err)
            return 2
        if not 0 < len(operator) <= 64:
            print("onecard-central: limits set: say who sets them (--operator)", file=err)
            return 2
        signed = await publish(store, cfg, f, c, operator=operator)
        print(("published; counters take them at their next sync: " if signed else
               "already in force: ") + say((f, c)), file=out)
        if cfg.offline_limits is not None and cfg.offline_limits != (f, c):
            print(f"note: the config's [limits] say floor {cfg.offline_limits[0]} cap "
                  f"{cfg.offline_limits[1]}: the next `serve` publishes those again; edit "
                  f"{cfg.path} to keep these", file=out)
        return 0
    finally:
        await store.close()
