"""The patient panel tells staff what to do about a conflict central resolved (Pilot)."""

from __future__ import annotations

from pathlib import Path

from central.conflicts import raised_body
from central.reconcile import reconcile
from edge_node.config import EdgeConfig
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, decode_event, sign_event
from protocol.hlc import Hlc
from tests.conftest import FakeClock, item, node_key
from tests.tui_harness import (
    NODE,
    NOW_MS,
    home,
    log_in,
    make_app,
    make_config,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
    type_text,
)

CARD = "8600000001"
OTHER = "cashier-02"


async def _two_counters(cfg: EdgeConfig, tmp_path: Path) -> tuple[Ledger, Ledger, SigningKey]:
    """This counter (staff, a patient with ¥65.00 on CARD), cashier-02, and central's key
    both know."""
    led = await open_ledger(cfg)
    await seed_staff(led)
    await seed_patient(led, CARD, deposit=6_500)
    other = await Ledger.open(tmp_path / "other.sqlite3", OTHER, node_key(OTHER),
                              clock=FakeClock(NOW_MS - 3_000_000))
    central = SigningKey.generate()
    keys = {NODE: (node_key(NODE).public_key, "cashier"),
            OTHER: (node_key(OTHER).public_key, "cashier"),
            CENTRAL: (central.public_key, "central")}
    for x in (led, other):
        await x.set_node_keys(keys)
    return led, other, central


async def _overdrawn_with_debt(cfg: EdgeConfig, tmp_path: Path, *,
                               open_only: bool = False) -> Ledger:
    """This counter and cashier-02 each took ¥50.00 of ¥65.00 offline; IT recorded the debt
    (``open_only``: central only announced the conflict, nobody has resolved it yet)."""
    led, other, central = await _two_counters(cfg, tmp_path)
    try:
        await other.ingest([d for _, d in await led.events()])
        for x in (led, other):
            await CounterService(x, "seed").charge(CARD, [item(5_000)], "lab")
        await led.ingest([d for _, d in await other.events() if decode_event(d).node == OTHER])
    finally:
        await other.close()
    everything = [decode_event(d) for _, d in await led.events()]
    [conflict] = reconcile(everything)
    if open_only:
        _, data, _ = sign_event(central, node=CENTRAL, seq=1, prev=ZERO_HASH,
                                hlc=Hlc(NOW_MS - 60_000, 0), operator="reconciler",
                                kind="conflict.raised", body=raised_body(conflict))
        await led.ingest([data])
        return led
    option = conflict.remedy("debt")
    assert option is not None
    [(kind, body)] = option.events
    _, data, _ = sign_event(central, node=CENTRAL, seq=1, prev=ZERO_HASH,
                            hlc=Hlc(NOW_MS - 60_000, 0), operator="it.li", kind=kind,
                            body={**body, "reason": "owed by the patient"})
    await led.ingest([data])
    return led


def _flags(pilot: object) -> str:
    return str(home(pilot).panel.query_one("#flags").render())  # type: ignore[arg-type]


async def test_tap_shows_the_debt_and_why_and_a_deposit_collects_it(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    led = await _overdrawn_with_debt(cfg, tmp_path)
    try:
        app = make_app(cfg, led)
        async with app.run_test(size=(120, 44)) as pilot:
            await log_in(pilot)
            await tap(pilot, CARD)
            flags = _flags(pilot)
            assert "Owes ¥35.00 from an offline overdraft — collect before new charges" in flags
            assert "collect it first" not in flags  # the plain flag gives way to the notice
            await pilot.press("f3")
            await settle_down(pilot)
            await type_text(pilot, "50")
            await pilot.press("enter", "enter")
            await settle_down(pilot)
            await pilot.press("y")
            await settle_down(pilot)
            pid = (await led.get("cards", CARD)).patient_id
            assert (await led.get("accounts", pid)).balance == 1_500
            flags = _flags(pilot)
            assert "Debt of ¥35.00 from an offline overdraft paid" in flags
            assert "Owes" not in flags
    finally:
        await led.close()


async def test_tap_shows_an_open_conflict_before_it_is_resolved(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    led = await _overdrawn_with_debt(cfg, tmp_path, open_only=True)
    try:
        app = make_app(cfg, led)
        async with app.run_test(size=(120, 44)) as pilot:
            await log_in(pilot)
            await tap(pilot, CARD)
            flags = _flags(pilot)
            assert flags.count("Open conflict: an offline overdraft of ¥35.00 — central IT is "
                               "reviewing; collect nothing until told") == 1
            assert "collect it first" not in flags  # nothing to collect until IT decides
            assert "Owes" not in flags
    finally:
        await led.close()


async def test_survivor_history_shows_the_merged_records_events(tmp_path: Path) -> None:
    """After central merges a duplicate, the survivor's history (F10) includes the merged
    record's events, marked with its id; the money the merge moved nets to nothing."""
    cfg = make_config(tmp_path)
    led, other, central = await _two_counters(cfg, tmp_path)
    survivor = (await led.get("cards", CARD)).patient_id
    try:
        dup = await seed_patient(other, "8600000002", deposit=2_000)  # same ID, offline
        await CounterService(other, "seed").charge("8600000002", [item(300)], "lab")
        await led.ingest([d for _, d in await other.events()])
    finally:
        await other.close()
    [conflict] = [c for c in reconcile([decode_event(d) for _, d in await led.events()])
                  if c.kind == "duplicate_patient"]
    option = conflict.remedy("merge")
    assert option is not None
    [(kind, body)] = option.events
    assert (body["survivor_id"], body["merged_id"]) == (survivor, dup)
    _, data, _ = sign_event(central, node=CENTRAL, seq=1, prev=ZERO_HASH,
                            hlc=Hlc(NOW_MS - 60_000, 0), operator="it.li", kind=kind,
                            body={**body, "reason": "same person"})
    await led.ingest([data])
    try:
        app = make_app(cfg, led)
        async with app.run_test(size=(140, 44)) as pilot:
            await log_in(pilot)
            await tap(pilot, CARD)
            await pilot.press("f10")
            await settle_down(pilot)
            table = app.screen.query_one("#history")
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
    finally:
        await led.close()
    # 3 of the survivor's, 4 of the merged record's (registered, card, deposit, charge), merge
    assert len(rows) == 8
    assert rows[0][1] == "Records merged" and rows[0][2] == "¥0.00"
    marked = [r for r in rows if r[3].startswith(f"[{dup}]")]
    assert len(marked) == 4
    assert sorted(r[2] for r in marked if r[2]) == ["+¥20.00", "-¥3.00"]
    fen = [int(r[2].replace("¥", "").replace(".", "")) for r in rows if r[2]]
    assert sum(fen) == 6_500 + 2_000 - 300  # the person's balance, as the panel shows
