"""The console's staff view (issue 11): ``p`` on the queue lists the staff central signed —
``onecard-central staff list``'s records — at 80x25 in both languages; ``d``/``e``
disable or enable the selected member after a confirmation, signed as central through
the same path as ``staff disable|enable`` and on the audit log; nothing is signed when
cancelled, when the state is already that, or without central's key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from central import staff, trail
from central.config import write_key
from central.console.app import ConsoleApp
from central.console.screens.staff import StaffChangeScreen, StaffScreen
from central.store import CentralStore, enrol_central
from edge_node.staff import cheap_hasher, hash_pin, new_pepper
from protocol.core import At, wall_of
from protocol.crypto import SigningKey
from protocol.event import CENTRAL, decode_event
from protocol.staff import StaffMember, last_change
from tests.test_console import rows, settle

SIZE = (80, 25)


async def _seed(tmp_path: Path) -> tuple[Path, Path]:
    key, key_file, db = SigningKey.generate(), tmp_path / "central.key", tmp_path / "c.sqlite3"
    write_key(key_file, key)
    pepper, hasher = new_pepper(), cheap_hasher()
    store = await CentralStore.open(db)
    try:
        await enrol_central(store, key)
        for sid, name, roles, at in (("wang.li", "王丽", ["cashier"], []),
                                     ("sup.chen", "陈主管", ["supervisor", "cashier"], []),
                                     ("dr.qian", "钱医生", ["doctor"], ["doctor-01"])):
            body: dict[str, Any] = {"staff_id": sid, "name": name, "roles": roles,
                                    "pin_hash": hash_pin("2468", pepper, hasher=hasher)}
            if at:
                body["at_nodes"] = at
            await staff.sign(store, key, sid, "staff.enrolled", body, operator="it.zhang",
                             must_exist=False)
        await staff.set_disabled(store, key, "dr.qian", True, reason="left",
                                 operator="it.zhang")
    finally:
        await store.close()
    return db, key_file


async def _central(db: Path) -> tuple[list[StaffMember], list[Any]]:
    store = await CentralStore.open(db)
    try:
        rows_ = await store.read("SELECT data FROM events WHERE node = ? ORDER BY seq",
                                 (CENTRAL,))
        return await staff.members(store), [decode_event(bytes(r[0])) for r in rows_]
    finally:
        await store.close()


def test_the_last_change_of_a_member_is_its_latest_signed_event() -> None:
    at = At("central", 1, 1_790_000_000_000).order
    later = At("central", 2, 1_790_000_005_000).order
    m = StaffMember("a", name="A", name_at=at, roles="cashier", roles_at=at, pin_at=at,
                    nodes_at=at, enrolled_at=at)
    assert last_change(m) == (at, "staff.enrolled") and wall_of(at) == 1_790_000_000_000
    assert last_change(m.evolve(disabled=1, status_at=later)) == (later, "staff.disabled")
    assert last_change(m.evolve(pin_at=later)) == (later, "staff.pin_reset")
    assert last_change(m.evolve(roles_at=later)) == (later, "staff.changed")
    assert last_change(StaffMember("b")) == ("", "") and wall_of("") == 0


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_console_lists_staff_and_disables_one_after_a_confirmation(
        tmp_path: Path, language: str) -> None:
    db, key_file = await _seed(tmp_path)
    en = language == "en"
    app = ConsoleApp(db, key_file, "it.li", language=language)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffScreen)
        got = rows(pilot, "#staff")
        members, _ = await _central(db)
        assert [r[0] for r in got] == [m.staff_id for m in members] == [
            "dr.qian", "sup.chen", "wang.li"]  # the records staff list prints, by id
        active, disabled = ("active", "disabled") if en else ("在用", "已停用")
        assert [(r[1], r[2]) for r in got] == [("钱医生", disabled), ("陈主管", active),
                                               ("王丽", active)]
        assert got[1][3] == ("cashier, supervisor" if en else "收费员、主管")
        assert got[0][4].endswith(" disabled" if en else " 停用")
        assert got[2][4].endswith(" enrolled" if en else " 登记")
        assert got[0][5] == "doctor-01" and got[2][5] == ("all" if en else "全部")
        legend = str(pilot.app.screen.query_one("#legend", Static).render())
        assert ("3, 1 disabled" if en else "3 人，1 人停用") in legend
        # 80 columns: who, their state, roles and last change are on screen (the counters
        # column scrolls)
        table = pilot.app.screen.query_one("#staff", DataTable)
        widths = [c.get_render_width(table) for c in table.ordered_columns]
        assert sum(widths[:5]) <= SIZE[0] - 1, widths

        # disable wang.li: a confirmation, a reason, signed as central by the operator
        table.move_cursor(row=2)
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffChangeScreen)
        pilot.app.screen.query_one("#reason", Input).value = "on leave"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffScreen)
        assert rows(pilot, "#staff")[2][2] == disabled
        message = str(pilot.app.screen.query_one("#message", Static).render())
        assert "wang.li" in message and "#" in message
        members, events = await _central(db)
        assert next(m for m in members if m.staff_id == "wang.li").disabled == 1
        ev = events[-1]
        assert (ev.kind, ev.operator, ev.body) == (
            "staff.disabled", "it.li", {"staff_id": "wang.li", "reason": "on leave"})
        store = await CentralStore.open(db)
        try:
            log = await trail.query(store, trail.Filters(who="it.li", what=("staff",)))
        finally:
            await store.close()
        assert [(e.kind, e.who) for e in log] == [("staff.disabled", "it.li")]

        # nothing signed: already disabled; enable cancelled
        await pilot.press("d")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffScreen)
        message = str(pilot.app.screen.query_one("#message", Static).render())
        assert ("already disabled" if en else "当前已是“已停用”") in message
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffChangeScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffScreen)
        assert len((await _central(db))[1]) == len(events)
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(pilot.app.screen, StaffScreen)


async def test_a_look_only_console_lists_staff_but_signs_nothing(tmp_path: Path) -> None:
    db, _ = await _seed(tmp_path)
    before = len((await _central(db))[1])
    app = ConsoleApp(db, None, "it.li", language="en")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert len(rows(pilot, "#staff")) == 3
        await pilot.press("e")  # dr.qian, disabled
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffChangeScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, StaffChangeScreen)
        error = str(pilot.app.screen.query_one("#error", Static).render())
        assert "Not signed" in error and "no central key" in error
        await pilot.press("escape")
        await settle(pilot)
    assert len((await _central(db))[1]) == before
