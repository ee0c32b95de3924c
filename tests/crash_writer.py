"""Appends counter operations in a loop, printing each committed seq (run by test_crash)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from tests.conftest import TEST_PATIENT_KEYS, item, node_key


async def main(path: Path) -> None:
    led = await Ledger.open(path, "cashier-01", node_key("cashier-01"),
                            patient_keys=TEST_PATIENT_KEYS)
    svc = CounterService(led, "op")
    if (await led.head()).seq == 0:
        await svc.register_patient(name="张三", sex="M", birth_date="1990-01-01",
                                   phone="13800138000", card_no="8600000001",
                                   first_deposit=10**9)
    for i in range(100_000):  # bounded: the test kills it long before
        try:
            if i % 3 == 0:
                r = await svc.deposit("8600000001", 100 + i % 7, "cash")
            else:
                r = await svc.charge("8600000001", [item(1 + i % 50, qty=1 + i % 3)], "x")
        except OperationRefused:
            continue
        print(r.events[-1].seq, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
