"""The demo: central, a cashier counter and a pharmacy counter on this machine, with a conflict.

``make demo`` (``scripts/demo_stack.py``) or ``python -m edge_node.demo``: a central on
SQLite and two counters, each with its own signed ledger and a sync daemon, all real
processes on 127.0.0.1.  The sample history has an offline double spend: both counters
lost the link, each charged 李梅's card for what her deposit allowed, and when they
synced central's reconciler raised the overdraft by itself.  Central publishes the
sample catalogue (``onecard-central catalogue import --sample``) before it serves, so
both counters hold it as version 1 after their first sync.  The cashier's terminal app
then opens on this terminal with a simulated chip reader (Ctrl+T taps the next demo
card, Ctrl+B puts a blank one on it); its login screen shows the demo's staff id, PIN
and the one command that opens central's IT console on the same central.  Quitting the
app (Ctrl+Q) stops every process the demo started and removes its directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from edge_node import staff
from edge_node.config import EdgeConfig, ReaderConfig, SyncConfig, render, write_key
from edge_node.i18n import Translator
from edge_node.ledger import Ledger, wall_ms
from edge_node.service import CounterService
from edge_node.tui.app import CounterApp
from edge_node.tui.cardsource import TypedCardSource
from edge_node.tui.screens.login import Hint
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from protocol.money import yuan
from protocol.privacy import PatientKeys, grant_body

NODE = "demo-cashier"
DESK2 = "demo-pharmacy"  # the second desk: no screen, its sync daemon in the background
BIN = Path(sys.executable).parent
DEMO_PATIENTS = [
    # name, national id, phone, card, first deposit (fen)
    ("张三", "110101199003070011", "13800138000", "8600000001", 50_000),
    ("李梅", "11010519491231002X", "13912345678", "8600000002", 2_000),
    ("王芳", "", "13700001111", "8600000003", 100_000),
]


async def seed(config: EdgeConfig, key: SigningKey) -> dict[str, str]:
    """Staff ``demo``/1234 (cashier) and ``boss``/9999 (supervisor), three patients.

    Returns card number → patient id (the demo cards are issued with the real ids).
    """
    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules)
    try:
        cheap = staff.cheap_hasher()  # a throwaway demo: no need for a slow hash
        await staff.add_staff(ledger, "demo", "演示收费员", "1234", hasher=cheap)
        await staff.add_staff(ledger, "boss", "演示主管", "9999", role="supervisor",
                              hasher=cheap)
        svc = CounterService(ledger, "demo")
        patients: dict[str, str] = {}
        for name, nid, phone, card, amount in DEMO_PATIENTS:
            extra: dict[str, Any] = {} if nid else {"sex": "F", "birth_date": "1985-06-15"}
            r = await svc.register_patient(name=name, national_id=nid, phone=phone,
                                           card_no=card, first_deposit=amount, method="cash",
                                           **extra)
            patients[card] = r.patient.patient_id
        await svc.charge("8600000001", [{"code": "REG01", "name": "普通门诊挂号费", "qty": 1,
                                         "unit_price": 500}], "门诊收费")
    finally:
        await ledger.close()
    return patients


class DemoCards:
    """The demo's plastic: signed chips for the seeded patients, and blank ones.

    What the counter writes to a card on the reader (issue, wallet stamps) stays on it
    when the next card is tapped, so a card's stamp is there at its next tap.
    """

    def __init__(self, key: SigningKey, patients: dict[str, str]) -> None:
        from edge_node.card.layout import EF_CARD, frame, issue_card
        from edge_node.card.reader import SimulatedReader

        self.reader = SimulatedReader("Demo reader")
        self.images: dict[bytes, dict[int, bytes]] = {}
        self._uid: bytes | None = None
        self._blanks = 0
        for card_no, pid in patients.items():
            uid = self.uid_of(card_no)
            card = issue_card(key, NODE, card_no=card_no, patient_no=pid, issued_ms=0, uid=uid)
            self.images[uid] = {EF_CARD: frame(card.to_bytes())}

    @staticmethod
    def uid_of(card_no: str) -> bytes:
        return bytes.fromhex(card_no[-8:].rjust(8, "0"))

    def _keep_current(self) -> None:
        from edge_node.card.layout import EF_CARD, EF_STAMP
        from edge_node.card.reader import NoCard

        if self._uid is None:
            return
        try:
            self.images[self._uid] = {fid: self.reader.content(fid)
                                      for fid in (EF_CARD, EF_STAMP)}
        except NoCard:
            pass

    def _present(self, uid: bytes) -> None:
        self._keep_current()
        self._uid = uid
        self.reader.present(uid, self.images.get(uid, {}))

    def tap(self, card_no: str) -> None:
        """Put that demo card on the reader (an event follows)."""
        self._present(self.uid_of(card_no))

    def blank(self) -> str:
        """Put a new blank card on the reader (to issue at registration or replacement);
        returns the number printed on it."""
        self._blanks += 1
        self._present(bytes([0x04, 0xB1, 0xA4, 0x4B, self._blanks & 0xFF, self._blanks >> 8]))
        return f"861{self._blanks:07d}"


def make_reader(key: SigningKey, patients: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The card package's simulated chip reader if present, else a typed-number source.

    Returns ``(reader, cards)`` where ``cards.tap(card_no)`` puts that demo card on the
    reader (``cards.blank()`` a blank one).
    """
    try:
        cards = DemoCards(key, patients or {})
    except ImportError:
        typed = TypedCardSource()
        return typed, typed
    return cards.reader, cards


class DemoCounterApp(CounterApp):
    """The counter app plus Ctrl+T: tap the next demo card; Ctrl+B: a blank card (in the
    new-patient and replace-card forms it also fills in the card's number)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *CounterApp.BINDINGS,
        Binding("ctrl+t", "tap_demo_card", "Tap demo card", priority=True),
        # not priority: a form with a card number field binds Ctrl+B itself (and fills it)
        Binding("ctrl+b", "blank_demo_card", "Blank card"),
    ]
    KEY_LABELS: ClassVar[dict[str, str]] = {**CounterApp.KEY_LABELS,
                                            "tap_demo_card": "key.tap_demo",
                                            "blank_demo_card": "key.blank_card"}

    def __init__(self, config: EdgeConfig, cards: Any, *, login_hint: Hint = "",
                 **kw: Any) -> None:
        kw.setdefault("blanks", getattr(cards, "blank", None))
        super().__init__(config, **kw)
        self.cards = cards
        self.login_hint = login_hint  # shown by the login screen (staff id, PIN, console)
        self._next = 0

    async def on_mount(self) -> None:  # besides CounterApp's: Textual calls both
        """A closed terminal (SIGHUP) or ``kill`` (SIGTERM) quits like Ctrl+Q, so the
        demo still stops what it started and removes its folder."""
        if self.is_headless:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.exit)
        # a terminal closed without a SIGHUP reaching us (tmux kill-session, a closed
        # window under some shells: the app then read EOF forever at 40% CPU, the stack
        # left running): looked for once a second
        fd = sys.__stdin__.fileno() if sys.__stdin__ is not None else 0
        if os.isatty(fd):
            self.set_interval(1.0, lambda: self._quit_if_terminal_gone(fd))

    def _quit_if_terminal_gone(self, fd: int) -> None:
        try:
            os.tcgetpgrp(fd)
        except OSError:  # (EIO: the terminal hung up)
            self.exit()

    def action_tap_demo_card(self) -> None:
        card = DEMO_PATIENTS[self._next % len(DEMO_PATIENTS)][3]
        self._next += 1
        self.cards.tap(card)

    def action_blank_demo_card(self) -> None:
        if self.blanks is not None:
            card = self.blanks()
            if self.home is not None and self.screen is self.home:
                self.home.say(self.tr("home.blank_on_reader", card=card))




def cashier_config(directory: Path, language: str = "zh",
                   sync: SyncConfig | None = None) -> EdgeConfig:
    """The demo cashier's config, written to ``directory/onecard-edge.toml`` as used."""
    config = EdgeConfig(node_id=NODE, role="cashier", db=directory / "ledger.sqlite3",
                        key_file=directory / "node.key", language=language,
                        printer=str(directory / "receipts.escpos"),
                        sync=sync or SyncConfig(),
                        reader=ReaderConfig("simulated", "Demo reader"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "onecard-edge.toml").write_text(render(config), encoding="utf-8")
    return config


async def grant_standalone(config: EdgeConfig, key: SigningKey) -> None:
    """The stand-alone demo cashier (no central): its patient keys granted as central would
    grant them (:mod:`central.privacy`), by a throwaway central key that signs only this."""
    central, keys = SigningKey.generate(), PatientKeys.generate()
    body = grant_body(config.node_id, key.public_key, keys, reveal=True, lookup=True, names=True)
    assert body is not None
    _, raw, _ = sign_event(central, node=CENTRAL, seq=1, prev=ZERO_HASH, hlc=Hlc(wall_ms(), 0),
                           operator="demo", kind="privacy.key_granted", body=body)
    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules)
    try:
        await ledger.set_node_keys({CENTRAL: (central.public_key, CENTRAL)})
        await ledger.ingest([raw])
    finally:
        await ledger.close()


def build(directory: Path, language: str = "zh", *, sync: SyncConfig | None = None,
          login_hint: Hint = "") -> tuple[EdgeConfig, DemoCounterApp]:
    """A seeded demo cashier in ``directory`` and its app (not yet running)."""
    config = cashier_config(directory, language, sync)
    key = SigningKey.generate()
    write_key(config.key_file, key)
    asyncio.run(grant_standalone(config, key))
    patients = asyncio.run(seed(config, key))
    return config, cashier_app(config, key, patients, login_hint)


def cashier_app(config: EdgeConfig, key: SigningKey, patients: dict[str, str],
                login_hint: Hint = "") -> DemoCounterApp:
    reader, cards = make_reader(key, patients)
    return DemoCounterApp(config, cards, reader=reader, login_hint=login_hint)


# -- the whole stack: central, two counters, an offline double spend ------------------------

DOUBLE_SPEND_CARD = "8600000002"  # 李梅: ¥20.00 on deposit
CASHIER_CHARGE = {"code": "LB201", "name": "血常规", "qty": 1, "unit_price": 2_000}
PHARMACY_CHARGE = {"code": "DR301", "name": "阿莫西林胶囊 0.25g×24", "qty": 1,
                   "unit_price": 1_280}
STEP_TIMEOUT_S = 60.0  # each wait below; a busy machine is slow, a stuck one fails clearly


class DemoFailed(Exception):
    """A piece of the demo did not start or sync in time; the message says which."""


def _die_with_parent() -> None:
    """In a child: SIGTERM when the demo process dies, however it dies (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _rows(path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows from a ledger or central's store, read-only (as an auditor would)."""
    try:
        c = _ro(path)
    except sqlite3.OperationalError:
        return []
    try:
        return list(c.execute(sql, args))
    except sqlite3.OperationalError:  # not created yet, or busy: the caller asks again
        return []
    finally:
        c.close()


def wait_until(pred: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT_S,
               procs: dict[str, subprocess.Popen[bytes]] | None = None) -> None:
    """Poll ``pred`` until true; fail naming ``what`` (or a process that died) at the deadline."""
    deadline = time.monotonic() + timeout
    while not pred():
        for name, proc in (procs or {}).items():
            if proc.poll() is not None:
                raise DemoFailed(f"{name} stopped (exit {proc.returncode}) while waiting "
                                 f"for {what}")
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class DemoStack:
    """Central and two counters as processes in ``base``; :meth:`stop` ends them all."""

    base: Path
    language: str = "zh"
    central_config: Path = Path()
    central_db: Path = Path()
    port: int = 0
    central_key: str = ""
    cashier: EdgeConfig | None = None
    pharmacy: EdgeConfig | None = None
    cashier_key: SigningKey | None = None
    patients: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    conflict: tuple[str, int] = ("", 0)  # central's overdraft: id, fen
    say: Callable[[str], None] = lambda _text: None
    desk: str = "cashier"  # the desk the app shows (DESKS): another counter for the others
    desk_config: EdgeConfig | None = None
    desk_key: SigningKey | None = None

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, "ONECARD_SYNC_PING_S": "1", "ONECARD_SYNC_BACKOFF_MAX_S": "1"}
        with open(self.base / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self.procs[name] = proc
        return proc

    def _end(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        """Stop the sync daemons, then central: bounded (SIGKILL after 10 s each)."""
        for name in [n for n in self.procs if n != "central"] + ["central"]:
            self._end(name)

    def _wait(self, pred: Callable[[], bool], what: str) -> None:
        try:
            wait_until(pred, what, procs=self.procs)
        except DemoFailed as exc:
            tails = "".join(f"\n--- {name}.log\n{_tail(self.base / f'{name}.log')}"
                            for name in self.procs)
            raise DemoFailed(f"{exc}{tails}") from None

    def _start_sync(self) -> None:
        for cfg in (self.cashier, self.pharmacy):
            assert cfg is not None and cfg.path is not None
            self._spawn(f"sync-{cfg.node_id}",
                        [str(BIN / "onecard-edge"), "--config", str(cfg.path), "sync"])

    def _stop_sync(self) -> None:
        for name in [n for n in self.procs if n.startswith("sync-")]:
            self._end(name)

    # -- checks (read-only SQL) ---------------------------------------------------------------
    def central_events(self) -> int:
        rows = _rows(self.central_db, "SELECT COUNT(*) FROM events")
        return int(rows[0][0]) if rows else 0

    def counter_events(self, cfg: EdgeConfig) -> int:
        rows = _rows(cfg.db, "SELECT COUNT(*) FROM events")
        return int(rows[0][0]) if rows else 0

    def synced(self) -> bool:
        """Central and both counters hold the same events (every counter has them all)."""
        assert self.cashier is not None and self.pharmacy is not None
        n = self.central_events()
        return n > 0 and all(self.counter_events(c) == n for c in (self.cashier, self.pharmacy))

    def conflicts(self) -> list[tuple[str, str, str, int]]:
        """Central's conflict book: (id, kind, status, amount in fen)."""
        return [(str(a), str(b), str(c), int(d)) for a, b, c, d in _rows(
            self.central_db, "SELECT id, kind, status, amount FROM conflicts ORDER BY id")]

    # -- start ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, base: Path, language: str = "zh",
              say: Callable[[str], None] = lambda _text: None,
              desk: str = "cashier") -> DemoStack:
        """Everything up to: conflict raised at central, both counters synced, daemons up
        (and, for ``desk`` other than the cashier's, that desk's counter with the day's
        first visits, synced)."""
        stack = cls(base, language, say=say, desk=desk)
        try:
            stack._start()
            if desk != "cashier":
                stack._start_desk()
        except BaseException:
            stack.stop()
            raise
        return stack

    def _start(self) -> None:
        tr = Translator(self.language)
        central_dir = self.base / "central"
        self.central_config = central_dir / "central.toml"
        self.central_db = central_dir / "central.sqlite3"
        self.port = _free_port()
        out = _run(str(BIN / "onecard-central"), "--config", str(self.central_config), "init",
                   "--dir", str(central_dir), "--port", str(self.port))
        self.central_key = next((line.split()[-1] for line in out.splitlines()
                                 if line.startswith("central key")), "")
        if len(self.central_key) != 64:
            raise DemoFailed(f"could not read central's key from init:\n{out}")
        # one process is plenty for a demo (no signature-checking workers to start), and
        # the IT console speaks the demo's language where central's config has the key
        text = self.central_config.read_text(encoding="utf-8")
        text = text.replace("verify_workers = -1", "verify_workers = 0")
        text = re.sub(r'(?m)^language = "\w+"', f'language = "{self.language}"', text)
        self.central_config.write_text(text, encoding="utf-8")
        # the hospital's catalogue (the shipped sample), as its IT staff would publish it:
        # every counter holds it after its first sync
        _run(str(BIN / "onecard-central"), "--config", str(self.central_config), "catalogue",
             "import", "--sample", "--operator", "demo")
        self._spawn("central", [str(BIN / "onecard-central"), "--config",
                                str(self.central_config), "serve"])
        sync = SyncConfig(f"ws://127.0.0.1:{self.port}/sync", self.central_key)

        self.say(tr("demo.step.counters"))
        self.cashier = cashier_config(self.base / NODE, self.language, sync)
        self.cashier_key = SigningKey.generate()
        write_key(self.cashier.key_file, self.cashier_key)
        self.cashier = _loaded(self.cashier)
        self.pharmacy, pharmacy_key = _pharmacy(self.base / DESK2, self.language, sync)
        asyncio.run(_seed_pharmacy(self.pharmacy, pharmacy_key))
        for cfg, key in ((self.cashier, self.cashier_key), (self.pharmacy, pharmacy_key)):
            _run(str(BIN / "onecard-central"), "--config", str(self.central_config), "enrol",
                 cfg.node_id, "--key", key.public_key.hex(), "--role", cfg.role)
        self._wait(lambda: _healthy(self.port), "central to answer /healthz")

        self.say(tr("demo.step.sync"))
        self._start_sync()
        # the registration counter's first sync brings its patient keys (central grants them
        # as it connects): only then can it seal the sample patients' ID numbers and phones
        cashier_db = self.cashier.db
        self._wait(lambda: bool(_rows(cashier_db, "SELECT 1 FROM key_grants WHERE node = ?",
                                      NODE)), "central to grant the cashier its patient keys")
        self.patients = asyncio.run(seed(self.cashier, self.cashier_key))
        pharmacy_db = self.pharmacy.db
        self._wait(lambda: self.synced() and bool(_rows(
            pharmacy_db, "SELECT 1 FROM cards WHERE card_no = ?", DOUBLE_SPEND_CARD)),
            "both counters to sync the sample patients")

        self.say(tr("demo.step.offline"))
        self._stop_sync()  # the link is down: each counter works on what it knows
        asyncio.run(_charge(self.cashier, self.cashier_key, "demo", CASHIER_CHARGE, "检验科",
                            "chip"))
        asyncio.run(_charge(self.pharmacy, pharmacy_key, "demo", PHARMACY_CHARGE, "药房",
                            "manual"))

        self.say(tr("demo.step.reconnect"))
        self._start_sync()
        # central books the conflict, then announces it with a signed conflict.raised
        # (``announced``), which reaches both counters: tapping the card says so
        self._wait(lambda: bool(_rows(self.central_db, "SELECT 1 FROM conflicts WHERE kind = "
                                      "'overdraft' AND announced = 1")),
                   "central to raise and announce the overdraft")
        self._wait(self.synced, "both counters to receive the conflict")
        cid, _kind, _status, amount = next(c for c in self.conflicts() if c[1] == "overdraft")
        self.conflict = (cid, amount)

    def _start_desk(self) -> None:
        """A counter of role ``desk`` (triage, doctor, kiosk …) for the internal-medicine
        clinic, enrolled and synced, with the day's first visits registered at it."""
        assert self.cashier is not None and self.cashier_key is not None
        node = f"demo-{self.desk}"
        if node == DESK2:  # the demo's background pharmacy: this desk is its second window
            node = f"{DESK2}-2"
        directory = self.base / node
        directory.mkdir(parents=True, exist_ok=True)
        cfg = EdgeConfig(node_id=node, role=self.desk, db=directory / "ledger.sqlite3",
                         key_file=directory / "node.key", language=self.language,
                         printer=str(directory / "receipts.escpos"),
                         sync=self.cashier.sync,
                         department=DEPARTMENT.get(self.desk, DESK_DEPT), room=DESK_ROOM,
                         reader=ReaderConfig("simulated", "Demo reader"))
        (directory / "onecard-edge.toml").write_text(render(cfg), encoding="utf-8")
        key = SigningKey.generate()
        write_key(cfg.key_file, key)
        cfg = _loaded(cfg)
        ledger = asyncio.run(Ledger.open(cfg.db, node, key, rule_config=cfg.rules))
        try:
            asyncio.run(staff.add_staff(ledger, "demo", "演示", "1234",
                                        hasher=staff.cheap_hasher()))
        finally:
            asyncio.run(ledger.close())
        _run(str(BIN / "onecard-central"), "--config", str(self.central_config), "enrol",
             node, "--key", key.public_key.hex(), "--role", self.desk)
        self._spawn(f"sync-{node}", [str(BIN / "onecard-edge"), "--config", str(cfg.path),
                                     "sync"])
        self._wait(lambda: bool(_rows(cfg.db, "SELECT 1 FROM catalogue_head")) and bool(
            _rows(cfg.db, "SELECT 1 FROM cards WHERE card_no = ?", DEMO_PATIENTS[-1][3])),
            f"{node} to sync the catalogue and the sample patients")
        asyncio.run(_visits(cfg, key))
        self.desk_config, self.desk_key = cfg, key

    def app(self, console: str) -> DemoCounterApp:
        """The desk's app, its login screen telling the staff id, PIN and ``console``."""
        assert self.cashier is not None and self.cashier_key is not None
        amount = yuan(self.conflict[1])

        def hint(tr: Translator) -> str:  # in the app's language, whichever it shows
            return tr("demo.hint", console=console, amount=amount)

        if self.desk_config is not None:
            reader, cards = make_reader(self.cashier_key, self.patients)
            return DemoCounterApp(self.desk_config, cards, reader=reader, login_hint=hint)
        return cashier_app(self.cashier, self.cashier_key, self.patients, hint)

    def __enter__(self) -> DemoStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*argv: str) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise DemoFailed(f"{' '.join(Path(a).name for a in argv[:1])} {' '.join(argv[3:4])} "
                         f"failed: {out.stderr.strip()}")
    return out.stdout


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _loaded(cfg: EdgeConfig) -> EdgeConfig:
    """The config as the processes read it from its file (so ``path`` is set)."""
    from edge_node.config import load

    return load(cfg.db.parent / "onecard-edge.toml")


def _pharmacy(directory: Path, language: str, sync: SyncConfig) -> tuple[EdgeConfig, SigningKey]:
    directory.mkdir(parents=True, exist_ok=True)
    cfg = EdgeConfig(node_id=DESK2, role="pharmacy", db=directory / "ledger.sqlite3",
                     key_file=directory / "node.key", language=language, sync=sync,
                     printer=str(directory / "receipts.escpos"))
    (directory / "onecard-edge.toml").write_text(render(cfg), encoding="utf-8")
    key = SigningKey.generate()
    write_key(cfg.key_file, key)
    return _loaded(cfg), key


async def _seed_pharmacy(config: EdgeConfig, key: SigningKey) -> None:
    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules)
    try:
        await staff.add_staff(ledger, "demo", "演示药房", "1234", hasher=staff.cheap_hasher())
    finally:
        await ledger.close()


async def _charge(config: EdgeConfig, key: SigningKey, operator: str, item: dict[str, Any],
                  department: str, entry: str) -> None:
    """One charge on that counter's own ledger, through the service staff use."""
    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules)
    try:
        await CounterService(ledger, operator).charge(DOUBLE_SPEND_CARD, [item], department,
                                                      card_entry=entry)
    finally:
        await ledger.close()


DESK_DEPT, DESK_ROOM = "IM", "诊室3"  # the desks' clinic: internal medicine
DESKS = ("cashier", "triage", "doctor", "kiosk", "lab", "pharmacy")
#: the department each desk serves (the clinic's for the desks of a clinic)
DEPARTMENT = {"lab": "LAB", "pharmacy": "PHA-OP"}
#: the pharmacy's shelf in the demo: (code, quantity) received from the store room
DEMO_STOCK = (("D-IBU", 40), ("D-AMX", 2), ("D-AZI", 12), ("D-VITC", 5))
#: the day's orders the demo's doctor sent: the lab's requisition and the prescription
DEMO_ORDERS = (("LAB-CBC", 1, 0, 0, 0), ("LAB-GLU", 1, 0, 0, 0),
               ("D-IBU", 2, 300, 2, 3), ("D-AMX", 3, 500, 3, 5))


async def _visits(config: EdgeConfig, key: SigningKey) -> None:
    """The day's first visits to the desk's clinic, registered at the desk's counter; at
    the lab window and the pharmacy, also what the doctor then sent them (the consultation
    and its orders, signed here as the demo's stand-in for the doctor's station) and, at
    the pharmacy, the shelf's stock — one drug short of what is prescribed, to show a
    partial dispense."""
    from edge_node.clinic import ClinicService
    from edge_node.pharmacy import PharmacyService
    from edge_node.visits import VisitService

    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules)
    try:
        visits = VisitService(ledger, "demo", queue_tag=config.queue_tag)
        registered = [await visits.register(dept=DESK_DEPT, channel="triage", card_no=card,
                                            card_entry="chip")
                      for _name, _nid, _phone, card, _amount in DEMO_PATIENTS[::2]]
        if config.role == "pharmacy":
            shelf = PharmacyService(ledger, "demo", pharmacy=config.department)
            for code, qty in DEMO_STOCK:
                await shelf.receive(code, qty, "B2612", "store room")
        if config.role in ("lab", "pharmacy"):
            clinic = ClinicService(ledger, "dr.qian")
            for r in registered:
                await clinic.start(r.visit.visit_id)
                lines = [await clinic.line(*x) for x in DEMO_ORDERS]
                await clinic.send_order(r.visit.visit_id, lines, accept_warnings={
                    "order.stock_unknown", "order.stock_short", "order.partly_covered",
                    "order.not_covered", "order.same_drug"})
    finally:
        await ledger.close()


def run_demo(directory: Path, language: str, console: str, desk: str = "cashier") -> int:
    """Start the stack in ``directory``, run the cashier's app here, stop it all after."""
    tr = Translator(language)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM/SIGHUP while starting: clean up as for Ctrl+C

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)  # the app's own handlers take over while it runs
    say(tr("demo.step.central"))
    try:
        with DemoStack.start(directory, language, say, desk) as stack:
            stack.app(console).run()
    except DemoFailed as exc:
        say(tr("demo.failed", error=str(exc)))
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_node.demo",
                                description=__doc__.splitlines()[0])
    p.add_argument("--language", choices=("zh", "en"), default="zh")
    p.add_argument("--desk", choices=DESKS, default="cashier",
                   help="the desk to open: cashier (default), triage, doctor, kiosk, lab "
                        "or pharmacy")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onecard-demo-") as tmp:
        exe = BIN / "onecard-central"
        on_path = shutil.which("onecard-central") == str(exe)
        console = f"{exe.name if on_path else exe} --config {tmp}/central/central.toml console"
        return run_demo(Path(tmp), args.language, console, args.desk)


if __name__ == "__main__":
    sys.exit(main())
