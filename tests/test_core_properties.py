"""Properties of the one fold, over every registered kind (remedies, credit, closing and
settlement included), on random multi-node histories:

(a) any interleaving of the same histories (each node's chain in order) gives the same
    projections — in the pure fold, in real SQLite ledgers and in central's reconciler;
(b) nothing that verifies can make the fold, the rules, the reconciler, the notices, the
    descriptions or the reports raise: bodies missing fields, mistyped, at extremes;
(c) money is conserved across merges and every remedy: each balance is its account's
    sums, and the sum of balances is what an independent model of the bodies says.

Bodies are drawn from each kind's declared fields (so a new kind is covered by being
registered), with ids from small pools so that events meet: the same patients, cards,
charges and conflicts at several nodes, offline.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.reconcile import Incoming, Reconciler
from edge_node import reports
from edge_node.ledger import Ledger
from edge_node.notices import notices
from protocol.account import Account
from protocol.card import Card
from protocol.core import CENTRAL_ONLY, Fact, RuleConfig, State
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, Event, sign_event
from protocol.fields import Field
from protocol.hlc import Hlc
from protocol.patient import Patient
from protocol.stock import Stock
from tests.conftest import ID_FEMALE, ID_MALE, node_key

T0 = 1_790_000_000_000
COUNTERS = ("cashier-01", "cashier-02", "pharmacy-01")
POOLS: dict[str, tuple[str, ...]] = {
    "patient": ("P-cashier-01-000001", "P-cashier-02-000001", "P-x-3"),
    "card": ("8600000001", "8600000002", "8600000003"),
    "charge": ("C-cashier-01-000004", "C-cashier-02-000004", "C-x-9"),
    "conflict": ("overdraft-0123456789ab", "duplicate_patient-0123456789"),
    "national_id": (ID_MALE, ID_FEMALE),
    "date": ("1990-03-07", "1949-12-31", "2001-02-28"),
    "phone": ("13800138000", "13900139000"),
    "visit": ("V-triage-01-000002", "V-doctor-01-000001"),
    "order": ("O-doctor-01-000003", "O-doctor-02-000003"),
    "dept": ("IM", "PHA-OP"),
    "dispense": ("DS-pharmacy-01-000001", "DS-pharmacy-02-000001"),
    "code": ("D-AMX", "LAB-CBC"),
    "tag": ("T01", "T02"),
    "icd10": ("J06.9", "I10"),
    "staff": ("wang.li", "sup.chen"),
}
#: integer fields whose values must meet too (catalogue versions and pages)
INT_POOLS: dict[str, tuple[int, ...]] = {"version": (1, 2), "catalogue_version": (1, 2),
                                         "page": (1, 2), "pages": (1, 2)}
#: which pool a field's values come from, by its name
POOL_OF = {"patient_id": "patient", "survivor_id": "patient", "merged_id": "patient",
           "patients": "patient", "card_no": "card", "old_card_no": "card",
           "new_card_no": "card", "cards": "card", "charge_id": "charge",
           "conflict_id": "conflict", "national_id": "national_id", "birth_date": "date",
           "phone": "phone", "last_activity": "date", "visit_id": "visit",
           "order_id": "order", "dept": "dept", "exec_dept": "dept", "pharmacy": "dept",
           "from_pharmacy": "dept", "to_pharmacy": "dept", "dispense_id": "dispense",
           "code": "code", "day": "date", "queue_tag": "tag", "icd10": "icd10",
           "staff_id": "staff"}


# ------------------------------------------------------------------------ valid-ish bodies
def field_value(name: str, f: Field) -> st.SearchStrategy[Any]:
    """Values for one declared field: from the pools where ids meet, else within limits."""
    if f.choices:
        return st.sampled_from(f.choices)
    if f.type is int and name in INT_POOLS:
        return st.sampled_from(INT_POOLS[name])
    pool = POOLS.get(POOL_OF.get(name, ""))
    if f.type is list:
        lo, hi = f.lo or 0, min(f.hi or 3, 3)
        if f.item is not None:
            return st.lists(map_of(f.item.SCHEMA), min_size=lo, max_size=max(lo, hi))
        return st.lists(st.sampled_from(pool or ("x1",)), min_size=max(lo, 1 if pool else lo),
                        max_size=max(lo, hi), unique=True)
    if pool:
        return st.sampled_from(pool)
    if f.type is int:
        lo = f.lo if f.lo is not None else 0
        hi = f.hi if f.hi is not None else lo + 10_000
        small = st.integers(max(lo, 0), max(lo, min(hi, 20_000))) if hi >= 0 else st.just(hi)
        return st.one_of(small, small, small, st.just(lo), st.just(hi))
    if f.type is str:
        if f.pattern is not None:
            return st.sampled_from(("X-1", "ab12", "R-cashier-01-000007"))
        return st.sampled_from(("张三", "lab", "offline overdraft", "x" * (f.hi or 5)))
    return st.none()


def map_of(schema: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = {}
        for name, f in schema.items():
            if f.required or draw(st.booleans()):
                out[name] = draw(field_value(name, f))
        return out
    return build()


def fix(kind: str, b: dict[str, Any]) -> dict[str, Any]:
    """Make the usual semantic checks hold, so most drawn bodies are valid (not all)."""
    b = dict(b)
    if kind == "account.charged" and "items" in b and "amount" in b:
        b["amount"] = max(1, sum(i["qty"] * i["unit_price"] for i in b["items"]))
        if b["amount"] != sum(i["qty"] * i["unit_price"] for i in b["items"]):
            b["items"] = [{**b["items"][0], "qty": 1, "unit_price": 1}]
    if ("stamp_seq" in b) != ("stamp_balance" in b):
        b.pop("stamp_seq", None)
        b.pop("stamp_balance", None)
    if "national_id" in b:
        nid = b["national_id"]
        b["birth_date"] = f"{nid[6:10]}-{nid[10:12]}-{nid[12:14]}"
        b["sex"] = "M" if int(nid[16]) % 2 else "F"
    if kind == "patient.registered":
        b.setdefault("phone", "13800138000")
    if b.get("void"):  # a void is of the whole charge, to the deposit
        b["to"] = "deposit"
        b.pop("items", None)
    if "tendered" in b and "amount" in b:  # cash handed over covers the deposit
        b["method"] = "cash"
        b["tendered"] = max(b["tendered"], b["amount"])
    if "debit" in b:
        b["debit"] = min(b["debit"], b["amount"])
    if "patients" in b and "patient_id" in b and b["patient_id"] not in b["patients"]:
        b["patients"] = [b["patient_id"], *b["patients"]][:50]
    if "summary" in b:
        b["summary"] = re.sub(r"[0-9]", "", b["summary"]) or "conflict"
    if kind == "order.placed" and "lines" in b:  # one line per item, doses for drugs
        lines = list({x["code"]: x for x in b["lines"]}.values())
        if b.get("type") == "drug":
            lines = [{**x, "dose": x.get("dose") or 1, "per_day": x.get("per_day") or 1,
                      "days": x.get("days") or 1} for x in lines]
        b["lines"] = lines
        b["total"] = sum(x["qty"] * x["unit_price"] for x in lines)
        b["charged"] = b["total"] if b.get("charged") else 0
    if kind == "catalogue.page":  # each entry once per page
        for name, key in (("items", "code"), ("depts", "code"), ("doctors", "doctor_id"),
                          ("templates", "code")):
            if name in b:
                b[name] = list({e[key]: e for e in b[name]}.values())
        if "sessions" in b:
            b["sessions"] = list({(e["doctor_id"], e["weekday"], e["period"]): e
                                  for e in b["sessions"]}.values())
        for e in b.get("items", []):
            if e.get("max_daily") and e.get("max_single"):
                e["max_daily"] = max(e["max_daily"], e["max_single"])
    if kind == "visit.registered" and b.get("fee"):
        b.setdefault("fee_code", "REG-GEN")
    if kind == "order.dispensed" and "lines" in b:  # one line per item, all or nothing
        b["lines"] = list({x["code"]: x for x in b["lines"]}.values())
        total = sum(x["qty"] * x["unit_price"] for x in b["lines"])
        b["amount"] = total if b.get("amount") else 0
    if kind == "order.returned" and "lines" in b:
        b["lines"] = list({x["code"]: x for x in b["lines"]}.values())
    if kind == "stock.transferred" and b.get("from_pharmacy") == b.get("to_pharmacy"):
        b["to_pharmacy"] = "PHA-ER"
    if "pin_hash" in b:  # (staff.*) an Argon2 hash, as central makes it
        b["pin_hash"] = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$" + b["pin_hash"][:8]
    if kind.startswith("staff.") and "roles" in b:  # each role once, from ROLES
        b["roles"] = ["cashier", "doctor", "supervisor"][:len(b["roles"])]
    if kind == "stock.adjusted" and b.get("delta") == 0:
        b["delta"] = -1
    return b


@st.composite
def any_body(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    return fix(kind, draw(map_of(REGISTRY.kinds[kind].body.SCHEMA)))


# ------------------------------------------------------------------------------ histories
Step = tuple[str, int, str, dict[str, Any]]  # node, wall offset, kind, body


@st.composite
def histories(draw: st.DrawFn, max_events: int = 30,
              body: Callable[[str], st.SearchStrategy[dict[str, Any]]] = any_body
              ) -> dict[str, list[Event]]:
    """Each node's chain (seq 1, 2, … with increasing clocks), over every kind."""
    chains: dict[str, list[Event]] = {}
    clocks: dict[str, int] = {}
    for _ in range(draw(st.integers(1, max_events))):
        kind = draw(st.sampled_from(sorted(REGISTRY.kinds)))
        if REGISTRY.kinds[kind].signer == CENTRAL_ONLY:
            node = draw(st.sampled_from((CENTRAL, CENTRAL, COUNTERS[0])))  # some forged
        else:
            node = draw(st.sampled_from(COUNTERS))
        clocks[node] = clocks.get(node, 0) + draw(st.integers(0, 50))
        counter = draw(st.integers(0, 2))
        chain = chains.setdefault(node, [])
        chain.append(Event(1, node, len(chain) + 1, ZERO_HASH, Hlc(T0 + clocks[node], counter),
                           "op", kind, draw(body(kind))))
    return chains


def interleave(chains: dict[str, list[Event]], rnd: Any) -> list[Event]:
    """One arrival order: every node's chain in order, the nodes mixed at random."""
    queues = {n: list(c) for n, c in chains.items()}
    out = []
    while queues:
        n = rnd.choice(sorted(queues))
        out.append(queues[n].pop(0))
        if not queues[n]:
            del queues[n]
    return out


def batches(events: list[Event], rnd: Any) -> list[list[Event]]:
    out, i = [], 0
    while i < len(events):
        k = rnd.randint(1, 7)
        out.append(events[i:i + k])
        i += k
    return out


# ---------------------------------------------------------------------------------- (a)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.randoms(use_true_random=False))
def test_any_interleaving_folds_to_the_same_projections(chains: dict[str, list[Event]],
                                                        rnd: Any) -> None:
    one, other = interleave(chains, rnd), interleave(chains, rnd)
    expected = REGISTRY.fold(one).dump()
    assert REGISTRY.fold(other).dump() == expected
    assert REGISTRY.fold(reversed(one)).dump() == expected  # even chains out of order
    central = Reconciler()
    for b in batches(other, rnd):
        central.add(b)
    assert central.state.dump() == expected  # central reads the same fold


def _signed(chains: dict[str, list[Event]]) -> dict[str, list[bytes]]:
    """The chains signed and linked for real (each node with its own key)."""
    out = {}
    for node, chain in chains.items():
        prev, datas = ZERO_HASH, []
        for ev in chain:
            _, data, prev = sign_event(node_key(node), node=node, seq=ev.seq, prev=prev,
                                       hlc=ev.hlc, operator=ev.operator, kind=ev.kind,
                                       body=ev.body)
            datas.append(data)
        out[node] = datas
    return out


async def _ledger_projection(path: Path, node: str, arrivals: list[list[bytes]],
                             nodes: list[str]) -> dict[str, Any]:
    led = await Ledger.open(path, node, node_key(node))
    try:
        await led.set_node_keys({n: (node_key(n).public_key, "cashier") for n in nodes})
        for batch in arrivals:
            await led.ingest(batch)
        assert (await led.verify()).ok
        dump = await led.dump_projections()
        live = {t: rows for t, rows in dump.items() if t != "patient_events"}
        await led.rebuild()
        again = await led.dump_projections()
        assert {t: rows for t, rows in again.items() if t != "patient_events"} == live
        return live
    finally:
        await led.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=25), st.randoms(use_true_random=False))
def test_two_real_ledgers_that_received_the_same_events_in_other_orders_agree(
        chains: dict[str, list[Event]], rnd: Any) -> None:
    signed = _signed(chains)
    by_id = {(n, i + 1): d for n, ds in signed.items() for i, d in enumerate(ds)}
    orders = [interleave(chains, rnd) for _ in range(2)]
    arrivals = [[[by_id[e.id] for e in b] for b in batches(o, rnd)] for o in orders]
    with tempfile.TemporaryDirectory() as d:
        got = [asyncio.run(_ledger_projection(Path(d) / f"{i}.sqlite3", f"auditor-{i}", a,
                                              sorted(chains)))
               for i, a in enumerate(arrivals)]
    assert got[0] == got[1]
    folded = REGISTRY.fold(orders[0]).dump()
    for table, rows in got[0].items():  # and the ledger's tables are the pure fold's
        if table != "patient_search":  # (but the index the ledger derives from them)
            assert rows == folded.get(table, []), table


# ---------------------------------------------------------------------------------- (b)
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30)
    | st.binary(max_size=10) | st.just("x" * 5000),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)
EXTREMES = st.sampled_from([0, -1, 1, 2**53, -(2**53), 2**63 - 1, -(2**63), "", "0" * 70,
                            [], [{}], [1], {}, True, None])


@st.composite
def poisoned(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A body of ``kind`` with fields missing, mistyped or extreme, or junk altogether."""
    if draw(st.integers(0, 9)) == 0:
        junk = draw(st.dictionaries(st.text(max_size=10), JUNK, max_size=6))
        return junk
    b = draw(any_body(kind))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(("drop", "junk", "extreme", "extra")))
        name = draw(st.sampled_from(sorted(b) or ["patient_id"]))
        if how == "drop":
            b.pop(name, None)
        elif how == "junk":
            b[name] = draw(JUNK)
        elif how == "extreme":
            b[name] = draw(EXTREMES)
        else:
            b[draw(st.text(min_size=1, max_size=12))] = draw(JUNK)
    return b


@st.composite
def mixed_body(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    return draw(poisoned(kind) if draw(st.booleans()) else any_body(kind))


def _everything_reads(state: State, events: list[Event]) -> None:
    """What counters and central do with events besides folding: none of it may raise."""
    for ev in events:
        REGISTRY.validate(ev.kind, ev.body, ev.node)
        REGISTRY.records_of(ev.kind, ev.body)
        REGISTRY.patients_of(ev)
        REGISTRY.money(ev)
        REGISTRY.report(ev)
        for lang in ("zh", "en"):
            REGISTRY.describe(ev, lang)
        REGISTRY.check(state, ev.kind, ev.body, RuleConfig())
    for p in state.all(Patient):
        cards = [c for c in state.all(Card) if c.patient_id == p.patient_id]
        notices(p, state.get_or_new(Account, p.patient_id), cards,
                [e for e in events if p.patient_id in REGISTRY.patients_of(e)])
    day = reports.BusinessDay(reports.dt.date(2026, 9, 21), 0, T0 + 10**10, "Asia/Shanghai",
                              "00:00")
    for node in COUNTERS:
        reports.render_text(reports.build(events, day, node), "zh", generated_ms=T0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(body=mixed_body), st.randoms(use_true_random=False))
def test_nothing_that_verifies_makes_anything_raise(chains: dict[str, list[Event]],
                                                   rnd: Any) -> None:
    events = interleave(chains, rnd)
    state = REGISTRY.fold(events)
    assert REGISTRY.fold(interleave(chains, rnd)).dump() == state.dump()  # still (a)
    _everything_reads(state, events)
    central = Reconciler()
    for b in batches(events, rnd):
        rep = central.add(Incoming(e, T0 + 100_000) for e in b)
        assert not [c for c in rep.conflicts if c.kind == "reconcile_error"], rep.conflicts
    for pid in {p for e in events for p in REGISTRY.patients_of(e)}:
        central.person_timeline(pid).steps()
    invalid = [e for e in events if REGISTRY.fact(e) is None and e.kind in REGISTRY]
    flagged = {c.events[0] for c in central.add([]).conflicts}  # (nothing new)
    assert not flagged
    assert central.count == len(events) and len(invalid) >= 0


# ---------------------------------------------------------------------------------- (c)
def _model(facts: list[Fact]) -> int:
    """The money the bodies say, kind by kind, written independently of the fold."""
    total = 0
    for f in facts:
        b, k = f.body, f.kind.name
        if k == "account.deposited":
            total += b.amount
        elif k in ("account.charged", "account.settled", "account.dormant_settled"):
            total -= b.amount
        elif k == "account.refunded" and b.to == "deposit":
            total += b.amount
        elif k == "debt.recorded":
            total -= b.debit
        elif k in ("charge.reversed", "account.opening_balance"):
            total += b.amount
        elif k == "visit.registered":
            total -= b.fee
        elif k == "visit.fee_charged":
            total -= b.amount
        elif k == "order.placed":
            total -= b.charged
        elif k == "order.cancelled":
            total += b.refund
        elif k in ("visit.fee_returned", "order.charge_returned"):
            total += b.amount
        elif k == "order.checked_in":
            total -= b.charged
        elif k == "order.dispensed":
            total -= b.amount
        elif k == "order.returned":
            total += b.refund
    return total


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=40), st.randoms(use_true_random=False))
def test_money_is_conserved_across_merges_and_remedies(chains: dict[str, list[Event]],
                                                       rnd: Any) -> None:
    events = interleave(chains, rnd)
    state = REGISTRY.fold(events)
    accounts = state.all(Account)
    for a in accounts:  # each balance is exactly its account's flows
        assert a.balance == (a.deposited - a.charged + a.refunded_to_deposit - a.settled
                             + a.adjusted + a.transferred + a.opening), a
    assert sum(a.transferred for a in accounts) == 0  # a merge moves money, makes none
    facts = [f for e in events if (f := REGISTRY.fact(e)) is not None]
    assert sum(a.balance for a in accounts) == _model(facts)


def _stock_model(facts: list[Fact]) -> dict[tuple[str, str], int]:
    """Each pharmacy's stock of each item, from the bodies alone: receipts − dispensed ±
    adjustments, corrections and transfers (written independently of the fold)."""
    out: dict[tuple[str, str], int] = {}

    def move(ph: str, code: str, n: int) -> None:
        out[(ph, code)] = out.get((ph, code), 0) + n

    for f in facts:
        b, k = f.body, f.kind.name
        if k == "stock.received":
            move(b.pharmacy, b.code, b.qty)
        elif k in ("stock.adjusted", "stock.corrected"):
            move(b.pharmacy, b.code, b.delta)
        elif k == "stock.transferred":
            move(b.from_pharmacy, b.code, -b.qty)
            move(b.to_pharmacy, b.code, b.qty)
        elif k == "order.dispensed":
            for x in b.lines:
                move(b.pharmacy, x.code, -x.qty)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(max_events=40), st.randoms(use_true_random=False))
def test_stock_is_conserved_in_any_order(chains: dict[str, list[Event]], rnd: Any) -> None:
    """On hand = receipts − dispensed ± adjustments and transfers, per pharmacy and item,
    whatever order the events arrive in (every node folds the same way)."""
    events = interleave(chains, rnd)
    facts = [f for e in events if (f := REGISTRY.fact(e)) is not None]
    model = {k: v for k, v in _stock_model(facts).items()}
    for order in (events, interleave(chains, rnd)):
        stock = {s.key(): s.on_hand for s in REGISTRY.fold(order).all(Stock)}
        assert {k: v for k, v in stock.items() if v or k in model} == model


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(REGISTRY.kinds)).flatmap(
    lambda k: st.tuples(st.just(k), mixed_body(k))))
def test_the_fast_check_never_passes_what_the_full_check_refuses(
        kind_body: tuple[str, dict[str, Any]]) -> None:
    """decode's compiled fast path is only a short cut: it passes exactly what the full
    field-by-field check finds nothing wrong with, and builds the same typed body."""
    from protocol.fields import _FAST, _build, check_map

    kind, body = kind_body
    cls = REGISTRY.kinds[kind].body
    full = check_map(body, cls.SCHEMA)
    fast = _FAST[cls](body)
    assert (fast is not None) == (full == [])
    if fast is not None:
        assert fast == _build(cls, body)
