"""Convergence: K counters (separate sync processes) × N events written offline, then sync.

Writes N events into each of K counter ledgers while central is down (registrations,
cards, deposits and charges through the real ledger, in transactions of 100 events),
starts `onecard-central serve`, then starts K `onecard-edge sync` processes at once
and times until central and every counter hold all K·N events.  Then measures live
visibility: one event appended at counter 1 until it is in counter 2's ledger.
Prints one JSON line.  SQLite runs with synchronous=FULL on every ledger and at central.

Events central attests (protocol 4) are held and folded before their own signatures are
checked, in the background (edge_node/sync/sigcheck.py): ``signatures_checked_ms`` is
when every counter had checked every one (from the same start as ``convergence_ms``).
Likewise the search terms of others' patients, which the sync daemons write in the
background after the ingest (edge_node/sync/indexer.py): ``indexed_ms`` is when every
counter had written them all.  The daemons' CPU is reported at convergence and once
both background passes are done; the live appends are timed after that, and after
central's reconciler has folded everything and written its search terms
(``central_reconciled_ms``).

    python bench/converge.py [N] [K] [--postgresql]

``--postgresql``: central keeps its data in a fresh PostgreSQL database on the machine's
server (tests/support/pg.py), dropped afterwards; else in SQLite.  The counters' ledgers
are SQLite either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_node import config as cfgmod
from edge_node.ledger import Ledger, Op, OpContext
from protocol.privacy import PatientKeys
from tests.support.sync_cluster import Central, Counter

KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))  # (tests' and central's)


def patient_ops(card_no: str) -> list[Op]:
    """register + card + deposit + charge: the four events of a first visit."""
    holder: dict[str, str] = {}

    def patient(ctx: OpContext) -> dict[str, Any]:
        holder["pid"] = ctx.new_id("P")
        return {
            "patient_id": holder["pid"],
            "sex": "M",
            "birth_date": "1980-05-06",
            **KEYS.sealed_details(holder["pid"], {  # distinct people, as at a real counter
                "name": f"患者{card_no[2:]}", "phone": f"13{card_no[2:]}"}),
        }

    def card(ctx: OpContext) -> dict[str, Any]:
        return {"card_no": card_no, "patient_id": holder["pid"], "medium": "chip"}

    def deposit(ctx: OpContext) -> dict[str, Any]:
        return {
            "patient_id": holder["pid"],
            "amount": 20_000,
            "method": "cash",
            "receipt_no": ctx.new_id("D"),
            "card_no": card_no,
        }

    def charge(ctx: OpContext) -> dict[str, Any]:
        return {
            "charge_id": ctx.new_id("C"),
            "patient_id": holder["pid"],
            "card_no": card_no,
            "card_entry": "chip",
            "amount": 2_500,
            "department": "lab",
            "items": [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2_500}],
        }

    return [
        Op("patient.registered", patient),
        Op("card.issued", card),
        Op("account.deposited", deposit),
        Op("account.charged", charge),
    ]


async def write_offline(counter: Counter, n: int, tag: int) -> None:
    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        i = 0
        while i < n // 4:
            ops: list[Op] = []
            for _ in range(min(25, n // 4 - i)):
                ops += patient_ops(f"86{tag:02d}{i:08d}")
                i += 1
            await led.append(ops, "op.wang")
        assert (await led.head()).seq == n
    finally:
        await led.close()


def count(db: Path, exact: bool = False) -> int:
    """Counters' events held (append-only tables: the last rowid is the count; cheap to
    poll), less central's own (its grants of patient keys, enrolments: they come and go
    with the counters' connections, not with the events written)."""
    central = "(SELECT COUNT(*) FROM events WHERE node = 'central')"
    sql = (f"SELECT (SELECT COUNT(*) FROM events) - {central}" if exact else
           f"SELECT (SELECT COALESCE(MAX(rowid), 0) FROM events) - {central}")
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(c.execute(sql).fetchone()[0])
        finally:
            c.close()
    except sqlite3.OperationalError:
        return -1


def pending_checks(db: Path) -> int:
    """Events a counter holds whose own signature its background check has not checked
    (0 for a ledger made before that check existed)."""
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(c.execute("SELECT COUNT(*) FROM sig_pending").fetchone()[0])
        finally:
            c.close()
    except sqlite3.OperationalError as exc:
        return 0 if "no such table" in str(exc) else -1


def pending_index(db: Path) -> int:
    """Patients a counter ingested whose search terms its background pass has not
    written yet (0 for a ledger that writes them in the ingest)."""
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(c.execute("SELECT COUNT(*) FROM patient_search_due").fetchone()[0])
        finally:
            c.close()
    except sqlite3.OperationalError as exc:
        return 0 if "no such table" in str(exc) else -1


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (verify workers)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += cpu_s(int(child))
    except OSError:
        pass
    return total


def max_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CentralProbe:
    """Central's counters' events held, and whether its reconciler is done (every stored
    event folded, every folded patient's search terms written: the console's index, none
    due): the same queries on either backend, SQLite read-only or PostgreSQL through one
    connection kept open (the live appends poll it every millisecond)."""

    def __init__(self, db: Path, url: str = "") -> None:
        self.db, self.url = db, url
        self.loop: asyncio.AbstractEventLoop | None = None
        if url:
            import asyncpg

            self.loop = asyncio.new_event_loop()
            self.conn = self.loop.run_until_complete(asyncpg.connect(url, timeout=10))

    def _value(self, sql: str) -> Any:
        if self.loop is not None:
            return self.loop.run_until_complete(self.conn.fetchval(sql))
        c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            row = c.execute(sql).fetchone()
            return row[0] if row else None
        finally:
            c.close()

    def count(self, exact: bool = False) -> int:
        """As :func:`count` (positions are gapless: the last is the count)."""
        central = "(SELECT COUNT(*) FROM events WHERE node = 'central')"
        return int(self._value(f"SELECT COUNT(*) - {central} FROM events" if exact else
                               f"SELECT COALESCE(MAX(pos), 0) - {central} FROM events"))

    def done(self) -> bool:
        value = self._value("SELECT value FROM meta WHERE key = 'recon'")
        pos = int(json.loads(value)["pos"]) if value else 0
        top = int(self._value("SELECT COALESCE(MAX(pos), 0) FROM events"))
        return pos >= top and not self._value("SELECT EXISTS (SELECT 1 FROM recon_search_due)")

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.conn.close())
            self.loop.close()
            self.loop = None


async def append_one(counter: Counter, i: int) -> None:
    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        await led.append(patient_ops(f"8699{i:08d}")[:1], "op.wang")
    finally:
        await led.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=5000, help="events per counter")
    ap.add_argument("k", nargs="?", type=int, default=4, help="counters")
    ap.add_argument("--postgresql", action="store_true",
                    help="central on a fresh PostgreSQL database (else SQLite)")
    args = ap.parse_args()
    n, k = args.n, args.k
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        base = Path(d)
        if args.postgresql:
            from tests.support.pg import fresh_database_sync

            url = stack.enter_context(fresh_database_sync())
        else:
            url = ""
        central = Central.init(base / "central", database=url)
        counters = [Counter.create(base, f"cashier-{i:02d}", central) for i in range(1, k + 1)]
        t = time.perf_counter()

        async def write_all() -> None:
            await asyncio.gather(*(write_offline(c, n, i) for i, c in enumerate(counters, 1)))

        asyncio.run(write_all())
        write_s = time.perf_counter() - t
        central.start()
        probe = CentralProbe(central.db, url)
        stack.callback(probe.close)
        total = n * k
        env = {"ONECARD_SYNC_PING_S": "5", "ONECARD_SYNC_BACKOFF_MAX_S": "2"}
        try:
            t0 = time.perf_counter()
            for c in counters:
                c.start_sync(env)
            push_s = conv_s = None
            deadline = t0 + 600
            while time.perf_counter() < deadline:
                cn = probe.count()
                if push_s is None and cn == total:
                    push_s = time.perf_counter() - t0
                if cn == total and all(count(c.db) == total for c in counters):
                    conv_s = time.perf_counter() - t0
                    break
                time.sleep(0.05)
            assert conv_s is not None and push_s is not None, "did not converge in 600 s"
            cpu_conv = {
                "central": cpu_s(central.proc.pid) if central.proc else 0.0,
                "sync_daemons": sum(cpu_s(c.proc.pid) for c in counters if c.proc),
            }
            assert probe.count(True) == total
            assert all(count(c.db, True) == total for c in counters)
            checked_s = indexed_s = None
            central_s = None
            while time.perf_counter() < deadline:
                if checked_s is None and all(pending_checks(c.db) == 0 for c in counters):
                    checked_s = time.perf_counter() - t0
                if indexed_s is None and all(pending_index(c.db) == 0 for c in counters):
                    indexed_s = time.perf_counter() - t0
                if central_s is None and probe.done():
                    central_s = time.perf_counter() - t0
                if None not in (checked_s, indexed_s, central_s):
                    break
                time.sleep(0.05)
            assert central_s is not None, "central not reconciled in 600 s"
            assert checked_s is not None, "signatures not checked in 600 s"
            assert indexed_s is not None, "search terms not written in 600 s"
            cpu = {
                "central": cpu_s(central.proc.pid) if central.proc else 0.0,
                "sync_daemons": sum(cpu_s(c.proc.pid) for c in counters if c.proc),
            }
            # live visibility: counter 1 appends, counter 2 sees it
            lat, lat_central = [], []
            for i in range(50):
                before, before_c = count(counters[1].db), probe.count()
                asyncio.run(append_one(counters[0], i))
                t2 = time.perf_counter()
                seen_c = None
                while count(counters[1].db) == before and time.perf_counter() - t2 < 10:
                    if seen_c is None and probe.count() != before_c:
                        seen_c = time.perf_counter()
                    time.sleep(0.001)
                lat.append((time.perf_counter() - t2) * 1000)
                lat_central.append(((seen_c or time.perf_counter()) - t2) * 1000)
                time.sleep(0.05)
            rss_central = max_rss_mb(central.proc.pid) if central.proc else 0.0
            rss_edges = [max_rss_mb(c.proc.pid) for c in counters if c.proc]
        finally:
            for c in counters:
                c.stop()
            central.stop()
    print(
        json.dumps(
            {
                "bench": "converge",
                "counters": k,
                "events_per_counter": n,
                "total_events": total,
                "convergence_ms": round(conv_s * 1000),
                "push_ms": round(push_s * 1000),
                "pull_after_push_ms": round((conv_s - push_s) * 1000),
                "signatures_checked_ms": round(checked_s * 1000),
                "central_reconciled_ms": round(central_s * 1000),
                "indexed_ms": round(indexed_s * 1000),
                "deliveries_per_s": round(total * k / conv_s),
                "cpu_s_at_convergence": {x: round(v, 1) for x, v in cpu_conv.items()},
                "cpu_s_during_sync": {x: round(v, 1) for x, v in cpu.items()},
                "live_visibility_ms": {
                    "counter_to_counter_p50": round(statistics.median(lat), 1),
                    "counter_to_counter_p90": round(sorted(lat)[int(len(lat) * 0.9)], 1),
                    "counter_to_central_p50": round(statistics.median(lat_central), 1),
                    "counter_to_central_p90": round(sorted(lat_central)[int(len(lat) * 0.9)], 1),
                },
                "offline_write_s": round(write_s, 1),
                "max_rss_mb": {
                    "central": round(rss_central, 1),
                    "sync_daemon_max": round(max(rss_edges, default=0.0), 1),
                    "all": round(rss_central + sum(rss_edges), 1),
                },
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "central_database": "postgresql" if url else "sqlite",
                "sqlite_synchronous": "FULL",
            }
        )
    )


if __name__ == "__main__":
    main()
