"""Offline limits (issue 11): a floor per charge and a cap per account per counter since
its last successful sync, set by central; past them, and on a card number typed by
hand, a supervisor approves at the counter — for every kind that charges the deposit.

The limit function alone (floor, cap, exactly at a limit, online, approval), then real
SQLite ledgers through the services: the ledger's offline run is its own events after
the one central last acknowledged, and a sync that acknowledges them starts a new run.
"""

from __future__ import annotations

from typing import Any

import pytest

from edge_node.clinic import WARNINGS, ClinicService
from edge_node.errors import OperationRefused
from edge_node.lab import LabService
from edge_node.ledger import Ledger
from edge_node.pharmacy import PharmacyService
from edge_node.service import CounterService
from edge_node.staff import Approval
from edge_node.visits import VisitService
from protocol.account import LIMITS_KEY, Charged, OfflineLimits, needs_approval
from protocol.core import OfflineRun, RuleConfig
from protocol.crypto import blake2b_256
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from tests.conftest import LedgerFactory, item, node_key, registered
from tests.support.clinic import LAB, PHARMACY, give_catalogue

CARD = "8600000001"
SUP = Approval("sup.li", "李主管", "supervisor")


def charged(amount: int, supervisor: str = "", entry: str = "chip") -> Charged:
    b = REGISTRY.kinds["account.charged"].body
    got = b(charge_id="C-1", patient_id="P-1", card_no=CARD, card_entry=entry,
            items=(), amount=amount, department="x", supervisor=supervisor)
    return got  # type: ignore[no-any-return]


def offline(floor: int = 0, cap: int = 0, before: int = 0) -> RuleConfig:
    return RuleConfig(offline=OfflineRun(7, floor, cap, (("P-1", before),)))


def codes(problems: list[Any]) -> list[tuple[str, str]]:
    return [(p.code, str(p.values.get("variant", ""))) for p in problems]


# -- the limit function ---------------------------------------------------------------------
def test_online_there_is_no_limit() -> None:
    assert needs_approval(charged(10**9), 10**9, RuleConfig()) == []


def test_above_the_floor_needs_a_supervisor_and_at_it_does_not() -> None:
    cfg = offline(floor=20_000)
    assert needs_approval(charged(20_000), 20_000, cfg) == []
    assert codes(needs_approval(charged(20_001), 20_001, cfg)) == [
        ("approval.offline_limit", "floor")]
    assert needs_approval(charged(20_001, "sup.li"), 20_001, cfg) == []


def test_past_the_cap_counts_what_the_run_charged_the_account() -> None:
    assert needs_approval(charged(20_000), 20_000, offline(cap=50_000, before=30_000)) == []
    got = needs_approval(charged(20_001), 20_001, offline(cap=50_000, before=30_000))
    assert codes(got) == [("approval.offline_limit", "cap")]
    assert got[0].field == "supervisor" and got[0].values["charged"] == 30_000
    # another account's offline charges do not count
    other = RuleConfig(offline=OfflineRun(7, 0, 50_000, (("P-2", 49_000),)))
    assert needs_approval(charged(50_000), 50_000, other) == []
    assert needs_approval(charged(20_001, "sup.li"), 20_001,
                          offline(cap=50_000, before=30_000)) == []


def test_a_card_number_typed_by_hand_needs_a_supervisor_online_too() -> None:
    cfg = RuleConfig(manual_entry_approval=True)
    assert codes(needs_approval(charged(100, entry="manual"), 100, cfg)) == [
        ("approval.manual_entry", "")]
    assert needs_approval(charged(100, "sup.li", "manual"), 100, cfg) == []
    assert needs_approval(charged(0, entry="manual"), 0, cfg) == []  # nothing taken
    assert needs_approval(charged(100, entry="wedge"), 100, cfg) == []
    # a counter without a chip reader types every card: its config leaves it off
    assert needs_approval(charged(100, entry="manual"), 100, RuleConfig()) == []


@pytest.mark.parametrize(("kind", "setting", "on"), [
    ("pcsc", "auto", True), ("simulated", "auto", True), ("none", "auto", False),
    ("wedge", "auto", False), ("none", "always", True), ("pcsc", "never", False)])
def test_the_counter_config_turns_manual_entry_approval_on_with_a_chip_reader(
        kind: str, setting: str, on: bool) -> None:
    from edge_node.config import EdgeConfig, ReaderConfig

    cfg = EdgeConfig(node_id="cashier-01", role="cashier", manual_entry_approval=setting,
                     reader=ReaderConfig(kind, "r"))
    assert cfg.rules.manual_entry_approval is on


def test_every_kind_that_charges_the_deposit_records_approver_and_offline_run() -> None:
    """The six kinds whose money is a charge carry both fields (the one check reads them)."""
    charging = {k.name for k in REGISTRY if "supervisor" in k.body.SCHEMA
                and "offline_from" in k.body.SCHEMA}
    assert charging == {"account.charged", "visit.registered", "visit.fee_charged",
                        "order.placed", "order.checked_in", "order.dispensed"}


def test_limits_fold_to_the_latest_in_any_order() -> None:
    key = node_key(CENTRAL)
    evs, prev = [], b"\0" * 32
    for seq, (floor, cap) in enumerate([(100, 200), (300, 0)], start=1):
        ev, _, prev = sign_event(key, node=CENTRAL, seq=seq, prev=prev, hlc=Hlc(seq, 0),
                                 operator="it", kind="limits.set",
                                 body={"floor": floor, "cap": cap})
        evs.append(ev)
    for order in (evs, evs[::-1]):
        lim = REGISTRY.fold(order).get(OfflineLimits, LIMITS_KEY)
        assert lim is not None and (lim.floor, lim.cap) == (300, 0)


# -- on real ledgers ------------------------------------------------------------------------
async def give_limits(led: Ledger, floor: int, cap: int) -> None:
    """Central's ``limits.set`` ingested as sync does it (after what central sent before)."""
    await led.set_node_keys({CENTRAL: (node_key(CENTRAL).public_key, "central")})
    head = (await led.node_heads()).get(CENTRAL)
    seq, prev = (head.seq, head.hash) if head else (0, b"\0" * 32)
    _, raw, _ = sign_event(node_key(CENTRAL), node=CENTRAL, seq=seq + 1, prev=prev,
                           hlc=Hlc(1_789_500_000_000 + seq, 0), operator="it",
                           kind="limits.set", body={"floor": floor, "cap": cap})
    assert await led.ingest([raw]) == 1
    assert blake2b_256(raw)


async def refused(coro: Any) -> list[tuple[str, str]]:
    with pytest.raises(OperationRefused) as exc:
        await coro
    return codes(exc.value.problems)


async def test_cashier_offline_cap_then_approval_then_sync_starts_a_new_run(
        make_ledger: LedgerFactory) -> None:
    led = await make_ledger()
    svc = CounterService(led, "op.wang")
    pid = await registered(svc, CARD, deposit=100_000)  # (a deposit: not a charge)
    await give_limits(led, floor=20_000, cap=30_000)
    await led.update_sync_state(online=False, acked_seq=(await led.head()).seq)
    first = (await led.head()).seq + 1
    await svc.charge(CARD, [item(20_000)], "Lab")  # at the floor: fine
    await svc.charge(CARD, [item(10_000)], "Lab")  # exactly at the cap: fine
    assert await refused(svc.charge(CARD, [item(1)], "Lab")) == [
        ("approval.offline_limit", "cap")]
    assert await refused(svc.charge(CARD, [item(20_001)], "Lab")) == [
        ("approval.offline_limit", "floor")]
    r = await svc.charge(CARD, [item(25_000)], "Lab", approval=SUP)
    ev = r.events[0]
    assert ev.body["supervisor"] == "sup.li" and ev.body["offline_from"] == first
    # the deposits and refunds of the run do not lift the cap: only a sync does
    await svc.deposit(CARD, 50_000, "cash")
    assert await refused(svc.charge(CARD, [item(1)], "Lab")) == [
        ("approval.offline_limit", "cap")]
    # central acknowledged everything: a new run, with the cap again
    await led.update_sync_state(acked_seq=(await led.head()).seq)
    r = await svc.charge(CARD, [item(15_000)], "Lab")
    assert r.events[0].body["offline_from"] == (await led.head()).seq
    assert await refused(svc.charge(CARD, [item(15_001)], "Lab")) == [
        ("approval.offline_limit", "cap")]
    # online: no limit, and no offline mark
    await led.update_sync_state(online=True)
    r = await svc.charge(CARD, [item(30_000)], "Lab")
    assert "offline_from" not in r.events[0].body and "supervisor" not in r.events[0].body
    acct = await led.get("accounts", pid)
    assert acct.balance == 100_000 + 50_000 - 20_000 - 10_000 - 25_000 - 15_000 - 30_000


async def test_no_limits_published_means_no_limit_offline(make_ledger: LedgerFactory) -> None:
    led = await make_ledger()
    svc = CounterService(led, "op.wang")
    await registered(svc, CARD, deposit=100_000)
    r = await svc.charge(CARD, [item(90_000)], "Lab")  # offline (never synced), no limits
    assert "offline_from" not in r.events[0].body
    await give_limits(led, floor=0, cap=0)  # limits of 0: none
    r = await svc.charge(CARD, [item(1_000)], "Lab")
    assert "offline_from" not in r.events[0].body


async def test_manual_entry_needs_a_supervisor(make_ledger: LedgerFactory) -> None:
    led = await make_ledger(rule_config=RuleConfig(manual_entry_approval=True))
    svc = CounterService(led, "op.wang")
    await registered(svc, CARD, deposit=10_000)
    await led.update_sync_state(online=True)
    assert await refused(svc.charge(CARD, [item(500)], "Lab", card_entry="manual")) == [
        ("approval.manual_entry", "")]
    r = await svc.charge(CARD, [item(500)], "Lab", card_entry="manual", approval=SUP)
    assert r.events[0].body["supervisor"] == "sup.li"
    assert (await svc.dry().charge(CARD, [item(500)], "Lab")).events  # chip: no approval
    # a deposit typed by hand takes nothing from the account: no approval
    await svc.deposit(CARD, 1_000, "cash", card_entry="manual")


@pytest.mark.parametrize("charge_at", ["send", "execution"])
async def test_every_desk_that_charges_is_held_to_the_floor(
        make_ledger: LedgerFactory, charge_at: str) -> None:
    """Offline with a floor of 1 fen, each charging step is refused without a supervisor
    and done with one: registration fee, consultation fee, an order charged when sent
    (``send``); a lab check-in and a dispensing charged at execution (``execution``)."""
    led = await make_ledger(f"desk-{charge_at}")
    await give_catalogue(led, charge_at=charge_at)
    pid = await registered(CounterService(led, "op.wang"), deposit=200_000)
    await give_limits(led, floor=1, cap=0)
    await led.update_sync_state(online=False, acked_seq=(await led.head()).seq)

    async def both(step: Any) -> Any:
        assert await refused(step(None)) == [("approval.offline_limit", "floor")]
        got = await step(SUP)
        events = got.events if hasattr(got, "events") else ()
        for ev in events:
            if REGISTRY.money(ev).flow == "charge":
                assert ev.body["supervisor"] == "sup.li" and ev.body["offline_from"] >= 1
        return got

    visits = VisitService(led, "op.wang")
    v = await both(lambda a: visits.register(dept="IM", channel="cashier", patient_id=pid,
                                             doctor_id="dr.qian", approval=a))
    clinic = ClinicService(led, "dr.qian")
    visit_id = v.visit.visit_id
    if charge_at == "send":
        await both(lambda a: clinic.start(visit_id, approval=a))
        line = await clinic.line("LAB-CBC")
        await both(lambda a: clinic.send_order(visit_id, [line], accept_warnings=WARNINGS,
                                               approval=a))
        return
    await led.update_sync_state(online=True)  # (the fee and orders: not the point here)
    await clinic.start(visit_id)
    lab = await clinic.send_order(visit_id, [await clinic.line("LAB-CBC")],
                                  accept_warnings=WARNINGS)
    drug = await clinic.send_order(visit_id, [await clinic.line("D-AMX", 1, 250, 3, 3)],
                                   accept_warnings=WARNINGS)
    pharmacy = PharmacyService(led, "ph.zhou", pharmacy=PHARMACY)
    await pharmacy.receive("D-AMX", 5)
    await led.update_sync_state(online=False, acked_seq=(await led.head()).seq)
    desk = LabService(led, "tech.liu", dept=LAB)
    oid = lab.orders[0].order_id
    await both(lambda a: desk.check_in(oid, approval=a))
    did = drug.orders[0].order_id
    await both(lambda a: pharmacy.dispense(did, approval=a))


# -- the cashier's charge form --------------------------------------------------------------
@pytest.mark.parametrize("why", ["offline_limit", "manual_entry"])
async def test_the_charge_form_asks_a_supervisor_when_refused_for_it(
        tmp_path: Any, why: str) -> None:
    """Refused for the offline limit (or a typed card number), the form shows the
    supervisor's id and PIN; a wrong PIN is refused when it is done; the right one
    charges, and the signed event names the supervisor."""
    import dataclasses

    from textual.widgets import Static

    from edge_node.tui.screens.charge import ChargeScreen
    from edge_node.tui.screens.confirm import ConfirmScreen
    from edge_node.tui.screens.home import HomeScreen
    from tests.tui_harness import (
        fill,
        form_error,
        log_in,
        make_app,
        seeded_counter,
        settle_down,
        tap,
        type_text,
    )

    cfg, led, pid = await seeded_counter(tmp_path, card_no=CARD)
    try:
        if why == "offline_limit":
            await give_limits(led, floor=1, cap=0)  # offline: every charge past it
        else:
            await led.update_sync_state(online=True)
            led.rule_config = dataclasses.replace(led.rule_config, manual_entry_approval=True)
        app = make_app(cfg, led)
        async with app.run_test(size=(120, 44)) as pilot:
            await log_in(pilot)
            await tap(pilot, CARD)  # typed at the home screen: manual entry
            await pilot.press("f4")
            await settle_down(pilot)
            screen = app.screen
            assert isinstance(screen, ChargeScreen)
            assert not screen.query_one("#approver-row").display  # not asked before
            await type_text(pilot, "CON02")
            await pilot.press("enter", "ctrl+s")
            await settle_down(pilot)
            assert app.screen is screen  # refused in the form, no question
            assert "supervisor" in form_error(pilot)
            assert screen.query_one("#approver-row").display
            assert screen.focused is not None and screen.focused.id == "approver"
            await fill(pilot, "#approver", "li")
            await fill(pilot, "#approver_pin", "0000")
            await pilot.press("ctrl+s")
            await settle_down(pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle_down(pilot)
            assert app.screen is screen and "PIN is wrong" in form_error(pilot)
            await fill(pilot, "#approver_pin", "5678")
            await pilot.press("ctrl+s")
            await settle_down(pilot)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle_down(pilot)
            assert isinstance(app.screen, HomeScreen)
            assert str(app.screen.query_one("#money", Static).render())
        ev = (await led.history(pid))[0]
        assert ev.kind == "account.charged" and ev.body["supervisor"] == "li"
        assert ev.operator == "wang"
        assert ("offline_from" in ev.body) is (why == "offline_limit")
    finally:
        await led.close()


# -- central: the overrun flagged on reconnect ----------------------------------------------
def test_offline_overrun_is_raised_once_per_run_approved_low_unapproved_medium() -> None:
    from central.reconcile import Incoming, Reconciler
    from tests.test_reconcile import History

    h = History()
    h.add(CENTRAL, -10, "limits.set", {"floor": 20_000, "cap": 30_000})
    h.patient("cashier-01", 0, "P-1", CARD, 100_000)

    def charge(node: str, wall: int, cid: str, amount: int, mark: int, sup: str = "") -> Any:
        body: dict[str, Any] = {"charge_id": cid, "patient_id": "P-1",
                                "items": [item(amount)], "amount": amount,
                                "department": "lab", "offline_from": mark}
        if sup:
            body["supervisor"] = sup
        return h.add(node, wall, "account.charged", body)

    # cashier-01's run from #4: at the cap, then past it with a supervisor
    charge("cashier-01", 100, "C-1", 20_000, 4)
    charge("cashier-01", 101, "C-2", 10_000, 4)
    within = list(h.events)
    over = charge("cashier-01", 102, "C-3", 5_000, 4, "sup.li")
    # cashier-02's run from #1: above the floor without anyone (an old counter's)
    bad = charge("cashier-02", 103, "C-4", 25_000, 1)

    world = Reconciler()
    assert [c for c in world.add(within).conflicts if c.kind == "offline_overrun"] == []
    rep = world.add([Incoming(e) for e in h.events])
    found = sorted((c for c in rep.conflicts if c.kind == "offline_overrun"),
                   key=lambda c: c.nodes)
    assert [(c.nodes, c.severity, c.amount) for c in found] == [
        (("cashier-01",), "low", 35_000), (("cashier-02",), "medium", 25_000)]
    approved, unapproved = found
    assert approved.events == (over.id,) and "sup.li" in approved.explanation
    assert unapproved.events == (bad.id,) and "NOT approved" in unapproved.explanation
    assert approved.remedy("accept") is not None
    # raised once: the same events again, in another order, give the same ids
    again = Reconciler().add(list(reversed(h.events)))
    assert sorted(c.id for c in again.conflicts if c.kind == "offline_overrun") == sorted(
        c.id for c in found)
    assert world.add(h.events).conflicts == []  # nothing new, nothing raised again


def test_an_overrun_before_central_published_limits_is_none() -> None:
    from central.reconcile import reconcile
    from tests.test_reconcile import History

    h = History()
    h.patient("cashier-01", 0, "P-1", CARD, 100_000)
    h.add("cashier-01", 100, "account.charged", {
        "charge_id": "C-1", "patient_id": "P-1", "items": [item(50_000)], "amount": 50_000,
        "department": "lab", "offline_from": 4})
    h.add(CENTRAL, 500, "limits.set", {"floor": 20_000, "cap": 30_000})  # published later
    assert [c for c in reconcile(h.events) if c.kind == "offline_overrun"] == []


# -- the console: each counter's exposure -----------------------------------------------------
async def test_console_shows_cap_exposure_bound_and_overruns(tmp_path: Any) -> None:
    from central.config import CentralConfig
    from central.console.data import ConsoleData
    from central.limits import in_force, publish
    from central.store import CentralStore
    from protocol.account import Account
    from protocol.event import decode_event
    from tests.support.central_seed import seed_central

    db, key_file = await seed_central(tmp_path)
    store = await CentralStore.open(db)
    try:
        cfg = CentralConfig(path=tmp_path / "central.toml", db=db, key_file=key_file)
        data = ConsoleData(store)
        before = {n.id: n for n in await data.nodes()}
        assert all(n.cap == 0 for n in before.values())
        assert await publish(store, cfg, 0, 1_000, operator="it.li")
        assert not await publish(store, cfg, 0, 1_000, operator="it.li")  # already in force
        assert await in_force(store.read) == (0, 1_000)
        nodes = {n.id: n for n in await data.nodes()}
        rows = await store.read("SELECT data FROM events ORDER BY pos")
        state = REGISTRY.fold(decode_event(bytes(d)) for (d,) in rows)
        want = sum(min(1_000, max(0, a.available)) for a in state.all(Account))
        assert want > 0
        for n in nodes.values():
            assert n.cap == 1_000
            assert n.exposure == (want if n.state == "offline" else 0)
            assert n.overruns == 0
        assert {n.state for n in nodes.values()} >= {"offline"}
    finally:
        await store.close()
