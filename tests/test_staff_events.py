"""Staff and roles signed by central (issue 11): they sync to counters, log in offline,
disabling reaches every counter; peppered PIN hashes; each action checks the role."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from edge_node import config as cfgmod
from edge_node import roles, staff
from edge_node.clinic import ClinicService
from edge_node.errors import OperationRefused
from edge_node.lab import LabService
from edge_node.ledger import Ledger
from edge_node.pharmacy import PharmacyService
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from protocol.staff import ROLES, StaffMember, expand_roles
from tests.conftest import ID_MALE, node_key
from tests.support.sync_cluster import Central, Counter, run_cli, wait_for


# ------------------------------------------------------------------ through real processes
def _cli(central: Central, *args: str) -> str:
    r = run_cli("--config", str(central.config), "staff", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _staff_rows(counter: Counter) -> dict[str, tuple[int, str]]:
    c = sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0]: (r[1], r[2]) for r in c.execute(
            "SELECT staff_id, disabled, pin_hash FROM staff_members")}
    finally:
        c.close()


async def _login(cfg: cfgmod.EdgeConfig, sid: str, pin: str, *, pepper: bytes | None = None,
                 now_ms: int = 1) -> staff.Staff:
    async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
        return await staff.login(led, sid, pin, now_ms=now_ms, desk=cfg.role,
                                 pepper=cfg.load_pepper() if pepper is None else pepper)


async def _approve(cfg: cfgmod.EdgeConfig, sid: str, pin: str) -> staff.Approval:
    async with await Ledger.open(cfg.db, cfg.node_id, cfg.load_key()) as led:
        return await staff.approve(led, sid, pin, operator="op.x", now_ms=1,
                                   pepper=cfg.load_pepper())


def _verifies(pin_hash: str, secret: str) -> bool:
    try:
        return bool(PasswordHasher().verify(pin_hash, secret))
    except VerificationError:
        return False


def _refused(coro: Awaitable[Any]) -> str:
    try:
        asyncio.run(coro)  # type: ignore[arg-type]
    except staff.LoginRefused as exc:
        return exc.code
    raise AssertionError("not refused")


def test_central_staff_sync_log_in_offline_and_disabling_reaches_the_counter(
        tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    pepper_file = central.dir / "staff.pepper"
    assert pepper_file.stat().st_mode & 0o777 == 0o600  # init made it, private
    counter = Counter.create(tmp_path, "cashier-01", central)
    shutil.copy(pepper_file, counter.dir / "staff.pepper")  # installed at enrolment
    cfg = cfgmod.load(counter.config)
    assert cfg.load_pepper() == bytes.fromhex(pepper_file.read_text().strip())

    it = ("--operator", "it.zhang")
    _cli(central, "add", "wang.li", "王丽", "--role", "cashier", "--pin", "2468", *it)
    _cli(central, "add", "sup.chen", "陈主管", "--role", "supervisor,cashier", "--pin", "1357",
         *it)
    _cli(central, "add", "dr.qian", "钱医生", "--role", "doctor", "--at", "doctor-01",
         "--pin", "9999", *it)
    # refused, nothing signed: an id twice, a role that does not exist, a bad PIN
    for args in (("add", "wang.li", "又一个", "--role", "cashier", "--pin", "1111"),
                 ("add", "x.y", "某人", "--role", "admin", "--pin", "1111"),
                 ("add", "x.y", "某人", "--role", "cashier", "--pin", "12"),
                 ("disable", "nobody")):
        r = run_cli("--config", str(central.config), "staff", *args, *it)
        assert r.returncode == 1, (args, r.stdout)
    listed = _cli(central, "list")
    assert "wang.li" in listed and "doctor-01" in listed and "x.y" not in listed

    central.start()
    try:
        counter.start_sync()
        wait_for(lambda: len(_staff_rows(counter)) == 3, 30, "the staff events to sync")
        counter.stop()  # offline from here: the counter logs staff in from its records

        who = asyncio.run(_login(cfg, "wang.li", "2468"))
        assert (who.name, who.roles) == ("王丽", frozenset({"cashier"}))
        assert _refused(_login(cfg, "wang.li", "0000", now_ms=2)) == "login.wrong"
        assert _refused(_login(cfg, "dr.qian", "9999")) == "login.not_here"
        assert _refused(_login(cfg, "wang.li", "2468", pepper=b"")) == "login.no_pepper"
        assert asyncio.run(_approve(cfg, "sup.chen", "1357")).staff_id == "sup.chen"
        assert _refused(_approve(cfg, "wang.li", "2468")) == "approval.not_supervisor"

        # central disables the supervisor and resets a PIN; it reaches the counter
        _cli(central, "disable", "sup.chen", "--reason", "left", *it)
        _cli(central, "reset-pin", "wang.li", "--pin", "8642", *it)
        assert "disabled" in _cli(central, "list")
        counter.start_sync()
        wait_for(lambda: _staff_rows(counter)["sup.chen"][0] == 1, 30, "the disable to sync")
        wait_for(lambda: _verifies(_staff_rows(counter)["wang.li"][1],
                                   staff.peppered(cfg.load_pepper(), "8642")),
                 30, "the new PIN to sync")
        counter.stop()
    finally:
        counter.stop()
        central.stop()

    assert _refused(_login(cfg, "sup.chen", "1357")) == "login.disabled"
    assert _refused(_approve(cfg, "sup.chen", "1357")) == "login.disabled"  # no approvals
    assert _refused(_login(cfg, "wang.li", "2468", now_ms=3)) == "login.wrong"
    assert asyncio.run(_login(cfg, "wang.li", "8642", now_ms=4)).staff_id == "wang.li"

    # a copied ledger without the pepper cannot confirm a right guess
    copy = tmp_path / "stolen.sqlite3"
    shutil.copy(counter.db, copy)
    c = sqlite3.connect(copy)
    stored = c.execute("SELECT pin_hash FROM staff_members WHERE staff_id='wang.li'").fetchone()[0]
    c.close()
    ph = PasswordHasher()
    for guess in ("8642", staff.peppered(b"", "8642"), staff.peppered(b"\0" * 32, "8642")):
        with pytest.raises(VerificationError):
            ph.verify(stored, guess)
    assert ph.verify(stored, staff.peppered(cfg.load_pepper(), "8642"))


# ------------------------------------------------------------------------- in one process
def _central_event(seq: int, wall: int, kind: str, body: dict[str, Any]) -> Any:
    ev, _, _ = sign_event(node_key(CENTRAL), node=CENTRAL, seq=seq, prev=ZERO_HASH,
                          hlc=Hlc(wall, 0), operator="it", kind=kind, body=body)
    return ev


HASH_A = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGEAAAAAAAA"
HASH_B = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGIAAAAAAAA"


def test_the_staff_fold_is_the_same_in_any_order() -> None:
    events = [
        _central_event(1, 10, "staff.enrolled", {"staff_id": "wang.li", "name": "王丽",
                                                 "roles": ["cashier"], "pin_hash": HASH_A}),
        _central_event(2, 20, "staff.changed", {"staff_id": "wang.li", "roles": ["doctor"],
                                                "at_nodes": ["doctor-01"]}),
        _central_event(3, 30, "staff.disabled", {"staff_id": "wang.li"}),
        _central_event(4, 40, "staff.enabled", {"staff_id": "wang.li"}),
        _central_event(5, 50, "staff.pin_reset", {"staff_id": "wang.li", "pin_hash": HASH_B}),
        _central_event(6, 60, "staff.disabled", {"staff_id": "wang.li", "reason": "left"}),
        _central_event(7, 70, "staff.changed", {"staff_id": "wang.li", "name": "王丽丽"}),
    ]
    seen = set()
    for order in itertools.permutations(events):
        m = REGISTRY.fold(order).get(StaffMember, "wang.li")
        assert m is not None
        seen.add((m.name, m.roles, m.at_nodes, m.pin_hash, m.disabled))
    assert seen == {("王丽丽", "doctor", "doctor-01", HASH_B, 1)}
    # a counter cannot sign staff: flagged, never folded
    forged, _, _ = sign_event(node_key("cashier-01"), node="cashier-01", seq=1, prev=ZERO_HASH,
                              hlc=Hlc(99, 0), operator="x", kind="staff.enabled",
                              body={"staff_id": "wang.li"})
    assert REGISTRY.fold([*events, forged]).get(StaffMember, "wang.li").disabled == 1


def test_old_roles_and_the_desk_role_of_counter_local_staff() -> None:
    assert expand_roles("admin") == {"it", "supervisor"}
    assert staff.Staff("root", "管理员", "admin").is_supervisor
    assert expand_roles("cashier,nonsense") == {"cashier"}
    assert not roles.actions_of("it") & {a for a in roles.ACTIONS if a.startswith("money.")}
    assert roles.actions_of("cashier") <= roles.actions_of("supervisor")
    assert set(roles.DESK_ROLE.values()) <= set(ROLES)


async def test_counter_local_staff_act_in_their_desk_role_and_central_wins(
        tmp_path: Path) -> None:
    key = node_key("doctor-01")
    async with await Ledger.open(tmp_path / "d.sqlite3", "doctor-01", key) as led:
        await staff.add_staff(led, "wang", "王丽", "1234", hasher=staff.cheap_hasher())
        who = await staff.login(led, "wang", "1234", now_ms=1, desk="doctor")
        assert who.roles == {"cashier", "doctor"}
        # central enrols the same id: central's record wins (its PIN, its roles)
        pepper = staff.new_pepper()
        h = staff.hash_pin("5678", pepper, hasher=staff.cheap_hasher())
        _, data, _ = sign_event(node_key(CENTRAL), node=CENTRAL, seq=1, prev=ZERO_HASH,
                                 hlc=Hlc(5, 0), operator="it", kind="staff.enrolled",
                                 body={"staff_id": "wang", "name": "王丽", "roles": ["lab"],
                                       "pin_hash": h})
        await led.set_node_keys({CENTRAL: (node_key(CENTRAL).public_key, CENTRAL)})
        assert await led.ingest([data]) == 1
        with pytest.raises(staff.LoginRefused) as refused:
            await staff.login(led, "wang", "1234", now_ms=2, desk="doctor", pepper=pepper)
        assert refused.value.code == "login.wrong"
        who = await staff.login(led, "wang", "5678", now_ms=3, desk="doctor", pepper=pepper)
        assert who.roles == {"lab"}  # no desk role for central's staff
        assert [s.staff_id for s in await staff.list_staff(led)] == ["wang"]


# -- every action, every role, through the real services ------------------------------------
Call = Callable[[Ledger, frozenset[str]], Awaitable[Any]]
CARD = "8600000001"
CALLS: dict[str, Call] = {
    "patient.register": lambda led, r: CounterService(led, "op", roles=r).report_lost(
        CARD, "身份证"),
    "money.deposit": lambda led, r: CounterService(led, "op", roles=r).deposit(
        CARD, 1_000, "cash"),
    "money.charge": lambda led, r: CounterService(led, "op", roles=r).charge(
        CARD, [{"code": "X", "name": "x", "qty": 1, "unit_price": 100}], "IM"),
    "money.refund": lambda led, r: CounterService(led, "op", roles=r).refund(
        "C-x-1", 100, "deposit", "dr.qian", "wrong"),
    "money.settle": lambda led, r: CounterService(led, "op", roles=r).settle(CARD),
    "money.void": lambda led, r: CounterService(led, "op", roles=r).void_charge(
        "C-x-1", "sup", "wrong"),
    "money.credit": lambda led, r: CounterService(led, "op", roles=r).grant_credit(
        CARD, 100, "emergency", staff.Approval("sup", "主管", "supervisor")),
    "money.close_day": lambda led, r: CounterService(led, "op", roles=r).close_day(
        None, 0),  # type: ignore[arg-type]  (refused before the day is read)
    "visit.register": lambda led, r: VisitService(led, "op", roles=r).register(
        dept="IM", channel="counter", card_no=CARD),
    "visit.queue": lambda led, r: VisitService(led, "op", roles=r).skip("V-x-1"),
    "clinic.consult": lambda led, r: ClinicService(led, "op", roles=r).diagnose("V-x-1", "感冒"),
    "clinic.order": lambda led, r: ClinicService(led, "op", roles=r).cancel_order("O-x-1", "r"),
    "lab.execute": lambda led, r: LabService(led, "op", dept="LAB", roles=r).collect("O-x-1"),
    "pharmacy.dispense": lambda led, r: PharmacyService(
        led, "op", pharmacy="PHA-OP", roles=r).dispense("O-x-1"),
    "pharmacy.return": lambda led, r: PharmacyService(
        led, "op", pharmacy="PHA-OP", roles=r).return_rest("O-x-1", "r", "dr.qian"),
    "pharmacy.stock": lambda led, r: PharmacyService(
        led, "op", pharmacy="PHA-OP", roles=r).receive("D-AMX", 10),
}


def test_every_action_of_the_role_table_is_exercised() -> None:
    # approve: staff.approve, above; patient.details: shown or sealed (tests/test_privacy.py)
    assert set(CALLS) | {"approve", "patient.details"} == set(roles.ACTIONS)


async def test_each_role_can_do_only_its_actions(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "c.sqlite3", "cashier-01",
                                 node_key("cashier-01")) as led:
        await CounterService(led, "seed").register_patient(  # roles None: not checked
            name="张三", national_id=ID_MALE, phone="13800138000", card_no=CARD,
            first_deposit=10_000)
        for role, (action, call) in itertools.product(ROLES, CALLS.items()):
            got = ""
            try:
                await call(led, frozenset({role}))
            except OperationRefused as exc:
                got = exc.codes[0]
            except Exception as exc:  # an allowed call with a stand-in argument
                got = type(exc).__name__
            if role in roles.ACTIONS[action]:
                assert got != "role.not_allowed", (role, action)
            else:
                assert got == "role.not_allowed", (role, action, got)
        # and allowed really means done: a cashier's deposit, a triage nurse's refused
        before = (await CounterService(led).lookup_card(CARD)).account.balance
        await CounterService(led, "wang", roles=frozenset({"cashier"})).deposit(
            CARD, 2_000, "cash")
        assert (await CounterService(led).lookup_card(CARD)).account.balance == before + 2_000
        with pytest.raises(OperationRefused) as refused:
            await CounterService(led, "nurse", roles=frozenset({"triage"})).dry().deposit(
                CARD, 2_000, "cash")
        assert refused.value.codes == ["role.not_allowed"]


# -- the counter's screens: central's staff log in with the pepper, the roles go along ------
async def test_the_login_screen_logs_central_staff_in_and_carries_their_roles(
        tmp_path: Path) -> None:
    from tests.tui_harness import home, log_in, make_app, make_config, open_ledger

    cfg = make_config(tmp_path, pepper_file=tmp_path / "staff.pepper")
    pepper = staff.new_pepper()
    staff.write_pepper(cfg.pepper_file, pepper)
    led = await open_ledger(cfg)
    _, data, _ = sign_event(node_key(CENTRAL), node=CENTRAL, seq=1, prev=ZERO_HASH,
                            hlc=Hlc(5, 0), operator="it", kind="staff.enrolled",
                            body={"staff_id": "nurse.li", "name": "李护士", "roles": ["triage"],
                                  "pin_hash": staff.hash_pin("2468", pepper,
                                                             hasher=staff.cheap_hasher())})
    await led.set_node_keys({CENTRAL: (node_key(CENTRAL).public_key, CENTRAL)})
    await led.ingest([data])
    app = make_app(cfg, led)
    async with app.run_test() as pilot:
        await log_in(pilot, "nurse.li", "2468")
        assert app.counter is not None and app.counter.operator is not None
        assert app.counter.operator.staff_id == "nurse.li"
        service = app.counter.service
        assert service.roles == {"triage"}
        with pytest.raises(OperationRefused) as refused:  # a cashier's business: refused
            await service.dry().deposit(CARD, 1_000, "cash")
        assert refused.value.codes == ["role.not_allowed"]
        assert home(pilot) is not None
    await led.close()
