"""Crash safety: SIGKILL a process while it appends, many times; the ledger always verifies,
loses no committed event, and its projections equal a rebuild."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge_node.ledger import Ledger
from tests.conftest import node_key

ROOT = Path(__file__).resolve().parents[1]


async def test_sigkill_while_appending_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    rnd = random.Random(1234)
    last_committed = 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "tests.crash_writer", str(db)],
                                cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.stdout is not None
        # wait until it is appending, then kill it at a random moment
        first = proc.stdout.readline()
        assert first.strip().isdigit(), "writer did not start appending"
        time.sleep(rnd.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
        printed = [int(x) for x in [first, *out.split()] if x.strip().isdigit()]
        last_committed = max([last_committed, *printed])
        led = await Ledger.open(db, "cashier-01", node_key("cashier-01"))
        report = await led.verify()
        assert report.ok, report
        head = await led.head()
        assert head.seq >= last_committed, "an event reported committed was lost"
        live = await led.dump_projections()
        await led.rebuild()
        assert await led.dump_projections() == live
        await led.close()
    assert last_committed > 20
