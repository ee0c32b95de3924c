"""Central's console search with many patients on record (one JSON line).

Central's store is given ``--patients`` Patient records as its reconciler folds them
(the people of ``bench/search.py``: common Chinese names, phones, half with a national
ID number; sealed with the hospital's keys as counters seal them), written straight into
the reconciler's state.  Then:

- ``index_build_s``: the reconciler makes the console's search index from them
  (:meth:`~central.recon_store.StoredReconciler.search_step` until done: what an upgrade,
  a refold or new keys cost once), and ``index_rows``;
- the console's search as its screen runs it (:meth:`ConsoleData.search`: the index,
  then the hits' records, balances, cards and conflicts), ``n`` queries of each kind;
- ``scan``: the search the console did before the index (every patient record read and
  its name opened; still what it does while the index is being made), ``--scan``
  queries, with its peak RSS growth.

Usage: ``python bench/console_search.py [--patients 100000] [-n 100] [--scan 3]
[--postgresql]`` (``--postgresql``: a fresh database on the machine's server, dropped
afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.search import KEYS, person, queries
from central.console.data import ConsoleData
from central.recon_store import StoredReconciler, _pack_record, pack_key
from central.store import CentralStore
from protocol.patient import Patient
from protocol.privacy import SEALED_FIELDS

NODE = "cashier-01"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 3)


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def fill(store: CentralStore, patients: list[dict[str, str]]) -> None:
    """The patients' records as the reconciler keeps them (``recon_records``)."""
    rows: list[tuple[str, bytes, bytes]] = []
    for p, details in enumerate(patients):
        pid = f"P-{NODE}-{p:06d}"
        clear = {k: v for k, v in details.items() if k in ("name", *SEALED_FIELDS)}
        rec = Patient(pid, **{k: v for k, v in details.items() if k not in clear},  # type: ignore[arg-type]
                      **KEYS.sealed_details(pid, clear), registered_node=NODE)
        rows.append((Patient.TABLE, pack_key(pid), _pack_record(rec)))
        if len(rows) >= 5000 or p == len(patients) - 1:
            await store.write_many([("INSERT INTO recon_records (tbl, k, data) VALUES (?, ?, ?)",
                                     rows)])
            rows = []


async def measure(target: str, n_patients: int, n: int, n_scan: int) -> dict[str, object]:
    rnd = random.Random(16)
    patients = [person(rnd, i) for i in range(n_patients)]
    store = await CentralStore.open(target)
    try:
        t0 = time.perf_counter()
        await fill(store, patients)
        fill_s = time.perf_counter() - t0
        recon = StoredReconciler(store, keys=KEYS)
        t0 = time.perf_counter()
        while await recon.search_step():
            pass
        index_s = time.perf_counter() - t0
        rows = (await store.read("SELECT count(*) FROM recon_search"))[0][0]
        data = ConsoleData(store, patient_keys=KEYS)
        qs = queries(rnd, patients, n)
        timings: dict[str, list[float]] = {}
        found: dict[str, float] = {}
        every: list[float] = []
        rss_before = rss_mb()
        for kind, typed in qs.items():
            ts, hits = [], 0
            for q in typed:
                t = time.perf_counter()
                got = await data.search(q)
                ts.append(time.perf_counter() - t)
                hits += bool(got)
            timings[kind] = ts
            every += ts
            found[kind] = round(hits / len(typed), 3)
        rss_index = rss_mb()
        scan: list[float] = []
        for q in qs["name"][:n_scan]:
            t = time.perf_counter()
            await data._search_all(q)
            scan.append(time.perf_counter() - t)
        return {
            "patients": n_patients, "index_rows": int(rows), "fill_s": round(fill_s, 1),
            "index_build_s": round(index_s, 1),
            "p50_ms": pct(every, 0.5), "p99_ms": pct(every, 0.99), "max_ms": pct(every, 1.0),
            "by_kind": {k: {"p50_ms": pct(ts, 0.5), "p99_ms": pct(ts, 0.99), "found": found[k]}
                        for k, ts in timings.items()},
            "peak_rss_mb_indexed_search": rss_index, "rss_mb_before_searches": rss_before,
            "scan": {"queries": len(scan), "first_ms": pct(scan[:1], 1.0) if scan else None,
                     "later_p50_ms": pct(scan[1:], 0.5) if scan[1:] else None,
                     "peak_rss_mb": rss_mb()},
        }
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("-n", type=int, default=100, help="timed queries of each kind")
    ap.add_argument("--scan", type=int, default=3, help="queries of the search before the index")
    ap.add_argument("--postgresql", action="store_true")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if args.postgresql:
            from tests.support.pg import fresh_database_sync

            target = stack.enter_context(fresh_database_sync())
        else:
            d = stack.enter_context(tempfile.TemporaryDirectory(
                prefix="onecard-bench-", dir=os.environ.get("BENCH_DIR")))
            target = str(Path(d) / "central.sqlite3")
        out: dict[str, object] = {"bench": "console_search", "n": args.n,
                                  "database": "postgresql" if args.postgresql else "sqlite"}
        out.update(asyncio.run(measure(target, args.patients, args.n, args.scan)))
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
