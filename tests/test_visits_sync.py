"""Visits and queues through REAL sync: `onecard-central serve` and counter sync daemons as
processes on 127.0.0.1, real SQLite files; the catalogue signed by central's own key.

* a visit registered at a triage counter is in the queue of the doctor's counter and of
  a second triage counter for the same department;
* two triage counters offline at the same time each register visits to the same
  department and day; once they reconnect every queue label is distinct — on every
  counter and at central — and the queues agree on every counter.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from central.config import CentralConfig, load_key
from central.store import CentralStore
from edge_node import config as cfgmod
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.catalogue import publication
from protocol.event import decode_event
from protocol.visit import queue_label
from tests.support.clinic import entries
from tests.support.sync_cluster import Central, Counter, converged, wait_for

pytestmark = pytest.mark.slow

CARD = "8600000001"


async def publish_catalogue(central: Central) -> int:
    """Central signs the test catalogue (version 1) into its own store; the events."""
    cfg = CentralConfig.load(central.config)
    key = load_key(cfg.key_file)
    store = await CentralStore.open(central.db)
    try:
        items = publication(1, "send", entries())

        async def plan(query: Any) -> tuple[list[tuple[str, dict[str, Any]]], list[Any]]:
            return list(items), []
        events = await store.append_central(key, plan, operator="it.admin")
    finally:
        await store.close()
    return len(events)


async def _open(counter: Counter) -> Ledger:
    cfg = cfgmod.load(counter.config)
    return await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)


async def new_patient(counter: Counter) -> int:
    led = await _open(counter)
    try:
        before = (await led.head()).seq
        await CounterService(led, "op.wang").register_patient(
            name="张三", sex="M", birth_date="1990-03-07", phone="13800138000", card_no=CARD,
            first_deposit=100_000)
        return (await led.head()).seq - before
    finally:
        await led.close()


async def register(counter: Counter, n: int) -> list[str]:
    """``n`` visits to 内科 at ``counter`` (as its triage desk does): their labels."""
    led = await _open(counter)
    try:
        visits = VisitService(led, "nurse.li")
        return [(await visits.register(dept="IM", channel="triage", card_no=CARD,
                                       again=True)).visit.label
                for _ in range(n)]
    finally:
        await led.close()


async def _queue(counter: Counter) -> list[tuple[str, str]]:
    led = await Ledger.open(counter.db, counter.node)  # reading only: no key
    try:
        return [(e.visit.label, e.visit.status) for e in await VisitService(led).queue("IM")]
    finally:
        await led.close()


def queue(counter: Counter) -> list[tuple[str, str]]:
    return asyncio.run(_queue(counter))


def central_labels(central: Central) -> list[str]:
    with sqlite3.connect(f"file:{central.db}?mode=ro", uri=True) as c:
        rows = c.execute("SELECT data FROM events").fetchall()
    out = []
    for (data,) in rows:
        ev = decode_event(bytes(data))
        if ev.kind == "visit.registered":
            out.append(queue_label(str(ev.body["queue_tag"]), int(ev.body["queue_no"])))
    return out


def test_a_visit_registered_at_triage_is_in_the_queue_elsewhere_and_offline_numbers_never_collide(
        tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    total = asyncio.run(publish_catalogue(central))
    t1 = Counter.create(tmp_path, "triage-01", central, role="triage")
    t2 = Counter.create(tmp_path, "triage-02", central, role="triage")
    doc = Counter.create(tmp_path, "doctor-01", central, role="doctor")
    counters = [t1, t2, doc]
    total += asyncio.run(new_patient(t1))
    central.start()
    try:
        for c in counters:
            c.start_sync()
        wait_for(lambda: converged(central, counters, total), 60, "catalogue and patient")

        # online: registered at triage-01, in the queue at the doctor's and triage-02
        assert asyncio.run(register(t1, 1)) == ["T01-001"]
        total += 1
        wait_for(lambda: queue(doc) == [("T01-001", "waiting")], 30, "the doctor's queue")
        wait_for(lambda: queue(t2) == [("T01-001", "waiting")], 30, "triage-02's queue")

        # both triage counters offline at once, registering to the same department and day
        t1.stop()
        t2.stop()
        first = asyncio.run(register(t1, 3))
        second = asyncio.run(register(t2, 3))
        total += 6
        assert first == ["T01-002", "T01-003", "T01-004"]
        assert second == ["T02-001", "T02-002", "T02-003"]  # its own series: no clash
        assert len(queue(doc)) == 1  # the doctor has seen none of them yet
        t1.start_sync()
        t2.start_sync()
        wait_for(lambda: converged(central, counters, total), 60, "reconnected")

        labels = central_labels(central)
        assert len(labels) == 7 and len(set(labels)) == 7
        queues = [queue(c) for c in counters]
        for q in queues:
            assert sorted(label for label, _ in q) == sorted(labels)
            assert len({label for label, _ in q}) == len(q)
            assert q == queues[0]  # the same queue, in the same order, everywhere
        assert all(status == "waiting" for _, status in queues[0])
        assert queues[0][0][0] == "T01-001"  # called in registration order

        # a call at the doctor's reaches the triage desks
        led_doc = asyncio.run(_open(doc))

        async def call() -> str:
            try:
                v = await VisitService(led_doc, "dr.zhao").call_next("IM", "诊室3")
                assert v is not None
                return v.label
            finally:
                await led_doc.close()
        assert asyncio.run(call()) == "T01-001"
        total += 1
        wait_for(lambda: queue(t1)[0] == ("T01-001", "called")
                 and queue(t2)[0] == ("T01-001", "called"), 30, "the call synced")
    finally:
        for c in counters:
            c.stop()
        central.stop()
