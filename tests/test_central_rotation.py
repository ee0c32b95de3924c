"""Central's own key rotation (issue 11, key lifecycle): `onecard-central rotate-central`.

Central's keys have spans over its seqs like a counter's; its last event signed with the
old key is the rotation statement naming the new key; every challenge offers the
statements, and a counter that pinned the old key accepts the new one only through a
statement its pin signed, then keeps the new pin in its ledger.

The end-to-end tests run real processes: `onecard-central serve`, counters' sync
daemons, and the commands an operator types.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from central.store import CentralStore, enrol_central, keyring_of
from edge_node import config as cfgmod
from edge_node.ledger import EquivocationError, Ledger
from protocol import codec
from protocol.crypto import ZERO_HASH, SigningKey, blake2b_256, fingerprint
from protocol.errors import SignatureError
from protocol.event import CENTRAL, ChainHead, decode_event, sign_event
from protocol.hlc import Hlc
from protocol.keyring import KeySpan
from protocol.messages import PROTOCOL_VERSION, Challenge, Hello, decode_message
from protocol.rotation import follow, read_statement, statement_body
from protocol.session import AuthError, CentralSession, EdgeSession
from tests.support.sync_cluster import (
    EDGE_CLI,
    Central,
    Counter,
    offline_work,
    run_cli,
    wait_for,
)

OLD, NEW, NEWER, STRANGER = (SigningKey(bytes([i]) * 32) for i in (11, 12, 13, 14))
N1, N2 = b"\x01" * 32, b"\x02" * 32


def statement(key: SigningKey, seq: int, new: bytes, *, prev: bytes = ZERO_HASH,
              from_seq: int | None = None) -> bytes:
    """Central's rotation statement at ``seq``, signed by ``key``, naming ``new``."""
    body = statement_body(new, seq + 1 if from_seq is None else from_seq, fingerprint(new))
    _, data, _ = sign_event(key, node=CENTRAL, seq=seq, prev=prev, hlc=Hlc(1_000 + seq, 0),
                            operator="it.zhou", kind="audit.node_changed", body=body)
    return data


# -- the statements and the walk -------------------------------------------------------------

def test_a_counter_follows_only_statements_its_pin_signed() -> None:
    one = statement(OLD, 3, NEW.public_key)
    two = statement(NEW, 7, NEWER.public_key)
    assert read_statement(one) is not None
    assert follow(OLD.public_key, [one, two])[0] == NEWER.public_key
    assert follow(NEW.public_key, [one, two])[0] == NEWER.public_key  # pinned after the first
    assert follow(NEWER.public_key, [one, two]) == (NEWER.public_key, ())
    key, steps = follow(OLD.public_key, [one])
    assert key == NEW.public_key and [(s.seq, s.old, s.new, s.from_seq) for s in steps] == [
        (3, OLD.public_key, NEW.public_key, 4)]
    forged = statement(STRANGER, 3, NEWER.public_key)  # not the pin's signature
    assert follow(OLD.public_key, [forged]) == (OLD.public_key, ())
    gap = statement(OLD, 3, NEWER.public_key, from_seq=9)  # the new key must follow at once
    assert read_statement(gap) is None and follow(OLD.public_key, [gap])[1] == ()
    assert follow(OLD.public_key, [two, one])[0] == NEW.public_key  # never backwards
    _, data, _ = sign_event(OLD, node="cashier-01", seq=3, prev=ZERO_HASH, hlc=Hlc(1, 0),
                            operator="x", kind="audit.node_changed",
                            body=statement_body(NEW.public_key, 4, fingerprint(NEW.public_key)))
    assert read_statement(data) is None  # a counter cannot speak for central
    assert read_statement(b"\x00garbage") is None


def test_the_challenge_carries_the_statements_to_counters_that_can_read_them() -> None:
    one = statement(OLD, 3, NEW.public_key)
    c = Challenge(N1, b"s" * 64, (one,))
    assert decode_message(c.encode()) == c
    plain = Challenge(N1, b"s" * 64)
    assert "rotations" not in codec.decode(plain.encode())  # the map earlier versions know
    assert decode_message(plain.encode()) == plain
    for proto, offered in ((2, ()), (PROTOCOL_VERSION, (one,))):
        s = CentralSession(NEW, N2)
        s.receive(Hello("cashier-01", proto, N1, 0, ZERO_HASH).encode())
        got = decode_message(s.send_challenge(OLD.public_key, (one,)))
        assert isinstance(got, Challenge) and got.rotations == offered


def _handshake(pinned: bytes, central: SigningKey, rotations: tuple[bytes, ...]
               ) -> EdgeSession:
    edge = EdgeSession("cashier-01", STRANGER, pinned, N1)
    c = CentralSession(central, N2)
    c.receive(edge.send_hello(ChainHead()))
    edge.receive(c.send_challenge(STRANGER.public_key, rotations))
    return edge


def test_the_edge_session_accepts_a_new_central_key_only_through_its_pin() -> None:
    one = statement(OLD, 3, NEW.public_key)
    two = statement(NEW, 7, NEWER.public_key)
    e = _handshake(OLD.public_key, NEWER, (one, two))  # offline through two rotations
    assert e.central_key == NEWER.public_key and [r.seq for r in e.rotations] == [3, 7]
    e = _handshake(NEWER.public_key, NEWER, (one, two))  # enrolled after: nothing to follow
    assert e.central_key == NEWER.public_key and e.rotations == ()
    for offered, why in (((), "no key rotation signed by the pinned key"),
                         ((statement(STRANGER, 3, NEW.public_key),),
                          "no key rotation signed by the pinned key"),
                         ((one,), "nor the key")):  # endorsed NEW, but NEWER answered
        with pytest.raises(AuthError) as refused:
            _handshake(OLD.public_key, NEWER, offered)
        assert why in str(refused.value), str(refused.value)
        assert fingerprint(OLD.public_key) in str(refused.value)


# -- central's store -------------------------------------------------------------------------

async def test_the_store_rotates_central_and_keeps_every_event_verifiable(
        tmp_path: Path) -> None:
    store = await CentralStore.open(tmp_path / "c.sqlite3")
    try:
        await enrol_central(store, OLD)
        await store.enrol("c1", STRANGER.public_key, "cashier", signer=(OLD, "it.zhou"))
        seq, start = await store.rotate_central(NEW.public_key, (OLD, "it.zhou"))
        assert (seq, start) == (2, 3)
        assert await store.key_spans(CENTRAL) == (KeySpan(OLD.public_key, 1, 3),
                                                 KeySpan(NEW.public_key, 3))
        assert (await store.node(CENTRAL)).pubkey == NEW.public_key  # type: ignore[union-attr]
        stmts = await store.rotation_statements()
        assert len(stmts) == 1 and follow(OLD.public_key, stmts)[0] == NEW.public_key
        ev = decode_event(stmts[0])
        assert (ev.seq, ev.kind, ev.body["node"], ev.body["action"]) == (
            2, "audit.node_changed", CENTRAL, "rotate")
        with pytest.raises(SignatureError):  # the old key signs nothing more
            await store.enrol("c2", NEWER.public_key, "cashier", signer=(OLD, "it.zhou"))
        with pytest.raises(ValueError, match="not hold the key central signs with"):
            await store.rotate_central(NEWER.public_key, (OLD, "it.zhou"))
        with pytest.raises(ValueError, match="rotate-central"):
            await store.rotate(CENTRAL, NEWER.public_key)
        await enrol_central(store, NEW)  # the commands after: central's key file holds NEW
        await store.enrol("c2", NEWER.public_key, "cashier", signer=(NEW, "it.zhou"))
        with pytest.raises(ValueError, match="had this key before"):
            await store.rotate_central(OLD.public_key, (NEW, "it.zhou"))
        assert await store.rotate_central(NEWER.public_key, (NEW, "it.zhou")) == (4, 5)
        assert len(await store.rotation_statements()) == 2
        await store.enrol("c3", SigningKey(b"z" * 32).public_key, "cashier",
                          signer=(NEWER, "it.zhou"))
    finally:
        await store.close()
    con = sqlite3.connect(tmp_path / "c.sqlite3")  # `onecard-central verify`'s check
    try:
        con.execute("CREATE TEMP VIEW heads AS SELECT id AS node, head_seq AS seq,"
                    " head_hash AS hash FROM nodes")
        report = Ledger._verify_tx(con, keyring_of(con))
        assert report.ok and report.checked == 5, report
    finally:
        con.close()


async def test_the_counter_keeps_the_new_pin_in_its_ledger(tmp_path: Path) -> None:
    one = statement(OLD, 3, NEW.public_key)
    steps = follow(OLD.public_key, [one])[1]
    led = await Ledger.open(tmp_path / "a.sqlite3", "cashier-01", STRANGER)
    try:
        assert await led.central_pin(OLD.public_key) == (OLD.public_key, 0)
        await led.adopt_central_key(OLD.public_key, steps)
        assert await led.central_pin(OLD.public_key) == (NEW.public_key, 3)
        # IT pinning another key by hand in the config wins over the ledger's
        assert await led.central_pin(NEWER.public_key) == (NEWER.public_key, 0)
    finally:
        await led.close()
    led = await Ledger.open(tmp_path / "a.sqlite3", "cashier-01", STRANGER)  # durable
    try:
        assert await led.central_pin(OLD.public_key) == (NEW.public_key, 3)
    finally:
        await led.close()
    # a ledger holding another event of central's at the statement's seq: not taken
    led = await Ledger.open(tmp_path / "b.sqlite3", "cashier-02", STRANGER)
    try:
        await led.set_node_keys({CENTRAL: (OLD.public_key, "central")})
        prev = ZERO_HASH
        for seq in (1, 2, 3):
            _, data, prev = sign_event(OLD, node=CENTRAL, seq=seq, prev=prev,
                                       hlc=Hlc(1_000 + seq, 0), operator="it.zhou",
                                       kind="audit.node_changed",
                                       body={"node": "c9", "action": "enrol", "from_seq": 1})
            await led.ingest([data])
        assert blake2b_256(one) != prev
        with pytest.raises(EquivocationError, match="not the event this counter holds"):
            await led.adopt_central_key(OLD.public_key, steps)
        assert await led.central_pin(OLD.public_key) == (OLD.public_key, 0)
    finally:
        await led.close()


# -- end to end, real processes ------------------------------------------------------------

def edge(counter: Counter, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EDGE_CLI, "--config", str(counter.config), *args],
                          capture_output=True, text=True, timeout=60)


def central_events(db: Path) -> list[tuple[int, bytes]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [(int(s), bytes(h)) for s, h in con.execute(
            "SELECT seq, hash FROM events WHERE node = 'central' ORDER BY seq")]
    finally:
        con.close()


def pin_of(counter: Counter) -> dict[str, object] | None:
    """The pin the counter took from central's rotation (its ledger), None: none."""
    con = sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = 'sync.central_pin'").fetchone()
    finally:
        con.close()
    return None if row is None else dict(json.loads(row[0]))


def limits_in_force(counter: Counter) -> tuple[int, int] | None:
    """The offline limits the counter's ledger folded from central's limits.set."""
    con = sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute("SELECT floor, cap FROM offline_limits").fetchone()
    finally:
        con.close()
    return None if row is None else (int(row[0]), int(row[1]))


def holds_all_of_central(counter: Counter, central: Central) -> bool:
    return central_events(counter.db) == central_events(central.db)


@pytest.mark.slow
async def test_central_rotates_its_key_and_every_counter_follows(tmp_path: Path) -> None:
    """Central with two counters: central rotates its key while serving; A is online,
    B offline.  Both take the new key only from the old key's statement, central's new
    events reach and verify on both, every verify holds, and a counter enrolled after
    the rotation (pinning the new key) holds every central event of both keys."""
    central = Central.init(tmp_path / "central")
    central.start()
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    counters = [a, b]
    old_hex = central.key_hex
    try:
        na = await offline_work(a, 1)
        nb = await offline_work(b, 1)
        for c in counters:
            c.start_sync()
        wait_for(lambda: all(holds_all_of_central(c, central) for c in counters)
                 and len(central.event_ids()) >= na + nb + len(central_events(central.db)),
                 30, "A and B to hold central's events and each other's")
        b.stop()  # B is offline through the rotation

        r = run_cli("--config", str(central.config), "rotate-central", "--operator", "it.zhou")
        assert r.returncode == 0, r.stderr
        new_hex = next(x.split()[-1] for x in r.stdout.splitlines()
                       if x.startswith("central key"))
        assert new_hex != old_hex and len(new_hex) == 64
        key_file = central.dir / "central.key"
        retired = central.dir / f"central.key.retired-{old_hex[:16]}"
        assert cfgmod.load_key(key_file).public_key.hex() == new_hex
        assert cfgmod.load_key(retired).public_key.hex() == old_hex
        stmt_seq = int(re.search(r"seq (\d+): the rotation statement", r.stdout)[1])  # type: ignore[index]

        # a new central event, signed with the new key (serve never restarted)
        r = run_cli("--config", str(central.config), "limits", "set", "--floor", "12300",
                    "--cap", "45600", "--operator", "it.zhou")
        assert r.returncode == 0, r.stderr
        assert central_events(central.db)[-1][0] >= stmt_seq + 1

        def follows(c: Counter) -> bool:
            pin = pin_of(c)
            return (pin is not None and pin["key"] == new_hex and pin["seq"] == stmt_seq
                    and holds_all_of_central(c, central)
                    and limits_in_force(c) == (12_300, 45_600))
        wait_for(lambda: follows(a), 30, "A (online) to follow the rotation and get the "
                 "limits signed with the new key")
        b.start_sync()
        wait_for(lambda: follows(b), 30, "B (offline during it) to follow the rotation")
        for c in counters:
            assert pin_of(c) == {"config": old_hex, "key": new_hex, "seq": stmt_seq}
            assert cfgmod.load(c.config).sync.central_key == old_hex  # nobody edited it
            assert c.sync_state()["last_error"] == ""
            info = edge(c, "info")
            assert info.returncode == 0, info.stderr
            line = next(x for x in info.stdout.splitlines() if x.startswith("central key"))
            assert fingerprint(bytes.fromhex(new_hex)) in line and f"seq {stmt_seq}" in line
            r = edge(c, "verify")
            assert r.returncode == 0 and "verified" in r.stdout, (c.node, r.stdout, r.stderr)
            con = sqlite3.connect(f"file:{c.db}?mode=ro", uri=True)
            spans = con.execute("SELECT public_key, from_seq, until_seq FROM key_spans WHERE "
                                "node = 'central' ORDER BY rowid").fetchall()
            con.close()
            assert spans == [(bytes.fromhex(old_hex), 1, stmt_seq + 1),
                             (bytes.fromhex(new_hex), stmt_seq + 1, 0)]

        # a counter enrolled after the rotation pins the new key and gets everything
        central.key_hex = new_hex
        c3 = Counter.create(tmp_path, "cashier-03", central)
        counters.append(c3)
        c3.start_sync()
        wait_for(lambda: holds_all_of_central(c3, central)
                 and c3.event_count() == len(central.event_ids()), 30,
                 "C (enrolled after the rotation) to hold every event")
        assert pin_of(c3) is None and c3.sync_state()["last_error"] == ""
        r = edge(c3, "verify")
        assert r.returncode == 0 and "verified" in r.stdout, r.stdout + r.stderr
        r = run_cli("--config", str(central.config), "verify")
        assert r.returncode == 0, r.stdout + r.stderr

        # the rotation is on the audit trail
        r = run_cli("--config", str(central.config), "audit", "log", "--what",
                    "audit.node_changed", "--csv")
        assert r.returncode == 0, r.stderr
        rows = [x for x in r.stdout.splitlines() if "it.zhou" in x]
        assert any(fingerprint(bytes.fromhex(new_hex)) in x for x in rows), r.stdout

        # serve restarted: it signs with the new key from the file; A reconnects as is
        central.stop()
        central.start()
        r = run_cli("--config", str(central.config), "limits", "set", "--floor", "100",
                    "--cap", "200", "--operator", "it.zhou")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: all(holds_all_of_central(c, central) and limits_in_force(c) == (
            100, 200) for c in counters), 30,
                 "every counter to get central's next event after the restart")
    finally:
        for x in counters:
            x.stop()
        central.stop()


def refusals(counter: Counter) -> int:
    """How often the counter's sync refused a central that is not the pinned one."""
    log = counter.dir / "sync.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return text.count("does not match the pinned central key")


@pytest.mark.slow
async def test_a_central_key_no_rotation_of_the_pin_endorses_is_refused(
        tmp_path: Path) -> None:
    """A server with another key — with no statement, or with a rotation statement
    signed by a key that is not the counter's pin — is refused with a clear message,
    and the counter's pin stays what it was."""
    central = Central.init(tmp_path / "central")
    central.start()
    a = Counter.create(tmp_path, "cashier-01", central)
    rogue = Central.init(tmp_path / "rogue")  # another central, which enrols A's key too
    rogue.enrol(a.node, a.key)
    rogue.start()
    try:
        n = await offline_work(a, 1)
        a.start_sync()
        wait_for(lambda: holds_all_of_central(a, central) and a.sync_state()["acked_seq"]
                 == n, 30, "A to sync with its central")
        a.stop()
        a.set_url(rogue.url)
        for step in ("no statement", "a statement of its own key"):
            if step == "a statement of its own key":
                rogue.stop()
                r = run_cli("--config", str(rogue.config), "rotate-central")
                assert r.returncode == 0, r.stderr
                rogue.start()
            seen = refusals(a)
            a.start_sync()
            wait_for(lambda seen=seen: refusals(a) > seen, 30,
                     f"A to refuse the rogue central ({step})")
            a.stop()
            err = str(a.sync_state()["last_error"])
            assert "does not match the pinned central key" in err, err
            assert "no key rotation signed by the pinned key" in err, err
            assert fingerprint(bytes.fromhex(central.key_hex)) in err
            assert pin_of(a) is None
            line = next(x for x in edge(a, "info").stdout.splitlines()
                        if x.startswith("central key"))
            assert line.endswith("(pinned in the config)"), line
            assert fingerprint(bytes.fromhex(central.key_hex)) in line
        assert not any(n == a.node for n, _, _ in rogue.event_ids())  # nothing pushed to it
    finally:
        a.stop()
        rogue.stop()
        central.stop()


def test_the_rotate_central_command(tmp_path: Path) -> None:
    """`rotate-central --key-file` takes a seed made elsewhere; the key central has now
    and `rotate central` are refused with a pointer; central's verify holds after."""
    central = Central.init(tmp_path / "central")
    cfg = ("--config", str(central.config))
    r = run_cli(*cfg, "rotate", "central", "--key", NEW.public_key.hex())
    assert r.returncode == 1 and "onecard-central rotate-central" in r.stderr, r.stderr
    r = run_cli(*cfg, "rotate-central", "--key-file", str(central.dir / "central.key"))
    assert r.returncode == 1 and "holds the key central has now" in r.stderr, r.stderr
    seed = tmp_path / "made-offline.key"
    cfgmod.write_key(seed, NEW)
    r = run_cli(*cfg, "rotate-central", "--key-file", str(seed), "--operator", "it.zhou")
    assert r.returncode == 0, r.stderr
    assert f"central key {NEW.public_key.hex()}" in r.stdout
    assert cfgmod.load_key(central.dir / "central.key").public_key == NEW.public_key
    assert not (central.dir / ".central.key.new").exists()
    r = run_cli(*cfg, "rotate-central", "--key-file", str(seed))
    assert r.returncode == 1 and "holds the key central has now" in r.stderr
    r = run_cli(*cfg, "nodes")
    assert NEW.fingerprint in r.stdout, r.stdout
    r = run_cli(*cfg, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_cli(*cfg, "backup", "--dir", str(tmp_path / "backups"))  # checks every chain
    assert r.returncode == 0, r.stdout + r.stderr
