"""Every other conflict kind through real sync, in one cluster run.

`onecard-central serve` and three counter sync daemons run as processes.  Counters
``cashier-01`` and ``cashier-02`` work offline at once on the same patients — a card
reported lost at one and charged at the other, one lost card replaced at both, one charge
refunded at both, one account settled at both, one national ID registered at both — and
``cashier-03``'s clock runs ten minutes fast (integrity: clock skew).  On reconnect
central raises each conflict exactly once (and not again on a re-sync); IT resolves each
with ``onecard-central conflicts resolve``; the remedies reach every counter, which all
end in the same state, remedies included.

An equivocation cannot come through an honest counter: its sync daemon refuses to push a
forked chain (``tests/test_sync_daemon.py``).  It comes from a clone — the same node key
on a copied disk — which the second test plays with a raw client against the real server.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from edge_node import config as cfgmod
from edge_node.ledger import Ledger, wall_ms
from edge_node.service import CounterService, PatientView
from edge_node.staff import Approval
from protocol.core import columns
from protocol.event import ChainHead, decode_event, sign_event
from protocol.hlc import Hlc
from protocol.messages import Error, decode_message
from protocol.patient import Patient
from protocol.session import EdgeSession
from tests.conftest import ID_MALE, item
from tests.support.sync_cluster import Central, Counter, central_trail, converged, run_cli, wait_for

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

pytestmark = pytest.mark.slow

LOST, REPL, REFUND, SETTLE, SKEW = "8600000011", "8600000021", "8600000031", "8600000041", \
    "8600000051"
NEW_A, NEW_B, DUP_A, DUP_B = "8600000022", "8600000023", "8600000061", "8600000062"


def _on(counter: Counter, fn: Callable[[CounterService], Awaitable[Any]],
        clock: Callable[[], int] = wall_ms) -> Any:
    async def go() -> Any:
        cfg = cfgmod.load(counter.config)
        led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules,
                                clock=clock)
        try:
            return await fn(CounterService(led, "op.wang"))
        finally:
            await led.close()
    return asyncio.run(go())


def _conflicts(central: Central) -> dict[str, tuple[str, str, int]]:
    """kind -> (id, status, amount); fails if a kind was raised twice."""
    c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10)
    try:
        rows = list(c.execute("SELECT kind, id, status, amount FROM conflicts"))
    finally:
        c.close()
    out = {k: (i, s, a) for k, i, s, a in rows}
    assert len(out) == len(rows), f"a kind raised twice: {rows}"
    return out


def _projections(counter: Counter) -> dict[str, list[tuple[Any, ...]]]:
    c = sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10)
    try:
        return {t: sorted(c.execute(f"SELECT * FROM {t}"))
                for t in ("patients", "cards", "accounts", "charges")}
    finally:
        c.close()


def _resolve(central: Central, cid: str, remedy: str) -> str:
    r = run_cli("--config", str(central.config), "conflicts", "resolve", cid, "--remedy", remedy,
                "--reason", f"e2e: {remedy}", "--operator", "it.li")
    assert r.returncode == 0, r.stderr
    return r.stdout


def _register(card: str, name: str, **kw: Any) -> Callable[[CounterService], Awaitable[Any]]:
    kw = {"sex": "F", "birth_date": "1980-01-01", "phone": f"1380013{card[-4:]}", **kw}
    return lambda s: s.register_patient(name=name, card_no=card, first_deposit=10_000, **kw)


async def _setup_a(s: CounterService) -> str:
    for card, name in ((LOST, "李四"), (REPL, "王五"), (REFUND, "赵六"), (SETTLE, "钱七")):
        await _register(card, name)(s)
    receipt = await s.charge(REFUND, [item(5_000)], "lab")
    return receipt.number


def _announced(central: Central) -> set[str]:
    """The conflict ids central announced with ``conflict.raised`` (each exactly once)."""
    c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10)
    try:
        rows = c.execute("SELECT data FROM events WHERE node = 'central'").fetchall()
    finally:
        c.close()
    ids = [ev.body["conflict_id"] for ev in (decode_event(bytes(d)) for (d,) in rows)
           if ev.kind == "conflict.raised"]
    assert len(ids) == len(set(ids)), ids
    return set(ids)


def test_each_conflict_kind_raised_once_resolved_and_converges(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    c = Counter.create(tmp_path, "cashier-03", central)
    charge_id = _on(a, _setup_a)  # 4 × 3 events + 1 charge
    total = 13
    central.start()
    try:
        for k in (a, b, c):
            k.start_sync()
        wait_for(lambda: converged(central, [a, b, c], total), 30, "setup known everywhere")
        for k in (a, b, c):
            k.stop()

        # -- offline, both counters act on what they know -------------------------------
        _on(a, lambda s: s.report_lost(LOST, verified_by="id_card"))
        _on(b, lambda s: s.charge(LOST, [item(2_000)], "lab"))
        _on(a, lambda s: s.replace_card(REPL, NEW_A))
        _on(b, lambda s: s.replace_card(REPL, NEW_B))
        _on(a, lambda s: s.refund(charge_id, 5_000, "deposit", "sup.zhou", "test cancelled",
                                  approval=SUP))
        _on(b, lambda s: s.refund(charge_id, 3_000, "deposit", "sup.zhou", "sample lost",
                                  approval=SUP))
        _on(a, lambda s: s.settle(SETTLE, approval=SUP))
        _on(b, lambda s: s.settle(SETTLE, approval=SUP))
        _on(a, _register(DUP_A, "周九", national_id=ID_MALE, sex="", birth_date="",
                                phone="13900000000"))
        _on(b, _register(DUP_B, "周九", national_id=ID_MALE, sex="", birth_date="",
                                phone="13900000000"))
        total += 2 * 4 + 2 * 3  # 4 single events at each, and a registration (3 events)
        # cashier-03's clock runs ten minutes fast (no NTP): what it signs sorts too late
        _on(c, _register(SKEW, "孙八"), clock=lambda: wall_ms() + 10 * 60_000)
        total += 3
        assert _conflicts(central) == {}

        for k in (a, b, c):
            k.start_sync()
        total += 5  # central's conflict.raised for each conflict about patients (not skew)
        wait_for(lambda: converged(central, [a, b, c], total), 30, "offline work synced")
        expected = {"lost_card_used", "double_replacement", "over_refund",
                    "double_settlement", "duplicate_patient", "clock_skew"}
        wait_for(lambda: set(_conflicts(central)) == expected, 20, "every conflict raised")
        found = _conflicts(central)
        assert _announced(central) == {found[k][0] for k in expected - {"clock_skew"}}
        assert {k: (s, amt) for k, (_, s, amt) in found.items()} == {
            "lost_card_used": ("open", 2_000), "double_replacement": ("open", 0),
            "over_refund": ("open", 3_000), "double_settlement": ("open", 10_000),
            "duplicate_patient": ("open", 0), "clock_skew": ("open", 0)}

        # a re-sync of everything raises nothing new
        b.kill()
        b.start_sync()
        wait_for(lambda: b.sync_state()["online"] == 1, 20, "b back online")
        assert _conflicts(central) == found

        # -- IT resolves each with the CLI ---------------------------------------------
        shown = run_cli("--config", str(central.config), "conflicts", "show",
                        found["duplicate_patient"][0]).stdout
        assert "merge" in shown and "P-cashier-01-" in shown and "P-cashier-02-" in shown
        remedies = {"lost_card_used": ("reverse", 1), "double_replacement": ("block", 1),
                    "over_refund": ("debt", 1), "double_settlement": ("debt", 1),
                    "duplicate_patient": ("merge", 1), "clock_skew": ("accept", 1)}
        for kind, (code, n) in remedies.items():
            out = _resolve(central, found[kind][0], code)
            assert out.count("signed ") == n, out
            total += n
        assert {s for _, s, _ in _conflicts(central).values()} == {"resolved"}

        wait_for(lambda: converged(central, [a, b, c], total), 30, "remedies synced")
        state_a = _projections(a)
        assert state_a == _projections(b) == _projections(c)
        views = {k: _on(a, lambda s, card=card: s.lookup_card(card))
                 for k, card in (("lost", LOST), ("new_a", NEW_A), ("new_b", NEW_B),
                                 ("refund", REFUND), ("settle", SETTLE), ("dup_a", DUP_A),
                                 ("dup_b", DUP_B))}
        _check_remedies(views)
        survivor = views["dup_a"].patient.patient_id
        mi = [c for c, _ in columns(Patient)].index("merged_into")
        merged = [p for p in state_a["patients"] if p[mi]]
        assert len(merged) == 1 and merged[0][mi] == survivor and merged[0][0] != survivor
        assert dict((r[0], r[1]) for r in state_a["accounts"])[merged[0][0]] == 0
        # the merged record's history moved with it: every counter shows it on the survivor
        for k in (a, b, c):
            hist = _on(k, lambda s: s.history(survivor))
            by_record = {e.body.get("patient_id") for e in hist} - {None}
            assert by_record == {survivor, merged[0][0]}, k.node
            assert [e.kind for e in hist].count("account.deposited") == 2
            assert [e.kind for e in hist].count("patient.merged") == 1  # linked twice, shown once
        # resolved conflicts stay resolved and single after the remedies were reconciled
        assert {s for _, s, _ in _conflicts(central).values()} == {"resolved"}
        assert set(_conflicts(central)) == expected
    finally:
        for k in (a, b, c):
            k.stop()
        central.stop()


def _check_remedies(v: dict[str, PatientView]) -> None:
    # lost card used → the charge made with it is reversed: the deposit is whole again
    assert v["lost"].card is not None and v["lost"].card.status == "lost"
    assert v["lost"].account.balance == 10_000 and v["lost"].account.adjusted == 2_000
    # double replacement → exactly one of the two new cards is blocked
    statuses = sorted(x.card.status for x in (v["new_a"], v["new_b"]) if x.card)
    assert statuses == ["active", "blocked"]
    # over-refund → the excess ¥30.00 is debited back: 100 − 50 + 50 + 30 − 30
    assert v["refund"].account.balance == 10_000
    # double settlement → a debt of ¥100.00 is recorded; the balance shows it owed
    assert v["settle"].account.balance == -10_000
    # duplicate patient → merged: one survives with both cards and both deposits
    a_view, b_view = v["dup_a"], v["dup_b"]
    assert a_view.patient.patient_id == b_view.patient.patient_id  # both cards → survivor
    survivor = a_view.patient
    assert survivor.merged_into == ""
    assert {c.card_no for c in a_view.cards} == {DUP_A, DUP_B}
    assert survivor.patient_id.startswith("P-cashier-0")
    assert a_view.account.balance == 20_000


async def _push_as_clone(central: Central, counter: Counter) -> str:
    """A clone of ``counter`` (same key, copied disk) pushes another event at its last seq."""
    heads = sorted(i for i in counter.event_ids() if i[0] == counter.node)
    (_, seq_before, prev), (_, seq, _) = heads[-2], heads[-1]
    _, data, _ = sign_event(counter.key, node=counter.node, seq=seq, prev=prev,
                            hlc=Hlc(wall_ms(), 0), operator="op.clone", kind="account.deposited",
                            body={"patient_id": "P-x", "amount": 777, "method": "cash",
                                  "receipt_no": "D-clone"})
    session = EdgeSession(counter.node, counter.key, bytes.fromhex(central.key_hex),
                          os.urandom(32))
    async with connect(central.url) as ws:
        async def recv() -> object:
            async with asyncio.timeout(5):
                return session.receive(await ws.recv())  # type: ignore[arg-type]
        await ws.send(session.send_hello(ChainHead(seq_before, prev)))
        await recv()
        await ws.send(session.send_auth())
        await recv()  # welcome
        await ws.send(session.send_push([data], seq))
        async with asyncio.timeout(5):
            err = decode_message(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(err, Error)
    return err.code


def test_a_cloned_node_pushing_a_second_history_is_one_integrity_conflict(
        tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    c = Counter.create(tmp_path, "cashier-03", central)
    _on(c, _register(SKEW, "孙八"))
    central.start()
    try:
        for k in (a, c):
            k.start_sync()
        wait_for(lambda: converged(central, [a, c], 3), 30, "registration synced")
        assert asyncio.run(_push_as_clone(central, c)) == "equivocation"
        wait_for(lambda: "equivocation" in _conflicts(central), 10, "equivocation raised")
        assert asyncio.run(_push_as_clone(central, c)) == "equivocation"  # it tries again
        time.sleep(1.5)  # a watch pass of the server: still one conflict
        [(cid, status, _)] = _conflicts(central).values()
        assert status == "open"
        assert len(central.event_ids()) == 3 + central_trail(central)  # never merged
        _resolve(central, cid, "accept")
        wait_for(lambda: converged(central, [a, c], 4), 30, "review synced")
        assert _projections(a) == _projections(c)
        assert [s for _, s, _ in _conflicts(central).values()] == ["resolved"]
    finally:
        for k in (a, c):
            k.stop()
        central.stop()


def test_max_skew_ms_in_central_config_sets_the_clock_skew_bound(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    text = central.config.read_text(encoding="utf-8")
    assert "max_skew_ms = 300000" in text  # documented in every fresh config
    central.config.write_text(text.replace("max_skew_ms = 300000", "max_skew_ms = 60000"),
                              encoding="utf-8")
    c = Counter.create(tmp_path, "cashier-03", central)
    # two minutes fast: within the default five, beyond this hospital's one
    _on(c, _register(SKEW, "孙八"), clock=lambda: wall_ms() + 2 * 60_000)
    central.start()
    try:
        c.start_sync()
        wait_for(lambda: "clock_skew" in _conflicts(central), 20, "clock skew raised")
        [(_, status, _)] = _conflicts(central).values()
        assert status == "open"
    finally:
        c.stop()
        central.stop()
