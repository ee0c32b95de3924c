"""The daily audit's cost over a store of signed events (pure part, no I/O).

Signs ``--patients`` registrations, each with a card, a cash deposit and two charges,
spread over two counters and one business day, plus one close per counter, then times
:func:`central.audit.audit` over them (decode, four folds, conservation, closes, rules).
Prints one JSON line; times in seconds.

    .venv/bin/python -m bench.audit [--patients 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from central.audit import AuditConfig, Stored, audit
from edge_node.reports import build, close_body, day_bounds
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import Event, decode_event, sign_event
from protocol.hlc import Hlc
from protocol.privacy import PatientKeys

#: the hospital's patient keys (a bench holds them): names and phones sealed as at a counter
KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))

DAY = dt.date(2026, 11, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=5000)
    n = ap.parse_args().patients
    day = day_bounds(DAY, "Asia/Shanghai")
    rows: list[tuple[int, bytes]] = []
    heads: dict[str, tuple[int, bytes]] = {}
    keys = {f"cashier-0{i}": SigningKey(hashlib.sha256(f"k{i}".encode()).digest())
            for i in (1, 2)}
    t = day.start_ms + 3_600_000

    def add(node: str, kind: str, body: dict[str, object]) -> Event:
        nonlocal t
        seq, prev = heads.get(node, (0, ZERO_HASH))
        t += 1
        ev, data, h = sign_event(keys[node], node=node, seq=seq + 1, prev=prev,
                                 hlc=Hlc(t, 0), operator="wang", kind=kind, body=body)
        heads[node] = (seq + 1, h)
        rows.append((len(rows) + 1, data))
        return ev

    for i in range(n):
        node = f"cashier-0{i % 2 + 1}"
        pid, card = f"P-{node}-{i}", f"86{i:08d}"
        add(node, "patient.registered", {"patient_id": pid, "sex": "M", "birth_date":
                                         "1990-03-07", **KEYS.sealed_details(pid, {
                                             "name": "张三", "phone": "13800138000"})})
        add(node, "card.issued", {"card_no": card, "patient_id": pid})
        add(node, "account.deposited", {"patient_id": pid, "amount": 10_000, "method": "cash",
                                        "receipt_no": f"D-{i}"})
        for j in range(2):
            add(node, "account.charged", {"charge_id": f"C-{i}-{j}", "patient_id": pid,
                                          "card_no": card, "amount": 2_500, "department": "lab",
                                          "items": [{"code": "LAB", "name": "血常规", "qty": 1,
                                                     "unit_price": 2_500}]})
    events = [decode_event(d) for _, d in rows]
    for node in keys:
        rep = build(events, day, node)
        add(node, "report.closed", close_body(rep, rep.expected_cash))
    balances = {f"P-cashier-0{i % 2 + 1}-{i}": 5_000 for i in range(n)}
    start = time.perf_counter()
    result = audit(rows, day, AuditConfig(), Stored(balances, len(rows)))
    took = time.perf_counter() - start
    print(json.dumps({"bench": "audit", "patients": n, "events": len(rows),
                      "seconds": round(took, 3),
                      "events_per_s": round(len(rows) / took),
                      "balanced": result.balanced, "findings": len(result.findings)}))


if __name__ == "__main__":
    main()
