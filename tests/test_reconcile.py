"""The pure reconciler: each detector on a small story, idempotence, remedies folding back,
and random multi-counter histories (honest ones raise nothing; injected double spends and
lost-card uses raise exactly the expected conflicts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.reconcile import Incoming, IntegrityReport, Reconciler, reconcile
from protocol.crypto import ZERO_HASH
from protocol.event import CENTRAL, Event
from protocol.hlc import Hlc
from protocol.money import yuan
from tests.conftest import TEST_PATIENT_KEYS, item
from tests.support import domain

T0 = 1_790_000_000_000


class History:
    """Events as counters would write them: per-node seq, explicit wall time."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.seqs: dict[str, int] = {}

    def add(self, node: str, wall: int, kind: str, body: dict[str, Any],
            operator: str = "op", counter: int = 0) -> Event:
        assert domain.validate(kind, body) == [], (kind, domain.validate(kind, body))
        seq = self.seqs.get(node, 0) + 1
        self.seqs[node] = seq
        ev = Event(1, node, seq, ZERO_HASH, Hlc(T0 + wall, counter), operator, kind, body)
        self.events.append(ev)
        return ev

    def patient(self, node: str, wall: int, pid: str, card: str, deposit: int,
                name: str = "张三", nid: str = "", phone: str = "13800138000") -> None:
        body: dict[str, Any] = {"patient_id": pid, "name": name, "sex": "M",
                                "birth_date": "1990-03-07", "phone": phone}
        if nid:
            body["national_id"] = nid
        self.add(node, wall, "patient.registered", body)
        self.add(node, wall + 1, "card.issued", {"card_no": card, "patient_id": pid})
        self.add(node, wall + 2, "account.deposited", {"patient_id": pid, "amount": deposit,
                                                       "method": "cash", "receipt_no": f"D{pid}"})

    def charge(self, node: str, wall: int, pid: str, cid: str, amount: int,
               card: str | None = None) -> Event:
        body: dict[str, Any] = {"charge_id": cid, "patient_id": pid, "items": [item(amount)],
                                "amount": amount, "department": "lab"}
        if card:
            body["card_no"] = card
        return self.add(node, wall, "account.charged", body)


def kinds_of(events: list[Event]) -> list[str]:
    return sorted(c.kind for c in reconcile(events))


def test_offline_double_spend_is_one_overdraft_naming_charges_and_shortfall() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 6_500)
    c1 = h.charge("cashier-01", 100, "P-1", "C-1", 5_000, "8600000001")
    c2 = h.charge("cashier-02", 101, "P-1", "C-2", 5_000, "8600000001")
    [c] = reconcile(h.events)
    assert c.kind == "overdraft" and c.amount == 3_500
    assert set(c.events) == {c1.id, c2.id}
    assert "¥35.00" in c.explanation and "C-1" in c.explanation and "C-2" in c.explanation
    debt = c.remedy("debt")
    assert debt is not None and debt.events[0][1]["amount"] == 3_500


def test_charges_within_the_balance_at_two_counters_raise_nothing() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    h.charge("cashier-01", 100, "P-1", "C-1", 5_000)
    h.charge("cashier-02", 101, "P-1", "C-2", 5_000)
    assert reconcile(h.events) == []


def test_green_channel_credit_is_not_an_overdraft_until_exceeded() -> None:
    h = History()
    h.patient("er-01", 0, "P-1", "8600000001", 1_000)
    h.add("er-01", 10, "account.credit_granted", {"patient_id": "P-1", "limit": 50_000,
                                                  "reason": "trauma", "authorised_by": "dr"})
    h.charge("er-01", 20, "P-1", "C-1", 40_000)
    assert reconcile(h.events) == []
    h.charge("er-02", 21, "P-1", "C-2", 20_000)
    [c] = reconcile(h.events)
    assert c.kind == "overdraft" and c.amount == 9_000  # 1000 + 50000 - 60000


def test_lost_card_used_after_the_report_elsewhere_with_amount_at_risk() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    h.charge("cashier-02", 50, "P-1", "C-0", 1_000, "8600000001")  # before the report: fine
    h.add("cashier-01", 100, "card.reported_lost", {"card_no": "8600000001", "patient_id": "P-1",
                                                    "verified_by": "id_card"})
    bad = h.charge("cashier-02", 150, "P-1", "C-1", 2_000, "8600000001")
    [c] = reconcile(h.events)
    assert c.kind == "lost_card_used" and c.amount == 2_000 and bad.id in c.events
    assert "¥20.00" in c.explanation
    assert [k for k, _ in c.remedy("reverse").events] == ["charge.reversed"]  # type: ignore


def test_duplicate_patient_by_national_id_and_likely_by_name_birth_phone() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-a-1", "8600000001", 1_000, nid="110101199003070011")
    h.patient("cashier-02", 5, "P-b-1", "8600000002", 2_000, nid="110101199003070011")
    [c] = reconcile(h.events)
    assert c.kind == "duplicate_patient" and c.patients == ("P-a-1", "P-b-1")
    merge = c.remedy("merge")
    assert merge is not None
    assert merge.events[0][1] == {"conflict_id": c.id, "survivor_id": "P-a-1",
                                  "merged_id": "P-b-1", "moved": 2_000, "cards": ["8600000002"]}
    h2 = History()
    h2.patient("cashier-01", 0, "P-a-1", "8600000001", 1_000)
    h2.patient("cashier-02", 5, "P-b-1", "8600000002", 1_000)
    h2.patient("cashier-02", 9, "P-b-2", "8600000003", 1_000, name="李四", phone="13900000000")
    assert kinds_of(h2.events) == ["likely_duplicate"]


def test_double_replacement_over_refund_and_double_settlement() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    for node, new, t in (("cashier-01", "8600000011", 10), ("cashier-02", "8600000012", 11)):
        h.add(node, t, "card.replaced", {"old_card_no": "8600000001", "new_card_no": new,
                                         "patient_id": "P-1"})
    [c] = reconcile(h.events)
    assert c.kind == "double_replacement"
    assert c.remedy("block").events[0][1]["card_no"] == "8600000012"  # type: ignore[union-attr]

    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    h.charge("cashier-01", 10, "P-1", "C-1", 3_000)
    for node, t in (("cashier-01", 20), ("cashier-02", 21)):
        h.add(node, t, "account.refunded", {"refund_id": f"R{t}", "charge_id": "C-1",
                                            "patient_id": "P-1", "amount": 2_000, "to": "cash",
                                            "approved_by": "dr", "reason": "cancelled"})
    [c] = reconcile(h.events)
    assert c.kind == "over_refund" and c.amount == 1_000

    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    for node, t in (("cashier-01", 20), ("cashier-02", 21)):
        h.add(node, t, "account.settled", {"patient_id": "P-1", "amount": 10_000,
                                           "method": "cash", "invoice_no": f"I{t}"})
    [c] = reconcile(h.events)
    assert c.kind == "double_settlement" and c.amount == 10_000 and "¥100.00" in c.explanation


def test_integrity_malformed_remedy_from_a_counter_skew_and_revoked() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    forged = h.add("cashier-01", 5, "charge.reversed", {
        "conflict_id": "overdraft-000000000000", "charge_id": "C-9", "patient_id": "P-1",
        "amount": 100, "reason": "x"})
    r = Reconciler()
    rep = r.add([Incoming(e, T0 + 1_000) for e in h.events])
    assert [c.kind for c in rep.conflicts] == ["malformed_event"]
    assert rep.conflicts[0].events == (forged.id,)
    # a clock 10 minutes ahead (counter 0: its own clock) is flagged once per run
    a = h.add("cashier-02", 10 * 60_000 + 2_000, "patient.updated",
              {"patient_id": "P-1", "phone": "13900000000"})
    b = h.add("cashier-02", 10 * 60_000 + 3_000, "patient.updated",
              {"patient_id": "P-1", "phone": "13900000001"})
    rep = r.add([Incoming(a, T0 + 2_000), Incoming(b, T0 + 2_500)])
    skew = [c for c in rep.conflicts if c.kind == "clock_skew"]
    assert len({c.id for c in skew}) == 1
    # a stamp far ahead is flagged whatever its counter (counters never adopt such a
    # stamp, so an honest one never carries it: finding 4 of the domain-core issue)
    c = h.add("cashier-03", 20 * 365 * 86_400_000, "patient.updated",
              {"patient_id": "P-1", "phone": "13900000002"}, counter=1)
    assert [x.kind for x in r.add([Incoming(c, T0 + 3_000)]).conflicts] == ["clock_skew"]
    rep = r.set_revoked({"cashier-02": T0 + 60_000})
    assert {x.kind for x in rep.conflicts} == {"revoked_node"}
    rep = r.report_integrity([IntegrityReport("equivocation", "cashier-04", 7, "two events")])
    assert rep.conflicts[0].kind == "equivocation" and "cashier-04" in rep.conflicts[0].title


def test_detection_is_idempotent_and_incremental_batches_agree_with_one_batch() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 6_500)
    h.charge("cashier-02", 101, "P-1", "C-2", 5_000, "8600000001")
    h.charge("cashier-01", 100, "P-1", "C-1", 5_000, "8600000001")
    once = {c.id for c in reconcile(h.events)}
    r = Reconciler()
    seen: set[str] = set()
    withdrawn: set[str] = set()
    for ev in reversed(h.events):  # worst arrival order (effects before causes), one by one
        rep = r.add([ev])
        seen |= {c.id for c in rep.conflicts}
        withdrawn |= set(rep.withdrawn)
    # a charge seen before its deposit looked like an overdraft: withdrawn once it arrived
    assert seen - withdrawn == once and len(once) == 1 and not once & withdrawn
    assert r.add(h.events).conflicts == []  # re-sync: nothing new, nothing re-raised


def test_a_remedy_event_marks_the_conflict_resolved_and_folds_everywhere() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 6_500)
    h.charge("cashier-01", 100, "P-1", "C-1", 5_000)
    h.charge("cashier-02", 101, "P-1", "C-2", 5_000)
    [c] = reconcile(h.events)
    remedy = c.remedy("reverse")
    assert remedy is not None
    kind, body = remedy.events[0]
    fix = h.add(CENTRAL, 200, kind, {**body, "reason": "written off"}, operator="it.li")
    r = Reconciler()
    rep = r.add(h.events)
    assert [x.conflict_id for x in rep.resolutions] == [c.id]
    assert r.resolutions[c.id].event == fix.id and r.resolutions[c.id].operator == "it.li"
    state = domain.fold(h.events)
    assert state.accounts["P-1"].balance == 1_500 and state.charges["C-2"].refundable == 0
    # and it folds the same in any arrival order (every counter converges)
    assert domain.fold(reversed(h.events)).accounts == state.accounts


def test_merge_moves_balance_and_cards_in_any_order() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-a-1", "8600000001", 1_000, nid="110101199003070011")
    h.patient("cashier-02", 5, "P-b-1", "8600000002", 2_000, nid="110101199003070011")
    [c] = reconcile(h.events)
    kind, body = c.remedy("merge").events[0]  # type: ignore[union-attr]
    h.add(CENTRAL, 50, kind, {**body, "reason": "same ID card"})
    for order in (h.events, list(reversed(h.events))):
        s = domain.fold(order)
        assert s.accounts["P-a-1"].balance == 3_000 and s.accounts["P-b-1"].balance == 0
        assert s.cards["8600000002"].patient_id == "P-a-1"
        assert s.patients["P-b-1"].merged_into == "P-a-1"


def test_a_persons_timeline_includes_the_records_merged_into_it() -> None:
    """The console's view of a survivor: its events and those of every record merged into
    it (through another merge too), with the person's running balance."""
    h = History()
    nid = "110101199003070011"
    h.patient("cashier-01", 0, "P-a-1", "8600000001", 1_000, nid=nid)
    h.patient("cashier-02", 5, "P-b-1", "8600000002", 2_000, nid=nid)
    h.charge("cashier-02", 8, "P-b-1", "C-b", 300)
    [c] = reconcile(h.events)
    kind, body = c.remedy("merge").events[0]  # type: ignore[union-attr]
    assert (body["survivor_id"], body["moved"]) == ("P-a-1", 1_700)
    h.add(CENTRAL, 50, kind, {**body, "reason": "same ID card"})
    h.patient("cashier-03", 60, "P-c-1", "8600000003", 500, nid=nid)
    world = Reconciler()
    [c2] = [x for x in world.add(h.events).conflicts if x.kind == "duplicate_patient"]
    kind, body = c2.remedy("merge").events[0]  # type: ignore[union-attr]
    assert c2.patients == ("P-a-1", "P-c-1")  # P-b-1 is P-a-1's past, not a duplicate
    merge2 = h.add(CENTRAL, 70, kind, {**body, "reason": "same ID card"})
    world.add([merge2])
    survivor = body["survivor_id"]
    assert world.family(survivor) == {"P-a-1", "P-b-1", "P-c-1"}
    steps = world.person_timeline(survivor).steps()
    assert len(steps) == len({e.id for e in h.events})  # every event once, merges included
    assert [s.event.hlc for s in steps] == sorted(s.event.hlc for s in steps)
    assert steps[-1].balance == 1_000 + 2_000 - 300 + 500
    assert {s.delta for s in steps if s.event.kind == "patient.merged"} == {0}
    assert world.timeline("P-b-1").steps()[-1].balance == 0  # the record itself is emptied


def test_a_counter_cannot_write_a_remedy_and_the_fold_ignores_a_forged_one() -> None:
    body = {"conflict_id": "overdraft-000000000000", "patient_id": "P-1", "amount": 100,
            "debit": 100, "reason": "x"}
    assert domain.check(domain.View(), "debt.recorded", body)[0].code == \
        "kind.not_local"
    ev = Event(1, "cashier-01", 1, ZERO_HASH, Hlc(T0, 0), "op", "debt.recorded", body)
    assert domain.fold([ev]).accounts == {}


# ----------------------------------------------------------------- random histories


@dataclass
class Node:
    name: str
    state: domain.View = field(default_factory=domain.View)
    hlc: Hlc = field(default_factory=Hlc)
    known: int = 0  # how many of the global events it has pulled


@dataclass
class Sim:
    nodes: list[Node]
    events: list[Event] = field(default_factory=list)
    world: domain.View = field(default_factory=domain.View)
    now: int = T0
    seqs: dict[str, int] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)  # patients no longer touched

    def sync(self, n: Node) -> None:
        for ev in self.events[n.known:]:
            if ev.node != n.name:
                domain.apply(n.state, ev)
                n.hlc = n.hlc.observe(ev.hlc, self.now)
        n.known = len(self.events)

    def write(self, n: Node, kind: str, body: dict[str, Any], *, globally: bool = True) -> bool:
        """Append if the node's rules allow it (and, when ``globally``, everyone's would)."""
        if kind == "patient.registered":  # as counters write them: details sealed
            body = TEST_PATIENT_KEYS.sealed_details(body["patient_id"], body)
        if domain.validate(kind, body) or domain.check(n.state, kind, body):
            return False
        if globally and domain.check(self.world, kind, body):
            return False
        self.now += 1  # one event per ms: merge order is real order (see docstring above)
        n.hlc = n.hlc.now(self.now)
        seq = self.seqs.get(n.name, 0) + 1
        self.seqs[n.name] = seq
        ev = Event(1, n.name, seq, ZERO_HASH, n.hlc, "op", kind, body)
        self.events.append(ev)
        domain.apply(n.state, ev)
        domain.apply(self.world, ev)
        return True


def _step(sim: Sim, data: st.DataObject, i: int) -> None:
    n = data.draw(st.sampled_from(sim.nodes))
    action = data.draw(st.sampled_from(["register", "deposit", "charge", "charge", "refund",
                                        "settle", "lost", "replace", "credit", "sync"]))
    pats = sorted(p for p in n.state.patients if p not in sim.frozen)
    amount = data.draw(st.integers(1, 200)) * 100
    if action == "sync":
        sim.sync(n)
    elif action == "register" or not pats:
        pid = f"P-{n.name}-{i}"
        sim.write(n, "patient.registered", {"patient_id": pid, "name": f"病人{i}", "sex": "F",
                                            "birth_date": "1980-01-01",
                                            "phone": f"1390000{i:04d}"})
        sim.write(n, "card.issued", {"card_no": f"86{i:08d}", "patient_id": pid})
    else:
        pid = data.draw(st.sampled_from(pats))
        cards = sorted(c for c, v in n.state.cards.items() if v.patient_id == pid)
        card = data.draw(st.sampled_from(cards)) if cards else None
        if action == "deposit":
            sim.write(n, "account.deposited", {"patient_id": pid, "amount": amount + 500,
                                               "method": "cash", "receipt_no": f"D{i}"})
        elif action == "charge":
            body: dict[str, Any] = {"charge_id": f"C-{n.name}-{i}", "patient_id": pid,
                                    "items": [item(amount)], "amount": amount,
                                    "department": "lab"}
            if card:
                body["card_no"] = card
            sim.write(n, "account.charged", body)
        elif action == "refund":
            charges = sorted(c for c, v in n.state.charges.items() if v.patient_id == pid)
            if charges:
                sim.write(n, "account.refunded", {
                    "refund_id": f"R{i}", "charge_id": data.draw(st.sampled_from(charges)),
                    "patient_id": pid, "amount": amount, "to": "cash", "approved_by": "dr",
                    "reason": "r"})
        elif action == "settle":
            bal = n.state.account(pid).balance
            sim.write(n, "account.settled", {"patient_id": pid, "amount": max(bal, 0),
                                             "method": "cash", "invoice_no": f"I{i}"})
        elif action == "lost" and card:
            sim.write(n, "card.reported_lost", {"card_no": card, "patient_id": pid,
                                                "verified_by": "id_card"})
        elif action == "replace" and card:
            sim.write(n, "card.replaced", {"old_card_no": card, "new_card_no": f"87{i:08d}",
                                           "patient_id": pid})
        elif action == "credit":
            sim.write(n, "account.credit_granted", {"patient_id": pid, "limit": amount,
                                                    "reason": "er", "authorised_by": "dr"})


SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(st.data(), st.integers(2, 4), st.integers(10, 120))
def test_random_honest_multi_counter_histories_raise_nothing(
        data: st.DataObject, n_nodes: int, n_steps: int) -> None:
    sim = Sim([Node(f"cashier-{k}") for k in range(n_nodes)])
    for i in range(n_steps):
        _step(sim, data, i)
    assert reconcile(sim.events) == []
    # and incrementally, in central's arrival order, batch by batch
    r = Reconciler()
    for k in range(0, len(sim.events), 7):
        assert r.add(sim.events[k:k + 7]).conflicts == []


@SETTINGS
@given(st.data(), st.integers(20, 80))
def test_injected_double_spends_and_lost_card_uses_raise_exactly_those(
        data: st.DataObject, n_steps: int) -> None:
    sim = Sim([Node("cashier-a"), Node("cashier-b")])
    a, b = sim.nodes
    expected: set[tuple[str, str]] = set()
    for i in range(n_steps):
        _step(sim, data, i)
        shared = sorted(p for p in a.state.patients if p in b.state.patients
                        and p not in sim.frozen and not sim.world.account(p).credit_limit
                        and sim.world.account(p).balance > 0)
        if not shared or not data.draw(st.booleans()):
            continue
        pid = data.draw(st.sampled_from(shared))
        sim.sync(a)
        sim.sync(b)
        if data.draw(st.booleans()):  # double spend: each takes most of the balance
            bal = sim.world.account(pid).balance
            spend = bal // 2 + 100
            ok = [sim.write(n, "account.charged", {
                "charge_id": f"X-{n.name}-{i}", "patient_id": pid, "items": [item(spend)],
                "amount": spend, "department": "lab"}, globally=False) for n in (a, b)]
            if all(ok):
                expected.add(("overdraft", pid))
        else:  # a reports the card lost; b, not knowing, charges it
            card = next((c for c, v in sim.world.cards.items()
                         if v.patient_id == pid and v.status == "active"), None)
            if card is None:
                continue
            lost = sim.write(a, "card.reported_lost", {"card_no": card, "patient_id": pid,
                                                       "verified_by": "id_card"})
            used = lost and sim.write(b, "account.charged", {
                "charge_id": f"L-{i}", "patient_id": pid, "card_no": card,
                "items": [item(100)], "amount": 100, "department": "lab"}, globally=False)
            if used:
                expected.add(("lost_card_used", pid))
        sim.frozen.add(pid)
    found = reconcile(sim.events)
    assert sorted((c.kind, c.patients[0]) for c in found) == sorted(expected)
    for c in found:
        if c.kind == "overdraft":
            assert c.amount == -sim.world.account(c.patients[0]).balance
            assert yuan(c.amount) in c.explanation


def test_the_merge_remedy_follows_the_balance_of_the_record_it_merges() -> None:
    """A deposit on the later record after the duplicate was raised: the merge moves it too."""
    h = History()
    h.patient("cashier-01", 0, "P-a-1", "8600000001", 1_000, nid="110101199003070011")
    h.patient("cashier-02", 5, "P-b-1", "8600000002", 2_000, nid="110101199003070011")
    r = Reconciler()
    [c] = r.add(h.events).conflicts
    assert c.remedy("merge").events[0][1]["moved"] == 2_000  # type: ignore[union-attr]
    h.add("cashier-02", 20, "account.deposited", {"patient_id": "P-b-1", "amount": 500,
                                                 "method": "cash", "receipt_no": "D-late"})
    h.add("cashier-02", 21, "card.issued", {"card_no": "8600000003", "patient_id": "P-b-1"})
    again = [x for x in r.add(h.events[-2:]).conflicts if x.kind == "duplicate_patient"]
    assert [x.id for x in again] == [c.id]  # the same conflict, refreshed
    _, body = again[0].remedy("merge").events[0]  # type: ignore[union-attr]
    assert body["moved"] == 2_500 and body["cards"] == ["8600000002", "8600000003"]
    h.add(CENTRAL, 50, "patient.merged", {**body, "reason": "same ID card"})
    state = domain.fold(h.events)
    assert state.accounts["P-b-1"].balance == 0 and state.accounts["P-a-1"].balance == 3_500
