"""A patient's whole day across the hospital's counters, through central and back.

``python -m edge_node.walkthrough`` (``make walkthrough``): central's real websocket
server on 127.0.0.1 and the counters, each with its own signed ledger and its real sync
client, all in this one process.  Central publishes the sample catalogue (charged at
execution).  The story (``--story day``, the default): a card and a deposit at the
cashier; a visit and its queue number; the doctor's consultation with a diagnosis, a lab
requisition and a prescription (and a second lab order); the lab window checks both in,
charges them and prints the specimen label; the doctor cancels the second (its charge
comes back); one pharmacy window loses the link and dispenses the prescription from what
it knows while the other window dispenses it too; on reconnect central raises the
double dispense by itself, IT resolves it (the patient brings the extra back) and the
remedy reaches every counter; the cashier settles.  Every balance, stock figure and
order agrees at the end, and every ledger verifies.

``--story overdraft``: the cashier's half only — a patient registers; the link drops and
two counters charge the same card for what each ledger allows; central raises the
overdraft, IT resolves it and both counters then say what to do when the card is tapped.

Printed in the configured language: ``--language``, else ``LANG`` (``en…`` → English),
else Chinese.  Files go to a temporary folder deleted at the end, or to ``--keep DIR``,
kept (and named at the end).  Exit 0 when every step happened as told, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central import catalogue
from central import conflicts as cf
from central.config import CentralConfig, render_config
from central.config import write_key as write_central_key
from central.server import run_server
from central.store import CentralStore
from edge_node.config import EdgeConfig, SyncConfig, render, write_key
from edge_node.i18n import Translator
from edge_node.ledger import Ledger
from edge_node.notices import notices
from edge_node.service import CounterService
from edge_node.sync import daemon
from protocol.crypto import SigningKey
from protocol.money import yuan

CARD = "8600000001"
STEP_TIMEOUT_S = 60.0  # each wait; a stuck step fails with its name, never hangs
SYNC = daemon.SyncOptions(ping_interval_s=1.0, ping_timeout_s=5.0, backoff_max_s=0.5)
IT_OPERATOR = "it.zhao"


class WalkFailed(Exception):
    """A step did not happen as the walkthrough says it does."""


def _count(db: Path, sql: str) -> int:
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:
        return -1
    try:
        return int(c.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return -1
    finally:
        c.close()


async def until(pred: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not await pred():
        if time.monotonic() > deadline:
            raise WalkFailed(f"timed out after {STEP_TIMEOUT_S:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Desk:
    """One counter: its config, its ledger (for the service staff use) and its sync."""

    config: EdgeConfig
    ledger: Ledger
    service: CounterService
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def node(self) -> str:
        return self.config.node_id

    def online(self) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(daemon.run(self.config, stop=self.stop, options=SYNC))

    async def offline(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, STEP_TIMEOUT_S)
            self.task = None

    def events(self) -> int:
        return _count(self.config.db, "SELECT COUNT(*) FROM events")

    async def shown(self, tr: Translator) -> list[str]:
        """What tapping the card tells staff at this counter, in its language."""
        view = await self.service.lookup_card(CARD)
        history = await self.service.history(view.patient.patient_id, 50)
        return [n.text(tr) for n in notices(view.patient, view.account, view.cards, history)]

    async def balance(self) -> int:
        return (await self.service.lookup_card(CARD)).account.balance


#: each story's counters: node, role, the operator working there
NODES = {
    "overdraft": (("cashier-01", "cashier", "wang.fang"), ("pharmacy-01", "pharmacy", "li.na")),
    "day": (("cashier-01", "cashier", "wang.fang"), ("doctor-01", "doctor", "dr.qian"),
            ("lab-01", "lab", "sun.li"), ("pharmacy-01", "pharmacy", "li.na"),
            ("pharmacy-02", "pharmacy", "zhou.jie")),
}
DEPARTMENT = {"doctor": "IM", "lab": "LAB", "pharmacy": "PHA-OP"}


async def walk(base: Path, tr: Translator, say: Callable[[str], None],
               story: str = "day") -> None:
    # -- central: config, key, the counters it admits, its server --------------------------
    cdir = base / "central"
    cdir.mkdir(parents=True)
    (cdir / "central.toml").write_text(
        render_config(port=0).replace("verify_workers = -1", "verify_workers = 0"),
        encoding="utf-8")
    ccfg = CentralConfig.load(cdir / "central.toml")
    ckey = SigningKey.generate()
    write_central_key(ccfg.key_file, ckey)
    nodes = NODES[story]
    keys = {node: SigningKey.generate() for node, _, _ in nodes}
    store = await CentralStore.open(ccfg.store_at, max_skew_ms=ccfg.max_skew_ms)
    try:
        for node, role, _ in nodes:
            await store.enrol(node, keys[node].public_key, role)
    finally:
        await store.close()
    if story == "day":  # the hospital's price list, as IT publishes it before opening
        published = await catalogue.run(ccfg, "import", path=catalogue.SAMPLE,
                                         charge_at="execution", operator=IT_OPERATOR,
                                         out=io.StringIO(), err=io.StringIO())
        if published != 0:
            raise WalkFailed("central could not publish the sample catalogue")

    stop_central = asyncio.Event()
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    # run_server prints its "listening on" line for operators; here the story says it
    with contextlib.redirect_stdout(io.StringIO()):
        server = asyncio.create_task(run_server(ccfg, stop=stop_central,
                                                on_listening=listening.set_result))
        starting: list[asyncio.Future[Any]] = [server, listening]
        done, _ = await asyncio.wait(starting, timeout=STEP_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
    if listening not in done:
        if server.done():
            server.result()  # raises what stopped it
        raise WalkFailed("central did not start listening")
    port = listening.result()
    url = f"ws://127.0.0.1:{port}/sync"
    say(tr("walk.central", url=url))
    for node, role, _ in nodes:
        say(tr("walk.enrolled", node=node, role=role, fp=keys[node].fingerprint))

    desks: list[Desk] = []
    try:
        for node, role, operator in nodes:
            d = base / node
            cfg = EdgeConfig(node_id=node, role=role, db=d / "ledger.sqlite3",
                             key_file=d / "node.key", language=tr.language,
                             department=DEPARTMENT.get(role, ""),
                             sync=SyncConfig(url, ckey.public_key.hex()))
            write_key(cfg.key_file, keys[node])
            (d / "onecard-edge.toml").write_text(render(cfg), encoding="utf-8")  # if kept
            ledger = await Ledger.open(cfg.db, node, keys[node], rule_config=cfg.rules)
            desks.append(Desk(cfg, ledger, CounterService(ledger, operator)))
        # each counter's first connection: central grants it the patient keys its role
        # gets, and the registration counter can seal ID numbers and phones from then on
        for desk in desks:
            desk.online()

        async def granted() -> bool:
            return await desks[0].ledger.patient_keys() is not None
        await until(granted, "central to grant the registration counter its patient keys")
        for desk in desks:
            await desk.offline()
        await (_day if story == "day" else _story)(desks, ccfg, ckey, tr, say)
    finally:
        for desk in desks:
            await desk.offline()
            await desk.ledger.close()
        stop_central.set()
        await asyncio.wait_for(server, STEP_TIMEOUT_S)


async def _story(desks: list[Desk], ccfg: CentralConfig, ckey: SigningKey, tr: Translator,
                 say: Callable[[str], None]) -> None:
    cashier, pharmacy = desks

    def central_events() -> int:
        return _count(ccfg.db, "SELECT COUNT(*) FROM events")

    async def synced() -> bool:
        n = central_events()
        return n > 0 and all(d.events() == n for d in desks)

    # 1. registration at the cashier, known everywhere through central
    r = await cashier.service.register_patient(
        name="张伟", national_id="11010519491231002X", phone="13800138000", card_no=CARD,
        first_deposit=10_000, method="cash")
    pid = r.patient.patient_id
    say(tr("walk.registered", node=cashier.node, name=r.patient.name, pid=pid, card=CARD,
           amount=yuan(10_000), balance=yuan(r.balance)))
    for d in desks:
        d.online()
    await until(synced, "both counters to sync through central")
    say(tr("walk.synced", node=pharmacy.node, n=pharmacy.events(), name=r.patient.name,
           card=CARD, balance=yuan(await pharmacy.balance())))

    # 2. the link drops; each counter charges what its own ledger allows
    say(tr("walk.offline"))
    for d in desks:
        await d.offline()
    for d, item in ((cashier, {"code": "EX102", "name": "心电图检查", "qty": 2,
                               "unit_price": 2_500}),
                    (pharmacy, {"code": "DR302", "name": "布洛芬缓释胶囊 0.3g×20", "qty": 3,
                                "unit_price": 1_850})):
        before = await d.balance()
        c = await d.service.charge(CARD, [item], "门诊", card_entry="manual")
        say(tr("walk.charged", node=d.node, item=item["name"],
               amount=yuan(before - c.balance), before=yuan(before), balance=yuan(c.balance)))

    # 3. the link returns: central's reconciler raises the overdraft by itself
    say(tr("walk.online"))
    for d in desks:
        d.online()
    store = await CentralStore.open(ccfg.store_at, max_skew_ms=ccfg.max_skew_ms)
    try:
        async def raised() -> bool:  # booked, and announced to the counters (signed)
            return _count(ccfg.db, "SELECT COUNT(*) FROM conflicts WHERE kind = 'overdraft' "
                          "AND announced = 1") == 1

        await until(raised, "central to raise and announce the overdraft")
        [row] = [c for c in await cf.list_conflicts(store) if c.kind == "overdraft"]
        say(tr("walk.raised", cid=row.id, amount=yuan(row.amount),
               nodes=("、" if tr.language == "zh" else ", ").join(row.nodes)))
        await until(synced, "central's conflict.raised to reach both counters")
        for d in desks:
            say(tr("walk.tap", node=d.node, text=" / ".join(await d.shown(tr))))

        # 4. IT resolves it: the remedy is signed by central (what `conflicts resolve` does)
        remedy = "debt"
        reason = tr("walk.reason")
        say(tr("walk.resolving", op=IT_OPERATOR, cid=row.id, remedy=tr(f"walk.remedy.{remedy}"),
               reason=reason))
        signed = await cf.resolve(store, ckey, row.id, remedy, reason=reason,
                                  operator=IT_OPERATOR)
        done = await cf.get_conflict(store, row.id)
        assert done is not None
        if done.status != "resolved":
            raise WalkFailed(f"{row.id} is {done.status} after resolving")
        say(tr("walk.resolved", events=", ".join(f"{e.kind} (central #{e.seq})"
                                                 for e in signed)))
    finally:
        await store.close()

    # 5. the remedy reaches both counters: the same balance, the same instruction
    await until(synced, "the remedy to reach both counters")
    balances = {d.node: await d.balance() for d in desks}
    shown = {d.node: await d.shown(tr) for d in desks}
    for d in desks:
        say(tr("walk.remedy_here", node=d.node, balance=yuan(balances[d.node]),
               text=" / ".join(shown[d.node])))
    expected = 10_000 - 5_000 - 5_550
    if set(balances.values()) != {expected}:
        raise WalkFailed(f"balances {balances}, expected {yuan(expected)} at both counters")
    if shown[cashier.node] != shown[pharmacy.node] or not shown[cashier.node]:
        raise WalkFailed(f"the counters say different things: {shown}")
    for d in desks:
        report = await d.ledger.verify()
        if not report.ok:
            raise WalkFailed(f"{d.node}: {report}")
        say(tr("walk.verified", node=d.node, n=report.checked))
    say(tr("walk.done", amount=yuan(-expected)))


async def _day(desks: list[Desk], ccfg: CentralConfig, ckey: SigningKey, tr: Translator,
               say: Callable[[str], None]) -> None:
    """The whole day (see the module's docstring), each step said as it happens."""
    from edge_node import staff
    from edge_node.clinic import ClinicService
    from edge_node.lab import LabService
    from edge_node.labels import label_text
    from edge_node.pharmacy import PharmacyService
    from edge_node.visits import VisitService
    from protocol.order import Order
    from protocol.stock import Stock

    cashier, doctor, lab, first, second = desks

    def central_events() -> int:
        return _count(ccfg.db, "SELECT COUNT(*) FROM events")

    async def synced() -> bool:
        n = central_events()
        return n > 0 and all(d.events() == n for d in desks if d.task is not None)

    def operator(d: Desk) -> str:
        return d.service.operator

    sep = "、" if tr.language == "zh" else ", "

    # 1. the morning: every counter online, the pharmacy's stock from the store room
    for d in desks:
        d.online()
    await until(synced, "every counter to hold the catalogue")
    say(tr("walk.day.catalogue", n=central_events()))
    shelf = PharmacyService(first.ledger, operator(first), pharmacy="PHA-OP")
    for code, qty in (("D-IBU", 20), ("D-AMX", 10)):
        got = await shelf.receive(code, qty, "B2612", "store room")
        say(tr("walk.day.stock_in", node=first.node, item=got.row.name or code, qty=qty,
               have=got.row.on_hand))

    # 2. the cashier: a card and a deposit
    r = await cashier.service.register_patient(
        name="张伟", national_id="11010519491231002X", phone="13800138000", card_no=CARD,
        first_deposit=30_000, method="cash")
    pid = r.patient.patient_id
    say(tr("walk.registered", node=cashier.node, name=r.patient.name, pid=pid, card=CARD,
           amount=yuan(30_000), balance=yuan(r.balance)))
    await until(synced, "the patient to reach every counter")

    # 3. the doctor's station: the visit, the consultation, the orders
    visits = VisitService(doctor.ledger, operator(doctor))
    v = (await visits.register(dept="IM", channel="triage", card_no=CARD,
                               doctor_id="dr.qian")).visit
    say(tr("walk.day.visit", node=doctor.node, name=r.patient.name, number=v.label,
           fee=yuan(v.fee)))
    clinic = ClinicService(doctor.ledger, operator(doctor))
    started = await clinic.start(v.visit_id)
    await clinic.diagnose(v.visit_id, "急性上呼吸道感染", "J06.9")
    say(tr("walk.day.consult", node=doctor.node, fee=yuan(started.consult_fee),
           diagnosis="J06.9 急性上呼吸道感染"))
    sent = await clinic.send_order(v.visit_id, [
        await clinic.line("LAB-CBC"), await clinic.line("LAB-GLU"),
        await clinic.line("D-IBU", 2, 300, 2, 3), await clinic.line("D-AMX", 1, 500, 3, 5)],
        accept_warnings={"order.stock_unknown", "order.stock_short", "order.partly_covered",
                         "order.not_covered"})
    crp = await clinic.send_order(v.visit_id, [await clinic.line("LAB-CRP")])
    orders = {o.exec_dept: o for o in sent.orders}
    lab_order, drugs, crp_order = orders["LAB"], orders["PHA-OP"], crp.orders[0]
    for o in (lab_order, drugs, crp_order):
        say(tr("walk.day.order", node=doctor.node, order=o.order_id, dept=o.exec_dept,
               items=sep.join(ln[1] for ln in o.line_list()), total=yuan(o.total)))
    await until(synced, "the orders to reach the lab and the pharmacies")

    # 4. the lab window: check in (charged now), the specimen label, the result
    window = LabService(lab.ledger, operator(lab), dept="LAB")
    for o in (lab_order, crp_order):
        got = await window.check_in(o.order_id)
        say(tr("walk.day.checked_in", node=lab.node, order=o.order_id, number=got.number,
               amount=yuan(got.charged), balance=yuan(got.balance), specimen=got.specimen_id))
        if o is lab_order:
            label = window.label(got, language=tr.language)
            if label is None:
                raise WalkFailed("a lab check-in printed no specimen label")
            say(label_text(label))
    await window.collect(lab_order.order_id)
    await window.execute(lab_order.order_id)
    await window.result(lab_order.order_id, "WBC 6.1×10⁹/L；GLU 5.2 mmol/L")
    say(tr("walk.day.result", node=lab.node, order=lab_order.order_id))
    await until(synced, "the check-ins to reach the doctor")

    # 5. the doctor cancels the second lab order: its charge comes back
    back = await clinic.cancel_order(crp_order.order_id, "与血常规重复")
    say(tr("walk.day.cancelled", node=doctor.node, order=crp_order.order_id,
           amount=yuan(back.orders[0].refunded), balance=yuan(back.balance)))
    await until(synced, "the cancel to reach every counter")

    # 6. the pharmacy: one window offline, both dispense the same prescription
    say(tr("walk.day.pharmacy_offline", node=first.node))
    await first.offline()
    for d in (second, first):
        got_d = await PharmacyService(d.ledger, operator(d), pharmacy="PHA-OP").dispense(
            drugs.order_id)
        say(tr("walk.day.dispensed", node=d.node, order=drugs.order_id,
               items=sep.join(f"{x.name}×{x.qty}" for x in got_d.items),
               amount=yuan(got_d.amount), balance=yuan(got_d.balance)))
    say(tr("walk.day.pharmacy_online", node=first.node))
    first.online()
    await until(synced, "the offline dispensing to reach central")

    # 7. central raises the double dispense by itself; IT resolves it
    store = await CentralStore.open(ccfg.store_at, max_skew_ms=ccfg.max_skew_ms)
    try:
        async def raised() -> bool:
            return _count(ccfg.db, "SELECT COUNT(*) FROM conflicts WHERE kind = "
                          "'double_dispense' AND announced = 1") == 1

        await until(raised, "central to raise the double dispense")
        rows = await cf.list_conflicts(store)
        [row] = [c for c in rows if c.kind == "double_dispense"]
        if len(rows) != 1:
            raise WalkFailed(f"expected one conflict, central holds {[c.kind for c in rows]}")
        say(tr("walk.day.raised", cid=row.id, amount=yuan(row.amount),
               nodes=sep.join(row.nodes)))
        reason = tr("walk.day.reason")
        say(tr("walk.resolving", op=IT_OPERATOR, cid=row.id,
               remedy=tr("walk.day.remedy"), reason=reason))
        signed = await cf.resolve(store, ckey, row.id, "bring_back", reason=reason,
                                  operator=IT_OPERATOR)
        say(tr("walk.resolved", events=", ".join(f"{e.kind} (central #{e.seq})"
                                                 for e in signed)))
    finally:
        await store.close()
    await until(synced, "the remedy to reach every counter")

    # 8. the cashier settles: what is left goes back in cash, a supervisor approving
    await staff.add_staff(cashier.ledger, "sup.chen", "陈主管", "2468", role="supervisor",
                          hasher=staff.cheap_hasher())
    ok = await staff.approve(cashier.ledger, "sup.chen", "2468", operator=operator(cashier))
    before = await cashier.balance()
    settled = await cashier.service.settle(CARD, "cash", approval=ok)
    say(tr("walk.day.settled", node=cashier.node, amount=yuan(before),
           balance=yuan(settled.balance), supervisor=ok.name))
    await until(synced, "the settlement to reach every counter")

    # 9. everything agrees, and every ledger verifies
    pictures = {}
    for d in desks:
        o = await d.ledger.get(Order, drugs.order_id)
        s = [await d.ledger.get(Stock, ("PHA-OP", c)) for c in ("D-IBU", "D-AMX")]
        pictures[d.node] = (await d.balance(), o.stage if o else "",
                            tuple(x.on_hand if x else 0 for x in s))
    if len(set(pictures.values())) != 1:
        raise WalkFailed(f"the counters disagree: {pictures}")
    balance, stage, (ibu, amx) = pictures[cashier.node]
    if (balance, stage, ibu, amx) != (0, "dispensed", 18, 9):
        raise WalkFailed(f"expected settled, dispensed, 18 and 9 on the shelf: {pictures}")
    say(tr("walk.day.agree", n=len(desks), ibu=ibu, amx=amx))
    for d in desks:
        report = await d.ledger.verify()
        if not report.ok:
            raise WalkFailed(f"{d.node}: {report}")
        say(tr("walk.verified", node=d.node, n=report.checked))
    say(tr("walk.day.done"))


def default_language() -> str:
    return "en" if os.environ.get("LANG", "").lower().startswith("en") else "zh"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_node.walkthrough",
                                description=__doc__.splitlines()[0])
    p.add_argument("--language", choices=("zh", "en"), default=None,
                   help="zh or en (default: en when $LANG starts with en, else zh)")
    p.add_argument("--keep", metavar="DIR", type=Path, default=None,
                   help="put the ledgers and central's store in DIR (new) and keep them")
    p.add_argument("--story", choices=tuple(NODES), default="day",
                   help="day: a patient's whole day across five counters (default); "
                        "overdraft: the cashier's offline double spend")
    args = p.parse_args(argv)
    tr = Translator(args.language or default_language())

    def say(text: str) -> None:
        print(text, flush=True)

    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        print(tr("walk.keep_not_empty", dir=args.keep), file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        base = args.keep or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="onecard-walk-")))
        base.mkdir(parents=True, exist_ok=True)
        # the server's and sync clients' logs go to a file beside the ledgers, not here
        handler = logging.FileHandler(base / "walkthrough.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        stack.callback(root.removeHandler, handler)
        stack.callback(handler.close)
        try:
            asyncio.run(walk(base, tr, say, args.story))
        except (WalkFailed, cf.ResolveError) as exc:
            say(tr("walk.failed", error=str(exc)))
            return 1
        if args.keep is not None:
            say(tr("walk.kept", dir=args.keep.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
