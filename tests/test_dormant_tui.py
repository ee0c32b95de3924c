"""A dormant settlement central signed reads on the counter's patient history (Pilot)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from edge_node.errors import OperationRefused
from edge_node.service import CounterService
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from tests.conftest import item, node_key
from tests.tui_harness import (
    NODE,
    NOW_MS,
    log_in,
    make_app,
    make_config,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
)

CARD = "8600000001"


async def test_the_history_shows_the_settlement_and_the_counter_refuses_charges(
        tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    led = await open_ledger(cfg)
    central = SigningKey.generate()
    try:
        await seed_staff(led)
        pid = await seed_patient(led, CARD, deposit=6_500)
        await led.set_node_keys({NODE: (node_key(NODE).public_key, "cashier"),
                                 CENTRAL: (central.public_key, "central")})
        _, data, _ = sign_event(central, node=CENTRAL, seq=1, prev=ZERO_HASH,
                                hlc=Hlc(NOW_MS - 60_000, 0), operator="fin.li",
                                kind="account.dormant_settled",
                                body={"patient_id": pid, "amount": 6_500,
                                      "dormant_batch": "dorm-20261201T080000-0a1b2c",
                                      "idle_since": "2024-06-30", "selected_by": "fin.wang",
                                      "approved_by": "fin.li"})
        assert await led.ingest([data]) == 1
        with pytest.raises(OperationRefused) as refused:  # closed until a new deposit
            await CounterService(led, "op.wang").charge(CARD, [item(100)], "lab")
        assert [p.code for p in refused.value.problems] == ["account.closed"]
        app = make_app(cfg, led)
        async with app.run_test(size=(140, 44)) as pilot:
            await log_in(pilot)
            await tap(pilot, CARD)
            await pilot.press("f10")
            await settle_down(pilot)
            table = app.screen.query_one("#history", DataTable)
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    finally:
        await led.close()
    assert rows[0][1] == "Dormant account settled" and rows[0][2] == "-¥65.00"
    assert "dorm-20261201T080000-0a1b2c" in rows[0][3] and "2024-06-30" in rows[0][3]
    assert sum(int(r[2].replace("¥", "").replace(".", "")) for r in rows if r[2]) == 0
