"""Conflicts through real sync: `onecard-central serve` and two counter sync daemons as
processes; the counters work offline, reconnect, central raises the conflict once, IT
resolves it with the CLI, and the remedy reaches and folds on every counter.  Before IT
acts, central's ``conflict.raised`` reaches the counters too: tapping the card says the
conflict is open (once, however often the counters re-sync or central restarts)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge_node import config as cfgmod
from edge_node.i18n import Translator
from edge_node.ledger import Ledger
from edge_node.notices import notices
from edge_node.service import CounterService
from protocol.event import decode_event
from tests.conftest import item
from tests.support.sync_cluster import Central, Counter, converged, run_cli, wait_for

pytestmark = pytest.mark.slow
CARD = "8600000001"
EN = Translator("en")


async def _on(counter: Counter, fn: object) -> object:
    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        return await fn(CounterService(led, "op.wang"))  # type: ignore[operator]
    finally:
        await led.close()


def _conflicts(central: Central) -> list[tuple[str, str, str, int]]:
    c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10)
    try:
        return list(c.execute("SELECT id, kind, status, amount FROM conflicts"))
    finally:
        c.close()


def _raised(central: Central) -> int:
    c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10)
    try:
        rows = c.execute("SELECT data FROM events WHERE node = 'central'").fetchall()
    finally:
        c.close()
    return sum(decode_event(bytes(d)).kind == "conflict.raised" for (d,) in rows)


async def _shown(s: CounterService) -> list[tuple[str, str, str]]:
    """What tapping the card tells staff: (code, conflict id, English text) per notice."""
    view = await s.lookup_card(CARD)
    history = await s.history(view.patient.patient_id, 50)
    return [(n.code, n.conflict_id, n.text(EN))
            for n in notices(view.patient, view.account, view.cards, history)]


def test_offline_double_spend_is_raised_once_resolved_and_converges(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    asyncio.run(_on(a, lambda s: s.register_patient(
        name="张三", sex="M", birth_date="1990-03-07", phone="13800138000", card_no=CARD,
        first_deposit=6_500)))
    central.start()
    try:
        for c in (a, b):
            c.start_sync()
        wait_for(lambda: converged(central, [a, b], 3), 30, "patient known everywhere")
        for c in (a, b):
            c.stop()
        # offline, each counter takes ¥50.00 of the ¥65.00 it knows about
        for c in (a, b):
            asyncio.run(_on(c, lambda s: s.charge(CARD, [item(5_000)], "lab")))
        assert _conflicts(central) == []
        for c in (a, b):
            c.start_sync()
        # 5 events and central's conflict.raised announcing the open overdraft
        wait_for(lambda: converged(central, [a, b], 6), 30, "offline charges synced")
        wait_for(lambda: len(_conflicts(central)) == 1, 10, "conflict raised")
        [(cid, kind, status, amount)] = _conflicts(central)
        assert (kind, status, amount) == ("overdraft", "open", 3_500)
        assert _raised(central) == 1
        # re-syncing everything again raises nothing new
        b.kill()
        b.start_sync()
        wait_for(lambda: b.sync_state()["online"] == 1, 20, "b back online")
        assert len(_conflicts(central)) == 1
        # nor does a restarted central (its reconciler starts empty and re-reads it all)
        central.stop()
        central.start()
        wait_for(lambda: all(c.sync_state()["online"] == 1 for c in (a, b)), 30, "reconnected")
        assert len(_conflicts(central)) == 1 and _raised(central) == 1
        assert converged(central, [a, b], 6)
        # tapping the card at either counter: the open conflict, once, before IT acts
        open_text = ("Open conflict: an offline overdraft of ¥35.00 — central IT is "
                     "reviewing; collect nothing until told")
        for c in (a, b):
            assert asyncio.run(_on(c, _shown)) == [("open", cid, open_text)]

        out = run_cli("--config", str(central.config), "conflicts", "list").stdout
        assert cid in out and "overdraft 1" in out
        shown = run_cli("--config", str(central.config), "conflicts", "show", cid).stdout
        assert "¥35.00" in shown and "reverse" in shown and "debt" in shown
        r = run_cli("--config", str(central.config), "conflicts", "resolve", cid,
                    "--remedy", "reverse", "--reason", "written off by finance",
                    "--operator", "it.li")
        assert r.returncode == 0, r.stderr
        again = run_cli("--config", str(central.config), "conflicts", "resolve", cid,
                        "--remedy", "debt", "--reason", "x", "--operator", "it.li")
        assert again.returncode == 1 and "already resolved" in again.stderr
        # the central event reaches both counters, which fold it to the same balance
        wait_for(lambda: converged(central, [a, b], 7), 30, "remedy synced")
        assert a.balances() == b.balances() == [(a.balances()[0][0], 1_500)]
        [(_, _, status, _)] = _conflicts(central)
        assert status == "resolved"
        assert _raised(central) == 1
        # the remedy (the whole later charge) closes the open notice and says what IT did
        after = [asyncio.run(_on(c, _shown)) for c in (a, b)]
        assert after[0] == after[1]
        [(code, named, text)] = after[0]
        assert (code, named) == ("reversed", cid)
        assert text.endswith(" ¥50.00 reversed by central IT (an offline overdraft)"), text
    finally:
        for c in (a, b):
            c.stop()
        central.stop()
