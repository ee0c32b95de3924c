"""A day at the desk through the service on real SQLite ledgers: cash tendered and change,
payment references, the card fee (工本费), voiding a charge of today, refunding single
items, reprinting a receipt from the stored event, and editing a patient's details."""

from __future__ import annotations

import pytest

from edge_node import receipt as receipts
from edge_node import reports
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.account import CARD_FEE_CODE, Account, Charge
from protocol.core import RuleConfig
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.event import Event
from protocol.hlc import Hlc
from tests.conftest import ID_FEMALE, LedgerFactory, item, node_key, registered
from tests.test_service_rules import refused

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

T0 = 1_790_000_000_000  # 2026-09-21 22:13:20 Asia/Shanghai
DAY = 86_400_000
CARD = "8600000001"


class Clock:
    """A wall clock that moves 1 ms per reading and can be moved on."""

    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        self.t += 1
        return self.t


async def own_events(led: Ledger) -> int:
    return (await led.head()).seq


# -- cash tendered, change, payment references -------------------------------------------
async def test_tendered_and_change_round_trip_through_the_event_and_the_reprint(
        service: CounterService, ledger: Ledger) -> None:
    pid = await registered(service, deposit=10_000)
    r = await service.deposit(CARD, 8_850, "cash", tendered=10_000)
    ev = r.events[0]
    assert (ev.body["tendered"], ev.body["amount"]) == (10_000, 8_850)
    fact = REGISTRY.fact(ev)
    assert fact is not None and fact.body.change == 1_150
    text = receipts.render_text(r, node="cashier-01", operator="wang", language="en")
    assert "Tendered" in text and "¥100.00" in text and "Change" in text and "¥11.50" in text
    assert "Paid by" in text and "Cash" in text
    # the reprint is rebuilt from the stored event: same number, time, tendered, change
    stored = (await ledger.history(pid))[0]
    again = await service.receipt_for(stored, pid, reprinted_ms=T0 + 5_000)
    assert (again.number, again.at_ms, again.balance) == (r.number, r.at_ms, r.balance)
    re_text = receipts.render_text(again, node="cashier-01", operator="li", language="en")
    assert "(REPRINT)" in re_text and r.number in re_text
    assert "Tendered" in re_text and "¥11.50" in re_text
    assert "Reprinted" in re_text and "li" in re_text
    zh = receipts.render_text(again, node="cashier-01", operator="li", language="zh")
    assert "补打" in zh and "实收" in zh and "找零" in zh and "现金" in zh


async def test_tendered_below_the_amount_or_with_a_card_is_refused(
        service: CounterService, ledger: Ledger) -> None:
    await registered(service)
    await refused(ledger, service.deposit(CARD, 5_000, "cash", tendered=4_999),
                  "deposit.tendered_short")
    await refused(ledger, service.deposit(CARD, 5_000, "bank_card", tendered=5_000,
                                          reference="POS-1"), "deposit.tendered_not_cash")
    r = await service.deposit(CARD, 5_000, "cash", tendered=5_000)  # exact: no change
    assert REGISTRY.fact(r.events[0]).body.change == 0  # type: ignore[union-attr]


async def test_card_and_mobile_payments_need_their_reference(
        service: CounterService, ledger: Ledger) -> None:
    pid = await registered(service)
    for method in ("bank_card", "mobile"):
        await refused(ledger, service.deposit(CARD, 1_000, method),
                      "deposit.reference_required")
        await refused(ledger, service.deposit(CARD, 1_000, method, reference="   "),
                      "deposit.reference_required")
    r = await service.deposit(CARD, 1_000, "mobile", reference=" WX-4200000001 ")
    assert r.events[0].body["reference"] == "WX-4200000001"
    text = receipts.render_text(r, node="cashier-01", operator="wang", language="zh")
    assert "移动支付" in text and "交易号" in text and "WX-4200000001" in text
    stored = (await ledger.history(pid))[0]
    again = await service.receipt_for(stored, pid)
    assert "WX-4200000001" in receipts.render_text(again, node="c", operator="o")
    # the first deposit of a registration too
    r = await service.register_patient(name="李梅", national_id=ID_FEMALE, phone="13800138001",
                                       card_no="8600000002", first_deposit=2_000,
                                       method="bank_card", reference="POS-778899")
    deposit = next(e for e in r.events if e.kind == "account.deposited")
    assert deposit.body["reference"] == "POS-778899"


async def test_events_without_the_new_fields_still_read(service: CounterService) -> None:
    """Older counters' deposits (no tendered, no reference, even by card) stay valid."""
    old = {"patient_id": "P-a-000001", "amount": 100, "method": "bank_card",
           "receipt_no": "D-a-000003"}
    assert REGISTRY.validate("account.deposited", old) == []
    refund = {"refund_id": "R-a-1", "charge_id": "C-a-1", "patient_id": "P-a-1",
              "amount": 1, "to": "cash", "approved_by": "x", "reason": "y"}
    assert REGISTRY.validate("account.refunded", refund) == []


# -- the card fee ------------------------------------------------------------------------
async def test_card_fee_on_registration_and_replacement_conserves_money(
        make_ledger: LedgerFactory) -> None:
    led = await make_ledger(rule_config=RuleConfig(card_fee=1_000))
    svc = CounterService(led, "op")
    # the first deposit must cover the registration fee and the card fee
    await refused(led, svc.register_patient(name="张三", national_id=ID_FEMALE,
                                            phone="13800138000", card_no=CARD,
                                            first_deposit=1_400), "card_fee.first_deposit")
    with pytest.raises(OperationRefused) as info:
        await svc.check_new_card(CARD, "", 1_400)
    assert "card_fee.first_deposit" in info.value.codes
    r = await svc.register_patient(name="张三", national_id=ID_FEMALE, phone="13800138000",
                                   card_no=CARD, first_deposit=10_000)
    kinds = [e.kind for e in r.events]
    assert kinds == ["patient.registered", "card.issued", "account.deposited",
                     "account.charged"]  # one atomic append
    fee = r.events[-1].body
    assert fee["items"] == [{"code": CARD_FEE_CODE, "name": "工本费", "qty": 1,
                             "unit_price": 1_000}] and fee["amount"] == 1_000
    assert r.balance == 9_000 and ("Card fee", 1_000) in r.lines
    assert "工本费" in receipts.render_text(r, node="c", operator="o", language="zh")
    pid = r.patient.patient_id
    # replacement: the fee is charged on the new card, in the same append
    r2 = await svc.replace_card(CARD, "8600000002")
    assert [e.kind for e in r2.events] == ["card.replaced", "account.charged"]
    assert r2.events[1].body["card_no"] == "8600000002" and r2.balance == 8_000
    acct = await led.get(Account, pid)
    assert (acct.deposited, acct.charged, acct.balance) == (10_000, 2_000, 8_000)
    assert acct.balance == acct.deposited - acct.charged
    # an account that cannot pay the fee: refused, nothing written, in words
    await svc.charge("8600000002", [item(7_500)], "检验科")
    e = await refused(led, svc.replace_card("8600000002", "8600000003"),
                      "card_fee.insufficient")
    assert "¥10.00" in str(e) and "¥5.00" in str(e)
    assert (await led.get("cards", "8600000002")).status == "active"
    # a rebuild from the events gives the same records
    before = await led.dump_projections()
    await led.rebuild()
    assert await led.dump_projections() == before


async def test_no_card_fee_by_default(service: CounterService) -> None:
    await registered(service)
    r = await service.replace_card(CARD, "8600000002")
    assert [e.kind for e in r.events] == ["card.replaced"] and r.balance == 10_000


# -- void a charge of today --------------------------------------------------------------
async def test_void_only_the_same_day_and_only_once(make_ledger: LedgerFactory) -> None:
    clock = Clock()
    led = await make_ledger(clock=clock)
    svc = CounterService(led, "op")
    pid = await registered(svc, deposit=10_000)
    old = (await svc.charge(CARD, [item(1_000)], "检验科")).number
    clock.t += DAY  # the next business day
    today = (await svc.charge(CARD, [item(2_500, qty=2)], "检验科")).number
    voidable = await svc.voidable_charges(pid, "Asia/Shanghai")
    assert [c.charge_id for c in voidable] == [today]
    await refused(led, svc.void_charge(old, "li", "typo", timezone="Asia/Shanghai", approval=SUP),
                  "void.not_today")
    r = await svc.void_charge(today, "li", "wrong patient", timezone="Asia/Shanghai", approval=SUP)
    ev = r.events[0]
    assert ev.kind == "account.refunded" and ev.body["void"] == 1
    assert (ev.body["amount"], ev.body["to"]) == (5_000, "deposit")
    assert r.balance == 10_000 - 1_000
    assert "作废" in REGISTRY.describe(ev, "zh")
    text = receipts.render_text(r, node="cashier-01", operator="op", language="en")
    assert "Void a charge of today" in text and "Voided same day" in text and today in text
    await refused(led, svc.void_charge(today, "li", "again", timezone="Asia/Shanghai",
                                       approval=SUP),
                  "void.already_refunded")
    assert await svc.voidable_charges(pid, "Asia/Shanghai") == []
    # a charge partly refunded cannot be voided either
    third = (await svc.charge(CARD, [item(1_000)], "检验科")).number
    await svc.refund(third, 100, "cash", "li", "partial", approval=SUP)
    await refused(led, svc.void_charge(third, "li", "x", timezone="Asia/Shanghai", approval=SUP),
                  "void.already_refunded")
    # in the daily report it is a void, not a refund; the drawer is unchanged by it
    day = reports.business_day(clock.t, "Asia/Shanghai")
    rep = await reports.daily_report(led, day)
    assert (rep.refunds["void"].count, rep.refunds["void"].amount) == (1, 5_000)
    assert rep.refunds["deposit"].count == 0 and rep.refunds["cash"].amount == 100
    assert rep.expected_cash == -100
    assert "Voided same day" in reports.render_text(rep, "en")
    assert "当日作废" in reports.render_text(rep, "zh")


async def test_only_the_counter_that_charged_voids(make_ledger: LedgerFactory) -> None:
    """A charge synced from the pharmacy is refunded at the cashier, never voided there."""
    clock = Clock()
    a = await make_ledger("cashier-01", clock=clock)
    b = await make_ledger("pharmacy-01", clock=clock)
    await a.set_node_keys({"pharmacy-01": (node_key("pharmacy-01").public_key, "pharmacy")})
    await b.set_node_keys({"cashier-01": (node_key("cashier-01").public_key, "cashier")})
    cashier, pharmacy = CounterService(a, "op"), CounterService(b, "op")
    pid = await registered(cashier, deposit=10_000)
    await b.ingest(await a.own_events_after(0, limit=100))
    drug = (await pharmacy.charge(CARD, [item(1_850)], "药房")).number
    await a.ingest(await b.own_events_after(0, limit=100))
    mine = (await cashier.charge(CARD, [item(500)], "检验科")).number
    assert [c.charge_id for c in await cashier.voidable_charges(pid)] == [mine]
    await refused(a, cashier.void_charge(drug, "li", "wrong drug",
                                         approval=SUP), "void.other_counter")
    assert [c.charge_id for c in await pharmacy.voidable_charges(pid)] == [drug]


async def test_a_void_honours_the_business_day_cutoff(make_ledger: LedgerFactory) -> None:
    # 22:13 local: with a 23:00 cut-off, a charge at 22:13 and a void at 23:30 are on
    # different business days
    clock = Clock()
    led = await make_ledger(clock=clock)
    svc = CounterService(led, "op")
    await registered(svc)
    c = (await svc.charge(CARD, [item(1_000)], "x")).number
    clock.t += 77 * 60_000
    await refused(led, svc.void_charge(c, "li", "x", timezone="Asia/Shanghai",
                                       cutoff="23:00", approval=SUP), "void.not_today")
    await svc.void_charge(c, "li", "x", timezone="Asia/Shanghai", cutoff="06:00", approval=SUP)


async def test_void_rules_hold_in_the_protocol_too() -> None:
    """A void body must be of the whole charge, to the deposit, without items."""
    base = {"refund_id": "R-a-1", "charge_id": "C-a-1", "patient_id": "P-a-1",
            "amount": 100, "approved_by": "x", "reason": "y", "void": 1}
    assert [p.code for p in REGISTRY.validate("account.refunded", {**base, "to": "cash"})] \
        == ["void.to_deposit"]
    bad = {**base, "to": "deposit", "items": [{"line": 0, "qty": 1}]}
    assert [p.code for p in REGISTRY.validate("account.refunded", bad)] == ["void.items"]
    assert REGISTRY.validate("account.refunded", {**base, "to": "deposit", "void": 2}
                             )[0].code == "field.range"


# -- refund single items -----------------------------------------------------------------
async def test_item_refunds_are_limited_per_line(service: CounterService,
                                                 ledger: Ledger) -> None:
    await registered(service, deposit=10_000)
    r = await service.charge(CARD, [item(2_500, qty=2, code="LAB-CBC", name="血常规"),
                                    item(300, qty=3, code="LAB-FEE", name="采血")], "检验科")
    cid = r.number
    charge, lines = await service.charge_lines(cid)
    assert charge.items == "2*2500,3*300"
    assert [(ln.code, ln.qty, ln.unit_price, ln.left) for ln in lines] == \
        [("LAB-CBC", 2, 2_500, 2), ("LAB-FEE", 3, 300, 3)]
    # one CBC and two draws: the amount is computed from the items
    r1 = await service.refund(cid, None, "deposit", "dr.zhao", "not done",
                              items={0: 1, 1: 2}, approval=SUP)
    assert r1.events[0].body["items"] == [{"line": 0, "qty": 1}, {"line": 1, "qty": 2}]
    assert r1.events[0].body["amount"] == 2_500 + 600
    _, lines = await service.charge_lines(cid)
    assert [ln.left for ln in lines] == [1, 1]
    # more of a line than is left: refused, nothing written
    e = await refused(ledger, service.refund(cid, None, "cash", "dr.zhao", "x", items={1: 2},
                                             approval=SUP),
                      "refund.item_exceeds")
    assert "3 charged, 1 left" in str(e)
    await refused(ledger, service.refund(cid, None, "cash", "dr.zhao", "x", items={5: 1},
                                         approval=SUP),
                  "refund.item_unknown")
    # an amount that does not match the items
    await refused(ledger, service.refund(cid, 1, "cash", "dr.zhao", "x", items={0: 1},
                                         approval=SUP),
                  "refund.items_amount")
    await refused(ledger, service.refund(cid, None, "cash", "dr.zhao", "x", items={}, approval=SUP),
                  "refund.no_items")
    # the rest of both lines: exactly what is left of the charge
    await service.refund(cid, None, "cash", "dr.zhao", "x", items={0: 1, 1: 1}, approval=SUP)
    c = await ledger.get(Charge, cid)
    assert (c.refunded, c.refundable, c.refunded_qty()) == (5_900, 0, {0: 2, 1: 3})
    await refused(ledger, service.refund(cid, 1, "cash", "dr.zhao", "x", approval=SUP),
                  "refund.exceeds_charge")
    before = await ledger.dump_projections()
    await ledger.rebuild()
    assert await ledger.dump_projections() == before


async def test_item_refunds_also_bounded_by_amount_refunds(service: CounterService,
                                                           ledger: Ledger) -> None:
    await registered(service)
    cid = (await service.charge(CARD, [item(1_000, qty=2)], "x")).number
    await service.refund(cid, 1_500, "deposit", "dr", "by amount", approval=SUP)  # no items named
    # one item (¥10.00) is within its line but beyond what is left of the charge (¥5.00)
    await refused(ledger, service.refund(cid, None, "deposit", "dr", "x", items={0: 1},
                                         approval=SUP),
                  "refund.exceeds_charge")


# -- reprint -----------------------------------------------------------------------------
async def test_reprint_of_every_money_receipt(service: CounterService, ledger: Ledger) -> None:
    pid = await registered(service, deposit=10_000)
    c = await service.charge(CARD, [item(2_500, qty=2)], "检验科")
    rf = await service.refund(c.number, 2_500, "deposit", "dr", "x", approval=SUP)
    history = {e.kind: e for e in await ledger.history(pid)}
    rc = await service.receipt_for(history["account.charged"], pid)
    assert (rc.number, rc.balance, rc.lines) == (c.number, 5_000, (("血常规 ×2", 5_000),))
    rr = await service.receipt_for(history["account.refunded"], pid)
    assert (rr.number, rr.balance) == (rf.number, 7_500)
    text = receipts.render_text(rr, node="cashier-01", operator="wang", language="en")
    assert c.number in text and "To deposit" in text and "(REPRINT)" in text
    # the balance is the one after that event, not today's
    rd = await service.receipt_for(history["account.deposited"], pid)
    assert rd.balance == 10_000
    # the card issue was appended with the registration: its receipt is that one
    reg = await service.receipt_for(history["card.issued"], pid)
    assert [e.kind for e in reg.events] == ["patient.registered", "card.issued",
                                            "account.deposited"]
    assert (reg.lines, reg.number, reg.balance) == ((("Deposit", 10_000),),
                                                    history["account.deposited"].body[
                                                        "receipt_no"], 10_000)
    assert "New patient and card" in receipts.render_text(reg, node="c", operator="o",
                                                          language="en")
    # an event of a kind this version does not know has no receipt here
    unknown = Event(1, "cashier-09", 1, ZERO_HASH, Hlc(T0, 0), "op", "ward.admitted",
                    {"patient_id": pid})
    with pytest.raises(OperationRefused) as info:
        await service.receipt_for(unknown, pid)
    assert info.value.codes == ["reprint.no_receipt"]


async def test_reprint_of_a_registration_and_a_replacement_with_the_card_fee(
        make_ledger: LedgerFactory) -> None:
    led = await make_ledger(rule_config=RuleConfig(card_fee=1_000))
    svc = CounterService(led, "op")
    r = await svc.register_patient(name="张三", national_id=ID_FEMALE, phone="13800138000",
                                   card_no=CARD, first_deposit=10_000, tendered=10_000)
    pid = r.patient.patient_id
    await svc.deposit(CARD, 500, "cash")
    rr = await svc.replace_card(CARD, "8600000002")
    events = list(reversed(await led.history(pid)))  # oldest first
    for picked in events[:4]:  # any event of the registration reprints all of it
        again = await svc.receipt_for(picked, pid)
        assert again.events == r.events and again.lines == r.lines
        assert (again.number, again.balance, again.at_ms) == (r.number, 9_000, r.at_ms)
    text = receipts.render_text(again, node="cashier-01", operator="op", language="zh")
    assert "新建患者并发卡" in text and "补打" in text and "工本费" in text and "找零" in text
    plain = await svc.receipt_for(events[4], pid)  # the deposit after it: on its own
    assert [e.kind for e in plain.events] == ["account.deposited"] and plain.balance == 9_500
    for picked in events[5:]:
        again = await svc.receipt_for(picked, pid)
        assert again.events == rr.events and again.lines == (("Card fee", 1_000),)
        assert (again.number, again.balance) == (rr.number, 8_500)


# -- editing details ---------------------------------------------------------------------
async def test_edit_details_records_who_changed_what(service: CounterService,
                                                     ledger: Ledger) -> None:
    from edge_node.i18n import Translator
    from edge_node.tui.screens.history import detail_changes

    pid = await registered(service)
    other = CounterService(ledger, "li")
    await service.update_patient(pid, phone="13900139000", contact="北京市东城区")
    await other.update_patient(pid, phone="13700137000", name="张叁")
    events = await ledger.history(pid)
    p = await ledger.get("patients", pid)
    d = await service.details(p)
    assert (p.name, d.phone, d.contact) == ("张叁", "13700137000", "北京市东城区")
    assert "13700137000" not in p.phone and "北京" not in p.contact  # sealed in the ledger
    changes = detail_changes(Translator("en"), events, await service.detail_keys())
    by_op = {e.operator: changes[e.id] for e in events if e.kind == "patient.updated"}
    assert by_op["op.wang"] == "phone: 13800138000 → 13900139000; contact: (empty) → 北京市东城区"
    assert by_op["li"] == "name: 张三 → 张叁; phone: 13900139000 → 13700137000"


async def test_card_fee_with_a_chip_stamps_the_balance_after_the_fee(
        make_ledger: LedgerFactory) -> None:
    """The fee is a money event of its own: the wallet stamp written to the new card is
    the one after it (the last stamped event of the append)."""
    led = await make_ledger(rule_config=RuleConfig(card_fee=1_000))
    svc = CounterService(led, "op")
    r = await svc.register_patient(name="张三", national_id=ID_FEMALE, phone="13800138000",
                                   card_no=CARD, first_deposit=10_000, stamp=True,
                                   tendered=10_000)
    deposit, fee = r.events[2], r.events[3]
    assert (deposit.body["stamp_seq"], deposit.body["stamp_balance"]) == (1, 10_000)
    assert (fee.body["stamp_seq"], fee.body["stamp_balance"]) == (2, 9_000)
    assert next(e for e in reversed(r.events) if "stamp_seq" in e.body) is fee
    acct = await led.get(Account, r.patient.patient_id)
    assert (acct.stamp_seq, acct.stamp_balance, acct.money_seq) == (2, 9_000, 2)


async def test_card_fee_on_another_card_for_a_patient(make_ledger: LedgerFactory) -> None:
    led = await make_ledger(rule_config=RuleConfig(card_fee=800))
    svc = CounterService(led, "op")
    pid = await registered(svc, deposit=2_000)  # ¥20.00 − ¥8.00 card fee = ¥12.00
    r = await svc.issue_card(pid, "8600000005")
    assert [e.kind for e in r.events] == ["card.issued", "account.charged"]
    assert r.balance == 400 and r.number == r.events[1].body["charge_id"]
    e = await refused(led, svc.issue_card(pid, "8600000006"), "card_fee.insufficient")
    assert "holds ¥4.00" in str(e)
    assert await led.get("cards", "8600000006") is None


def test_card_fee_is_a_config_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from edge_node import config
    from edge_node.errors import ConfigError

    cfg = config.from_dict({"node_id": "cashier-01", "card_fee": 1_000}, tmp_path / "e.toml")
    assert cfg.card_fee == 1_000 and cfg.rules.card_fee == 1_000
    assert config.from_dict({"node_id": "cashier-01"}).rules.card_fee == 0  # none by default
    path = tmp_path / "edge.toml"
    path.write_text(config.render(cfg), encoding="utf-8")
    assert config.load(path).card_fee == 1_000
    for bad in (-1, "10", 1.5):
        with pytest.raises(ConfigError, match="card_fee"):
            config.from_dict({"node_id": "cashier-01", "card_fee": bad})
