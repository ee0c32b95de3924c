"""Key rotation (issue 11, "Key rotation breaks sync"): a node's keys have validity
intervals over its seqs, so rotating a counter's key keeps every event it signed before
verifiable everywhere — at central, at counters that already hold them, and at a counter
enrolled after the rotation — while an event signed with a key outside its interval is
refused and flagged.

The end-to-end test runs real processes: `onecard-central serve`, three counters' sync
daemons, and the commands an operator types (`onecard-edge rotate-key`,
`onecard-central rotate`, both `verify`s).
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from central.store import CentralStore, StaleKey
from edge_node import config as cfgmod
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from protocol import codec
from protocol.crypto import SigningKey
from protocol.errors import SchemaError
from protocol.event import CENTRAL, ChainHead, sign_event
from protocol.hlc import Hlc
from protocol.keyring import OPEN, KeySpan, check_spans, key_at, keyring_key, single
from protocol.messages import DirectoryEntry, Error, Welcome, decode_message
from tests.support.sync_cluster import (
    EDGE_CLI,
    Central,
    Counter,
    offline_work,
    run_cli,
    wait_for,
)
from tests.test_central_store import chain

OLD, NEW, NEWER = (SigningKey(bytes([i]) * 32) for i in (1, 2, 3))


# -- the interval lookup -------------------------------------------------------------------

def test_the_key_of_a_seq_is_the_one_whose_interval_holds_it() -> None:
    spans = (KeySpan(OLD.public_key, 1, 6), KeySpan(NEW.public_key, 6, 6),
             KeySpan(NEWER.public_key, 6, OPEN))
    assert check_spans(spans) == ""
    assert [key_at(spans, s) for s in (1, 5)] == [OLD.public_key] * 2
    assert key_at(spans, 6) == key_at(spans, 10**12) == NEWER.public_key  # NEW never signed
    assert key_at(spans, 0) is None
    closed = (KeySpan(OLD.public_key, 1, 4),)  # revoked after seq 3
    assert key_at(closed, 3) == OLD.public_key and key_at(closed, 4) is None
    assert keyring_key({"c1": spans}, "c1", 2) == OLD.public_key
    assert keyring_key({"c1": spans}, "c2", 2) is None
    assert key_at(single(OLD.public_key), 1) == OLD.public_key
    assert check_spans((KeySpan(OLD.public_key, 1, 6), KeySpan(NEW.public_key, 5)))  # overlap
    assert check_spans((KeySpan(OLD.public_key), KeySpan(NEW.public_key, 5)))  # open, then more
    assert check_spans((KeySpan(OLD.public_key, 3, 2),))  # ends before it starts
    assert check_spans((KeySpan(OLD.public_key, 0),))
    assert check_spans((KeySpan(b"short", 1),))


def test_directory_entries_carry_the_intervals_and_old_entries_still_decode() -> None:
    rotated = DirectoryEntry("cashier-01", NEW.public_key, "cashier", False,
                             (KeySpan(OLD.public_key, 1, 6), KeySpan(NEW.public_key, 6)))
    plain = DirectoryEntry("cashier-02", OLD.public_key, "cashier", False,
                           single(OLD.public_key))
    w = Welcome(1, 0, b"\0" * 32, 0, b"\1" * 16, (rotated, plain))
    got = decode_message(w.encode())
    assert isinstance(got, Welcome)
    assert got.directory[0].spans == rotated.keys
    # a node that never rotated: the map earlier versions send and decode, no "keys"
    assert "keys" not in plain.to_map() and got.directory[1].spans == single(OLD.public_key)
    bad = Welcome(1, 0, b"\0" * 32, 0, b"\1" * 16, (DirectoryEntry(
        "cashier-01", NEW.public_key, "cashier", False,
        (KeySpan(OLD.public_key, 1), KeySpan(NEW.public_key, 6))),))
    with pytest.raises(SchemaError, match="overlaps"):
        decode_message(bad.encode())


def test_a_version_1_counter_gets_the_directory_it_can_decode() -> None:
    """Counters may lag behind central: one speaking protocol 1 (no key histories) is
    answered in version 1, each node's current key only, never a map it would refuse."""
    from protocol.crypto import ZERO_HASH
    from protocol.messages import Auth, Hello
    from protocol.session import CentralSession, auth_payload

    rotated = DirectoryEntry("cashier-01", NEW.public_key, "cashier", False,
                             (KeySpan(OLD.public_key, 1, 6), KeySpan(NEW.public_key, 6)))
    for proto, keys in ((1, ()), (2, rotated.keys)):
        c = CentralSession(NEWER, b"\2" * 32)
        c.receive(Hello("cashier-02", proto, b"\1" * 32, 0, ZERO_HASH).encode())
        c.send_challenge(OLD.public_key)
        c.receive(Auth(OLD.sign(auth_payload("edge", "cashier-02", b"\1" * 32,
                                             b"\2" * 32))).encode())
        frame = c.send_welcome(ChainHead(), 0, [rotated], b"\3" * 16)
        got = decode_message(frame)
        assert isinstance(got, Welcome) and got.proto == proto
        assert got.directory[0].keys == keys and got.directory[0].key == NEW.public_key
        assert ("keys" in codec.decode(frame)["directory"][0]) == (proto == 2)


# -- central's store -------------------------------------------------------------------------

async def test_central_rotates_keeps_history_and_refuses_stale_keys(tmp_path: Path) -> None:
    store = await CentralStore.open(tmp_path / "c.sqlite3")
    try:
        await store.enrol("c1", OLD.public_key, "cashier")
        await store.ingest("c1", chain("c1", 3, key=OLD))
        await store.touch("c1", reported_seq=5)  # it said it holds 5: 4, 5 are the old key's
        with pytest.raises(ValueError, match="at the earliest"):
            await store.rotate("c1", NEW.public_key, from_seq=3)
        with pytest.raises(ValueError, match="had this key before"):
            await store.rotate("c1", OLD.public_key)
        assert await store.rotate("c1", NEW.public_key) == 6
        assert await store.key_spans("c1") == (KeySpan(OLD.public_key, 1, 6),
                                              KeySpan(NEW.public_key, 6))
        assert (await store.node("c1")).pubkey == NEW.public_key  # type: ignore[union-attr]
        entry = next(e for e in await store.directory() if e.node == "c1")
        assert entry.key == NEW.public_key and entry.spans == await store.key_spans("c1")
        later = chain("c1", 5, key=OLD)  # seqs 1..5, all old key; 4, 5 still in its interval
        assert (await store.ingest("c1", later[3:])).stored == 2
        head = await store.head("c1")
        stale = chain("c1", 2, start=6, prev=head.hash, key=OLD)  # the old key past its end
        with pytest.raises(StaleKey) as refused:
            await store.ingest("c1", stale)
        assert refused.value.code == "not_authorised" and "valid only for seq 1 to 5" in (
            refused.value.why)
        rows = await store.read("SELECT node, seq, kind FROM quarantine")
        assert rows == [("c1", 6, "stale_key")]
        fresh = chain("c1", 2, start=6, prev=head.hash, key=NEW)
        assert (await store.ingest("c1", fresh)).stored == 2
        wrong = chain("c1", 1, start=8, prev=(await store.head("c1")).hash, key=NEWER)
        with pytest.raises(Exception, match="signature does not verify"):  # nobody's key
            await store.ingest("c1", wrong)
        assert await store.revoke("c1")
        assert (await store.key_spans("c1"))[-1] == KeySpan(NEW.public_key, 6, 8)
        with pytest.raises(ValueError, match="stays revoked"):
            await store.rotate("c1", NEWER.public_key)
        with pytest.raises(ValueError, match="central"):
            await store.rotate(CENTRAL, NEWER.public_key)
    finally:
        await store.close()


async def test_the_store_migration_keeps_every_key_and_closes_revoked_ones(
        tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    store = await CentralStore.open(db)
    await store.enrol("c1", OLD.public_key, "cashier")
    await store.enrol("c2", NEW.public_key, "cashier")
    await store.ingest("c2", chain("c2", 2, key=NEW))
    await store.close()
    con = sqlite3.connect(db)  # as the version before key intervals left it
    con.executescript("DROP TABLE node_keys; DELETE FROM schema_migrations WHERE version = 8;"
                      "UPDATE nodes SET revoked = 1, revoked_ms = 5 WHERE id = 'c2';")
    con.close()
    store = await CentralStore.open(db)
    try:
        assert await store.key_spans("c1") == (KeySpan(OLD.public_key, 1, OPEN),)
        assert await store.key_spans("c2") == (KeySpan(NEW.public_key, 1, 3),)
    finally:
        await store.close()


async def test_a_counter_app_left_running_with_its_old_key_signs_nothing(
        tmp_path: Path) -> None:
    from tests.conftest import ID_FEMALE, TEST_PATIENT_KEYS

    led = await Ledger.open(tmp_path / "a.sqlite3", "cashier-01", OLD)
    body = {"patient_id": "P-1", "sex": "F", "birth_date": "1949-12-31",
            **TEST_PATIENT_KEYS.sealed_details("P-1", {"name": "王芳", "national_id": ID_FEMALE,
                                                       "phone": "13900139000"})}
    try:
        from edge_node.ledger import Op

        await led.append(Op("patient.registered", body), "op.li")
        await led.rotate_own_key(NEW.public_key, 2)
        with pytest.raises(OperationRefused) as refused:
            await led.append(Op("patient.registered", {**body, "patient_id": "P-2"}), "op.li")
        assert refused.value.problems[0].code == "ledger.key_retired"
        assert (await led.keyring())["cashier-01"] == (KeySpan(OLD.public_key, 1, 2),
                                                      KeySpan(NEW.public_key, 2))
    finally:
        await led.close()
    led = await Ledger.open(tmp_path / "a.sqlite3", "cashier-01", NEW)  # restarted: new key
    try:
        await led.append(Op("patient.registered", {**body, "patient_id": "P-2"}), "op.li")
        assert (await led.verify()).ok
    finally:
        await led.close()
    from edge_node.ledger import check_ledger_copy

    con = sqlite3.connect(tmp_path / "a.sqlite3")  # the backup check knows both keys too
    try:
        assert check_ledger_copy("cashier-01", NEW.public_key)(con) == (2, "")
    finally:
        con.close()


# -- end to end, real processes ------------------------------------------------------------

def edge(counter: Counter, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_CLI, "--config", str(counter.config), *args],
                          capture_output=True, text=True, timeout=60)


def held(counter: Counter, node: str) -> int:
    con = sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute("SELECT count(*) FROM events WHERE node = ?",
                               (node,)).fetchone()[0])
    finally:
        con.close()


@pytest.mark.slow
async def test_rotation_end_to_end_three_counters_and_central(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    central.start()
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    counters = [a, b]
    try:
        before = await offline_work(a, 2)  # A works with its first key
        nb = await offline_work(b, 1)
        for c in counters:
            c.start_sync()
        wait_for(lambda: held(b, a.node) == before and held(a, b.node) == nb, 30,
                 "B and A to hold each other's first events")

        # A rotates: its services stopped, then the two commands IT types
        a.stop()
        old_key = a.key
        r = edge(a, "rotate-key")
        assert r.returncode == 0, r.stderr
        line = next(x for x in r.stdout.splitlines() if "onecard-central rotate" in x)
        cmd = line.split("onecard-central ", 1)[1].split()
        assert cmd[:2] == ["rotate", a.node] and cmd[-2:] == ["--from-seq", str(before + 1)]
        r = run_cli("--config", str(central.config), *cmd)
        assert r.returncode == 0, r.stderr
        assert f"from seq {before + 1}" in r.stdout
        a.key = cfgmod.load_key(a.dir / "node.key")
        assert a.key.public_key != old_key.public_key
        retired = a.dir / f"node.key.retired-{old_key.public_key.hex()[:16]}"
        assert cfgmod.load_key(retired).public_key == old_key.public_key

        after = await offline_work(a, 2)  # A works with its new key
        a.start_sync()  # it connects with the new key
        total_a = before + after
        wait_for(lambda: held(b, a.node) == total_a, 30, "B to get A's events after rotation")

        # a counter enrolled after the rotation gets everything, both keys' events
        c = Counter.create(tmp_path, "cashier-03", central)
        counters.append(c)
        c.start_sync()
        wait_for(lambda: held(c, a.node) == total_a and held(c, b.node) == nb, 30,
                 "C (fresh) to hold every event of A and B")
        wait_for(lambda: c.event_count() == b.event_count() == len(central.event_ids()), 30,
                 "B, C and central to hold the same events")
        assert c.sync_state()["last_error"] == ""
        con = sqlite3.connect(f"file:{c.db}?mode=ro", uri=True)
        spans = con.execute("SELECT public_key, from_seq, until_seq FROM key_spans WHERE node"
                            " = ? ORDER BY rowid", (a.node,)).fetchall()
        con.close()
        assert spans == [(old_key.public_key, 1, before + 1), (a.key.public_key, before + 1, 0)]
        for x in (a, b, c):
            r = edge(x, "verify")
            assert r.returncode == 0 and "verified" in r.stdout, (x.node, r.stdout, r.stderr)
        r = run_cli("--config", str(central.config), "verify")
        assert r.returncode == 0, r.stdout + r.stderr

        # an event signed with A's old key after the rotation: refused, flagged, one answer
        a.stop()
        con = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
        seq, prev = con.execute("SELECT seq, hash FROM heads WHERE node = ?",
                                (a.node,)).fetchone()
        con.close()
        _, forged, _ = sign_event(old_key, node=a.node, seq=seq + 1, prev=bytes(prev),
                                  hlc=Hlc(int(time.time() * 1000), 0), operator="op.x",
                                  kind="patient.registered",
                                  body={"patient_id": "P-forged", "name": "李四", "sex": "M",
                                        "birth_date": "1980-01-01", "national_id": "",
                                        "phone": ""})
        from tests.test_trust import Raw

        thief = Raw(central, a.node, old_key)  # the old key alone cannot even connect
        refused = await thief.open()
        assert isinstance(refused, Error) and refused.code == "not_authorised"
        await thief.ws.close()
        raw = Raw(central, a.node, a.key)  # with A's credentials, the old key's event
        assert isinstance(await raw.open(), Welcome)
        await raw.ws.send(raw.s.send_push([forged], seq + 1))
        answer = await raw.recv()
        assert isinstance(answer, Error) and answer.code == "not_authorised", answer
        assert "credentials" in answer.message and "valid only" not in answer.message
        await raw.ws.close()

        def flagged() -> bool:
            r = run_cli("--config", str(central.config), "conflicts", "list", "--kind",
                        "stale_key")
            return "Stale key — cashier-01" in r.stdout
        wait_for(flagged, 20, "the stale-key conflict")
        assert (a.node, seq + 1) not in {(n, s) for n, s, _ in central.event_ids()}
        r = run_cli("--config", str(central.config), "verify")
        assert r.returncode == 0, r.stdout + r.stderr
        # enrol does not replace A's key history
        r = run_cli("--config", str(central.config), "enrol", a.node, "--key",
                    SigningKey.generate().public_key.hex(), "--role", "cashier")
        assert r.returncode == 1 and "onecard-central rotate" in r.stderr
    finally:
        for x in counters:
            x.stop()
        central.stop()


# -- cards a rotated counter issued (real processes) -----------------------------------------

CARD_FILES = dict[int, bytes]


async def issue_chip(counter: Counter, card_no: str, uid: bytes) -> tuple[str, CARD_FILES]:
    """Register a patient at ``counter`` as its desk does with a chip reader: the card
    written and read back, then the registration (with the chip) and its wallet stamp."""
    from edge_node.card.layout import EF_CARD, EF_STAMP
    from edge_node.card.reader import CardPresented, SimulatedReader
    from edge_node.i18n import Translator
    from edge_node.service import CounterService
    from edge_node.tui.cardsource import CardDesk

    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        svc = CounterService(led, "op.wang")
        reader = SimulatedReader()
        await reader.start()
        desk = CardDesk(svc, Translator("en"), reader, chip=True)
        reader.present(uid, {})  # a blank chip
        ev = await reader.next_event(5)
        while not isinstance(ev, CardPresented):
            ev = await reader.next_event(5)
        desk.saw(ev)
        pid = await svc.next_patient_id()
        chip_uid = await desk.issue(card_no, pid)
        receipt = await svc.register_patient(
            name="张三", sex="M", birth_date="1990-03-07", phone="13800138000",
            card_no=card_no, first_deposit=10_000, expect_patient_id=pid, stamp=True,
            chip_uid=chip_uid)
        assert await desk.stamp_after(receipt, card_no) is None
        return pid, {EF_CARD: reader.content(EF_CARD), EF_STAMP: reader.content(EF_STAMP)}
    finally:
        await led.close()


async def tap_at(counter: Counter, files: CARD_FILES, uid: bytes) -> Any:
    """Present a chip card at ``counter``'s desk: every check a tap makes (TapCheck)."""
    from edge_node.card.reader import SimulatedReader
    from edge_node.i18n import Translator
    from edge_node.service import CounterService
    from edge_node.tui.cardsource import CardDesk, Tapped, interpret

    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        reader = SimulatedReader()
        await reader.start()
        desk = CardDesk(CounterService(led, "op.zhao"), Translator("en"), reader, chip=True)
        reader.present(uid, files)
        tapped = interpret(await reader.next_event(5))
        while not isinstance(tapped, Tapped):
            tapped = interpret(await reader.next_event(5))
        return await desk.check(tapped.card_no, tapped.entry, tapped)
    finally:
        await led.close()


@pytest.mark.slow
async def test_cards_a_counter_issued_before_rotating_its_key_work_everywhere(
        tmp_path: Path) -> None:
    """Issue 11: a card is checked with its issuer's key valid at the seq of the ledger's
    card.issued — after counter A rotates, the cards it issued before still open the
    patient at A, at B and at a counter enrolled after the rotation (their wallet stamps
    still read); data signed with A's retired key for a card recorded after the
    rotation is refused as forged."""
    from edge_node.card.layout import EF_CARD, frame, issue_card, parse_card_file

    central = Central.init(tmp_path / "central")
    central.start()
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    counters = [a, b]
    try:
        uid1, uid2 = bytes.fromhex("04a1a1a1a1"), bytes.fromhex("04b2b2b2b2")
        pid1, card1 = await issue_chip(a, "8600010001", uid1)  # with A's first key
        for c in counters:
            c.start_sync()
        wait_for(lambda: held(b, a.node) == held(a, a.node), 30, "B to hold A's card")

        a.stop()
        old_key = a.key
        r = edge(a, "rotate-key")
        assert r.returncode == 0, r.stderr
        line = next(x for x in r.stdout.splitlines() if "onecard-central rotate" in x)
        r = run_cli("--config", str(central.config), *line.split("onecard-central ", 1)[1]
                    .split())
        assert r.returncode == 0, r.stderr
        a.key = cfgmod.load_key(a.dir / "node.key")

        pid2, card2 = await issue_chip(a, "8600010002", uid2)  # with A's new key
        data2 = parse_card_file(card2[EF_CARD])
        # A's retired key signing the card recorded after the rotation (a thief with
        # the old key file re-minting it: same number, patient and chip)
        reminted = issue_card(old_key, a.node, card_no=data2.card_no, patient_no=pid2,
                              issued_ms=data2.issued_ms, uid=uid2)
        forged = {EF_CARD: frame(reminted.to_bytes())}
        a.start_sync()
        c3 = Counter.create(tmp_path, "cashier-03", central)
        counters.append(c3)
        c3.start_sync()
        total = held(a, a.node)
        wait_for(lambda: held(b, a.node) == total and held(c3, a.node) == total, 30,
                 "B and C (enrolled after the rotation) to hold A's events")
        for x in counters:
            x.stop()

        for x in (a, b, c3):
            before = await tap_at(x, card1, uid1)
            assert before.refusal is None, (x.node, before.refusal)
            assert before.view.patient.patient_id == pid1
            assert before.balance is not None and before.balance.stamp is not None \
                and before.balance.ignored == (), (x.node, before.balance)
            after = await tap_at(x, card2, uid2)
            assert after.refusal is None and after.view.patient.patient_id == pid2, (
                x.node, after.refusal)
            thief = await tap_at(x, forged, uid2)
            assert thief.view is None and thief.refusal is not None, x.node
            assert (thief.refusal.code, thief.refusal.title) == (
                "bad_signature", "Forged or altered card"), (x.node, thief.refusal)
    finally:
        for x in counters:
            x.stop()
        central.stop()
