"""The dry run: the same service call through the ledger's one append path, rolled back.

It refuses exactly what the append refuses, writes nothing (events, heads, clock,
projections), signs nothing, needs no key, and previews what the append would give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from protocol.account import Account
from protocol.core import RuleConfig
from protocol.privacy import SEALED_FIELDS
from tests.conftest import (
    ID_FEMALE,
    TEST_PATIENT_KEYS,
    FakeClock,
    LedgerFactory,
    item,
    node_key,
    registered,
)

NOW = 1_790_000_000_000  # 2026-09-21 (Asia/Shanghai)


async def everything(led: Ledger) -> tuple[Any, ...]:
    meta = await led.run(lambda c: c.execute("SELECT * FROM meta ORDER BY key").fetchall())
    return (await led.event_count(), await led.node_heads(), meta,
            await led.dump_projections())


async def both_refuse(svc: CounterService, call: str, *args: Any, **kw: Any) -> list[str]:
    """``call`` refused the same way dry and for real, nothing written by either."""
    before = await everything(svc.ledger)
    with pytest.raises(OperationRefused) as dry:
        await getattr(svc.dry(), call)(*args, **kw)
    assert await everything(svc.ledger) == before
    with pytest.raises(OperationRefused) as real:
        await getattr(svc, call)(*args, **kw)
    assert await everything(svc.ledger) == before
    assert dry.value.problems == real.value.problems
    return dry.value.codes


async def test_dry_run_previews_and_writes_nothing(service: CounterService) -> None:
    led = service.ledger
    before = await everything(led)
    preview = await service.dry().register_patient(
        name="李梅", national_id=ID_FEMALE, phone="13912345678", card_no="8600000002",
        first_deposit=20_000)
    assert preview.preview and preview.balance == 20_000
    assert [e.kind for e in preview.events] == ["patient.registered", "card.issued",
                                                "account.deposited"]
    assert all(e.sig == b"" for e in preview.events)  # nothing signed
    assert await everything(led) == before
    real = await service.register_patient(
        name="李梅", national_id=ID_FEMALE, phone="13912345678", card_no="8600000002",
        first_deposit=20_000)
    assert not real.preview
    # the preview is the append to come, but for the signature (and the nonces of the
    # sealed details: the same details, sealed afresh)
    def opened(body: dict[str, Any]) -> dict[str, Any]:
        pid = body.get("patient_id", "")
        return {k: TEST_PATIENT_KEYS.open(k, pid, v) if k in ("name", *SEALED_FIELDS) else v
                for k, v in body.items()}
    assert [(e.seq, e.kind, opened(e.body)) for e in preview.events] == \
        [(e.seq, e.kind, opened(e.body)) for e in real.events]
    assert (real.balance, real.number) == (preview.balance, preview.number)


async def test_dry_run_refuses_what_the_append_refuses(service: CounterService) -> None:
    await registered(service)
    card = "8600000001"
    assert await both_refuse(service, "charge", card, [item(20_000)], "门诊") == \
        ["charge.insufficient"]
    assert await both_refuse(service, "register_patient", name="王五", sex="M",
                             birth_date="1980-02-30", phone="13800000000",
                             card_no="8600000003", first_deposit=1000) == ["patient.birth_date"]
    assert await both_refuse(service, "register_patient", name="王五", sex="M",
                             birth_date="1980-02-28", phone="1", card_no="8600000003",
                             first_deposit=1000) == ["field.format"]
    assert await both_refuse(service, "register_patient", name="王五", sex="M",
                             birth_date="1980-02-28", phone="13800000000",
                             card_no="8600000003", first_deposit=499) == \
        ["deposit.below_registration_fee"]
    await service.report_lost(card, "id_card")
    assert await both_refuse(service, "deposit", card, 1000, "cash") == ["card.lost"]
    assert await both_refuse(service, "deposit", "8699999999", 1000, "cash") == \
        ["card.unknown"]


async def test_birth_dates_after_today_or_before_1900_are_refused(
        make_ledger: LedgerFactory) -> None:
    led = await make_ledger(clock=FakeClock(NOW))
    svc = CounterService(led, "op")
    base = dict(name="王五", sex="M", phone="13800000000", card_no="8600000003",
                first_deposit=1000)
    assert await both_refuse(svc, "register_patient", birth_date="2026-09-22", **base) == \
        ["patient.birth_date_future"]
    assert await both_refuse(svc, "register_patient", birth_date="1899-12-31", **base) == \
        ["patient.birth_date_too_early"]
    r = await svc.register_patient(birth_date="2026-09-21", **base)  # born today
    assert r.patient.birth_date == "2026-09-21"
    assert await both_refuse(svc, "update_patient", r.patient.patient_id,
                             birth_date="2027-01-01") == ["patient.birth_date_future"]


async def test_the_day_is_the_counters_in_its_time_zone(tmp_path: Path) -> None:
    # 2026-09-20 17:00 UTC is already the 21st in Shanghai, still the 20th in London
    at = 1_789_923_600_000
    for tz, ok in (("Asia/Shanghai", True), ("Europe/London", False)):
        led = await Ledger.open(tmp_path / f"{tz.replace('/', '-')}.sqlite3", "cashier-01",
                                node_key("cashier-01"), clock=lambda: at,
                                rule_config=RuleConfig(timezone=tz))
        svc = CounterService(led, "op")
        try:
            call = svc.dry().register_patient(name="王五", sex="M", birth_date="2026-09-21",
                                              phone="13800000000", card_no="8600000003",
                                              first_deposit=1000)
            if ok:
                assert (await call).preview
            else:
                with pytest.raises(OperationRefused, match="after today"):
                    await call
        finally:
            await led.close()


async def test_check_ops_needs_no_key_and_an_operator(ledger: Ledger, tmp_path: Path) -> None:
    svc = CounterService(ledger, "op")
    pid = await registered(svc)
    keyless = await Ledger.open(tmp_path / "cashier-01.sqlite3", "cashier-01")  # no key
    try:
        op = Op("account.deposited", {"patient_id": pid, "amount": 500, "method": "cash",
                                      "receipt_no": "D-x"})
        result = await keyless.check_ops(op, "op")
        assert result.state.get_or_new(Account, pid).balance == 10_500
        assert await keyless.event_count() == 3
        with pytest.raises(OperationRefused) as info:
            await keyless.check_ops(op, "")
        assert info.value.codes == ["operator.missing"]
    finally:
        await keyless.close()
