"""Central ingest rate (verify + dedupe + store + ack, over a real websocket) vs raw verify.

Starts `onecard-central serve` as a process on 127.0.0.1, signs N events of one counter
in this process, then pushes them in batches of 500 (up to 4 in flight) and times
first send → last ack (an ack means "stored": the reconciler follows behind), then
first send → every event reconciled (the reconciler's checkpoint at the cursor).  Also
measures the raw PyNaCl Ed25519 verify rate of the same events on one core in this
process, before central starts, and prints one JSON line.

On a shared machine wall-clock rates swing with the load; the CPU figures do not: the
CPU time (user + system, from /proc) that central's processes spent per event — serve
itself, its verify workers, its reconciler — until the last ack and until reconciled,
and the raw verify's CPU per event.  ``cpu_bound_ratio`` is what the CPU until the last
ack allows on this machine's cores against one core's raw verify: cores × raw verify
CPU per event ÷ ingest CPU per event.

    python bench/ingest.py [N] [--postgresql]

``--postgresql``: central keeps its data in a fresh PostgreSQL database on the machine's
server (tests/support/pg.py), dropped afterwards; else in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.signing
from websockets.asyncio.client import connect

from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import decode_event, sign_event
from protocol.hlc import Hlc
from protocol.messages import MAX_FRAME_SIZE, Ack, batch_events
from protocol.privacy import PatientKeys
from protocol.session import EdgeSession
from tests.support.pg import fresh_database_sync
from tests.support.sync_cluster import Central

#: the hospital's patient keys (a bench holds them): names and phones sealed as at a counter
KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))


def visit(node: str, seq: int) -> tuple[str, dict[str, object]]:
    """Events as a counter writes them: register, issue a card, deposit, charge, …"""
    p = (seq - 1) // 4
    pid, card = f"P-{node}-{p:06d}", f"86{p:010d}"
    step = (seq - 1) % 4
    if step == 0:
        return "patient.registered", {"patient_id": pid, "sex": "M", "birth_date": "1980-05-06",
                                      **KEYS.sealed_details(pid, {"name": f"患者{p}",
                                                                  "phone": f"137{p:08d}"})}
    if step == 1:
        return "card.issued", {"card_no": card, "patient_id": pid, "medium": "chip"}
    if step == 2:
        return "account.deposited", {"patient_id": pid, "amount": 20_000, "method": "cash",
                                     "receipt_no": f"D-{node}-{seq:06d}", "card_no": card}
    return "account.charged", {
        "charge_id": f"C-{node}-{seq:06d}", "patient_id": pid, "card_no": card,
        "amount": 2_500, "department": "lab",
        "items": [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2_500}]}


def make_events(key: SigningKey, node: str, n: int) -> list[bytes]:
    out, prev = [], ZERO_HASH
    for seq in range(1, n + 1):
        kind, body = visit(node, seq)
        _, data, prev = sign_event(key, node=node, seq=seq, prev=prev,
                                   hlc=Hlc(1_790_000_000_000 + seq, 0), operator="op.wang",
                                   kind=kind, body=body)
        out.append(data)
    return out


def raw_verify_rate(key: SigningKey, events: list[bytes], seconds: float = 2.0
                    ) -> tuple[float, float]:
    """Verifications a second on one core (wall clock), and CPU µs per verification."""
    vk = nacl.signing.VerifyKey(key.public_key)
    pairs = []
    for d in events[:2000]:
        ev = decode_event(d)
        pairs.append((ev.signing_bytes(), ev.sig))
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for msg, sig in pairs[:500]:
            vk.verify(msg, sig)
        n += 500
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


async def push_all(
    url: str, node: str, key: SigningKey, central_key: bytes, events: list[bytes], window: int = 4
) -> float:
    async with connect(url, max_size=2 * MAX_FRAME_SIZE, compression=None) as ws:
        s = EdgeSession(node, key, central_key, os.urandom(32))
        from protocol.event import ChainHead

        await ws.send(s.send_hello(ChainHead()))
        s.receive(await ws.recv())  # type: ignore[arg-type]
        await ws.send(s.send_auth())
        s.receive(await ws.recv())  # type: ignore[arg-type]
        batches = batch_events(events)
        t0 = time.perf_counter()
        sent = acked = last = 0
        async with asyncio.timeout(600):
            while acked < len(batches):
                while sent < len(batches) and s.in_flight < window:
                    last += len(batches[sent])
                    await ws.send(s.send_push(batches[sent], last))
                    sent += 1
                msg = s.receive(await ws.recv())  # type: ignore[arg-type]
                if isinstance(msg, Ack):
                    acked += 1
        return time.perf_counter() - t0


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children(pid: int, comm: str) -> list[int]:
    """``pid``'s children named ``comm``."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{child}/comm").read_text().strip() == comm:
                        out.append(int(child))
    return out


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of ``pid`` and of each of its children, by role:
    ``serve``, ``reconciler`` (its process is named onecard-recon), ``workers``."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"serve": 0.0, "reconciler": 0.0, "workers": 0.0}

    def of(p: int) -> float:
        f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tick

    with contextlib.suppress(OSError):
        out["serve"] = of(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    comm = Path(f"/proc/{child}/comm").read_text().strip()
                    out["reconciler" if comm == "onecard-recon" else "workers"] += of(
                        int(child))
    return out


def folded_to(central: Central) -> int:
    value = central.rows("SELECT value FROM meta WHERE key = 'recon'")[0][0]
    return int(json.loads(value)["pos"]) if value else 0


@dataclasses.dataclass
class Run:
    acked_s: float  # first push → last ack
    reconciled_s: float  # first push → every event reconciled
    cpu_acked: dict[str, float]  # CPU s by role until the last ack
    cpu_reconciled: dict[str, float]  # … until reconciled
    rss: float  # central's peak RSS by the last ack (MB): serve's
    recon_rss: float  # its reconciler process's, once reconciled (MB)
    restart: float  # a restart over that store: seconds until it listens
    restart_rss: float


def ingest_run(node: str, key: SigningKey, events: list[bytes], workers: int) -> Run:
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database_sync()) if POSTGRESQL else ""
        central = Central.init(Path(d), database=url)
        text = central.config.read_text().replace(
            "verify_workers = 1", f"verify_workers = {workers}"
        )
        central.config.write_text(text)
        central.enrol(node, key)
        central.start()
        try:
            assert central.proc is not None
            pid = central.proc.pid
            top = int(central.rows("SELECT COALESCE(MAX(pos), 0) FROM events")[0][0])
            # start-up is not ingest: wait until its processes are up and idle
            deadline = time.monotonic() + 60
            busy = cpu_seconds(pid)
            while time.monotonic() < deadline:
                time.sleep(0.5)
                now = cpu_seconds(pid)
                if folded_to(central) >= top and sum(now.values()) - sum(busy.values()) < 0.02:
                    break
                busy = now
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            secs = asyncio.run(
                push_all(central.url, node, key, bytes.fromhex(central.key_hex), events)
            )
            c1 = cpu_seconds(pid)
            rss = peak_rss_mb(pid)
            top = int(central.rows("SELECT COALESCE(MAX(pos), 0) FROM events")[0][0])
            deadline = time.monotonic() + 600
            while folded_to(central) < top and time.monotonic() < deadline:
                time.sleep(0.02)
            reconciled = time.perf_counter() - t0
            c2 = cpu_seconds(pid)
            recon_rss = max((peak_rss_mb(p) for p in children(pid, "onecard-recon")),
                            default=0.0)
            assert folded_to(central) >= top, "not reconciled in 10 minutes"
            assert len([e for e in central.event_ids() if e[0] == node]) == len(events)
            central.stop()
            t0 = time.perf_counter()
            central.start(timeout=600)  # returns once it listens: the reconciler caught up
            restart = time.perf_counter() - t0
            assert central.proc is not None
            restart_rss = peak_rss_mb(central.proc.pid)
        finally:
            central.stop()
    return Run(secs, reconciled, {k: c1[k] - c0[k] for k in c0},
               {k: c2[k] - c0[k] for k in c0}, rss, recon_rss, restart, restart_rss)


POSTGRESQL = "--postgresql" in sys.argv


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--postgresql"]
    n = int(args[0]) if args else 20_000
    key = SigningKey(b"b" * 32)
    node = "bench-01"
    events = make_events(key, node, n)
    load = os.getloadavg()[0]
    raw, raw_cpu_us = raw_verify_rate(key, events)
    one = ingest_run(node, key, events, 0)  # everything in the server process
    cores = os.cpu_count() or 1
    multi = ingest_run(node, key, events, -1)  # a verify worker a core, the reconciler

    def us(cpu: dict[str, float]) -> dict[str, int]:
        return {k: round(v / n * 1e6) for k, v in cpu.items()}

    ack_cpu_us = sum(multi.cpu_acked.values()) / n * 1e6
    print(
        json.dumps(
            {
                "bench": "central_ingest",
                "events": n,
                "batch": 500,
                "window": 4,
                "ingest_events_per_s": round(n / multi.acked_s),
                "verify_workers": cores,
                "raw_verify_per_s_one_core": round(raw),
                "ratio_to_raw_verify": round(n / multi.acked_s / raw, 3),
                "reconciled_events_per_s": round(n / multi.reconciled_s),
                "reconciled_after_last_ack_s": round(multi.reconciled_s - multi.acked_s, 2),
                "raw_verify_cpu_us": round(raw_cpu_us, 1),
                "cpu_us_per_event_to_last_ack": us(multi.cpu_acked),
                "cpu_us_per_event_to_reconciled": us(multi.cpu_reconciled),
                "cpu_bound_ratio": round(cores * raw_cpu_us / ack_cpu_us, 3),
                "ingest_events_per_s_no_workers": round(n / one.acked_s),
                "ratio_no_workers": round(n / one.acked_s / raw, 3),
                "reconciled_events_per_s_no_workers": round(n / one.reconciled_s),
                "cpu_us_per_event_no_workers": us(one.cpu_reconciled),
                "avg_event_bytes": sum(map(len, events)) // n,
                "central_peak_rss_mb": multi.rss,
                "reconciler_peak_rss_mb": multi.recon_rss,
                "restart_listening_s": round(multi.restart, 2),
                "restart_rss_mb": multi.restart_rss,
                "database": "postgresql" if POSTGRESQL else "sqlite",
                "synchronous": "FULL",
                "load_average": round(load, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
