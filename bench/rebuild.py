"""Rebuild and verify of a big counter ledger: time and peak memory (one JSON line).

A ledger of ``--events`` signed events (patients with cards and deposits, then charges:
:func:`bench.edge_append.fill`, names and phones sealed) is made once in a temp dir;
then ``Ledger.rebuild`` (every projection and the search index refolded from the events,
in chunks of :data:`edge_node.ledger.REBUILD_CHUNK`) and ``Ledger.verify`` (every
event's stored hash, chain link and Ed25519 signature) each run in a fresh process,
which reports its own time and peak RSS.

Usage: ``python bench/rebuild.py [--events 1000000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.edge_append import KEYS, NODE, fill  # noqa: E402
from edge_node.ledger import Ledger  # noqa: E402
from protocol.crypto import SigningKey  # noqa: E402

KEY = SigningKey(bytes(range(32)))


async def run(path: str, what: str) -> dict[str, object]:
    """In the child: open the ledger, run ``what``, say how long and how much memory."""
    led = await Ledger.open(path, NODE, KEY, patient_keys=KEYS)
    marks: list[int] = []
    t0 = time.perf_counter()
    try:
        if what == "rebuild":
            n = await led.rebuild(progress=marks.append)
            ok = True
        else:
            report = await led.verify(progress=marks.append)
            n, ok = report.checked, report.ok
        took = time.perf_counter() - t0
    finally:
        await led.close()
    return {"events": n, "ok": ok, "s": round(took, 1), "progress_reports": len(marks),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(asyncio.run(run(sys.argv[2], sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="onecard-bench-", dir=os.environ.get("BENCH_DIR")) \
            as d:
        path = Path(d) / "ledger.sqlite3"

        async def schema() -> None:
            await (await Ledger.open(path, NODE, KEY, patient_keys=KEYS)).close()
        asyncio.run(schema())
        t0 = time.perf_counter()
        fill(path, KEY, args.events)
        out: dict[str, object] = {"bench": "rebuild", "events": args.events,
                                  "fill_s": round(time.perf_counter() - t0, 1),
                                  "ledger_mb": round(path.stat().st_size / 2**20, 1)}
        for what in ("rebuild", "verify"):
            got = subprocess.run([sys.executable, __file__, "--child", str(path), what],
                                 capture_output=True, text=True, check=True)
            out[what] = json.loads(got.stdout.strip().splitlines()[-1])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
