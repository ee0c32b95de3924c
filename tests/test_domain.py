"""The domain core: every registered kind has every facet; records make their own tables;
a new kind and record are one declaration each (shown with a ward's stock per store and item).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_node.i18n import Translator
from edge_node.ledger import Ledger, Op
from protocol import (
    account,
    card,
    catalogue,
    clinical,
    dayclose,
    dormant,
    execution,
    moving_in,
    order,
    patient,
    privacy,
    remedy,
    staff,
    stock,
    trail,
    visit,
)
from protocol.core import (
    CENTRAL_ONLY,
    COUNTER,
    At,
    Fact,
    Invalid,
    Kind,
    Money,
    Notice,
    NoticeContext,
    Record,
    Registry,
    ReportLine,
    RuleConfig,
    State,
    Tx,
    Unknown,
    columns,
    no_notice,
    record,
    refs,
)
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.errors import Problem
from protocol.event import CENTRAL, Event, sign_event
from protocol.fields import Body, Field, body, decode, ident, spec, text, unbounded
from protocol.hlc import Hlc
from tests.conftest import FakeClock, node_key
from tests.test_kinds import VALID

KINDS = sorted(REGISTRY.kinds)


def _event(kind: str, body: dict[str, Any], node: str = "cashier-01", seq: int = 1) -> Event:
    signer = CENTRAL if REGISTRY.kinds[kind].signer == CENTRAL_ONLY else node
    return Event(1, signer, seq, ZERO_HASH, Hlc(1_790_000_000_000, 0), "op", kind, body)


def test_the_registry_is_built_from_the_concept_modules_alone() -> None:
    declared = [*patient.KINDS, *card.KINDS, *account.KINDS, *remedy.KINDS, *moving_in.KINDS,
                *dormant.KINDS,
                *dayclose.KINDS, *catalogue.KINDS, *visit.KINDS, *clinical.KINDS, *stock.KINDS,
                *order.KINDS, *execution.KINDS, *staff.KINDS, *trail.KINDS, *privacy.KINDS]
    assert [k.name for k in declared] == list(REGISTRY.kinds)
    assert REGISTRY.records == (*patient.RECORDS, *card.RECORDS, *account.RECORDS,
                                *catalogue.RECORDS, *visit.RECORDS, *clinical.RECORDS,
                                *stock.RECORDS, *order.RECORDS, *staff.RECORDS,
                                *privacy.RECORDS)


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_has_every_facet(name: str) -> None:
    k = REGISTRY.kinds[name]
    for f in dataclasses.fields(Kind):
        assert getattr(k, f.name) is not None, f"{name}: no {f.name}"
    assert k.signer in (COUNTER, CENTRAL_ONLY)
    assert all(k.title) and k.title[0] != k.title[1], "a title in Chinese and in English"
    assert k.body.SCHEMA, "a typed body"
    for field_name, f in k.body.SCHEMA.items():
        assert unbounded(f) is None, f"{name}.{field_name}: {unbounded(f)}"
    # each facet runs on a valid body and answers in its own type
    ev = _event(name, VALID[name])
    fact = REGISTRY.decode(ev)
    assert isinstance(fact, Fact), fact
    assert isinstance(k.records(fact.body), set)
    assert all(isinstance(p, str) for p in k.patients(fact.body))
    money = k.money(fact.body)
    assert isinstance(money, Money) and (money.flow == "" or money.flow in
                                         ("deposit", "charge", "refund", "settle", "adjust",
                                          "transfer", "opening"))
    for lang in ("zh", "en"):
        assert isinstance(k.describe(fact.body, lang), str)
        assert Translator(lang)(f"kind.{name}") == k.title[lang == "en"]
    line = k.report(fact.body)
    assert line is None or isinstance(line, ReportLine)
    n = k.notice(fact.body, NoticeContext("P-a-000001"))
    assert n is None or isinstance(n, Notice)
    if k.signer == COUNTER:
        assert isinstance(k.rule(State(), fact.body, RuleConfig()), list)
    # the fold writes only records it declares it touches (the ledger loads just those)
    state = State()
    REGISTRY.apply_fact(state, fact)
    written = {(type(r), r.key()) for t in state.tables.values() for r in t.values()}
    assert written <= k.records(fact.body), name


def test_money_kinds_move_balances_only_through_the_money_facet() -> None:
    """The one money rule: each kind's fold leaves balances to the registry, which adds
    the money facet's deltas, so fold and facet cannot disagree."""
    for name in KINDS:
        fact = REGISTRY.decode(_event(name, VALID[name]))
        assert isinstance(fact, Fact)
        state = State()
        REGISTRY.apply_fact(state, fact)
        balances = {a.patient_id: a.balance for a in state.all(account.Account)}
        expected: dict[str, int] = {}
        for pid, d in fact.money.deltas:
            expected[pid] = expected.get(pid, 0) + d
        assert {p: b for p, b in balances.items() if b} == {p: d for p, d in expected.items()
                                                            if d}, name


def test_decode_says_what_an_event_is_to_this_version() -> None:
    ok = _event("account.deposited", VALID["account.deposited"])
    assert isinstance(REGISTRY.decode(ok), Fact)
    bad = _event("account.deposited", {**VALID["account.deposited"], "amount": "100"})
    d = REGISTRY.decode(bad)
    assert isinstance(d, Invalid) and d.problems[0].field == "amount"
    forged = Event(1, "cashier-01", 1, ZERO_HASH, Hlc(1, 0), "op", "debt.recorded",
                   VALID["debt.recorded"])
    d = REGISTRY.decode(forged)
    assert isinstance(d, Invalid) and d.problems[0].code == "kind.central_only"
    newer = Event(1, "cashier-01", 1, ZERO_HASH, Hlc(1, 0), "op", "ward.admitted", {})
    assert isinstance(REGISTRY.decode(newer), Unknown)
    assert REGISTRY.describe(newer, "en") == "event of a newer version"
    assert REGISTRY.describe(bad, "zh") == "无法读取的事件（已标记）"


async def test_each_record_table_is_made_from_its_declaration(tmp_path: Path) -> None:
    led = await Ledger.open(tmp_path / "l.sqlite3", "cashier-01", node_key("cashier-01"))
    await led.close()
    conn = sqlite3.connect(tmp_path / "l.sqlite3")
    try:
        for rt in REGISTRY.records:
            info = conn.execute(f"PRAGMA table_info({rt.TABLE})").fetchall()
            assert [(r[1], r[2]) for r in info] == list(columns(rt)), rt.TABLE
            assert [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]] == list(rt.KEY)
            assert all(r[3] for r in info), "NOT NULL: every field has a value"
            indexed = {tuple(c[2] for c in conn.execute(f"PRAGMA index_info({ix[1]})"))
                       for ix in conn.execute(f"PRAGMA index_list({rt.TABLE})")
                       if ix[3] == "c"}
            assert indexed == set(rt.INDEXES), rt.TABLE
    finally:
        conn.close()


def test_a_record_field_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="str or int"):
        @record("bad", ("k",))
        @dataclasses.dataclass(frozen=True, slots=True)
        class Bad(Record):
            k: str
            v: float = 0.0


# -- a new concept in one declaration: a ward's stock per (store, item) --------------------------
@record("ward_stock", ("pharmacy", "item"))
@dataclasses.dataclass(frozen=True, slots=True)
class WardStock(Record):
    pharmacy: str
    item: str
    on_hand: int = 0


@body
class Received(Body):
    pharmacy: str = spec(ident())
    item: str = spec(text(32))
    qty: int = spec(Field(int, lo=1, hi=100_000))


def _received(tx: Tx, at: At, b: Received) -> None:
    s = tx.get_or_new(WardStock, (b.pharmacy, b.item))
    tx.put(dataclasses.replace(s, on_hand=s.on_hand + b.qty))


RECEIVED = Kind(
    name="ward_stock.received", body=Received, signer=COUNTER, title=("入库", "Stock received"),
    records=lambda b: refs(WardStock, (b.pharmacy, b.item)), patients=lambda b: (),
    fold=_received, money=lambda b: Money(),
    rule=lambda state, b, cfg: ([] if b.qty < 50_000 else
                                [Problem("stock.too_much", "more than the store room holds")]),
    describe=lambda b, lang: f"{b.item} ×{b.qty}", report=lambda b: None, notice=no_notice,
)
WITH_STOCK = Registry([*REGISTRY, RECEIVED], [*REGISTRY.records, WardStock], account.apply_money,
                      REGISTRY.labels.items())


async def test_a_new_kind_and_record_are_one_declaration_each(tmp_path: Path) -> None:
    """Stock keyed by (pharmacy, item) fits without touching the ledger: its table is made,
    its rule refuses, its fold loads and writes composite keys, rebuild agrees."""
    led = await Ledger.open(tmp_path / "p.sqlite3", "pharmacy-01", node_key("pharmacy-01"),
                            registry=WITH_STOCK, clock=FakeClock())
    try:
        for qty in (10, 5):
            await led.append(Op("ward_stock.received", {"pharmacy": "west", "item": "阿莫西林",
                                                   "qty": qty}), "op")
        await led.append(Op("ward_stock.received", {"pharmacy": "east", "item": "阿莫西林",
                                               "qty": 1}), "op")
        assert (await led.get(WardStock, ("west", "阿莫西林"))).on_hand == 15
        assert (await led.get("ward_stock", ("east", "阿莫西林"))).on_hand == 1
        from edge_node.errors import OperationRefused
        with pytest.raises(OperationRefused) as refused:
            await led.append(Op("ward_stock.received", {"pharmacy": "west", "item": "x",
                                                   "qty": 60_000}), "op")
        assert refused.value.codes == ["stock.too_much"]
        live = await led.dump_projections()
        await led.rebuild()
        assert await led.dump_projections() == live
    finally:
        await led.close()


async def test_a_kind_kept_unfolded_is_folded_after_the_upgrade(tmp_path: Path) -> None:
    """A counter of the old version stores a newer counter's kind and folds nothing of it;
    opened by the new version, its projections are refolded and the kind counts."""
    path = tmp_path / "c.sqlite3"
    key = node_key("pharmacy-02")
    _, data, _ = sign_event(key, node="pharmacy-02", seq=1, prev=ZERO_HASH,
                            hlc=Hlc(1_790_000_000_000, 0), operator="op",
                            kind="ward_stock.received",
                            body={"pharmacy": "west", "item": "x", "qty": 3})
    old = await Ledger.open(path, "cashier-01", node_key("cashier-01"))
    try:
        await old.set_node_keys({"pharmacy-02": (key.public_key, "pharmacy")})
        assert await old.ingest([data]) == 1  # stored, relayed on, not folded
        assert "ward_stock" not in await old.dump_projections()
    finally:
        await old.close()
    new = await Ledger.open(path, "cashier-01", node_key("cashier-01"), registry=WITH_STOCK)
    try:
        assert (await new.get(WardStock, ("west", "x"))).on_hand == 3
        assert (await new.verify()).ok
    finally:
        await new.close()


def test_bodies_are_typed_and_frozen() -> None:
    typed = decode(account.Charged, VALID["account.charged"])
    assert isinstance(typed, account.Charged)
    assert isinstance(typed.items[0], account.Item) and typed.items[0].unit_price == 2500
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.amount = 1  # type: ignore[misc]
    assert decode(account.Charged, {**VALID["account.charged"], "items": [1]}) == [
        Problem("field.type", "items[0]: expected a map", "items[0]")]


def test_a_conflict_announcement_reads_in_the_counters_language() -> None:
    """Central's summary is English; a zh counter's history names the conflict in Chinese."""
    def announced(**changes: object) -> Event:
        body = dict(VALID["conflict.raised"], conflict_kind="overdraft", amount=1_280,
                    summary="Overdraft ¥12.80 — 李梅")
        body.update(changes)
        ev, _, _ = sign_event(node_key(CENTRAL), node=CENTRAL, seq=1, prev=ZERO_HASH,
                              hlc=Hlc(1, 0), operator="it", kind="conflict.raised", body=body)
        return ev

    assert REGISTRY.describe(announced(), "zh") == "离线透支 ¥12.80"
    assert REGISTRY.describe(announced(), "en") == "Overdraft ¥12.80 — 李梅"
    assert REGISTRY.describe(announced(conflict_kind="something_new", amount=0), "zh") == "冲突"
