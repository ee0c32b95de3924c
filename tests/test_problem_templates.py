"""Every refusal staff can see reads in their language: each Problem code produced in
protocol/ and edge_node/ has a ``problem.<code>`` template in zh and en, every field a
label, and amounts print in yuan."""

from __future__ import annotations

import functools
import re
import string
from pathlib import Path

import pytest

from edge_node.i18n import STRINGS, Translator
from edge_node.ledger import Ledger
from edge_node.receipt import render_text
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.account import Deposited
from protocol.domain import REGISTRY
from protocol.errors import Amount, Problem
from protocol.fields import MAX_AMOUNT, decode
from protocol.patient import Registered
from tests.conftest import ID_MALE

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

ROOT = Path(__file__).resolve().parent.parent
LATIN_WORD = re.compile(r"[A-Za-z_]{2,}")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
CODE_CALL = re.compile(r"\b(?:Problem|_refuse)\(\s*\"([a-z_]+\.[a-z_.]+)\"")
MONEY_NAMES = {"fee", "amount", "balance", "credit", "short", "left", "charged", "debt",
               "total", "card_balance"}


@functools.cache
def produced_codes() -> frozenset[str]:
    """Every Problem code built in protocol/ and edge_node/ (a scan of the source, once
    per run: each template's test asks)."""
    codes: set[str] = set()
    for top in ("protocol", "edge_node"):
        for path in (ROOT / top).rglob("*.py"):
            codes |= set(CODE_CALL.findall(path.read_text(encoding="utf-8")))
    return frozenset(codes)


@functools.cache
def field_names() -> frozenset[str]:
    names: set[str] = set()

    def walk(schema: dict) -> None:
        for name, f in schema.items():
            names.add(name)
            if f.item is not None:
                walk(f.item.SCHEMA)
    for kind in REGISTRY:
        walk(kind.body.SCHEMA)
    return frozenset(names)


def sample(template: str) -> dict[str, object]:
    """A value for each placeholder of ``template`` (digits: no words of their own)."""
    out: dict[str, object] = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name and name != "label":
            out[name] = Amount(123456) if name in MONEY_NAMES else "12345"
    return out


def test_the_scan_finds_the_codes_of_every_layer() -> None:
    codes = produced_codes()
    # the body fields, rules of each concept, the service and the forms
    assert {"field.format", "field.range", "field.missing", "charge.insufficient",
            "card.lost", "settle.owing", "patient.birth_date_future",
            "deposit.below_registration_fee", "charge.insufficient_card",
            "form.required", "operator.missing", "kind.central_only"} <= codes
    assert len(codes) > 50


@pytest.mark.parametrize("code", sorted(produced_codes()))
def test_every_code_has_a_template_in_both_languages(code: str) -> None:
    assert f"problem.{code}" in STRINGS, f"add problem.{code} (zh, en) to edge_node/i18n.py"
    zh, en = STRINGS[f"problem.{code}"]
    p = Problem(code, "an English message", "amount", sample(zh + en))
    text_zh, text_en = Translator("zh").problem(p), Translator("en").problem(p)
    assert text_zh and not LATIN_WORD.search(text_zh), text_zh
    assert text_en and not CJK.search(text_en), text_en
    assert "…" not in text_zh + text_en


@pytest.mark.parametrize("key", sorted(k for k in STRINGS if k.startswith("problem.")))
def test_every_template_and_variant_renders(key: str) -> None:
    code, variant = key.removeprefix("problem."), ""
    if code not in produced_codes() and code.rsplit(".", 1)[0] in produced_codes():
        code, variant = code.rsplit(".", 1)
    zh, en = STRINGS[key]
    values = {**sample(zh + en), "variant": variant}
    for field in sorted(field_names()):
        p = Problem(code, "an English message", field, values)
        assert not LATIN_WORD.search(Translator("zh").problem(p)), (key, field)
        assert not CJK.search(Translator("en").problem(p)), (key, field)


def test_the_registry_refuses_in_codes_that_have_templates() -> None:
    """Codes the registry gives for any kind and any shape of body, collected by asking
    it (beside the scan of the source)."""
    seen: set[str] = set()
    for kind in REGISTRY:
        for body in ({}, "not a map", {"surprise": 1}, {n: None for n in kind.body.SCHEMA}):
            seen |= {p.code for p in REGISTRY.validate(kind.name, body, "cashier-01")}
            local = REGISTRY.local(kind.name, body)
            if isinstance(local, list):
                seen |= {p.code for p in local}
    seen |= {p.code for p in REGISTRY.validate("ward.admitted", {})}
    assert {"field.missing", "field.type", "field.unknown", "kind.central_only",
            "kind.not_local", "kind.unknown"} <= seen
    for code in seen:
        assert f"problem.{code}" in STRINGS, code


def test_money_fields_carry_their_bounds_as_amounts() -> None:
    money = {"amount", "debit", "moved", "unit_price", "limit", "stamp_balance"}

    def walk(schema: dict) -> None:
        for name, f in schema.items():
            if name in money:
                assert f.money, name
            if f.item is not None:
                walk(f.item.SCHEMA)
    for kind in REGISTRY:
        walk(kind.body.SCHEMA)


def test_every_body_field_has_a_label() -> None:
    zh, en = Translator("zh"), Translator("en")
    for name in field_names():
        assert f"field.{name}" in STRINGS, name
        assert not LATIN_WORD.search(zh.label(name)) and not CJK.search(en.label(name))
    assert zh.label("items[1].qty") == "收费项目第 2 项 · 数量"
    assert en.label("items[1].qty") == "Item 2 · Qty"


def test_decode_problems_read_with_the_label_and_in_yuan() -> None:
    zh, en = Translator("zh"), Translator("en")
    body = {"patient_id": "P-1", "name": "王五", "sex": "M", "birth_date": "1980-01-01",
            "phone": "1"}
    (phone,) = decode(Registered, body)
    assert zh.problem(phone) == "手机号：格式不对（应为 5–20 位数字，可含空格、- 或开头的 +）"
    assert en.problem(phone).startswith("Phone: not a phone number")
    (too_much,) = decode(Deposited, {"patient_id": "P-1", "amount": 99_999_999_999,
                                     "method": "cash", "receipt_no": "D-1"})
    assert too_much.values["bound"] == MAX_AMOUNT
    assert zh.problem(too_much) == "金额：超过上限 ¥100,000,000.00"
    assert en.problem(too_much) == "Amount: above the maximum ¥100,000,000.00"
    (missing,) = decode(Deposited, {"patient_id": "P-1", "amount": 100, "method": "cash"})
    assert zh.problem(missing) == "收据号：必填"
    problems = decode(Registered, {**body, "phone": "13800000000", "birth_date": "1980-02-30"})
    assert [zh.problem(p) for p in problems] == ["出生日期：1980-02-30 不是真实的日期"]


def test_a_code_without_a_template_still_reads() -> None:
    p = Problem("void.someone_elses", "only today's own charges can be voided", "charge_id")
    assert Translator("en").problem(p) == "Only today's own charges can be voided"
    zh = Translator("zh").problem(p)
    assert zh.startswith("未办理") and "void.someone_elses" in zh
    # a template whose values are missing does not crash either
    short = Problem("card.lost", "card x was reported lost", "card_no")
    assert Translator("zh").problem(short).startswith("卡 … 已挂失")
    assert Translator("en").problem(short) == "Card x was reported lost"


async def test_a_zh_refund_receipt_has_no_english_line(ledger: Ledger) -> None:
    svc = CounterService(ledger, "wang")
    await svc.register_patient(name="张三", national_id=ID_MALE, phone="13800138000",
                               card_no="8600000001", first_deposit=10_000, method="cash")
    charged = await svc.charge("8600000001", [{"code": "LB201", "name": "血常规", "qty": 1,
                                               "unit_price": 2_000}], "门诊")
    charge_id = charged.number
    for to, words in (("deposit", "退回预交金"), ("cash", "退现金")):
        r = await svc.refund(charge_id, 500, to, "周医生", "未做检查", approval=SUP)
        text = render_text(r, node="cashier-01", operator="wang", card_no="8600000001")
        assert f"退费 {charge_id}（{words}）" in text.replace("\n", ""), text
        ids = {"cashier-01", "wang", r.number, r.patient.patient_id, charge_id}
        for line in text.splitlines():
            for known in ids:
                line = line.replace(known, "")
            assert not LATIN_WORD.search(line), line
        en = render_text(r, node="cashier-01", operator="wang", language="en", width=48)
        assert "Refund of" in en
