"""Dormant accounts: report, select and approve over N moved-in patients.

Makes a central with `onecard-central init` in a temp dir, imports an old system's export
of N patients (tests/support/old_system.py: balances, last activity dates in 2026), then
times the real commands as processes: `dormant report --months 1 --csv` (folds the whole
store), `dormant settle` of every account the report lists (folds again, checks each
line), and `dormant approve` (signs one settlement per account, CHUNK per transaction).
Prints one JSON line.

    python bench/dormant.py [N] [CHUNK]
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.old_system import export
from tests.support.sync_cluster import run_cli


def timed(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = run_cli(*args, timeout=3600)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"onecard-central {' '.join(args)} failed:\n{r.stderr}")
    return elapsed, r.stdout


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    chunk = sys.argv[2] if len(sys.argv) > 2 else "200"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cfg = d / "central" / "central.toml"
        r = run_cli("--config", str(cfg), "init", "--dir", str(cfg.parent))
        assert r.returncode == 0, r.stderr
        path = d / "old.csv"
        path.write_text(export(n).text, encoding="utf-8")
        timed("--config", str(cfg), "import", str(path))
        with sqlite3.connect(cfg.parent / "central.sqlite3") as c:
            events = int(c.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        out = d / "dormant.csv"
        report, _ = timed("--config", str(cfg), "dormant", "report", "--months", "1",
                          "--csv", str(out))
        accounts = len(out.read_text(encoding="utf-8").splitlines()) - 1
        settle, made = timed("--config", str(cfg), "dormant", "settle", "--select", str(out),
                             "--operator", "fin.wang", "--months", "1")
        m = re.search(r"(dorm-[0-9T]+-[0-9a-f]+)", made)
        assert m, made
        approve, _ = timed("--config", str(cfg), "dormant", "approve", m.group(1),
                           "--operator", "fin.li", "--chunk", chunk)
    print(json.dumps({
        "bench": "central_dormant",
        "patients": n,
        "store_events": events,
        "dormant_accounts": accounts,
        "chunk": int(chunk),
        "report_s": round(report, 2),
        "settle_s": round(settle, 2),
        "approve_s": round(approve, 2),
        "settled_per_s": round(accounts / approve),
        "synchronous": "FULL",
        "note": "wall time of the real commands as processes, start-up included",
    }))


if __name__ == "__main__":
    main()
