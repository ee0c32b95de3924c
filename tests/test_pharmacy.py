"""The pharmacy service (edge_node.pharmacy) on real SQLite ledgers: prescriptions waiting,
dispensing charged at send (nothing charged now) and at execution (charged now), partial
dispensing when stock is short and the rest after a receipt, returning the rest (refunds
exactly what was charged for it, or nothing), stock after every step, each refusal, low
stock by the config's levels, the stock report and ``onecard-edge stock``."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import pytest

from edge_node import cli
from edge_node import config as cfgmod
from edge_node.clinic import WARNINGS, ClinicService
from edge_node.errors import ConfigError, OperationRefused
from edge_node.i18n import Translator
from edge_node.labels import label_text
from edge_node.ledger import Ledger
from edge_node.pharmacy import PharmacyService, StockRow, report_csv, report_text
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.account import Account
from protocol.order import Order
from protocol.stock import Stock
from tests.conftest import ID_FEMALE, LedgerFactory, registered
from tests.support.clinic import PHARMACY, give_catalogue

DOCTOR = "dr.qian"
OTHER_PHARMACY = "PHA-IP"
AMX = 1850  # 阿莫西林胶囊 a box
IBU = 1260  # 布洛芬缓释胶囊 a box


class Pharmacy:
    """One counter's ledger with the test catalogue and a patient seen by a doctor."""

    def __init__(self, led: Ledger, pid: str, visit_id: str) -> None:
        self.led, self.pid, self.visit_id = led, pid, visit_id
        self.clinic = ClinicService(led, DOCTOR)
        self.svc = PharmacyService(led, "ph.zhou", pharmacy=PHARMACY,
                                   low_stock_items={"D-AMX": 5})

    async def prescribe(self, *lines: tuple[str, int]) -> Order:
        built = [await self.clinic.line(code, qty, 250, 3, 3) if code != "D-IBU" else
                 await self.clinic.line(code, qty, 300, 2, 3) for code, qty in lines]
        r = await self.clinic.send_order(self.visit_id, built, accept_warnings=WARNINGS)
        [o] = r.orders
        return o

    async def balance(self) -> int:
        acct = await self.led.get(Account, self.pid)
        return int(acct.balance)

    async def on_hand(self, code: str, pharmacy: str = PHARMACY) -> int:
        s = await self.led.get(Stock, (pharmacy, code))
        return 0 if s is None else int(s.on_hand)


async def pharmacy(make_ledger: LedgerFactory, charge_at: str = "send",
                   deposit: int = 50_000, node: str = "pharmacy-01") -> Pharmacy:
    led = await make_ledger(node)
    await give_catalogue(led, charge_at=charge_at)
    pid = await registered(CounterService(led, "op.wang"), deposit=deposit)
    r = await VisitService(led, "op.wang").register(dept="IM", channel="cashier",
                                                     patient_id=pid, doctor_id=DOCTOR)
    return Pharmacy(led, pid, r.visit.visit_id)


async def conserved(p: Pharmacy) -> None:
    """Every item's stock is what its events say: received + adjusted + moved − dispensed."""
    for s in await p.led.find(Stock, "pharmacy", PHARMACY):
        assert s.on_hand == s.received + s.adjusted + s.moved - s.dispensed


# -- dispensing ---------------------------------------------------------------------------
async def test_full_dispense_charged_at_send_charges_nothing_more(
        make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    await p.svc.receive("D-AMX", 20, "B2026-01", "store room")
    await p.svc.receive("D-IBU", 10)
    o = await p.prescribe(("D-AMX", 2), ("D-IBU", 1))
    assert o.charged == 2 * AMX + IBU
    before = await p.balance()
    [waiting] = await p.svc.waiting(p.pid)
    assert waiting.order_id == o.order_id and waiting.charged_at_send
    assert [(ln.code, ln.left, ln.on_hand, ln.short) for ln in waiting.lines] == [
        ("D-AMX", 2, 20, 0), ("D-IBU", 1, 10, 0)]
    r = await p.svc.dispense(o.order_id, patient_id=p.pid)
    assert r.amount == 0 and r.balance == before == await p.balance()
    assert r.dispense_id == f"F-pharmacy-01-{(await p.led.head()).seq:06d}"
    assert [(x.code, x.qty) for x in r.items] == [("D-AMX", 2), ("D-IBU", 1)]
    assert r.stays_open == {} and r.value == 2 * AMX + IBU
    assert (await p.on_hand("D-AMX"), await p.on_hand("D-IBU")) == (18, 9)
    assert (await p.led.get(Order, o.order_id)).stage == "dispensed"
    assert await p.svc.waiting(p.pid) == []
    await conserved(p)
    # the medication labels: who, what, how to take it, price, the ids
    zh = label_text(r.labels("zh")[0], 40)
    assert "张三" in zh and "阿莫西林胶囊" in zh and "每次 250" in zh and "每日 3 次" in zh
    assert "共 3 天" in zh and "¥37.00" in zh and r.dispense_id in zh and o.order_id in zh
    en = label_text(r.labels("en")[1], 40)
    assert "300 mg, 2 times a day, 3 days" in en and "¥12.60" in en


async def test_full_dispense_charged_at_execution_charges_now(
        make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger, charge_at="execution")
    await p.svc.receive("D-AMX", 20)
    o = await p.prescribe(("D-AMX", 3))
    assert o.charged == 0
    before = await p.balance()
    preview = await p.svc.dry().dispense(o.order_id)
    assert preview.preview and preview.amount == 3 * AMX and preview.balance == before - 3 * AMX
    assert await p.balance() == before and await p.on_hand("D-AMX") == 20, "dry: nothing written"
    r = await p.svc.dispense(o.order_id)
    assert r.amount == 3 * AMX and r.balance == before - 3 * AMX == await p.balance()
    assert await p.on_hand("D-AMX") == 17
    after = await p.led.get(Order, o.order_id)
    assert after.exec_charged == 3 * AMX and after.stage == "dispensed"
    await conserved(p)


async def test_partial_when_stock_is_short_then_the_rest_after_a_receipt(
        make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger, charge_at="execution")
    await p.svc.receive("D-AMX", 2)
    o = await p.prescribe(("D-AMX", 5), ("D-IBU", 1))  # no 布洛芬 here at all
    [w] = await p.svc.waiting(p.pid)
    assert w.give_now == {"D-AMX": 2} and w.stays_open == {"D-AMX": 3, "D-IBU": 1}
    assert w.charge_for(w.give_now) == 2 * AMX
    before = await p.balance()
    first = await p.svc.dispense(o.order_id)
    assert [(x.code, x.qty) for x in first.items] == [("D-AMX", 2)]
    assert first.amount == 2 * AMX and first.stays_open == {"D-AMX": 3, "D-IBU": 1}
    assert (await p.led.get(Order, o.order_id)).stage == "part_dispensed"
    assert await p.on_hand("D-AMX") == 0
    with pytest.raises(OperationRefused) as exc:  # nothing in stock to give now
        await p.svc.dispense(o.order_id)
    assert exc.value.codes == ["pharmacy.no_stock", "pharmacy.no_stock"]
    assert exc.value.problems[0].values == {"item": "阿莫西林胶囊", "have": 0, "left": 3}
    await p.svc.receive("D-AMX", 10)
    await p.svc.receive("D-IBU", 4)
    second = await p.svc.dispense(o.order_id)
    assert sorted((x.code, x.qty) for x in second.items) == [("D-AMX", 3), ("D-IBU", 1)]
    assert second.amount == 3 * AMX + IBU and second.stays_open == {}
    assert await p.balance() == before - 5 * AMX - IBU
    assert (await p.on_hand("D-AMX"), await p.on_hand("D-IBU")) == (7, 3)
    assert first.dispense_id != second.dispense_id
    await conserved(p)


async def test_chosen_lines_and_their_refusals(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    await p.svc.receive("D-AMX", 3)
    o = await p.prescribe(("D-AMX", 5))
    with pytest.raises(OperationRefused) as exc:  # more than stock
        await p.svc.dispense(o.order_id, {"D-AMX": 4})
    assert exc.value.codes == ["stock.below_zero"]
    with pytest.raises(OperationRefused) as exc:  # more than prescribed, and a stranger
        await p.svc.dispense(o.order_id, {"D-AMX": 6, "D-AZI": 1})
    assert set(exc.value.codes) == {"order.over_dispense", "stock.below_zero",
                                    "order.line_unknown"}
    with pytest.raises(OperationRefused) as exc:
        await p.svc.dispense(o.order_id, {"D-AMX": 0})
    assert exc.value.codes == ["pharmacy.nothing_chosen"]
    r = await p.svc.dispense(o.order_id, {"D-AMX": 1})
    assert r.stays_open == {"D-AMX": 4} and await p.on_hand("D-AMX") == 2


# -- returning the rest -------------------------------------------------------------------
async def test_return_of_the_rest_refunds_exactly_what_was_charged_at_send(
        make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    await p.svc.receive("D-AMX", 2)
    o = await p.prescribe(("D-AMX", 5), ("D-IBU", 2))
    await p.svc.dispense(o.order_id)  # 2 boxes of 阿莫西林: the rest stays open
    before = await p.balance()
    with pytest.raises(OperationRefused) as exc:
        await p.svc.return_rest(o.order_id, " ", "")
    assert exc.value.codes == ["pharmacy.return_reason", "pharmacy.approval"]
    preview = await p.svc.dry().return_rest(o.order_id, "缺货", "dr.qian")
    assert preview.refund == 3 * AMX + 2 * IBU and await p.balance() == before
    r = await p.svc.return_rest(o.order_id, "缺货", "dr.qian")
    assert r.lines == {"D-AMX": 3, "D-IBU": 2} and r.refund == 3 * AMX + 2 * IBU
    assert r.balance == before + r.refund == await p.balance()
    after = await p.led.get(Order, o.order_id)
    assert after.stage == "dispensed" and after.refunded == r.refund
    assert await p.on_hand("D-AMX") == 0, "returning undispensed items moves no stock"
    assert await p.svc.waiting(p.pid) == []
    with pytest.raises(OperationRefused) as exc:
        await p.svc.return_rest(o.order_id, "again", "dr.qian")
    assert exc.value.codes == ["pharmacy.nothing_left"]
    await conserved(p)


async def test_return_charged_at_execution_gives_nothing_back(
        make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger, charge_at="execution")
    await p.svc.receive("D-AMX", 1)
    o = await p.prescribe(("D-AMX", 3))
    first = await p.svc.dispense(o.order_id)
    assert first.amount == AMX
    before = await p.balance()
    r = await p.svc.return_rest(o.order_id, "patient declined", "dr.qian")
    assert r.lines == {"D-AMX": 2} and r.refund == 0 and await p.balance() == before
    assert (await p.led.get(Order, o.order_id)).stage == "dispensed"


async def test_return_of_a_whole_undispensed_prescription(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    o = await p.prescribe(("D-IBU", 2))
    before = await p.balance()
    r = await p.svc.return_rest(o.order_id, "缺货", "dr.qian", {"D-IBU": 1})
    assert r.refund == IBU and await p.balance() == before + IBU
    r = await p.svc.return_rest(o.order_id, "缺货", "dr.qian")
    assert r.lines == {"D-IBU": 1} and (await p.led.get(Order, o.order_id)).stage == "returned"


# -- refusals -------------------------------------------------------------------------------
async def test_refusals(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger, deposit=50_000)
    await p.svc.receive("D-AMX", 10)
    with pytest.raises(OperationRefused) as exc:
        await p.svc.dispense("O-nowhere-000001")
    assert exc.value.codes == ["order.unknown"]
    o = await p.prescribe(("D-AMX", 1))
    other = await registered(CounterService(p.led, "op.wang"), card_no="8600000002",
                             national_id=ID_FEMALE)
    with pytest.raises(OperationRefused) as exc:  # tapped by another patient
        await p.svc.dispense(o.order_id, patient_id=other)
    assert exc.value.codes == ["order.wrong_patient"]
    elsewhere = PharmacyService(p.led, "ph.zhou", pharmacy=OTHER_PHARMACY)
    with pytest.raises(OperationRefused) as exc:
        await elsewhere.dispense(o.order_id)
    assert exc.value.codes == ["order.wrong_window"]
    assert await elsewhere.waiting(p.pid) == []
    await p.svc.dispense(o.order_id)
    with pytest.raises(OperationRefused) as exc:  # nothing left
        await p.svc.dispense(o.order_id)
    assert exc.value.codes == ["pharmacy.nothing_left"]
    cancelled = await p.prescribe(("D-AMX", 1))
    await p.clinic.cancel_order(cancelled.order_id, "wrong drug")
    with pytest.raises(OperationRefused) as exc:
        await p.svc.dispense(cancelled.order_id)
    assert exc.value.codes == ["order.step"]
    tr = Translator("en")
    assert "cancelled" in tr.problems(exc.value.problems)
    with pytest.raises(OperationRefused) as exc:
        await p.svc.waiting("P-nobody-000001")
    assert exc.value.codes == ["patient.unknown"]
    assert await p.svc.patient_of_card("8600000001") == p.pid
    with pytest.raises(OperationRefused) as exc:
        await p.svc.patient_of_card("8600009999")
    assert exc.value.codes == ["card.unknown"]


async def test_deposit_short_is_refused_with_how_much(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger, charge_at="execution", deposit=3_000)
    await p.svc.receive("D-AMX", 10)
    o = await p.prescribe(("D-AMX", 2))  # ¥37.00 against ¥30.00 (less the ¥5.00 visit)
    balance = await p.balance()
    with pytest.raises(OperationRefused) as exc:
        await p.svc.dispense(o.order_id)
    assert exc.value.codes == ["charge.insufficient"]
    assert exc.value.problems[0].values["short"] == 2 * AMX - balance
    assert await p.on_hand("D-AMX") == 10 and await p.balance() == balance
    zh = Translator("zh").problems(exc.value.problems)
    assert "还差" in zh


# -- stock ------------------------------------------------------------------------------
async def test_stock_moves_and_low_levels(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    await p.svc.receive("D-AMX", 20, "B1")
    await p.svc.receive("D-IBU", 12)
    await p.svc.receive("D-VITC", 100)
    r = await p.svc.adjust("D-AMX", -2, "expired", "batch B0")
    assert (r.row.on_hand, r.row.adjusted) == (18, -2)
    r = await p.svc.adjust("D-IBU", 1, "count")
    assert r.row.on_hand == 13
    r = await p.svc.transfer("D-AMX", 5, OTHER_PHARMACY, "ward short")
    assert (r.row.on_hand, r.row.moved) == (13, -5)
    assert await p.on_hand("D-AMX", OTHER_PHARMACY) == 5
    o = await p.prescribe(("D-AMX", 10), ("D-IBU", 3))
    await p.svc.dispense(o.order_id)
    rows = {row.code: row for row in await p.svc.stock()}
    assert rows["D-AMX"] == StockRow("D-AMX", "阿莫西林胶囊", "盒", 3, 20, 10, -2, -5, 5, True)
    assert (rows["D-IBU"].on_hand, rows["D-IBU"].level, rows["D-IBU"].low) == (10, 10, True)
    assert (rows["D-VITC"].on_hand, rows["D-VITC"].low) == (100, False)
    assert [row.code for row in await p.svc.stock(low_only=True)] == ["D-AMX", "D-IBU"]
    for row in rows.values():
        assert row.on_hand == row.received + row.adjusted + row.moved - row.dispensed
    higher = PharmacyService(p.led, pharmacy=PHARMACY, low_stock=5)
    assert [row.code for row in await higher.stock(low_only=True)] == ["D-AMX"]
    await conserved(p)


async def test_stock_refusals(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    await p.svc.receive("D-AMX", 3)
    with pytest.raises(OperationRefused) as exc:
        await p.svc.transfer("D-AMX", 1, PHARMACY)  # to itself
    assert exc.value.codes == ["stock.same_place"]
    with pytest.raises(OperationRefused) as exc:
        await p.svc.transfer("D-AMX", 4, OTHER_PHARMACY)
    assert exc.value.codes == ["stock.below_zero"]
    with pytest.raises(OperationRefused) as exc:
        await p.svc.adjust("D-AMX", -4, "damaged")
    assert exc.value.codes == ["stock.below_zero"]
    with pytest.raises(OperationRefused) as exc:
        await p.svc.adjust("D-AMX", 1, "transfer_in")  # not a reason staff choose
    assert exc.value.codes == ["pharmacy.adjust_reason"]
    with pytest.raises(OperationRefused) as exc:
        await p.svc.adjust("D-AMX", 0, "count")
    assert exc.value.codes == ["stock.zero"]
    with pytest.raises(OperationRefused):
        await p.svc.receive("D-AMX", 0)
    nowhere = PharmacyService(p.led, pharmacy="")
    with pytest.raises(OperationRefused) as exc:
        await nowhere.stock()
    assert exc.value.codes == ["pharmacy.none"]
    assert await p.on_hand("D-AMX") == 3


async def test_two_pharmacies_make_different_dispense_ids(make_ledger: LedgerFactory) -> None:
    """Ids come from the ledger's allocator: node and seq, never the same at two counters."""
    a = await pharmacy(make_ledger, node="pharmacy-01")
    b = await pharmacy(make_ledger, node="pharmacy-02")
    ids = []
    for p in (a, b):
        await p.svc.receive("D-AMX", 5)
        o = await p.prescribe(("D-AMX", 1))
        ids.append((await p.svc.dispense(o.order_id)).dispense_id)
    assert ids[0].startswith("F-pharmacy-01-") and ids[1].startswith("F-pharmacy-02-")


async def test_worklist_of_today_follows_the_ledger(make_ledger: LedgerFactory) -> None:
    p = await pharmacy(make_ledger)
    assert await p.svc.worklist() == []
    mark = await p.svc.changes()
    o = await p.prescribe(("D-AMX", 1))
    assert await p.svc.changes() > mark
    [w] = await p.svc.worklist()
    assert w.order_id == o.order_id and w.patient_name == "张三"
    assert await p.svc.worklist(day="2000-01-01") == []
    await p.svc.receive("D-AMX", 1)
    await p.svc.dispense(o.order_id)
    assert await p.svc.worklist() == []


# -- the report ---------------------------------------------------------------------------------
ROWS = [StockRow("D-AMX", "阿莫西林胶囊", "盒", 3, 20, 10, -2, -5, 5, True),
        StockRow("D-VITC", "维生素C片", "盒", 100, 100, 0, 0, 0, 10, False)]


def test_report_text_in_both_languages_and_csv() -> None:
    zh = report_text(PHARMACY, ROWS, "zh", when="2026-09-21 10:00")
    assert "PHA-OP 药房库存" in zh and "2026-09-21 10:00" in zh
    amx = next(line for line in zh.splitlines() if line.startswith("D-AMX"))
    assert amx.split()[2:] == ["3", "20", "10", "-2", "-5", "5", "库存低"]
    assert "共 2 种，1 种库存低" in zh
    en = report_text(PHARMACY, ROWS, "en", low_only=True)
    assert "Stock at PHA-OP: low items" in en and "LOW" in en and "2 items, 1 low" in en
    assert "No items" in report_text(PHARMACY, [], "en")
    table = list(csv.DictReader(io.StringIO(report_csv(PHARMACY, ROWS))))
    assert table[0] == {"pharmacy": "PHA-OP", "code": "D-AMX", "name": "阿莫西林胶囊",
                        "unit": "盒", "on_hand": "3", "received": "20", "dispensed": "10",
                        "adjusted": "-2", "moved": "-5", "low_level": "5", "low": "1"}
    assert table[1]["low"] == "0"


# -- config ----------------------------------------------------------------------------------
def test_low_stock_config_checks_and_round_trip(tmp_path: Path) -> None:
    base = {"node_id": "pharmacy-01", "role": "pharmacy", "department": PHARMACY}
    cfg = cfgmod.from_dict(base)
    assert (cfg.low_stock, cfg.low_stock_items) == (10, {})
    cfg = cfgmod.from_dict({**base, "low_stock": 20, "low_stock_items": {"D-AMX": 50}})
    assert (cfg.low_stock, cfg.low_stock_items) == (20, {"D-AMX": 50})
    path = tmp_path / "c.toml"
    path.write_text(cfgmod.render(cfg), encoding="utf-8")
    again = cfgmod.load(path)
    assert (again.low_stock, again.low_stock_items) == (20, {"D-AMX": 50})
    for bad in ({"low_stock": -1}, {"low_stock": "10"}, {"low_stock_items": {"D-AMX": -1}},
                {"low_stock_items": {"D-AMX": "50"}}, {"low_stock_items": 5}):
        with pytest.raises(ConfigError):
            cfgmod.from_dict({**base, **bad})


# -- onecard-edge stock ------------------------------------------------------------------
def test_cli_stock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(tmp_path / "c.toml"), "init", "pharmacy-01", "--role",
                     "pharmacy", "--language", "en"]) == 0
    path = tmp_path / "c.toml"
    text = path.read_text(encoding="utf-8").replace('department = ""',
                                                    f'department = "{PHARMACY}"')
    path.write_text(text.replace("[low_stock_items]  #", '[low_stock_items]\n"D-IBU" = 3\n#'),
                    encoding="utf-8")
    cfg = cfgmod.load(path)
    assert cfg.low_stock_items == {"D-IBU": 3}

    async def seed() -> None:
        async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
            await give_catalogue(led)
            svc = PharmacyService(led, "ph.zhou", pharmacy=PHARMACY)
            await svc.receive("D-AMX", 40)
            await svc.receive("D-IBU", 3)
            await svc.adjust("D-AMX", -1, "damaged")
    asyncio.run(seed())
    capsys.readouterr()
    c = ["--config", str(path), "stock"]
    assert cli.main(c) == 0
    out = capsys.readouterr().out
    assert "Stock at PHA-OP" in out and "阿莫西林胶囊" in out and "2 items, 1 low" in out
    amx = next(line for line in out.splitlines() if line.startswith("D-AMX"))
    assert amx.split()[-6:] == ["39", "40", "0", "-1", "0", "10"]
    assert cli.main([*c, "--low", "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["code"], r["on_hand"], r["low_level"]) for r in rows] == [("D-IBU", "3", "3")]
    path.write_text(path.read_text(encoding="utf-8").replace(f'"{PHARMACY}"', '""'),
                    encoding="utf-8")
    assert cli.main(c) == 1
    assert "set department" in capsys.readouterr().err
