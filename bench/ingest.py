"""Central ingest rate (verify + dedupe + store + ack, over a real websocket) vs raw verify.

Starts `onecard-central serve` as a process on 127.0.0.1, signs N events of one counter
in this process, then pushes them in batches of 500 (up to 4 in flight) and times
first send → last ack.  Also measures the raw PyNaCl Ed25519 verify rate of the same
events on one core in this process, before central starts, and prints one JSON line.

    python bench/ingest.py [N] [--postgresql]

``--postgresql``: central keeps its data in a fresh PostgreSQL database on the machine's
server (tests/support/pg.py), dropped afterwards; else in SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def raw_verify_rate(key: SigningKey, events: list[bytes], seconds: float = 2.0) -> float:
    vk = nacl.signing.VerifyKey(key.public_key)
    pairs = []
    for d in events[:2000]:
        ev = decode_event(d)
        pairs.append((ev.signing_bytes(), ev.sig))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for msg, sig in pairs[:500]:
            vk.verify(msg, sig)
        n += 500
    return n / (time.perf_counter() - t0)


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


def ingest_seconds(node: str, key: SigningKey, events: list[bytes], workers: int
                   ) -> tuple[float, float, float, float]:
    """Seconds from first push to last ack, central's peak RSS (MB) by then, and after a
    restart over that store: seconds until it listens, and its RSS then (MB)."""
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database_sync()) if POSTGRESQL else ""
        central = Central.init(Path(d), database=url)
        text = central.config.read_text().replace(
            "verify_workers = -1", f"verify_workers = {workers}"
        )
        central.config.write_text(text)
        central.enrol(node, key)
        central.start()
        try:
            secs = asyncio.run(
                push_all(central.url, node, key, bytes.fromhex(central.key_hex), events)
            )
            assert len([e for e in central.event_ids() if e[0] == node]) == len(events)
            assert central.proc is not None
            rss = peak_rss_mb(central.proc.pid)
            central.stop()
            t0 = time.perf_counter()
            central.start(timeout=600)  # returns once it listens: the reconciler caught up
            restart = time.perf_counter() - t0
            assert central.proc is not None
            restart_rss = peak_rss_mb(central.proc.pid)
        finally:
            central.stop()
    return secs, rss, restart, restart_rss


POSTGRESQL = "--postgresql" in sys.argv


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--postgresql"]
    n = int(args[0]) if args else 20_000
    key = SigningKey(b"b" * 32)
    node = "bench-01"
    events = make_events(key, node, n)
    raw = raw_verify_rate(key, events)
    secs, _, _, _ = ingest_seconds(node, key, events, 0)  # everything in the server process
    one = n / secs
    cores = os.cpu_count() or 1
    secs, rss, restart, restart_rss = ingest_seconds(node, key, events, -1)  # a worker a core
    multi = n / secs
    print(
        json.dumps(
            {
                "bench": "central_ingest",
                "events": n,
                "batch": 500,
                "window": 4,
                "ingest_events_per_s": round(multi),
                "verify_workers": cores,
                "raw_verify_per_s_one_core": round(raw),
                "ratio_to_raw_verify": round(multi / raw, 3),
                "ingest_events_per_s_no_workers": round(one),
                "ratio_no_workers": round(one / raw, 3),
                "avg_event_bytes": sum(map(len, events)) // n,
                "central_peak_rss_mb": rss,
                "restart_listening_s": round(restart, 2),
                "restart_rss_mb": restart_rss,
                "database": "postgresql" if POSTGRESQL else "sqlite",
                "synchronous": "FULL",
            }
        )
    )


if __name__ == "__main__":
    main()
