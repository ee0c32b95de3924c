"""Finding a patient without a card, and an item by pinyin: real SQLite ledgers."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_node import search
from edge_node.ledger import Ledger
from edge_node.pricelist import load
from edge_node.service import CounterService
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from tests.conftest import (
    ID_FEMALE,
    ID_MALE,
    TEST_PATIENT_KEYS,
    FakeClock,
    LedgerFactory,
    node_key,
)

ZHANG = dict(name="张三", national_id=ID_MALE, phone="13800138000")
ZHANG_SF = dict(name="张三丰", sex="M", birth_date="1950-04-09", phone="13900001234")
ZENG = dict(name="曾小贤", national_id=ID_FEMALE, phone="+86 139-1234-5678")
LI = dict(name="李四", sex="F", birth_date="1985-02-01", phone="13700005678")


async def register(svc: CounterService, card_no: str, **details: str) -> str:
    r = await svc.register_patient(card_no=card_no, first_deposit=10_000, **details)
    return r.patient.patient_id


@pytest.fixture
async def people(service: CounterService) -> dict[str, str]:
    """张三, 张三丰, 曾小贤 (a heteronym surname: ceng as a word, zeng as a name), 李四."""
    return {"zhang": await register(service, "8600000001", **ZHANG),
            "zhang_sf": await register(service, "8600000002", **ZHANG_SF),
            "zeng": await register(service, "8600000003", **ZENG),
            "li": await register(service, "8600000004", **LI)}


async def names(svc: CounterService, query: str, limit: int = 50) -> list[str]:
    return [h.patient.name for h in await svc.search_patients(query, limit)]


async def test_every_kind_of_query(service: CounterService, people: dict[str, str]) -> None:
    # patient number: exact (any case), or its start
    assert await names(service, people["zeng"]) == ["曾小贤"]
    assert await names(service, people["zeng"].lower()) == ["曾小贤"]
    assert set(await names(service, "P-cashier-01")) == {"张三", "张三丰", "曾小贤", "李四"}
    # the full national ID number (a lower-case x too); part of it finds nobody
    assert await names(service, ID_FEMALE.lower()) == ["曾小贤"]
    assert await names(service, ID_MALE) == ["张三"]
    assert await names(service, ID_MALE[:10]) == []
    # the phone: whole (spaces, dashes, +86 as written or not), or its last four digits
    assert await names(service, "13800138000") == ["张三"]
    assert await names(service, "139 1234 5678") == ["曾小贤"]
    assert await names(service, "+8613912345678") == ["曾小贤"]
    assert await names(service, "1234") == ["张三丰"]
    assert await names(service, "5678") == ["曾小贤", "李四"]
    assert await names(service, "138001") == []  # a part of a phone is not a search
    # the name: exact first, then names that start with it, then names that contain it
    assert await names(service, "张三") == ["张三", "张三丰"]
    assert await names(service, "三") == ["张三", "张三丰"]
    assert await names(service, "三丰") == ["张三丰"]
    assert await names(service, "小贤") == ["曾小贤"]
    assert await names(service, " 张 三 ") == ["张三", "张三丰"]
    # pinyin initials and full pinyin (exact first, then what starts with it)
    assert await names(service, "zs") == ["张三", "张三丰"]
    assert await names(service, "zsf") == ["张三丰"]
    assert await names(service, "ZhangSan") == ["张三", "张三丰"]
    assert await names(service, "zhangsanf") == ["张三丰"]
    assert await names(service, "ls") == ["李四"]
    # a heteronym surname is found under its name reading and its word reading
    assert await names(service, "zxx") == ["曾小贤"]
    assert await names(service, "zengxiaoxian") == ["曾小贤"]
    assert await names(service, "cengxiaoxian") == ["曾小贤"]
    # nothing, and nothing typed
    assert await names(service, "wangwu") == []
    assert await service.search_patients("   ") == []


async def test_exact_numbers_come_before_names(service: CounterService,
                                               people: dict[str, str]) -> None:
    # someone named with digits (a foreign passport name, say) does not outrank a phone
    other = await register(service, "8600000005", name="Anna 5678", sex="F",
                           birth_date="1990-01-01", phone="13600000000")
    hits = await service.search_patients("5678")
    assert [h.patient.patient_id for h in hits] == [people["zeng"], people["li"]]
    assert other not in [h.patient.patient_id for h in hits]  # numbers are no one's name
    assert await names(service, "anna") == ["Anna 5678"]
    assert await names(service, "anna5678") == ["Anna 5678"]


async def test_what_a_hit_shows_is_masked(service: CounterService,
                                          people: dict[str, str]) -> None:
    [hit] = await service.search_patients("zxx")
    assert hit.masked_national_id == "110105********002X"
    assert hit.masked_phone == "139****5678"  # +86 dropped
    [hit] = await service.search_patients("张三丰")
    assert hit.masked_national_id == ""  # none given
    assert hit.masked_phone == "139****1234"
    assert hit.account == (await service.patient(people["zhang_sf"])).account
    assert hit.active_card is not None and hit.active_card.card_no == "8600000002"
    assert hit.card is hit.active_card and hit.merged_into == ""
    assert search.mask_phone("13800138000") == "138****8000"
    assert search.mask_phone("8008") == "8008"


async def test_limit_and_order_are_kept(service: CounterService) -> None:
    for n in range(12):
        await register(service, f"86000001{n:02d}", name=f"张{'一二三四五六七八九十'[n % 10]}{n}",
                       sex="M", birth_date="1990-01-01", phone=f"1380000{n:04d}")
    hits = await service.search_patients("z", 5)
    assert len(hits) == 5
    assert len(await service.search_patients("张", 500)) == 12  # at most 200 asked for


async def test_a_later_update_is_found_by_the_new_details_only(
        service: CounterService, people: dict[str, str]) -> None:
    pid = people["li"]
    await service.update_patient(pid, phone="13111112222", name="李思思")
    assert await names(service, "13111112222") == ["李思思"]
    assert await names(service, "2222") == ["李思思"]
    assert await names(service, "13700005678") == []
    assert await names(service, "5678") == ["曾小贤"]
    assert await names(service, "李四") == []
    assert await names(service, "lss") == ["李思思"]
    assert await names(service, "lisisi") == ["李思思"]


async def test_rebuild_and_a_changed_index_keep_it_right(
        make_ledger: LedgerFactory, people: dict[str, str], ledger: Ledger) -> None:
    svc = CounterService(ledger, "op")
    await svc.update_patient(people["zhang"], phone="13322223333")
    live = await ledger.dump_projections()
    assert live["patient_search"]  # the index is a projection too
    await ledger.rebuild()
    assert await ledger.dump_projections() == live
    # damaged: rebuild repairs it (the names are sealed: their terms are keyed, X:…)
    assert not [t for t in live["patient_search"] if t[0][:2] in ("m:", "s:", "f:", "a:")]
    await ledger.write(lambda c: c.execute("DELETE FROM patient_search WHERE term LIKE 'X:%'"))
    assert await names(svc, "zs") == []
    await ledger.rebuild()
    assert await ledger.dump_projections() == live
    # made another way (an older version of the terms, another pypinyin): rewritten at open
    await ledger.write(lambda c: c.execute("DELETE FROM patient_search"))
    await ledger.write(lambda c: c.execute(
        "UPDATE meta SET value='0 old' WHERE key='index:patient_search'"))
    path = ledger._path
    await ledger.close()
    again = await Ledger.open(path, "cashier-01", node_key("cashier-01"), clock=FakeClock())
    try:
        assert await again.dump_projections() == live
        assert await names(CounterService(again, "op"), "13322223333") == ["张三"]
    finally:
        await again.close()


async def test_patients_from_other_counters_are_found(make_ledger: LedgerFactory) -> None:
    here, there = await make_ledger("cashier-01"), await make_ledger("cashier-02")
    await here.set_node_keys({"cashier-02": (node_key("cashier-02").public_key, "cashier")})
    svc = CounterService(there, "op")
    pid = await register(svc, "8600000009", **ZHANG)
    await svc.update_patient(pid, phone="13099990000")
    await here.ingest([d for _, d in await there.events()])
    assert await names(CounterService(here, "op"), "9990000") == []  # not a whole phone
    assert await names(CounterService(here, "op"), "13099990000") == ["张三"]
    assert await names(CounterService(here, "op"), "13800138000") == []
    assert await here.dump_projections() == await there.dump_projections()


async def merge(ledger: Ledger, survivor: str, merged: str, cards: list[str]) -> None:
    """Central merges ``merged`` into ``survivor`` (a duplicate registration)."""
    central = SigningKey.generate()
    await ledger.set_node_keys({CENTRAL: (central.public_key, "central")})
    _, data, _ = sign_event(central, node=CENTRAL, seq=1, prev=ZERO_HASH,
                            hlc=Hlc(1_790_000_100_000, 0), operator="it.li",
                            kind="patient.merged",
                            body={"conflict_id": "duplicate_patient-01234567",
                                  "survivor_id": survivor, "merged_id": merged, "moved": 0,
                                  "cards": cards, "reason": "same person"})
    assert await ledger.ingest([data]) == 1


async def test_a_merged_record_leads_to_its_survivor(service: CounterService,
                                                     people: dict[str, str]) -> None:
    await merge(service.ledger, people["zhang"], people["zhang_sf"], ["8600000002"])
    hits = await service.search_patients("张三丰")
    assert [(h.patient.patient_id, h.merged_into) for h in hits] == [
        (people["zhang_sf"], people["zhang"])]
    assert await service.survivor(people["zhang_sf"]) == people["zhang"]
    assert await service.survivor(people["zhang"]) == people["zhang"]
    view = await service.open_patient(people["zhang_sf"])
    assert view.patient.patient_id == people["zhang"]
    assert view.card is not None and view.card.status == "active"
    live = await service.ledger.dump_projections()
    await service.ledger.rebuild()
    assert await service.ledger.dump_projections() == live


async def test_a_patient_with_no_active_card_opens_without_one(
        service: CounterService, people: dict[str, str]) -> None:
    await service.report_lost("8600000004", "id_card")
    view = await service.open_patient(people["li"])
    assert view.card is None and [c.status for c in view.cards] == ["lost"]
    [hit] = await service.search_patients("ls")
    assert hit.active_card is None and hit.card is not None and hit.card.status == "lost"


async def test_a_query_reads_index_ranges_never_the_whole_table(
        ledger: Ledger, people: dict[str, str]) -> None:
    """Every probe of every kind of query is a search of the primary key, not a scan; the
    patients whose terms are due are read by their keys (only the due table, which holds
    them alone, is read whole)."""
    await ledger.write(lambda c: c.execute("INSERT INTO patient_search_due VALUES (?)",
                                           (people["li"],)))
    for query in ("zs", "张", "三丰", "zhangsan", "5678", "13800138000", ID_MALE,
                  people["zhang"]):
        probes = search.plan(query, TEST_PATIENT_KEYS)
        assert probes, query
        index, due = await ledger.run(lambda c, q=query: _plans(c, q))
        searched = [p for p in index if "patient_search " in p + " "]
        assert searched and all("SEARCH patient_search USING PRIMARY KEY" in p
                                for p in searched), index
        # (the due check of each row: a lookup of its key)
        assert all("SCAN" not in p for p in index if "patient_search_due" in p or " d " in
                   p + " "), index
        assert any("SEARCH patients USING PRIMARY KEY" in p for p in due), due
        assert not any("SCAN patients" in p for p in due), due


def _plans(conn: object, query: str) -> tuple[list[str], list[str]]:
    sql: list[str] = []

    class Spy:
        def execute(self, statement: str, args: list[object] | tuple[()] = ()) -> object:
            sql.append(statement)
            return conn.execute(statement, args)  # type: ignore[attr-defined,no-any-return]

    search.PatientIndex().search(Spy(), query, 50, TEST_PATIENT_KEYS)  # type: ignore[arg-type]
    [index] = [st for st in sql if "ORDER BY term LIMIT" in st]
    [due] = [st for st in sql if "FROM patients" in st]
    return tuple(  # type: ignore[return-value]
        [r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + st,  # type: ignore[attr-defined]
                                     [None] * st.count("?")).fetchall()]
        for st in (index, due))


def test_pinyin_readings_are_bounded() -> None:
    assert search.readings("张三") == ["zhangsan"]
    assert search.initials("张三") == ["zs"]
    assert set(search.readings("单田芳")) >= {"dantianfang", "shantianfang"}
    assert "xiefang" in search.readings("解放")
    assert search.readings("吕布")[:2] == ["lvbu", "lubu"]
    assert search.readings("John Smith") == []
    assert search.readings("李A明")[0] == "liaming"
    assert search.normalise("阿依古丽·买买提") == "阿依古丽买买提"
    long_name = "乐" * 40  # every character a heteronym
    assert len(search.readings(long_name)) <= search.MAX_READINGS
    assert len(search.terms(_patient(long_name))) < 100


def _patient(name: str) -> object:
    from protocol.patient import Patient

    return Patient("P-x-000001", name=name)


def test_items_are_found_by_code_name_and_pinyin() -> None:
    prices = load()
    assert prices.search("xcg")[0].code == "LB201"  # 血常规
    assert prices.search("XCG")[0].code == "LB201"
    assert prices.search("xuechanggui")[0].code == "LB201"
    assert prices.search("xue")[0].code == "LB201"
    assert prices.search("LB201")[0].code == "LB201"  # the exact code first
    assert prices.search("血常")[0].code == "LB201"
    assert prices.search("blood")[0].code == "LB201"
    assert [i.code for i in prices.search("EX10")][:2] == ["EX101", "EX102"]
    assert prices.search("qqqqq") == []


async def test_an_old_ledger_gets_its_index_at_open(tmp_path: Path) -> None:
    """A ledger made before the index existed (no rows, no fingerprint) is indexed."""
    path = tmp_path / "old.sqlite3"
    led = await Ledger.open(path, "cashier-01", node_key("cashier-01"), clock=FakeClock(),
                            indexes=())
    try:
        await register(CounterService(led, "op"), "8600000001", **ZHANG)
        assert await led.run(lambda c: c.execute(
            "SELECT count(*) FROM patient_search").fetchone()[0]) == 0
        assert await led.search_patients("zs") == []
    finally:
        await led.close()
    led = await Ledger.open(path, "cashier-01", node_key("cashier-01"), clock=FakeClock())
    try:
        assert await names(CounterService(led, "op"), "zs") == ["张三"]
    finally:
        await led.close()


async def _ids(led: Ledger, query: str) -> list[str]:
    return [p.patient_id for p, _, _ in await led.search_patients(query)]


async def test_patients_whose_terms_are_due_are_found_before_the_pass(
        make_ledger: LedgerFactory) -> None:
    """The sync daemon's ingest marks others' patients' terms due (``index_later``);
    until its background pass writes them, a search checks those patients one by one
    and finds what the index would, a changed record by its new details only; after
    the pass the index is the one of an ingest that wrote the terms at once."""
    there = await make_ledger("cashier-02")
    now, later = await make_ledger("cashier-01"), await make_ledger("cashier-03")
    for led in (now, later):
        await led.set_node_keys({n: (node_key(n).public_key, "cashier")
                                 for n in ("cashier-02", "cashier-03")})
    svc = CounterService(there, "op")
    people = {k: await register(svc, f"86000000{i:02d}", **d) for i, (k, d) in enumerate(
        [("zhang", ZHANG), ("zhang_sf", ZHANG_SF), ("zeng", ZENG), ("li", LI)])}
    queries = ["zs", "张", "张三", "三丰", "zhangsan", "zengxiaoxian", "cengxiaoxian", "xx",
               "5678", "13800138000", "+86 139-1234-5678", ID_MALE, ID_FEMALE.lower(),
               people["zeng"], people["li"].lower()[:-1], "李", "ls", "李四", "lss",
               "李思思", "2222", "nobody", "小"]

    async def same_as_written_at_once(due: int) -> None:
        assert await later.index_due_count() == due
        for q in queries:
            assert await _ids(later, q) == await _ids(now, q), q

    sent = 0

    async def ingest() -> None:
        nonlocal sent
        events = [d for _, d in await there.events()][sent:]
        sent += len(events)
        assert await now.ingest(events) == await later.ingest(events, index_later=True)

    await ingest()
    assert not await later.run(lambda c: c.execute("SELECT * FROM patient_search").fetchall())
    await same_as_written_at_once(4)
    assert await _ids(later, "zs") == [people["zhang"], people["zhang_sf"]]
    assert await _ids(later, "zengxiaoxian") == [people["zeng"]]
    assert await _ids(later, ID_MALE) == [people["zhang"]]
    assert await later.index_due(3) == (3, 1)
    await same_as_written_at_once(1)
    assert await later.index_due(3) == (1, 0)
    assert await later.dump_projections() == await now.dump_projections()
    # a changed record: due again, its old terms still in the index until the pass
    await svc.update_patient(people["li"], phone="13111112222", name="李思思")
    await ingest()
    assert await later.run(lambda c: c.execute(
        "SELECT count(*) FROM patient_search WHERE patient_id = ?", (people["li"],)
    ).fetchone()[0])
    await same_as_written_at_once(1)
    assert await _ids(later, "李四") == [] and await _ids(later, "lss") == [people["li"]]
    assert await _ids(later, "2222") == [people["li"]]
    # the counter's own write of a due patient writes its terms at once
    await CounterService(later, "op").update_patient(people["li"], phone="13122223333")
    assert await later.index_due_count() == 0
    await now.ingest(await later.own_events_after(0))
    assert await _ids(later, "3333") == await _ids(now, "3333") == [people["li"]]
    assert await later.dump_projections() == await now.dump_projections()
    live = await later.dump_projections()
    await later.rebuild()
    assert await later.dump_projections() == live


def test_name_tags_are_the_keys_own() -> None:
    tag = search.name_tagger(TEST_PATIENT_KEYS)
    for term in ("m=张三", "s<三", "f<zh", "a=zs", ""):
        assert tag(term) == TEST_PATIENT_KEYS.name_term(term)
    assert search.sealed_name_terms("张三", TEST_PATIENT_KEYS) == {
        "X:" + TEST_PATIENT_KEYS.name_term(t) for t in search.sealed_inputs("张三")}


def test_a_malformed_phone_tag_gives_no_phone_terms() -> None:
    """The terms are total over any record: a phone tag that is not two tags gives none."""
    from edge_node.search import terms
    from protocol.patient import Patient

    assert terms(Patient("P-1", phone_tag="abc")) == {"i:p-1"}
    assert terms(Patient("P-1", phone_tag="a b")) == {"i:p-1", "P:a", "T:b"}
