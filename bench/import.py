"""Moving-in rate: `onecard-central import` of an old system's CSV into a fresh central.

Makes a central with `onecard-central init` in a temp dir and an export of N patients
(tests/support/old_system.py: cards, national IDs, balances), then times the real
command as a process, three ways: the dry run (read + check), the import (read, check,
sign three events a line, store in batches), and the re-run that finds every line in
(reads the whole store back).  Prints one JSON line.

    python bench/import.py [N] [BATCH_ROWS]
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.old_system import export
from tests.support.sync_cluster import run_cli


def timed(*args: str) -> float:
    t0 = time.perf_counter()
    r = run_cli(*args, timeout=3600)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"onecard-central {' '.join(args)} failed:\n{r.stderr}")
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    batch = sys.argv[2] if len(sys.argv) > 2 else "500"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cfg = d / "central" / "central.toml"
        r = run_cli("--config", str(cfg), "init", "--dir", str(cfg.parent))
        assert r.returncode == 0, r.stderr
        old = export(n)
        path = d / "old.csv"
        path.write_text(old.text, encoding="utf-8")
        dry = timed("--config", str(cfg), "import", str(path), "--dry-run")
        real = timed("--config", str(cfg), "import", str(path), "--batch-rows", batch)
        again = timed("--config", str(cfg), "import", str(path))
        with sqlite3.connect(cfg.parent / "central.sqlite3") as c:
            events = int(c.execute("SELECT COUNT(*) FROM events WHERE node = 'central'")
                         .fetchone()[0])
    print(json.dumps({
        "bench": "central_import",
        "rows": n,
        "batch_rows": int(batch),
        "events": events,
        "rows_per_s": round(n / real),
        "events_per_s": round(events / real),
        "import_s": round(real, 2),
        "dry_run_rows_per_s": round(n / dry),
        "rerun_rows_per_s": round(n / again),
        "csv_bytes": len(old.text.encode("utf-8")),
        "synchronous": "FULL",
        "note": "wall time of the real command as a process, start-up included",
    }))


if __name__ == "__main__":
    main()
