"""Real processes for sync tests and benchmarks: `onecard-central serve`, counter sync daemons.

Everything listens on 127.0.0.1 only; every wait has a deadline.  Ledgers and the
central store are read with plain ``sqlite3`` (read-only URIs), as an auditor would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_node import config as cfgmod
from protocol.crypto import SigningKey
from tests.conftest import install_test_patient_keys

BIN = Path(sys.executable).parent
CENTRAL_CLI = str(BIN / "onecard-central")
EDGE_CLI = str(BIN / "onecard-edge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sync_argv(config: Path) -> list[str]:
    """The real ``onecard-edge --config PATH sync`` command line."""
    return [EDGE_CLI, "--config", str(config), "sync"]


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CENTRAL_CLI, *args], capture_output=True, text=True, timeout=timeout)


class _Process:
    """A node's process (central or a counter's sync daemon) and its database."""

    proc: subprocess.Popen[Any] | None
    db: Path

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def event_ids(self) -> set[tuple[str, int, bytes]]:
        return _ids(self.db, "SELECT node, seq, hash FROM events")


@dataclass
class Central(_Process):
    dir: Path
    config: Path
    key_hex: str
    port: int
    proc: subprocess.Popen[str] | None = None
    tls_pin: str = ""  # set when init made a self-signed certificate: central serves wss://
    #: its PostgreSQL database's URL ("": the SQLite file ``db``)
    database: str = ""

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls_pin else 'ws'}://127.0.0.1:{self.port}/sync"

    @property
    def tls_cert(self) -> Path:
        return self.dir / "central-tls.crt"

    @property
    def db(self) -> Path:
        return self.dir / "central.sqlite3"

    @classmethod
    def init(cls, directory: Path, *, tls: bool = False, database: str = "") -> Central:
        """``onecard-central init`` (with ``--tls-self-signed`` when ``tls``; with
        ``--database`` when ``database``, a PostgreSQL URL)."""
        cfg = directory / "central.toml"
        r = run_cli("--config", str(cfg), "init", "--dir", str(directory),
                    *(["--tls-self-signed"] if tls else []),
                    *(["--database", database] if database else []))
        assert r.returncode == 0, r.stderr
        key_hex = next(
            line.split()[-1] for line in r.stdout.splitlines() if line.startswith("central key")
        )
        pin = next((line.split()[-1] for line in r.stdout.splitlines()
                    if line.startswith("tls pin")), "")
        assert bool(pin) == tls, r.stdout
        install_test_patient_keys(directory / "patient-data.key")
        # one signature-checking worker, not one per core: the pool is still real, and the
        # many centrals a run starts each spawn (and import the code in) one process less
        text = cfg.read_text(encoding="utf-8")
        assert "verify_workers = -1" in text
        cfg.write_text(text.replace("verify_workers = -1", "verify_workers = 1", 1),
                       encoding="utf-8")
        return cls(directory, cfg, key_hex, free_port(), tls_pin=pin, database=database)

    def enrol(self, node: str, key: SigningKey, role: str = "cashier") -> None:
        r = run_cli("--config", str(self.config), "enrol", node, "--key",
                    key.public_key.hex(), "--role", role)
        assert r.returncode == 0, r.stderr

    def start(self, timeout: float = 20, env: dict[str, str] | None = None) -> None:
        log = open(self.dir / "central.log", "a")  # noqa: SIM115 (lives with the process)
        self.proc = subprocess.Popen(
            [CENTRAL_CLI, "--config", str(self.config), "serve", "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=log, text=True,
            env={**os.environ, **env} if env else None,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()  # "listening on …" (blocks until printed)
        assert "listening on" in line, line
        assert time.monotonic() < deadline

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query on central's database, SQLite or PostgreSQL (no placeholders)."""
        if self.database:
            from tests.support.pg import rows

            return rows(self.database, sql)
        with closing(_ro(self.db)) as c:
            return [tuple(r) for r in c.execute(sql)]

    def positions(self) -> list[int]:
        return [int(r[0]) for r in self.rows("SELECT pos FROM events ORDER BY pos")]

    def event_ids(self) -> set[tuple[str, int, bytes]]:
        return {(str(n), int(s), bytes(h))
                for n, s, h in self.rows("SELECT node, seq, hash FROM events")}


@dataclass
class Counter(_Process):
    node: str
    dir: Path
    config: Path
    key: SigningKey
    proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.dir / f"{self.node}.sqlite3"

    @classmethod
    def create(cls, base: Path, node: str, central: Central, url: str | None = None,
               role: str = "cashier", *, tls_pin: str = "", ca_file: str = "",
               language: str = "zh") -> Counter:
        d = base / node
        d.mkdir(parents=True)
        key = SigningKey.generate()
        cfgmod.write_key(d / "node.key", key)
        cfg = cfgmod.EdgeConfig(
            node_id=node, role=role, db=d / f"{node}.sqlite3", key_file=d / "node.key",
            language=language,
            sync=cfgmod.SyncConfig(url or central.url, central.key_hex, tls_pin=tls_pin,
                                   ca_file=ca_file),
        )
        path = d / "onecard-edge.toml"
        path.write_text(cfgmod.render(cfg), encoding="utf-8")
        central.enrol(node, key, role)
        return cls(node, d, path, key)

    def set_url(self, url: str) -> None:
        cfg = cfgmod.load(self.config)
        cfg = cfgmod.EdgeConfig(**{**{f: getattr(cfg, f) for f in (
            "node_id", "role", "db", "key_file", "language")}, "sync": cfgmod.SyncConfig(
                url, cfg.sync.central_key, ca_file=cfg.sync.ca_file, tls_pin=cfg.sync.tls_pin)})
        self.config.write_text(cfgmod.render(cfg), encoding="utf-8")

    def start_sync(self, env: dict[str, str] | None = None) -> None:
        log = open(self.dir / "sync.log", "ab")  # noqa: SIM115
        e = dict(os.environ)
        e.setdefault("ONECARD_SYNC_PING_S", "1")
        e.setdefault("ONECARD_SYNC_BACKOFF_MAX_S", "1")
        e.update(env or {})
        self.proc = subprocess.Popen(sync_argv(self.config),
                                     stdout=log, stderr=log, env=e)

    def event_count(self) -> int:
        with closing(_ro(self.db)) as c:
            return int(c.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def balances(self) -> list[tuple[str, int]]:
        with closing(_ro(self.db)) as c:
            return sorted(c.execute("SELECT patient_id, balance FROM accounts"))

    def sync_state(self) -> dict[str, object]:
        with closing(_ro(self.db)) as c:
            c.row_factory = sqlite3.Row
            return dict(c.execute("SELECT * FROM sync_state").fetchone())


def _ro(path: Path) -> sqlite3.Connection:
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    return c


def _ids(path: Path, sql: str) -> set[tuple[str, int, bytes]]:
    c = _ro(path)
    try:
        return {(r[0], r[1], bytes(r[2])) for r in c.execute(sql)}
    finally:
        c.close()


def wait_for(pred: object, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``pred()`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if pred():  # type: ignore[operator]
                return
        except sqlite3.DatabaseError as exc:  # OperationalError included
            # a file being created or locked, or a read-only look at a WAL file caught
            # mid-checkpoint by its writer: try again (what the test checks afterwards
            # reads the file once more and would see real damage)
            last = f" (last read: {exc})"
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{last}")


def converged(central: Central, counters: list[Counter], total: int) -> bool:
    """Central and every counter hold ``total`` events besides central's own audit trail
    (``audit.*``: the counters it enrolled, protocol/trail.py), which syncs too."""
    total += central_trail(central)
    if len(central.event_ids()) != total:
        return False
    return all(c.event_count() == total for c in counters)


def central_trail(central: Central) -> int:
    """How many of central's own events are its bookkeeping: its audit trail (``audit.*``)
    and the patient keys it granted counters as they connected (``privacy.key_granted``)."""
    from protocol.event import decode_event

    rows = central.rows("SELECT data FROM events WHERE node = 'central'")
    return sum(decode_event(bytes(r[0])).kind.startswith(("audit.", "privacy."))
               for r in rows)


async def offline_work(counter: Counter, patients: int, charges: int = 1,
                       prefix: str = "") -> int:
    """Register ``patients`` (deposit 100.00) and charge each; return the events written."""
    from edge_node.ledger import Ledger
    from edge_node.service import CounterService

    cfg = cfgmod.load(counter.config)
    led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
    try:
        svc = CounterService(led, "op.wang")
        before = (await led.head()).seq
        tag = prefix or "".join(ch for ch in counter.node if ch.isdigit())
        for i in range(patients):
            card = f"86{tag:0>4}{before + i:06d}"
            await svc.register_patient(name="张三", sex="M", birth_date="1990-03-07",
                                       phone="13800138000", card_no=card,
                                       first_deposit=10_000)
            for _ in range(charges):
                await svc.charge(card, [{"code": "LAB-CBC", "name": "血常规", "qty": 1,
                                         "unit_price": 2_500}], "lab")
        return (await led.head()).seq - before
    finally:
        await led.close()


def run_async(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]
