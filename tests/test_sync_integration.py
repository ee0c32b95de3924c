"""The real thing: `onecard-central serve` and counter sync daemons as processes, real
SQLite files, faults from SIGKILL and a misbehaving TCP link (all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.sync_cluster import (
    EDGE_CLI,
    Central,
    Counter,
    central_trail,
    converged,
    offline_work,
    wait_for,
)
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def assert_identical(central: Central, counters: list[Counter], total: int) -> None:
    """Central and every counter hold exactly the same events, and the same balances."""
    ids = central.event_ids()
    total += central_trail(central)  # central's own audit trail (the counters it enrolled)
    assert len(ids) == total
    assert central.positions() == list(range(1, total + 1))  # gapless cursor
    for c in counters:
        assert c.event_ids() == ids, c.node
    balances = [c.balances() for c in counters]
    assert balances[0] and all(b == balances[0] for b in balances)


def test_three_counters_work_offline_then_converge(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    counters = [Counter.create(tmp_path, f"cashier-0{i}", central) for i in range(1, 4)]
    # offline: central is not even running
    total = sum(asyncio.run(offline_work(c, patients=8, charges=2)) for c in counters)
    assert total == 3 * 8 * 5
    for c in counters:
        c.start_sync()
    try:
        time.sleep(0.5)
        assert all(c.sync_state()["online"] == 0 for c in counters)  # nowhere to go yet
        central.start()
        wait_for(lambda: converged(central, counters, total), 60, "convergence")
        assert_identical(central, counters, total)
        wait_for(lambda: all(c.sync_state()["acked_seq"] == 40 for c in counters), 10,
                 "acks recorded")
        st = counters[0].sync_state()
        assert st["online"] == 1 and st["received"] == 80 + central_trail(central)
        assert st["last_sync_ms"] > 0
        assert st["last_error"] == ""
        # live: work done while online reaches the others without any restart
        more = asyncio.run(offline_work(counters[1], patients=2, charges=0))
        total += more
        wait_for(lambda: converged(central, counters, total), 20, "live propagation")
        assert_identical(central, counters, total)
        # the central CLI shows every counter online with no lag
        from tests.support.sync_cluster import run_cli

        out = run_cli("--config", str(central.config), "nodes").stdout
        for c in counters:
            line = next(x for x in out.splitlines() if x.startswith(c.node))
            assert " online " in line and line.split()[-2] == "0", line
    finally:
        for c in counters:
            c.stop()
        central.stop()
    # a clean stop records offline
    assert all(c.sync_state()["online"] == 0 for c in counters)


def test_sigkill_daemons_and_central_mid_batch_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    central = Central.init(tmp_path / "central")
    counters = [Counter.create(tmp_path, f"cashier-1{i}", central) for i in range(1, 4)]
    total = sum(asyncio.run(offline_work(c, patients=300, charges=1)) for c in counters)
    central.start()
    partial = []
    try:
        for round_ in range(3):
            for c in counters:
                c.start_sync()
            # let batches fly, then SIGKILL central mid-ingest and one daemon mid-batch
            wait_for(lambda: len(central.event_ids()) > 0, 20, "first commits")
            time.sleep(0.05 * (round_ + 1))
            central.kill()
            counters[round_ % 3].kill()
            held = len(central.event_ids())
            assert held <= total
            partial.append(held)
            central.start()
            counters[round_ % 3].start_sync()
            time.sleep(0.1)
            for c in counters:
                c.kill()
        # the kills landed while batches were still being stored, not after the end
        assert any(0 < h < total for h in partial), partial
        for c in counters:
            c.start_sync()
        wait_for(lambda: converged(central, counters, total), 90, "convergence after kills")
        assert_identical(central, counters, total)
    finally:
        for c in counters:
            c.stop()
        central.stop()


def test_converges_through_a_link_that_cuts_stalls_and_delays(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    central.start()
    with TcpProxy(central.port, chunk=700) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/sync"
        counters = [Counter.create(tmp_path, f"cashier-2{i}", central, url=url)
                    for i in range(1, 4)]
        total = sum(asyncio.run(offline_work(c, patients=120, charges=1)) for c in counters)
        try:
            proxy.set_delay(0.002)
            proxy.cut_after(60_000)  # every connection dies mid-frame after 60 kB up
            for c in counters:
                c.start_sync()
            wait_for(lambda: proxy.connections >= 6, 30, "reconnects after cuts")
            proxy.cut_after(None)
            proxy.stall(3.0)  # hung link: keepalive (1 s in tests) must notice
            time.sleep(1.0)
            proxy.cut()
            proxy.refuse(True)  # link down for a while: each counter notices and says so
            wait_for(lambda: all(c.sync_state()["online"] == 0 and c.sync_state()["last_error"]
                                 for c in counters), 30, "every counter offline, saying why")
            proxy.refuse(False)
            proxy.set_delay(0.0)
            wait_for(lambda: converged(central, counters, total), 90, "convergence via proxy")
            assert_identical(central, counters, total)
        finally:
            for c in counters:
                c.stop()
            central.stop()


def test_sync_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    c = Counter.create(tmp_path, "cashier-31", central)
    central.start()
    try:
        c.start_sync()
        wait_for(lambda: c.sync_state()["online"] == 1, 20, "online")
        assert c.proc is not None
        c.proc.send_signal(signal.SIGTERM)
        assert c.proc.wait(timeout=10) == 0
        assert c.sync_state()["online"] == 0
    finally:
        c.stop()
        central.stop()


def test_the_sync_process_takes_several_central_urls_and_skips_a_dead_one(
        tmp_path: Path) -> None:
    """``[sync] central_urls`` through the real `onecard-edge sync`: the first instance is
    down, the counter fails over to the next and syncs; `info` names both."""
    central = Central.init(tmp_path / "central")
    c = Counter.create(tmp_path, "cashier-01", central)
    dead = "ws://127.0.0.1:9/sync"
    text = c.config.read_text(encoding="utf-8")
    assert "central_urls = []" in text
    c.config.write_text(text.replace("central_urls = []",
                                     f'central_urls = ["{dead}", "{central.url}"]'),
                        encoding="utf-8")
    central.start()
    try:
        c.start_sync({"ONECARD_SYNC_BACKOFF_MAX_S": "30"})
        wait_for(lambda: bool(c.sync_state()["online"]), 30, "the counter online")
        log = (c.dir / "sync.log").read_text(encoding="utf-8")
        assert f"sync failover node=cashier-01 trying {central.url}" in log
        info = subprocess.run([EDGE_CLI, "--config", str(c.config), "info"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
        assert f"{dead} {central.url}" in info
    finally:
        c.stop()
        central.stop()
