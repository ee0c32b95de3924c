"""Latency of one counter charge at ledger sizes 1k, 100k and 1M events (one JSON line).

For each size a ledger is filled with realistic signed history (patients registered
with cards and deposits, then charges spread over them), then N charges are timed:

- ``charge``: ``CounterService.charge`` as the TUI calls it (card lookup, validate, rules,
  sign, append, projection, fsync, and the receipt's fresh balance);
- ``append``: ``Ledger.append`` alone (validate, rules, sign, chain, store, projection, fsync).

Beside them, the raw floor: one-row ``sqlite3`` commits with WAL and ``synchronous=FULL``
in the same run.  Usage: ``python bench/edge_append.py [--sizes 1000,100000,1000000] [-n 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from protocol.crypto import SigningKey
from protocol.event import ChainHead, sign_event
from protocol.hlc import Hlc
from protocol.privacy import PatientKeys

#: the hospital's patient keys (a bench holds them): names and phones sealed as at a counter
KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))

NODE = "cashier-01"
ITEMS = [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2500}]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 3)


def n_patients(n_events: int) -> int:
    """One patient per 20 events of history (at least one; 3 events to register each)."""
    return max(1, min(n_events // 20, n_events // 3))


def fill(path: Path, key: SigningKey, n_events: int) -> None:
    """Write ``n_events`` of signed history straight into the events table (then rebuild)."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")  # bulk set-up only; the timed part runs FULL
    head = ChainHead()
    patients = n_patients(n_events)
    rows = []
    wall = 1_790_000_000_000

    def add(kind: str, body: dict[str, object]) -> None:
        nonlocal head, wall
        wall += 1
        ev, data, h = sign_event(key, node=NODE, seq=head.seq + 1, prev=head.hash,
                                 hlc=Hlc(wall, 0), operator="bench", kind=kind, body=body)
        rows.append((NODE, ev.seq, h, wall, 0, "bench", kind, data))
        head = ChainHead(ev.seq, h)
        if len(rows) >= 5000:
            flush()

    def flush() -> None:
        con.executemany("INSERT INTO events (node, seq, hash, hlc_wall, hlc_counter, operator, "
                        "kind, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        rows.clear()

    for p in range(patients):
        if head.seq + 3 > n_events:
            break
        pid = f"P-{NODE}-b{p}"
        add("patient.registered", {"patient_id": pid, "sex": "M", "birth_date": "1990-01-01",
                                   **KEYS.sealed_details(pid, {"name": f"患者{p}",
                                                               "phone": "13800138000"})})
        add("card.issued", {"card_no": f"86{p:08d}", "patient_id": pid})
        add("account.deposited", {"patient_id": pid, "amount": 10**8, "method": "cash",
                                  "receipt_no": f"D-b{p}"})
    i = 0
    while head.seq < n_events:
        p = i % patients
        add("account.charged", {"charge_id": f"C-b{i}", "patient_id": f"P-{NODE}-b{p}",
                                "card_no": f"86{p:08d}", "items": ITEMS, "amount": 2500,
                                "department": "检验科"})
        i += 1
    flush()
    con.execute("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)", (NODE, head.seq, head.hash))
    con.execute("INSERT OR REPLACE INTO meta VALUES ('hlc_wall', ?)", (wall,))
    con.commit()
    con.close()


async def measure(size: int, n: int, base: Path) -> dict[str, object]:
    path = base / f"ledger-{size}.sqlite3"
    key = SigningKey(bytes(range(32)))
    led = await Ledger.open(path, NODE, key)  # creates the schema
    await led.close()
    t0 = time.perf_counter()
    fill(path, key, size)
    led = await Ledger.open(path, NODE, key)
    await led.rebuild()
    # The bulk set-up leaves a WAL of the whole history: fold it in before timing, as a
    # counter that has been running for months would have done long ago.
    await led.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    setup_s = time.perf_counter() - t0
    svc = CounterService(led, "bench")
    patients = n_patients(size)
    charge_t, append_t = [], []
    for i in range(n):
        card = f"86{(i * 7919) % patients:08d}"
        t = time.perf_counter()
        await svc.charge(card, ITEMS, "检验科")
        charge_t.append(time.perf_counter() - t)
        body = {"charge_id": f"C-x{i}", "patient_id": f"P-{NODE}-b{(i * 31) % patients}",
                "items": ITEMS, "amount": 2500, "department": "检验科"}
        t = time.perf_counter()
        await led.append(Op("account.charged", body), "bench")
        append_t.append(time.perf_counter() - t)
    events = await led.event_count()
    assert (await led.head()).seq == events
    await led.close()
    return {"events": events, "setup_s": round(setup_s, 1),
            "charge_p50_ms": pct(charge_t, 0.5), "charge_p99_ms": pct(charge_t, 0.99),
            "append_p50_ms": pct(append_t, 0.5), "append_p99_ms": pct(append_t, 0.99),
            "charge_mean_ms": round(statistics.mean(charge_t) * 1000, 3)}


def raw_sqlite(base: Path, n: int) -> dict[str, float]:
    con = sqlite3.connect(base / "raw.sqlite3", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
    blob = os.urandom(300)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        con.execute("BEGIN")
        con.execute("INSERT INTO t (data) VALUES (?)", (blob,))
        con.execute("COMMIT")
        ts.append(time.perf_counter() - t)
    con.close()
    return {"raw_commit_p50_ms": pct(ts, 0.5), "raw_commit_p99_ms": pct(ts, 0.99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("-n", type=int, default=300, help="timed charges per size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="onecard-bench-", dir=os.environ.get("BENCH_DIR")) \
            as d:
        base = Path(d)
        out: dict[str, object] = {"bench": "edge_append", "n": args.n}
        out.update(raw_sqlite(base, args.n))
        for size in sizes:
            out[str(size)] = asyncio.run(measure(size, args.n, base))
        first, last = out[str(sizes[0])], out[str(sizes[-1])]
        assert isinstance(first, dict) and isinstance(last, dict)
        out["charge_p99_ratio_last_vs_first"] = round(
            last["charge_p99_ms"] / first["charge_p99_ms"], 2)
        out["charge_p50_ratio_last_vs_first"] = round(
            last["charge_p50_ms"] / first["charge_p50_ms"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
