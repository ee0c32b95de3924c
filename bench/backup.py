"""How long a verified backup of a counter's ledger takes (one JSON line).

A real ledger is filled with ``--patients`` signed registrations, cards and deposits
(three events each, as bench/search.py makes them) and refolded; then
``edge_node.backup.backup`` copies it with SQLite's online backup API and checks the
copy (integrity check plus the full chain verify: every hash, link and Ed25519
signature), which is what ``onecard-edge backup`` does.  Reported: events, file bytes,
seconds for the whole backup, and the verify's share measured alone on the copy.

Usage: ``python bench/backup.py [--patients 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import NODE, fill, person

from edge_node import backup
from edge_node.ledger import Ledger, check_ledger_copy
from protocol.crypto import SigningKey


async def measure(n_patients: int, base: Path) -> dict[str, object]:
    rnd = random.Random(12)
    path = base / "ledger.sqlite3"
    key = SigningKey(bytes(range(32)))
    led = await Ledger.open(path, NODE, key)
    await led.close()
    fill(path, key, [person(rnd, i) for i in range(n_patients)])
    led = await Ledger.open(path, NODE, key)
    await led.rebuild()
    await led.close()
    check = check_ledger_copy(NODE, key.public_key)
    t0 = time.perf_counter()
    done = backup.backup(path, base / "backups", NODE, 2, check)
    backup_s = time.perf_counter() - t0
    con = sqlite3.connect(done.path)
    t0 = time.perf_counter()
    events, bad = backup.check_copy(con, check)
    verify_s = time.perf_counter() - t0
    con.close()
    assert not bad and events == done.events
    return {"bench": "backup", "events": done.events, "bytes": done.size,
            "backup_s": round(backup_s, 3), "verify_s": round(verify_s, 3),
            "events_per_s": round(done.events / backup_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(asyncio.run(measure(args.patients, Path(d)))))


if __name__ == "__main__":
    main()
