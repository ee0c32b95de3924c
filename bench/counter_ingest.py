"""A counter's ingest of others' events: CPU per event (one JSON line).

``--counters`` other counters each write ``--events`` first-visit events offline
(register, card, deposit, charge: :func:`bench.converge.patient_ops`, names and phones
sealed); a fresh counter ledger holding the patient keys (so it indexes sealed names, as
a counter central granted the names key does) then ingests them in pages of ``--page``
as the sync daemon does (attested: protocol 4), the counters' pages taking turns.
Reports the CPU (``time.process_time``) and wall time of the ingest alone, per event,
and, with ``--profile FILE``, writes a cProfile of it.

    python bench/counter_ingest.py [--events 5000] [--counters 3] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.converge import KEYS, patient_ops
from edge_node.ledger import Ledger

try:  # (the sync daemon's background pass of search terms; a ledger before it has none)
    from edge_node.sync.daemon import SYNC_CACHE_KIB
    from edge_node.sync.indexer import BATCH
except ImportError:
    SYNC_CACHE_KIB, BATCH = 2000, 0
from protocol.crypto import SigningKey


def key_of(i: int) -> SigningKey:
    return SigningKey(bytes([i]) * 32)


async def make_sources(base: Path, n: int, k: int) -> list[list[bytes]]:
    """Each source counter's events, encoded, in order."""
    out = []
    for i in range(1, k + 1):
        led = await Ledger.open(base / f"src{i}.sqlite3", f"cashier-{i:02d}", key_of(i),
                                patient_keys=KEYS)
        try:
            done = 0
            while done < n // 4:
                ops = []
                for _ in range(min(25, n // 4 - done)):
                    ops += patient_ops(f"86{i:02d}{done:08d}")
                    done += 1
                await led.append(ops, "op.wang")
            out.append([d for _, d in await led.events(0, n + 10)])
        finally:
            await led.close()
    return out


def pages(sources: list[list[bytes]], page: int) -> list[list[bytes]]:
    """The sources' events in pages, the counters taking turns (as central relays them)."""
    out: list[list[bytes]] = []
    for start in range(0, max(len(s) for s in sources), page):
        out += [s[start:start + page] for s in sources if s[start:start + page]]
    return out


def profiled(conn: Any, prof: cProfile.Profile, led: Ledger, page: list[bytes],
             later: bool) -> int:
    prof.enable()
    try:
        return int(led._ingest_tx(conn, page, True, later))
    finally:
        prof.disable()


async def ingest_once(path: Path, sources: list[list[bytes]], page: int, k: int,
                      profile: str | None, no_keys: bool = False, later: bool = False
                      ) -> dict[str, float]:
    led = await Ledger.open(path, "cashier-99", key_of(99),
                            patient_keys=None if no_keys else KEYS)
    try:
        await led.set_node_keys({f"cashier-{i:02d}": (key_of(i).public_key, "cashier")
                                 for i in range(1, k + 1)})
        if later:  # (as the sync daemon opens it)
            await led.run(lambda c: c.execute(f"PRAGMA cache_size=-{SYNC_CACHE_KIB}"))
        todo = pages(sources, page)
        prof = cProfile.Profile() if profile else None
        c0, t0 = time.process_time(), time.perf_counter()
        n = 0
        for p in todo:
            if prof is None:
                n += await (led.ingest(p, attested=True, index_later=True) if later else
                            led.ingest(p, attested=True))
            else:  # (the ingest runs in the ledger's thread: profile it there)
                n += await led.run(profiled, prof, led, p, later)
        if prof:
            prof.dump_stats(profile)  # type: ignore[arg-type]
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        assert n == sum(len(s) for s in sources), n
        c1 = time.process_time()
        while later and (await led.index_due(BATCH))[1]:  # the daemon's background pass
            pass
        index_cpu = time.process_time() - c1
        if not no_keys:
            hits = await led.search_patients("患者01", 5)
            assert hits, "search found nothing"
    finally:
        await led.close()
    return {"cpu_us_per_event": cpu / n * 1e6, "wall_us_per_event": wall / n * 1e6,
            "index_pass_cpu_us_per_event": index_cpu / n * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=5000, help="events per source counter")
    ap.add_argument("--counters", type=int, default=3)
    ap.add_argument("--page", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", default=None, help="write a cProfile of the first run here")
    ap.add_argument("--no-keys", action="store_true",
                    help="the counter holds no patient keys: sealed names are not indexed")
    ap.add_argument("--index-later", action="store_true",
                    help="as the sync daemon: the search terms marked due in the ingest and "
                    "written by the background pass after it (timed apart)")
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        base = Path(d)
        sources = asyncio.run(make_sources(base, args.events, args.counters))
        runs = []
        for r in range(args.runs):
            runs.append(asyncio.run(ingest_once(base / f"dst{r}.sqlite3", sources, args.page,
                                                args.counters,
                                                args.profile if r == 0 else None,
                                                args.no_keys, args.index_later)))
    cpu = [r["cpu_us_per_event"] for r in runs]
    wall = [r["wall_us_per_event"] for r in runs]
    print(json.dumps({
        "bench": "counter_ingest",
        "events": args.events * args.counters,
        "page": args.page,
        "names_indexed": not args.no_keys,
        "index_later": args.index_later,
        "cpu_us_per_event": [round(x) for x in cpu],
        "cpu_us_per_event_median": round(statistics.median(cpu)),
        "wall_us_per_event_median": round(statistics.median(wall)),
        "index_pass_cpu_us_per_event_median": round(statistics.median(
            r["index_pass_cpu_us_per_event"] for r in runs)),
        "load_avg": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
