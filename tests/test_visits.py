"""VisitService on real SQLite ledgers: registration (fee, refusals), the queue's order and
steps, the queue series per tag, the waiting room's board and the day's counts."""

from __future__ import annotations

import pytest

from edge_node.errors import OperationRefused
from edge_node.service import CounterService
from edge_node.visits import VisitService, mask_name
from protocol.account import Account
from tests.conftest import ID_FEMALE, LedgerFactory, registered
from tests.support.clinic import give_catalogue

CARD = "8600000001"
CARD2 = "8600000002"


async def clinic(make_ledger: LedgerFactory, node: str = "triage-01", **kw: object
                 ) -> tuple[VisitService, str]:
    led = await make_ledger(node)
    await give_catalogue(led)
    pid = await registered(CounterService(led, "op.wang"), CARD, 10_000)
    return VisitService(led, "nurse.li", **kw), pid  # type: ignore[arg-type]


def codes(exc: pytest.ExceptionInfo[OperationRefused]) -> set[str]:
    return {p.code for p in exc.value.problems}


async def test_register_charges_the_default_fee_and_numbers_from_the_counters_tag(
        make_ledger: LedgerFactory) -> None:
    visits, pid = await clinic(make_ledger)
    r = await visits.register(dept="IM", channel="triage", card_no=CARD)
    assert r.visit.label == "T01-001" and r.visit.status == "waiting"
    assert (r.visit.fee, r.visit.fee_code) == (500, "REG-GEN")  # the cheapest registration
    assert r.balance == 10_000 - 500
    acct = await visits.ledger.get(Account, pid)
    assert acct.balance == 9_500
    with pytest.raises(OperationRefused) as again:  # a second tap: still queueing there
        await visits.register(dept="IM", channel="triage", card_no=CARD)
    assert codes(again) == {"visit.already_waiting"} and "T01-001" in str(again.value)
    await visits.no_show(r.visit.visit_id)  # (or seen and done): a new visit is fine
    r2 = await visits.register(dept="IM", channel="triage", card_no=CARD, again=True)
    assert r2.visit.label == "T01-002"
    assert (await visits.register(dept="SURG", channel="triage", card_no=CARD, again=True)
            ).visit.label == "T01-001"  # another department: its own queue


async def test_fee_from_the_doctor_else_the_default(make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger)
    assert (await visits.fee_item("IM", "dr.zhao")).code == "REG-EXP"  # type: ignore[union-attr]
    assert (await visits.fee_item("IM", "dr.qian")).code == "REG-GEN"  # type: ignore[union-attr]
    assert (await visits.fee_item("IM")).code == "REG-GEN"  # type: ignore[union-attr]
    r = await visits.register(dept="IM", channel="kiosk", card_no=CARD, doctor_id="dr.zhao",
                              again=True)
    assert (r.visit.fee, r.visit.doctor_id, r.balance) == (1500, "dr.zhao", 8_500)
    offer = await visits.offer()
    assert [d.code for d in offer.clinics] == ["IM", "PED", "SURG"]
    assert [d.doctor_id for d in offer.doctors["IM"]] == ["dr.qian", "dr.zhao"]
    assert offer.fee("dr.zhao").price == 1500 and offer.fee("").price == 500  # type: ignore[union-attr]


async def test_refusals_write_nothing(make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger)
    with pytest.raises(OperationRefused) as exc:
        await visits.register(dept="IM", channel="triage", card_no="8600009999", again=True)
    assert codes(exc) == {"card.unknown"}
    with pytest.raises(OperationRefused) as exc:
        await visits.register(dept="LAB", channel="triage", card_no=CARD, again=True)
    assert codes(exc) == {"visit.unknown_dept"}
    with pytest.raises(OperationRefused) as exc:
        await visits.register(dept="SURG", channel="triage", card_no=CARD, doctor_id="dr.zhao",
                              again=True)
    assert codes(exc) == {"visit.unknown_doctor"}
    # a deposit short: says by how much
    svc = CounterService(visits.ledger, "op.wang")
    await registered(svc, CARD2, 1_000, national_id=ID_FEMALE)
    with pytest.raises(OperationRefused) as exc:
        await visits.register(dept="IM", channel="triage", card_no=CARD2, doctor_id="dr.zhao",
                              again=True)
    p = exc.value.problems[0]
    assert p.code == "charge.insufficient" and int(p.values["short"]) == 500  # type: ignore[call-overload]
    # a lost card
    await svc.report_lost(CARD, "id_card")
    with pytest.raises(OperationRefused) as exc:
        await visits.register(dept="IM", channel="triage", card_no=CARD, again=True)
    assert "card.lost" in codes(exc)
    assert await visits.queue("IM") == [] and await visits.queue("SURG") == []


async def test_no_catalogue_yet_is_a_refusal(make_ledger: LedgerFactory) -> None:
    led = await make_ledger("triage-01")
    await registered(CounterService(led, "op.wang"), CARD, 10_000)
    visits = VisitService(led, "nurse.li")
    for call in (visits.offer(), visits.register(dept="IM", channel="triage", card_no=CARD,
                                                 again=True)):
        with pytest.raises(OperationRefused) as exc:
            await call
        assert codes(exc) == {"catalogue.none"}


async def test_dry_run_previews_and_writes_nothing(make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger)
    before = await visits.ledger.event_count()
    r = await visits.dry().register(dept="IM", channel="triage", card_no=CARD, again=True)
    assert r.preview and r.visit.label == "T01-001" and r.balance == 9_500
    assert await visits.ledger.event_count() == before
    assert (await visits.register(dept="IM", channel="triage", card_no=CARD,
                                  again=True)).visit.label \
        == "T01-001"


async def test_queue_series_per_tag_and_per_department_and_day(
        make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger, queue_tag="A7")
    other = VisitService(visits.ledger, "nurse.li", queue_tag="B")
    labels = [(await visits.register(dept="IM", channel="triage", card_no=CARD,
                                     again=True)).visit.label,
              (await other.register(dept="IM", channel="triage", card_no=CARD,
                                    again=True)).visit.label,
              (await visits.register(dept="IM", channel="triage", card_no=CARD,
                                     again=True)).visit.label,
              (await visits.register(dept="SURG", channel="triage", card_no=CARD,
                                     again=True)).visit.label]
    assert labels == ["A7-001", "B-001", "A7-002", "A7-001"]
    tomorrow = "2026-09-23"
    r = await visits.register(dept="IM", channel="triage", card_no=CARD, day=tomorrow, again=True)
    assert r.visit.label == "A7-001" and r.visit.day == tomorrow
    assert [e.visit.label for e in await visits.queue("IM")] == ["A7-001", "B-001", "A7-002"]


async def test_queue_order_and_steps(make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger)
    ids = [(await visits.register(dept="IM", channel="triage", card_no=CARD,
                                  again=True)).visit.visit_id
           for _ in range(4)]

    async def shown() -> list[tuple[str, str]]:
        return [(e.visit.label, e.visit.status) for e in await visits.queue("IM")]
    assert await shown() == [(f"T01-00{i}", "waiting") for i in range(1, 5)]
    called = await visits.call_next("IM", "诊室3")
    assert called is not None and called.visit_id == ids[0] and called.room == "诊室3"
    await visits.call_next("IM")
    await visits.skip(ids[1])
    await visits.no_show(ids[2])
    # called first, then waiting in registration order, skipped, then the ended ones
    assert await shown() == [("T01-001", "called"), ("T01-004", "waiting"),
                             ("T01-002", "skipped"), ("T01-003", "no_show")]
    v = await visits.recall(ids[1], "诊室3")
    assert (v.status, v.calls) == ("called", 2)
    counts = await visits.counts("IM")
    assert counts["called"] == 2 and counts["waiting"] == 1 and counts["no_show"] == 1
    assert counts["total"] == 4
    board = await visits.board(["IM"])
    assert [e.visit.label for e in board.calling] == ["T01-002", "T01-001"]  # newest call first
    assert [e.visit.label for e in board.waiting] == ["T01-004"] and board.waiting_count == 1
    assert board.calling[0].masked == "张*"


@pytest.mark.parametrize(("step", "status"), [
    ("skipped", "waiting"), ("recalled", "waiting"), ("done", "waiting"),
    ("done", "called"), ("called", "no_show"), ("no_show", "done")])
async def test_steps_out_of_order_are_refused(make_ledger: LedgerFactory, step: str,
                                              status: str) -> None:
    visits, _ = await clinic(make_ledger)
    vid = (await visits.register(dept="IM", channel="triage", card_no=CARD,
                                 again=True)).visit.visit_id
    path = {"waiting": [], "called": ["called"], "no_show": ["no_show"],
            "done": ["called", "started", "done"]}[status]
    for s in path:
        await visits.step(vid, s)
    with pytest.raises(OperationRefused) as exc:
        await visits.step(vid, step)
    assert codes(exc) == {"visit.step"}
    assert (await visits.queue("IM"))[0].visit.status == status


async def test_step_of_an_unknown_visit(make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger)
    with pytest.raises(OperationRefused) as exc:
        await visits.skip("V-nope")
    assert codes(exc) == {"visit.unknown"}
    assert await visits.call_next("IM") is None  # no one waits


async def test_changes_moves_with_every_event(make_ledger: LedgerFactory) -> None:
    visits, _ = await clinic(make_ledger)
    mark = await visits.changes()
    assert await visits.changes() == mark
    await visits.register(dept="IM", channel="triage", card_no=CARD, again=True)
    assert await visits.changes() > mark


def test_mask_name() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("李") == "李*"
    assert mask_name("") == "*"
