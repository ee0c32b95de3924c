"""A scripted walk through one patient's day at two counters, on real ledgers in a temp dir.

``python -m edge_node.walkthrough`` (``make walkthrough``): registration and card issue,
a deposit, charges, a refund. At a second counter that has received the first counter's
signed events (verified, chained) the card is reported lost and replaced: the balance
follows the patient.  Both ledgers are then verified event by event.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from protocol.crypto import SigningKey
from protocol.money import yuan


def say(text: str) -> None:
    print(text, flush=True)


async def walk(base: Path) -> int:
    key_a, key_b = SigningKey.generate(), SigningKey.generate()
    a = await Ledger.open(base / "cashier-01.sqlite3", "cashier-01", key_a)
    b = await Ledger.open(base / "pharmacy-01.sqlite3", "pharmacy-01", key_b)
    await a.set_node_keys({"pharmacy-01": (key_b.public_key, "pharmacy")})
    await b.set_node_keys({"cashier-01": (key_a.public_key, "cashier")})
    cashier, pharmacy = CounterService(a, "wang.fang"), CounterService(b, "li.na")
    say(f"ledgers in {base}")
    say(f"  cashier-01  key {key_a.fingerprint}")
    say(f"  pharmacy-01 key {key_b.fingerprint}\n")

    r = await cashier.register_patient(
        name="张伟", national_id="11010519491231002X", phone="13800138000",
        card_no="8600000001", first_deposit=20000, method="cash")
    pid = r.patient.patient_id
    say(f"[cashier-01] registered {r.patient.name} as {pid} "
        f"({r.patient.sex}, born {r.patient.birth_date}), card 8600000001, "
        f"first deposit {yuan(20000)}  → balance {yuan(r.balance)}")
    r = await cashier.deposit("8600000001", 5000, "mobile", reference="WX-4200000001")
    say(f"[cashier-01] top-up {yuan(5000)} by mobile, receipt {r.number} → {yuan(r.balance)}")
    reg = await cashier.charge("8600000001", [
        {"code": "REG-GEN", "name": "普通门诊挂号", "qty": 1, "unit_price": 500},
        {"code": "CONS", "name": "诊查费", "qty": 1, "unit_price": 1000}], "内科")
    say(f"[cashier-01] charge {reg.number}: registration + consultation "
        f"{yuan(1500)} → {yuan(reg.balance)}")
    lab = await cashier.charge("8600000001", [
        {"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2500}], "检验科")
    say(f"[cashier-01] charge {lab.number}: blood count {yuan(2500)} → {yuan(lab.balance)}")
    r = await cashier.refund(lab.number, 2500, "deposit", "dr.zhao", "test cancelled")
    say(f"[cashier-01] refund {yuan(2500)} of {lab.number} to the deposit → {yuan(r.balance)}")

    # The pharmacy counter receives the cashier's signed events (what sync does).
    page = [data for _, data in await a.events()]
    new = await b.ingest(page)
    say(f"\n[pharmacy-01] received {new} signed events from cashier-01 (signatures and "
        "chain checked)")
    r = await pharmacy.charge("8600000001", [
        {"code": "DRUG-AMOX", "name": "阿莫西林胶囊", "qty": 2, "unit_price": 1850}], "药房")
    say(f"[pharmacy-01] dispensed: charge {yuan(3700)} → {yuan(r.balance)}")
    r = await pharmacy.report_lost("8600000001", "id_card", "lost on the bus")
    say("[pharmacy-01] card 8600000001 reported lost (identity checked with ID card)")
    try:
        await pharmacy.charge("8600000001", [
            {"code": "DRUG-VC", "name": "维生素C", "qty": 1, "unit_price": 300}], "药房")
    except OperationRefused as exc:
        say(f"[pharmacy-01] charging the lost card is refused: {exc}")
    r = await pharmacy.replace_card("8600000001", "8600000002")
    view = await pharmacy.lookup_card("8600000002")
    say(f"[pharmacy-01] replacement card 8600000002 → same patient {view.patient.patient_id}, "
        f"balance {yuan(view.account.balance)}")

    await a.ingest([data for _, data in await b.events()
                    if data not in page])
    va = await CounterService(a).lookup_card("8600000002")
    say(f"\n[cashier-01] after receiving pharmacy-01's events: card 8600000002 balance "
        f"{yuan(va.account.balance)}, old card {(await a.get('cards', '8600000001')).status}")
    ok = True
    for name, led in (("cashier-01", a), ("pharmacy-01", b)):
        report = await led.verify()
        ok &= report.ok
        say(f"[{name}] {report}")
    expected = 20000 + 5000 - 1500 - 2500 + 2500 - 3700
    if va.account.balance != expected or view.account.balance != expected:
        say(f"balance mismatch: expected {yuan(expected)}")
        ok = False
    await a.close()
    await b.close()
    say("\nall balances agree and every event verifies" if ok else "\nSOMETHING IS WRONG")
    return 0 if ok else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="onecard-walk-") as d:
        return asyncio.run(walk(Path(d)))


if __name__ == "__main__":
    sys.exit(main())
