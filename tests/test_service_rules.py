"""Counter operations through the service on a real SQLite ledger: each rule, and that a
refused operation writes nothing."""

from __future__ import annotations

import pytest

from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.core import RuleConfig
from tests.conftest import ID_FEMALE, ID_MALE, LedgerFactory, item, registered

CHEN = Approval("dr.chen", "陈医生", "supervisor")  # a supervisor's checked approval
SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval


async def refused(ledger: Ledger, coro: object, code: str) -> OperationRefused:
    """Await ``coro``, expect OperationRefused with ``code``, and that nothing was written."""
    before = (await ledger.event_count(), await ledger.dump_projections())
    with pytest.raises(OperationRefused) as info:
        await coro  # type: ignore[misc]
    assert code in info.value.codes, info.value.problems
    assert (await ledger.event_count(), await ledger.dump_projections()) == before
    return info.value


async def test_registration_derives_sex_and_birth_date_and_issues_card(
        service: CounterService) -> None:
    pid = await registered(service, national_id=ID_FEMALE)
    view = await service.lookup_card("8600000001")
    assert view.patient.patient_id == pid and pid.startswith("P-cashier-01-")
    assert (view.patient.sex, view.patient.birth_date) == ("F", "1949-12-31")
    assert view.card is not None and view.card.status == "active"
    assert view.account.balance == 10_000 and view.account.money_seq == 1


async def test_registration_refusals(service: CounterService, ledger: Ledger) -> None:
    await refused(ledger, service.register_patient(
        name="王五", national_id="110101199003070012", phone="1", card_no="86000001",
        first_deposit=1000), "national_id.checksum")
    await refused(ledger, service.register_patient(
        name="王五", national_id=ID_MALE, card_no="86000001", first_deposit=1000),
        "patient.contact_required")
    await refused(ledger, service.register_patient(
        name="王五", national_id=ID_MALE, phone="13800138000", card_no="86000001",
        first_deposit=499), "deposit.below_registration_fee")
    await registered(service)
    await refused(ledger, service.register_patient(
        name="王五", national_id=ID_MALE, phone="13800138000", card_no="86000009",
        first_deposit=1000), "patient.duplicate_national_id")
    await refused(ledger, service.register_patient(
        name="赵六", national_id=ID_FEMALE, phone="13800138000", card_no="8600000001",
        first_deposit=1000), "card.exists")


async def test_registration_fee_is_configurable(make_ledger: LedgerFactory) -> None:
    led = await make_ledger("cashier-02", rule_config=RuleConfig(registration_fee=2000))
    svc = CounterService(led, "op")
    with pytest.raises(OperationRefused, match="¥20.00"):
        await registered(svc, deposit=1500)
    await registered(svc, deposit=2000)


async def test_registration_without_national_id_needs_sex_and_birth_date(
        service: CounterService, ledger: Ledger) -> None:
    await refused(ledger, service.register_patient(
        name="无名氏", contact="family: 13900000000", card_no="86000002", first_deposit=1000),
        "field.choice")
    r = await service.register_patient(name="无名氏", sex="M", birth_date="1980-01-02",
                                       contact="family: 13900000000", card_no="86000002",
                                       first_deposit=1000)
    assert r.patient.national_id == "" and r.balance == 1000


async def test_charge_deposit_and_insufficient_balance(service: CounterService,
                                                       ledger: Ledger) -> None:
    await registered(service, deposit=1000)
    r = await service.charge("8600000001", [item(300, qty=2)], "检验科")
    assert r.balance == 400 and r.number.startswith("C-cashier-01-")
    e = await refused(ledger, service.charge("8600000001", [item(500)], "检验科"),
                      "charge.insufficient")
    assert "¥4.00" in str(e) and "¥1.00 short" in str(e)
    await refused(ledger, service.deposit("8600000001", 100, "bank_card"),
                  "deposit.reference_required")
    r = await service.deposit("8600000001", 100, "bank_card", reference="POS-000123")
    assert r.balance == 500
    await service.charge("8600000001", [item(500)], "检验科")
    assert (await service.lookup_card("8600000001")).account.balance == 0
    await refused(ledger, service.deposit("8600000001", 100, "cheque"), "field.choice")
    await refused(ledger, service.charge("8600000001", [item(100, qty=0)], "x"), "field.range")
    await refused(ledger, service.charge("9999999999", [item(100)], "x"), "card.unknown")


async def test_green_channel_credit_allows_charging_below_zero(service: CounterService,
                                                               ledger: Ledger) -> None:
    await registered(service, deposit=1000)
    await refused(ledger, service.charge("8600000001", [item(50_000)], "急诊"),
                  "charge.insufficient")
    await service.grant_credit("8600000001", 100_000, "road accident", CHEN)
    r = await service.charge("8600000001", [item(50_000)], "急诊")
    assert r.balance == -49_000
    e = await refused(ledger, service.charge("8600000001", [item(60_000)], "急诊"),
                      "charge.insufficient")
    assert "credit ¥1,000.00" in str(e)


async def test_refund_limits(service: CounterService, ledger: Ledger) -> None:
    await registered(service, deposit=10_000)
    c = await service.charge("8600000001", [item(3000)], "检验科")
    r = await service.refund(c.number, 1000, "deposit", "dr.zhao", "one test cancelled",
                             approval=SUP)
    assert r.balance == 8000
    await refused(ledger, service.refund(c.number, 2001, "cash", "dr.zhao", "x", approval=SUP),
                  "refund.exceeds_charge")
    r = await service.refund(c.number, 2000, "cash", "dr.zhao", "rest cancelled", approval=SUP)
    assert r.balance == 8000  # paid out in cash: the deposit does not change
    await refused(ledger, service.refund(c.number, 1, "deposit", "dr.zhao", "x", approval=SUP),
                  "refund.exceeds_charge")
    await refused(ledger, service.refund("C-nope-000001", 1, "deposit", "a", "b", approval=SUP),
                  "refund.unknown_charge")
    acct = (await service.lookup_card("8600000001")).account
    assert (acct.refunded_to_deposit, acct.refunded_to_cash) == (1000, 2000)


async def test_lost_card_is_refused_and_replacement_carries_the_account(
        service: CounterService, ledger: Ledger) -> None:
    pid = await registered(service, deposit=10_000)
    await service.charge("8600000001", [item(2500)], "检验科")
    await service.report_lost("8600000001", "id_card", "lost")
    for op in (service.charge("8600000001", [item(100)], "x"),
               service.deposit("8600000001", 1000, "cash"),
               service.report_lost("8600000001", "id_card")):
        await refused(ledger, op, "card.lost")
    await refused(ledger, service.replace_card("8600000001", "8600000001"), "card.same_number")
    await service.replace_card("8600000001", "8600000002")
    view = await service.lookup_card("8600000002")
    assert view.patient.patient_id == pid and view.account.balance == 7500
    assert {c.card_no: c.status for c in view.cards} == {"8600000001": "replaced",
                                                         "8600000002": "active"}
    await refused(ledger, service.charge("8600000001", [item(100)], "x"), "card.replaced")
    await refused(ledger, service.replace_card("8600000001", "8600000003"),
                  "card.already_replaced")
    history = await service.history(pid)
    assert [e.kind for e in history][:2] == ["card.replaced", "card.reported_lost"]


async def test_settlement_returns_everything_and_closes_until_next_deposit(
        service: CounterService, ledger: Ledger) -> None:
    await registered(service, deposit=10_000)
    await service.charge("8600000001", [item(2500)], "检验科")
    r = await service.settle("8600000001", "cash", approval=SUP)
    assert r.lines == (("Balance returned", 7500),) and r.balance == 0
    assert r.number.startswith("INV-cashier-01-")
    await refused(ledger, service.charge("8600000001", [item(1)], "x"), "account.closed")
    await refused(ledger, service.settle("8600000001", approval=SUP), "settle.already")
    await service.deposit("8600000001", 500, "cash")
    assert (await service.charge("8600000001", [item(500)], "x")).balance == 0


async def test_settlement_refused_while_owing(service: CounterService, ledger: Ledger) -> None:
    await registered(service, deposit=1000)
    await service.grant_credit("8600000001", 5000, "emergency", CHEN)
    await service.charge("8600000001", [item(3000)], "急诊")
    await refused(ledger, service.settle("8600000001", approval=SUP), "settle.owing")


async def test_no_operator_no_write(ledger: Ledger) -> None:
    svc = CounterService(ledger, "")
    await refused(ledger, registered(svc), "operator.missing")


async def test_ids_never_collide_across_counters(make_ledger: LedgerFactory) -> None:
    a = CounterService(await make_ledger("cashier-01"), "op")
    b = CounterService(await make_ledger("cashier-02"), "op")
    pa = await registered(a, "86000001")
    pb = await registered(b, "86000002")
    ca = await a.charge("86000001", [item(100)], "x")
    cb = await b.charge("86000002", [item(100)], "x")
    assert pa != pb and ca.number != cb.number
    assert pa.split("-")[-1] == pb.split("-")[-1]  # same local sequence, different counters
