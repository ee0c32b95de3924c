"""Trust regressions through real processes (issue 11): what a revoked counter, an
unknown node id and an impostor get from a running `onecard-central serve`.

Each test is a finding from an attack on a running system: revocation used to leave a
counter's open session open (it kept receiving patients' details), and unknown, revoked
and wrong-key nodes got different answers (node ids could be listed).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from central.server import WS_MAX_SIZE
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import ChainHead, sign_event
from protocol.hlc import Hlc
from protocol.messages import Error, Events, Welcome, decode_message
from protocol.session import EdgeSession
from tests.conftest import ID_FEMALE, node_key
from tests.support.sync_cluster import Central, run_cli

pytestmark = pytest.mark.slow


def _patient(node: str) -> list[bytes]:
    key = node_key(node)
    _, data, _ = sign_event(key, node=node, seq=1, prev=ZERO_HASH,
                            hlc=Hlc(int(time.time() * 1000), 0), operator="op.li",
                            kind="patient.registered",
                            body={"patient_id": f"P-{node}-000001", "name": "王芳",
                                  "sex": "F", "birth_date": "1949-12-31",
                                  "national_id": ID_FEMALE, "phone": "13900139000"})
    return [data]


class Raw:
    """A counter's session by hand (what an attacker with the counter's key can do)."""

    def __init__(self, central: Central, node: str, key: SigningKey) -> None:
        self.central, self.node = central, node
        self.s = EdgeSession(node, key, bytes.fromhex(central.key_hex), os.urandom(32))

    async def open(self) -> object:
        self.ws = await connect(self.central.url, max_size=WS_MAX_SIZE)
        await self.ws.send(self.s.send_hello(ChainHead()))
        await self.recv()
        await self.ws.send(self.s.send_auth())
        return await self.recv()

    async def recv(self, timeout: float = 10) -> object:
        async with asyncio.timeout(timeout):
            data = await self.ws.recv()
        msg = decode_message(data)  # type: ignore[arg-type]
        if isinstance(msg, Error):
            return msg
        return self.s.receive(data)  # type: ignore[arg-type]


@pytest.fixture
def central(tmp_path: Path) -> Central:
    c = Central.init(tmp_path / "central")
    for node in ("cashier-01", "lab-02"):
        c.enrol(node, node_key(node), "cashier" if node.startswith("cashier") else "lab")
    c.start()
    yield c  # type: ignore[misc]
    c.stop()


async def test_revoking_a_counter_closes_its_open_session_and_relays_it_nothing_more(
        central: Central) -> None:
    lab = Raw(central, "lab-02", node_key("lab-02"))
    assert isinstance(await lab.open(), Welcome)
    await lab.ws.send(lab.s.send_pull(0))
    caught_up = await lab.recv(timeout=5)  # what central held before (its trail: enrolments)
    assert isinstance(caught_up, Events) and not caught_up.more, caught_up
    r = await asyncio.to_thread(run_cli, "--config", str(central.config), "revoke", "lab-02")
    assert r.returncode == 0, r.stderr
    revoked_at = time.monotonic()
    # the session is closed by the serving process within its watch interval …
    got = await lab.recv(timeout=5)
    assert isinstance(got, Error) and got.code == "not_authorised", got
    assert time.monotonic() - revoked_at < 3
    with pytest.raises(ConnectionClosed):
        await lab.recv(timeout=5)
    # … and a new patient registered afterwards never reaches it
    cashier = Raw(central, "cashier-01", node_key("cashier-01"))
    assert isinstance(await cashier.open(), Welcome)
    await cashier.ws.send(cashier.s.send_push(_patient("cashier-01"), 1))
    await cashier.recv()
    again = Raw(central, "lab-02", node_key("lab-02"))
    refused = await again.open()
    assert isinstance(refused, Error) and refused.code == "not_authorised"
    await cashier.ws.close()


async def test_unknown_revoked_and_wrong_key_nodes_get_the_same_answer(central: Central) -> None:
    r = await asyncio.to_thread(run_cli, "--config", str(central.config), "revoke", "lab-02")
    assert r.returncode == 0, r.stderr
    answers = []
    for node, key in (("nobody-09", SigningKey(b"n" * 32)), ("lab-02", node_key("lab-02")),
                      ("cashier-01", SigningKey(b"x" * 32))):
        got = await Raw(central, node, key).open()
        assert isinstance(got, Error), got
        answers.append((got.code, got.message))
    assert len(set(answers)) == 1 and answers[0][0] == "not_authorised"
    log = (central.dir / "central.log").read_text()
    assert "not enrolled" in log and "revoked" in log and "does not verify" in log


async def test_an_unauthenticated_flood_does_not_fill_central_log(central: Central) -> None:
    log_path = central.dir / "central.log"
    before = len(log_path.read_text().splitlines())
    for i in range(150):
        got = await Raw(central, f"ghost-{i:03d}", SigningKey(bytes([i]) * 32)).open()
        assert isinstance(got, Error) and got.code == "not_authorised"
    lines = log_path.read_text().splitlines()[before:]
    refused = [ln for ln in lines if "refused" in ln]
    assert 1 <= len(refused) <= 3, refused  # one line, the rest counted for the summary


def test_databases_keys_and_configs_are_private_files_in_private_directories(
        tmp_path: Path) -> None:
    """Made by the real CLIs: files 0600 (WAL too), directories they create 0700; a
    ledger left 0644 by an older version is made private when opened."""
    import stat
    import subprocess

    from tests.support.sync_cluster import EDGE_CLI

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    c = Central.init(tmp_path / "central")
    c.enrol("lab-01", node_key("lab-01"))
    counter = tmp_path / "sites" / "lab-01"
    cfg = counter / "onecard-edge.toml"
    r = subprocess.run([EDGE_CLI, "--config", str(cfg), "init", "lab-01", "--role", "lab"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EDGE_CLI, "--config", str(cfg), "staff", "add", "li.na", "李娜",
                        "--pin-stdin"], input="2468\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    ledger = counter / "lab-01.sqlite3"
    files = [c.config, c.dir / "central.key", c.db, cfg, counter / "node.key", ledger]
    files += [p for p in counter.glob("*.sqlite3-*")]
    assert {p.name: oct(mode(p)) for p in files} == {p.name: "0o600" for p in files}
    assert oct(mode(counter)) == "0o700" and oct(mode(counter.parent)) == "0o700"
    ledger.chmod(0o644)
    r = subprocess.run([EDGE_CLI, "--config", str(cfg), "staff", "list"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert oct(mode(ledger)) == "0o600"
