"""Card tap latency on the real reader stack: PC/SC event → patient panel data ready.

Runs pcscd + vpcd (tests.support.pcsc_stack, needs root) with a virtual card, a real
SQLite ledger with the patient registered, and :class:`PcscReader` on both readers of
the stack (taps alternate, so one reader's insertion poll overlaps the other's tap).
Each tap is timed from ``CardPresented.seen_ns`` (the moment pcscd reported the card,
i.e. excluding pcscd's ~400 ms polling) to the data the patient panel shows being
ready: the card's files read, signature verified, ledger lookup done, wallet stamp
weighed.  Prints one JSON line; figures are milliseconds.

    sudo .venv/bin/python -m bench.card_tap [--taps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/card_tap.py`: tests.support is needed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_node.card import layout
from edge_node.card.layout import (
    KnownBalance,
    StaticKeys,
    check_record,
    decide_balance,
    identify,
    issue_card,
    make_stamp,
)
from edge_node.card.pcsc import PcscReader
from edge_node.card.reader import CardPresented, CardRemoved, write_card, write_stamp
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from protocol.crypto import SigningKey
from protocol.privacy import PatientKeys
from tests.support.pcsc_stack import PcscStack
from tests.support.vcard import CardImage

NODE = "cashier-01"
NATIONAL_ID = "110101199003070011"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def _next(reader: PcscReader, kind: type, timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        ev = await reader.next_event(max(0.01, deadline - time.monotonic()))
        if isinstance(ev, kind):
            return ev


async def run(taps: int, workdir: Path) -> dict[str, object]:
    key = SigningKey(hashlib.sha256(NODE.encode()).digest())
    with PcscStack(workdir) as stack:
        ledger = await Ledger.open(workdir / "ledger.sqlite3", NODE, key,
                                   patient_keys=PatientKeys.generate())
        try:
            service = CounterService(ledger, "op.bench")
            receipt = await service.register_patient(
                name="张三", card_no="8600000001", first_deposit=50_000, method="cash",
                national_id=NATIONAL_ID, phone="13800138000",
            )  # fmt: skip
            patient_id = receipt.patient.patient_id
            keys = StaticKeys(await ledger.node_keys())
            readers = [PcscReader(name) for name in stack.readers]
            for r in readers:
                await r.start()
            uid = b"\x04\xbe\x0c\x11"
            state = workdir / "card.json"
            blank = CardImage.blank_onecard(uid, layout.AID, layout.EF_SIZES)
            first = stack.card(stack.readers[0], state, blank)
            # Issue the card and stamp it once, like the registration counter would.
            first.insert()
            ev = await _next(readers[0], CardPresented)
            assert isinstance(ev, CardPresented)
            data = issue_card(key, NODE, card_no="8600000001", patient_no=patient_id,
                              issued_ms=int(time.time() * 1000), uid=ev.uid)  # fmt: skip
            await write_card(readers[0], ev.uid, data)
            account = (await service.lookup_card("8600000001")).account
            stamp = make_stamp(
                key, NODE, card_no="8600000001", patient_no=patient_id, account=patient_id,
                balance=account.balance, seq=max(1, account.money_seq),
                event_hash=bytes(32), at_ms=1,
            )  # fmt: skip
            await write_stamp(readers[0], ev.uid, stamp)
            first.remove()
            await _next(readers[0], CardRemoved)

            latencies: list[float] = []
            detect: list[float] = []
            read_part: list[float] = []
            for i in range(taps):
                n = i % len(readers)
                reader = readers[n]
                card = stack.card(stack.readers[n], state)  # the same card, other reader
                t_insert = time.monotonic_ns()
                card.insert()
                ev = await _next(reader, CardPresented)
                assert isinstance(ev, CardPresented) and ev.fault is None, ev
                got = identify(medium=ev.medium, uid=ev.uid, card_file=ev.card_file,
                               typed="", keys=keys)  # fmt: skip
                assert got.refusal is None, got.refusal
                view = await service.lookup_card(got.card_no)
                assert view.card is not None
                record = layout.CardRecord(
                    view.card.card_no, view.card.patient_id, view.card.status
                )  # type: ignore[arg-type]
                assert check_record(got.card_no, got.patient_no, record) is None
                known = KnownBalance(patient_id, view.account.balance, view.account.money_seq)
                balance = decide_balance(known, ev.stamp_file, keys, card_no=got.card_no,
                                         patient_no=patient_id)  # fmt: skip
                ready = time.monotonic_ns()
                assert balance.balance == 50_000
                latencies.append((ready - ev.seen_ns) / 1e6)
                read_part.append((ev.read_ns - ev.seen_ns) / 1e6)
                detect.append((ev.seen_ns - t_insert) / 1e6)
                card.remove()
                await _next(reader, CardRemoved)
            for r in readers:
                await r.stop()
        finally:
            await ledger.close()
    return {
        "bench": "card_tap",
        "taps": taps,
        "readers": len(stack.readers),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(_pct(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "read_p50_ms": round(statistics.median(read_part), 2),
        "read_p99_ms": round(_pct(read_part, 99), 2),
        "pcscd_detect_p50_ms": round(statistics.median(detect), 1),
        "target_p99_ms": 100,
        "measured_from": "PC/SC card-present event (pcscd polling excluded)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="card-tap-") as tmp:
        result = asyncio.run(run(args.taps, Path(tmp)))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
