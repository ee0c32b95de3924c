"""Patients' details at rest (issue 11): sealed in every event, projection and file.

The unit tests hold the sealing, the tags and the grants to their promises; the process
test runs a day's registrations through a real central and three counters of different
roles and then reads every file they wrote — ledgers, their WAL, central's store, every
log — for any ID number, phone or address in clear.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from edge_node import config as cfgmod
from edge_node import ledger as ledger_mod
from edge_node import roles
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService, masked
from protocol.core import State
from protocol.crypto import SigningKey
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from protocol.patient import Patient
from protocol.privacy import (
    SEALED_MAX,
    SEALED_NAME,
    KeyGrant,
    PatientKeys,
    details_of,
    grant_body,
    keys_of,
    open_sealed,
    seal_to,
)
from protocol.staff import ROLES as STAFF_ROLES
from tests.conftest import ID_FEMALE, ID_MALE, TEST_PATIENT_KEYS, LedgerFactory, node_key
from tests.support.sync_cluster import EDGE_CLI, Central, Counter, central_trail, wait_for

KEYS = TEST_PATIENT_KEYS


# -- sealing and tags --------------------------------------------------------------------
def test_a_sealed_value_opens_only_as_what_it_was_sealed_for() -> None:
    sealed = KEYS.seal("national_id", "P-a-1", ID_MALE)
    assert sealed.startswith(f"sb1:{KEYS.key_id}:") and ID_MALE not in sealed
    assert KEYS.open("national_id", "P-a-1", sealed) == ID_MALE
    assert KEYS.seal("national_id", "P-a-1", ID_MALE) != sealed  # a fresh nonce each time
    assert KEYS.open("phone", "P-a-1", sealed) is None  # not as another field
    assert KEYS.open("national_id", "P-a-2", sealed) is None  # nor as another patient's
    other = PatientKeys.generate()
    assert other.open("national_id", "P-a-1", sealed) is None  # nor with another key
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    assert KEYS.open("national_id", "P-a-1", flipped) is None  # nor altered
    lookup_only = PatientKeys(KEYS.key_id, None, KEYS.lookup)
    assert lookup_only.open("national_id", "P-a-1", sealed) is None
    assert KEYS.open("phone", "P-a-1", "13800138000") == "13800138000"  # legacy clear
    assert KEYS.seal("phone", "P-a-1", "") == ""


def test_tags_find_the_same_number_however_typed_and_say_nothing_without_the_key() -> None:
    assert KEYS.id_tag(ID_FEMALE) == KEYS.id_tag(ID_FEMALE.lower() + " ")
    assert KEYS.phone_tag("+86 138 0013 8000") == KEYS.phone_tag("13800138000")
    whole, last4 = KEYS.phone_tag("13800138000").split()
    assert last4 == KEYS.tag("t", "8000") and whole == KEYS.tag("p", "13800138000")
    assert KEYS.tag("n", "8000") != KEYS.tag("t", "8000")  # kinds never collide
    assert PatientKeys.generate().id_tag(ID_FEMALE) != KEYS.id_tag(ID_FEMALE)
    assert PatientKeys(KEYS.key_id, KEYS.data, None).id_tag(ID_FEMALE) == ""


def test_a_grant_opens_only_with_its_counters_key() -> None:
    counter, other = node_key("cashier-01"), node_key("lab-01")
    assert open_sealed(counter.seed, seal_to(counter.public_key, b"k" * 32)) == b"k" * 32
    assert open_sealed(other.seed, seal_to(counter.public_key, b"k" * 32)) is None
    body = grant_body("cashier-01", counter.public_key, KEYS, reveal=True, lookup=True,
                      names=True)
    assert body is not None and REGISTRY.validate("privacy.key_granted", body, CENTRAL) == []
    grant = KeyGrant("cashier-01", counter.public_key.hex(), body["key_id"], body["data"],
                     body["lookup"], "o", body["names"])
    assert keys_of(grant, counter.seed) == KEYS
    assert keys_of(grant, other.seed) is None  # a copied ledger without its node key
    lab = grant_body("lab-01", other.public_key, KEYS, reveal=False, lookup=True, names=True)
    assert lab is not None and lab["data"] == ""
    opened = keys_of(KeyGrant("lab-01", other.public_key.hex(), lab["key_id"], "",
                              lab["lookup"], "o", lab["names"]), other.seed)
    assert opened is not None and opened.data is None and opened.lookup == KEYS.lookup
    assert opened.names == KEYS.names
    wrong = KeyGrant("cashier-01", counter.public_key.hex(), "00000000", body["data"],
                     body["lookup"], "o")
    assert keys_of(wrong, counter.seed) is None  # keys that are not the pair it names
    # a names key that is not the pair's is refused too
    forged = grant_body("cashier-01", counter.public_key, PatientKeys(
        KEYS.key_id, KEYS.data, KEYS.lookup, b"n" * 32), reveal=True, lookup=True, names=True)
    assert forged is not None
    assert keys_of(KeyGrant("cashier-01", counter.public_key.hex(), forged["key_id"],
                            forged["data"], forged["lookup"], "o", forged["names"]),
                   counter.seed) is None
    # the kiosk: names only (it greets the patient by a masked name), nothing to find with
    kiosk = grant_body("kiosk-01", other.public_key, KEYS, reveal=False, lookup=False,
                       names=True)
    assert kiosk is not None and (kiosk["data"], kiosk["lookup"]) == ("", "")
    assert grant_body("kiosk-01", other.public_key, KEYS, reveal=False, lookup=False) is None


def test_the_latest_grant_to_a_key_holds_in_any_order() -> None:
    central, counter = node_key(CENTRAL), node_key("cashier-01")
    bodies = [grant_body("cashier-01", counter.public_key, KEYS, reveal=r, lookup=True)
              for r in (True, False)]
    evs, prev = [], b"\0" * 32
    for seq, body in enumerate(bodies, 1):
        assert body is not None
        ev, _, prev = sign_event(central, node=CENTRAL, seq=seq, prev=prev, hlc=Hlc(seq, 0),
                                 operator="central", kind="privacy.key_granted", body=body)
        evs.append(ev)
    for order in (evs, evs[::-1]):
        g = REGISTRY.fold(order).get(KeyGrant, ("cashier-01", counter.public_key.hex()))
        assert g is not None and g.data == "" and g.lookup  # the later: lookup only


# -- on real ledgers ----------------------------------------------------------------------
async def test_registration_seals_and_the_counter_finds_by_tag(
        make_ledger: LedgerFactory) -> None:
    led = await make_ledger()
    svc = CounterService(led, "op.wang")
    r = await svc.register_patient(name="张三", national_id=ID_MALE.lower(), card_no="8600000001",
                                   first_deposit=10_000, phone="+86 138 0013 8000",
                                   contact="北京市东城区东单北大街 1 号")
    p = r.patient
    assert ID_MALE not in p.national_id and "8000" not in p.phone and "北京" not in p.contact
    assert (p.sex, p.birth_date) == ("M", "1990-03-07")  # from the number, before sealing
    d = details_of(p, KEYS)
    assert (d.national_id, d.phone, d.contact) == (ID_MALE, "+86 138 0013 8000",
                                                   "北京市东城区东单北大街 1 号")
    for query in (ID_MALE, ID_MALE.lower(), "13800138000", "8613800138000", "8000"):
        assert [h.patient.patient_id for h in await svc.search_patients(query)] == \
            [p.patient_id], query
    hit = (await svc.search_patients("8000"))[0]
    assert (hit.masked_national_id, hit.masked_phone) == ("110101********0011",
                                                          "138****8000")
    with pytest.raises(OperationRefused) as exc:  # the same number again, found by its tag
        await svc.register_patient(name="张三", national_id=ID_MALE, card_no="8600000002",
                                   first_deposit=10_000, phone="13900139000")
    assert [x.code for x in exc.value.problems] == ["patient.duplicate_national_id"]
    # a wrong ID number, phone or address is refused before it is sealed
    for bad, code in (({"national_id": "110101199003070012"}, "national_id.checksum"),
                      ({"national_id": ID_MALE[:-1] + "2", "sex": "F"}, "national_id.checksum"),
                      ({"national_id": ID_FEMALE, "sex": "M"}, "patient.sex_mismatch"),
                      ({"phone": "call me"}, "field.format"),
                      ({"contact": "x" * 129}, "field.range")):
        with pytest.raises(OperationRefused) as exc:
            await svc.register_patient(name="李四", card_no="8600000003", first_deposit=10_000,
                                       **{"phone": "13900139000", **bad})
        assert code in [x.code for x in exc.value.problems], bad


async def test_an_event_with_details_in_clear_is_refused_before_it_is_signed(
        make_ledger: LedgerFactory) -> None:
    from edge_node.ledger import Op

    led = await make_ledger()
    for body in ({"national_id": ID_MALE}, {"phone": "13800138000"},
                 {"contact": "北京市东城区"}):
        with pytest.raises(OperationRefused) as exc:
            await led.append_ops([Op("patient.registered", {
                "patient_id": "P-cashier-01-1", "name": "张三", "sex": "M",
                "birth_date": "1990-03-07", "phone": "13800138000", **body})], "op")
        assert [x.code for x in exc.value.problems] == ["privacy.clear_detail"]
    assert (await led.head()).seq == 0


async def test_updates_reseal_and_keep_each_detail_with_its_own_tag(
        make_ledger: LedgerFactory) -> None:
    led = await make_ledger()
    svc = CounterService(led, "op.wang")
    r = await svc.register_patient(name="王芳", national_id=ID_FEMALE, card_no="8600000001",
                                   first_deposit=10_000, phone="13700001111")
    pid = r.patient.patient_id
    await svc.update_patient(pid, phone="13911112222")
    await svc.update_patient(pid, contact="上海市")
    p = await led.get(Patient, pid)
    d = details_of(p, KEYS)
    assert (d.national_id, d.phone, d.contact) == (ID_FEMALE, "13911112222", "上海市")
    assert [h.patient.patient_id for h in await svc.search_patients("2222")] == [pid]
    assert await svc.search_patients("1111") == []  # the old phone's tag is gone
    assert [h.patient.patient_id for h in await svc.search_patients(ID_FEMALE)] == [pid]


async def test_a_counter_without_the_data_key_finds_but_never_reads(
        make_ledger: LedgerFactory) -> None:
    cashier = await make_ledger("cashier-01")
    r = await CounterService(cashier, "op").register_patient(
        name="张三", national_id=ID_MALE, card_no="8600000001", first_deposit=10_000,
        phone="13800138000", contact="北京市")
    events = [data for _, data in await cashier.events(0, 100)]
    lab = await make_ledger("lab-01", patient_keys=PatientKeys(KEYS.key_id, None,
                                                                KEYS.lookup, KEYS.names))
    kiosk = await make_ledger("kiosk-01", patient_keys=None)  # granted nothing
    kiosk_names = await make_ledger("kiosk-02", patient_keys=PatientKeys(
        KEYS.key_id, None, None, KEYS.names))  # as central grants a kiosk: names only
    for led in (lab, kiosk, kiosk_names):
        await led.set_node_keys({"cashier-01": (node_key("cashier-01").public_key,
                                                "cashier")})
        assert await led.ingest(events) == len(events)
    lab_svc, kiosk_svc = CounterService(lab, "lab.li"), CounterService(kiosk, "k")
    [hit] = await lab_svc.search_patients(ID_MALE)  # found by its tag…
    assert hit.patient.patient_id == r.patient.patient_id
    assert (hit.masked_national_id, hit.masked_phone) == (None, None)  # …never read
    view = await lab_svc.patient(r.patient.patient_id)
    assert (view.details.national_id, view.details.phone, view.details.contact) == \
        (None, None, None)
    assert await kiosk_svc.search_patients(ID_MALE) == []  # no lookup key: no tag to find
    assert await kiosk_svc.search_patients("张三") == []  # no names key: nor by name…
    assert (await kiosk_svc.patient(r.patient.patient_id)).patient.name == SEALED_NAME
    assert [h.patient.name for h in await lab_svc.search_patients("张三")] == ["张三"]
    assert [h.patient.name for h in await lab_svc.search_patients("zs")] == ["张三"]
    names_svc = CounterService(kiosk_names, "k")  # …and with it, reads the name
    assert (await names_svc.patient(r.patient.patient_id)).patient.name == "张三"
    assert await names_svc.search_patients(ID_MALE) == []
    with pytest.raises(OperationRefused) as exc:
        await lab_svc.register_patient(name="李四", card_no="8600000002",
                                       first_deposit=10_000, phone="13900139000")
    assert [x.code for x in exc.value.problems] == ["privacy.no_data_key"]
    # and on a registration counter, a role that does not need them sees them sealed
    for role in STAFF_ROLES:
        view = await CounterService(cashier, "x", roles=frozenset({role})).patient(
            r.patient.patient_id)
        shown = role in roles.ACTIONS["patient.details"]
        assert masked(view.details).phone == ("138****8000" if shown else None), role
    assert set(roles.ACTIONS["patient.details"]) == {"cashier", "supervisor", "it"}


async def test_a_legacy_ledger_with_details_in_clear_still_folds_shows_and_finds(
        make_ledger: LedgerFactory) -> None:
    """Events signed before sealing stay valid: their clear details show and are found."""
    led = await make_ledger("cashier-09")
    key = node_key("cashier-01")
    await led.set_node_keys({"cashier-01": (key.public_key, "cashier")})
    _, data, _ = sign_event(key, node="cashier-01", seq=1, prev=b"\0" * 32,
                            hlc=Hlc(1_790_000_000_000, 0), operator="op",
                            kind="patient.registered",
                            body={"patient_id": "P-cashier-01-1", "name": "老王", "sex": "F",
                                  "birth_date": "1949-12-31", "national_id": ID_FEMALE,
                                  "phone": "13800138000"})
    assert await led.ingest([data]) == 1
    svc = CounterService(led, "op")
    [hit] = await svc.search_patients(ID_FEMALE)
    assert hit.masked_phone == "138****8000"
    assert [h.patient.name for h in await svc.search_patients("8000")] == ["老王"]


@pytest.mark.parametrize("later", [False, True], ids=["at-once", "sync-daemon"])
async def test_a_grant_after_the_patients_indexes_their_names_in_one_go(
        make_ledger: LedgerFactory, later: bool) -> None:
    """Names are indexed with the names key: a counter that gets its keys after the
    patients (a new counter's first sync) rewrites its index in the grant's transaction
    (the sync daemon's ingest: marks every patient due, found one by one until its
    background pass has rewritten their terms), and a rebuild in small chunks (bounded
    memory) makes the same index."""
    cashier = await make_ledger("cashier-01")
    svc = CounterService(cashier, "op")
    for i, name in enumerate(("张三", "李梅", "曾小贤")):
        await svc.register_patient(name=name, card_no=f"860000000{i + 1}", sex="F",
                                   birth_date="1980-01-01", first_deposit=10_000,
                                   phone=f"1380013800{i}")
    events = [data for _, data in await cashier.events(0, 100)]
    central = SigningKey.generate()
    lab = await make_ledger("lab-01", patient_keys=None)
    await lab.set_node_keys({"cashier-01": (node_key("cashier-01").public_key, "cashier"),
                             CENTRAL: (central.public_key, "central")})
    assert await lab.ingest(events) == len(events)
    lab_svc = CounterService(lab, "lab.li")
    assert await lab_svc.search_patients("zs") == []  # no names key yet: nothing to find
    assert [h.patient.name for h in await lab_svc.search_patients("1380")] == []
    body = grant_body("lab-01", node_key("lab-01").public_key, KEYS, reveal=False,
                      lookup=True, names=True)
    _, grant, _ = sign_event(central, node=CENTRAL, seq=1, prev=b"\0" * 32,
                             hlc=Hlc(1_790_000_000_000, 0), operator="central",
                             kind="privacy.key_granted", body=body)
    assert await lab.ingest([grant], index_later=later) == 1
    assert await lab.index_due_count() == (3 if later else 0)
    for _ in range(2):  # (due, then after the background pass)
        assert [h.patient.name for h in await lab_svc.search_patients("zs")] == ["张三"]
        assert [h.patient.name for h in await lab_svc.search_patients("zengxiao")] == [
            "曾小贤"]
        assert [h.patient.name for h in await lab_svc.search_patients("梅")] == ["李梅"]
        assert [h.patient.name for h in await lab_svc.search_patients("1380")] == []
        assert await lab.index_due(10) == ((3 if later else 0), 0)
        later = False
    live = await lab.dump_projections()
    chunk, ledger_mod.REBUILD_CHUNK = ledger_mod.REBUILD_CHUNK, 2
    try:
        assert await lab.rebuild() == len(events) + 1
    finally:
        ledger_mod.REBUILD_CHUNK = chunk
    assert await lab.dump_projections() == live


# -- a day at three counters, through real processes --------------------------------------
PATIENTS = [  # name, ID number, phone, address
    ("张三", ID_MALE, "13800138000", "北京市东城区东单北大街 1 号"),
    ("李梅", ID_FEMALE, "13912345678", "北京市西城区西单北大街 2 号"),
    ("王芳", "", "13700001111", "北京市朝阳区建国路 3 号"),
]
NEW_PHONE, NEW_ADDRESS = "13566667777", "上海市浦东新区世纪大道 4 号"


def _secrets() -> list[bytes]:
    """Every detail of the day, as the bytes a file could hold it in (UTF-8; the ID
    number's X in both cases; the phones' digits; the addresses' first words; the
    names)."""
    out: list[str] = []
    for name, nid, phone, address in PATIENTS:
        out += [name, phone, address, address.split("区")[0] + "区"]
        if nid:
            out += [nid, nid.lower()]
    out += [NEW_PHONE, NEW_ADDRESS]
    return [s.encode("utf-8") for s in out] + [s.encode("utf-16-le") for s in out]


def _open_service(counter: Counter, fn: Any, *, key: SigningKey | None = None,
                  db: Path | None = None) -> Any:
    """``fn(service)`` on ``counter``'s ledger as the counter holds it: its patient keys
    only from central's grant (none given by the test)."""
    async def go() -> Any:
        cfg = cfgmod.load(counter.config)
        led = await Ledger.open(db or cfg.db, cfg.node_id, key or counter.key,
                                rule_config=cfg.rules, patient_keys=None)
        try:
            return await fn(CounterService(led, "op.wang"))
        finally:
            await led.close()
    return asyncio.run(go())


@pytest.mark.slow
def test_a_days_details_are_in_no_file_in_clear_and_only_the_cashier_reads_them(
        tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    cashier = Counter.create(tmp_path, "cashier-01", central)
    lab = Counter.create(tmp_path, "lab-01", central, role="lab")
    kiosk = Counter.create(tmp_path, "kiosk-01", central, role="kiosk")
    counters = [cashier, lab, kiosk]
    central.start()
    try:
        for c in counters:
            c.start_sync()
        # central grants each counter's key what its role gets as it connects
        wait_for(lambda: central_trail(central) >= 3 + 2, 30, "the grants")  # 3 enrolments
        wait_for(lambda: _open_service(cashier, lambda s: s.ledger.patient_keys())
                 is not None, 30, "the cashier's keys")

        async def the_day(s: CounterService) -> list[str]:
            pids = []
            for i, (name, nid, phone, address) in enumerate(PATIENTS):
                extra = {} if nid else {"sex": "F", "birth_date": "1985-06-15"}
                r = await s.register_patient(name=name, national_id=nid, phone=phone,
                                             contact=address, card_no=f"86000000{i + 10}",
                                             first_deposit=20_000, **extra)
                pids.append(r.patient.patient_id)
            await s.update_patient(pids[0], phone=NEW_PHONE, contact=NEW_ADDRESS)
            await s.open_patient((await s.search_patients(ID_FEMALE))[0].patient.patient_id)
            return pids
        pids = _open_service(cashier, the_day)

        def holds_the_day(c: Counter) -> bool:
            with closing(sqlite3.connect(f"file:{c.db}?mode=ro", uri=True, timeout=10)) as con:
                n = con.execute("SELECT count(*) FROM patients WHERE registered_at != ''")
                return bool(n.fetchone()[0] == len(PATIENTS))
        wait_for(lambda: all(holds_the_day(c) for c in counters)
                 and all(c.event_count() == len(central.event_ids()) for c in counters),
                 60, "every counter to hold the day")

        # the cashier reads them; the lab finds by ID number but reads nothing; the kiosk
        # neither finds by ID number nor reads; all three read names, and the desks find
        # patients by name, pinyin and initials
        async def look(s: CounterService) -> tuple[list[str], Any]:
            hits = await s.search_patients(ID_FEMALE)
            return [h.patient.patient_id for h in hits], (await s.patient(pids[0])).details

        async def by_name(s: CounterService) -> list[list[tuple[str, str]]]:
            return [[(h.patient.patient_id, h.patient.name) for h in
                     await s.search_patients(q)] for q in ("李梅", "李", "梅", "limei", "lm")]
        li = [[(pids[1], "李梅")]] * 5
        found, d = _open_service(cashier, look)
        assert found == [pids[1]] and (d.phone, d.contact) == (NEW_PHONE, NEW_ADDRESS)
        assert d.national_id == ID_MALE
        assert _open_service(cashier, by_name) == li
        found, d = _open_service(lab, look)
        assert found == [pids[1]] and (d.national_id, d.phone, d.contact) == (None,) * 3
        assert _open_service(lab, by_name) == li
        found, d = _open_service(kiosk, look)
        assert found == [] and (d.national_id, d.phone, d.contact) == (None,) * 3
        assert _open_service(kiosk, lambda s: s.patient(pids[2])).patient.name == "王芳"
        # and each counter says what it was granted (`onecard-edge info`)
        said = {c.node: next(line for line in subprocess.run(
            [EDGE_CLI, "--config", str(c.config), "info"], capture_output=True, text=True,
            timeout=60, check=True).stdout.splitlines() if line.startswith("patient keys"))
            for c in counters}
        assert "data key" in said["cashier-01"] and "lookup key" in said["cashier-01"]
        assert "data key" not in said["lab-01"] and "lookup key" in said["lab-01"]
        assert all("names key" in said[c.node] for c in counters)
        assert "data key" not in said["kiosk-01"] and "lookup key" not in said["kiosk-01"]
        # a stolen ledger file, without the counter's node key, opens nothing
        # (the file and its WAL, as a thief would take them)
        stolen = tmp_path / "stolen.sqlite3"
        for suffix in ("", "-wal"):
            if Path(f"{cashier.db}{suffix}").exists():
                shutil.copy(f"{cashier.db}{suffix}", f"{stolen}{suffix}")
        found, d = _open_service(cashier, look, key=SigningKey.generate(), db=stolen)
        assert found == []  # nor looks anyone up by ID number (the records are there, sealed)
        assert (d.national_id, d.phone, d.contact) == (None,) * 3
        assert _open_service(cashier, by_name, key=SigningKey.generate(), db=stolen) == \
            [[]] * 5  # nor by name
        assert _open_service(cashier, lambda s: s.patient(pids[0]), key=SigningKey.generate(),
                             db=stolen).patient.name == SEALED_NAME
        for leftover in tmp_path.glob("stolen.sqlite3*"):
            leftover.unlink()
    finally:
        for c in counters:
            c.stop()
        central.stop()
    # every file every process wrote: ledgers, their WAL, central's store, every log
    secrets = _secrets()
    seen: list[str] = []
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            seen.append(path.name)
            leaked = [s.decode("utf-8", "replace") for s in secrets if s in data]
            assert not leaked, f"{path.relative_to(tmp_path)} holds {leaked} in clear"
    assert {"central.sqlite3", "cashier-01.sqlite3", "lab-01.sqlite3", "central.log",
            "sync.log"} <= set(seen)
    # and the files the processes made are private (0600; the directories: test_trust)
    for path in [central.db, central.dir / "patient-data.key", central.dir / "central.key",
                 *(c.db for c in counters)]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_the_record_holds_the_sealed_details_and_their_tags_as_signed() -> None:
    """The fold never opens anything: a counter with every key and one with none hold
    the same records for the same sealed events."""
    key = node_key("cashier-01")
    body = {"patient_id": "P-cashier-01-1", "name": "张三", "sex": "M",
            "birth_date": "1990-03-07",
            **KEYS.sealed_details("P-cashier-01-1", {"national_id": ID_MALE,
                                                     "phone": "13800138000"})}
    ev, _, _ = sign_event(key, node="cashier-01", seq=1, prev=b"\0" * 32,
                          hlc=Hlc(1_790_000_000_000, 0), operator="op",
                          kind="patient.registered", body=body)
    a, b = State(), State()
    REGISTRY.apply(a, ev)
    REGISTRY.apply(b, ev)
    pa, pb = a.get(Patient, "P-cashier-01-1"), b.get(Patient, "P-cashier-01-1")
    assert pa == pb and pa is not None and pa.national_id == body["national_id"]
    assert pa.id_tag == KEYS.id_tag(ID_MALE) and pa.phone_tag == KEYS.phone_tag("13800138000")


async def test_a_sealed_name_that_does_not_open_is_shown_sealed_and_stops_nothing(
        make_ledger: LedgerFactory) -> None:
    """A signed registration whose sealed name no key here opens (another hospital's key,
    garbage of the right shape, the longest a body allows): stored and folded, shown as
    ``***``, never indexed, and search, history and rebuild go on."""
    led = await make_ledger("cashier-09")
    key = node_key("cashier-01")
    await led.set_node_keys({"cashier-01": (key.public_key, "cashier")})
    other = PatientKeys.generate()
    bodies = [
        {"patient_id": "P-cashier-01-1", "sex": "F", "birth_date": "1949-12-31",
         **other.sealed_details("P-cashier-01-1", {"name": "王芳", "phone": "13800138000"})},
        {"patient_id": "P-cashier-01-2", "sex": "M", "birth_date": "1950-01-01",
         "name": "sb1:" + KEYS.key_id + ":" + "A" * 700, "name_tag": "ab" * 16,
         **KEYS.sealed_details("P-cashier-01-2", {"phone": "13900139000"})},
        # one past what a sealed value may be: stored, never folded (flagged at central)
        {"patient_id": "P-cashier-01-3", "sex": "M", "birth_date": "1950-01-01",
         "name": "sb1:" + KEYS.key_id + ":" + "A" * (SEALED_MAX - 13), "name_tag": "ab" * 16,
         **KEYS.sealed_details("P-cashier-01-3", {"phone": "13900139000"})},
    ]
    prev, data = b"\0" * 32, []
    for seq, body in enumerate(bodies, 1):
        _, raw, prev = sign_event(key, node="cashier-01", seq=seq, prev=prev,
                                  hlc=Hlc(1_790_000_000_000 + seq, 0), operator="op",
                                  kind="patient.registered", body=body)
        data.append(raw)
    assert await led.ingest(data) == 3
    svc = CounterService(led, "op")
    with pytest.raises(OperationRefused):
        await svc.patient("P-cashier-01-3")
    for pid in ("P-cashier-01-1", "P-cashier-01-2"):
        assert (await svc.patient(pid)).patient.name == SEALED_NAME
        assert await svc.history(pid)
    assert await svc.search_patients("王芳") == []
    assert [h.patient.patient_id for h in await svc.search_patients("13900139000")] == \
        ["P-cashier-01-2"]
    live = await led.dump_projections()
    await led.rebuild()
    assert await led.dump_projections() == live
    assert (await led.verify()).ok
