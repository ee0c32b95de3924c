"""Operator login (Argon2id, lockout), receipts (text, ESC/POS, missing printer), price list."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_node import pricelist, receipt, staff
from edge_node.errors import ConfigError
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from tests.conftest import ID_MALE


async def test_login_lockout_and_hash_at_rest(ledger: Ledger) -> None:
    await staff.add_staff(ledger, "wang", "王丽", "1234", hasher=staff.cheap_hasher(), now_ms=0)
    stored = await ledger.run(lambda c: c.execute("SELECT pin_hash FROM staff").fetchone()[0])
    assert stored.startswith("$argon2id$") and "1234" not in stored
    assert (await staff.login(ledger, "wang", "1234", now_ms=1)).name == "王丽"
    with pytest.raises(staff.StaffError):
        await staff.add_staff(ledger, "wang", "again", "1111", hasher=staff.cheap_hasher())
    for _ in range(staff.MAX_FAILED - 1):
        with pytest.raises(staff.LoginRefused) as wrong:
            await staff.login(ledger, "wang", "0000", now_ms=2)
        assert wrong.value.code == "login.wrong"
    with pytest.raises(staff.LoginRefused) as locked:
        await staff.login(ledger, "wang", "0000", now_ms=3)
    assert locked.value.code == "login.locked"
    with pytest.raises(staff.LoginRefused):  # even the right PIN, while locked
        await staff.login(ledger, "wang", "1234", now_ms=4)
    assert await staff.login(ledger, "wang", "1234", now_ms=4 + staff.LOCKOUT_MS)
    with pytest.raises(staff.LoginRefused) as unknown:
        await staff.login(ledger, "nobody", "1234")
    assert unknown.value.code == "login.wrong"  # same words: ids are not confirmed


async def test_receipt_text_escpos_and_missing_printer(ledger: Ledger, tmp_path: Path) -> None:
    svc = CounterService(ledger, "wang")
    r = await svc.register_patient(name="张三", national_id=ID_MALE, phone="13800138000",
                                   card_no="8600000001", first_deposit=12_345, method="cash")
    text = receipt.render_text(r, node="cashier-01", operator="wang", card_no="8600000001")
    assert "¥123.45" in text and "张三" in text and "8600000001" in text
    assert all(receipt.cells(line) <= 32 for line in text.splitlines())
    data = receipt.escpos(text)
    assert data.startswith(b"\x1b@\x1c&") and data.endswith(b"\x1dV\x01")
    assert "张三".encode("gb18030") in data
    out = tmp_path / "printer.bin"
    assert receipt.print_text(text, str(out)) == receipt.PrintResult(True)
    missing = receipt.print_text(text, "/dev/onecard-no-such-printer")
    assert not missing.printed and "no-such-printer" in missing.warning
    assert not Path("/dev/onecard-no-such-printer").exists()
    assert receipt.print_text(text, "") == receipt.PrintResult(False, "")


def test_price_list_search_and_checks(tmp_path: Path) -> None:
    prices = pricelist.load()
    assert prices.get("reg01") is not None and prices.get("REG01").unit_price == 500
    assert [i.code for i in prices.search("EX10")][:2] == ["EX101", "EX102"]
    assert prices.search("血常规")[0].code == "LB201"
    bad = tmp_path / "p.toml"
    bad.write_text('[[item]]\ncode = "A"\nname_zh = "x"\nunit_price = 1.5\n'
                   '[[item]]\ncode = "A"\nname_zh = "y"\nunit_price = 100\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        pricelist.load(bad)
    assert "whole fen" in str(err.value) and "twice" in str(err.value)
