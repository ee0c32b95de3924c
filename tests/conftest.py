"""Shared fixtures: real SQLite ledgers in a temp dir, with fixed keys and a fake wall clock."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_node.ledger import Ledger
from edge_node.service import CounterService
from protocol.crypto import SigningKey
from protocol.privacy import PatientKeys

# Valid GB 11643 numbers (checksums verified by tests/test_nationalid.py).
ID_MALE = "110101199003070011"
ID_FEMALE = "11010519491231002X"


#: the hospital's patient keys in unit tests (central grants them in process tests)
TEST_PATIENT_KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))


def node_key(node: str) -> SigningKey:
    """A deterministic key per node name (tests only)."""
    import hashlib

    return SigningKey(hashlib.sha256(node.encode()).digest())


class FakeClock:
    """A wall clock that moves 1 ms per reading, from a fixed start."""

    def __init__(self, start: int = 1_790_000_000_000) -> None:
        self._t = itertools.count(start)

    def __call__(self) -> int:
        return next(self._t)


LedgerFactory = Callable[..., Awaitable[Ledger]]


@pytest.fixture(autouse=True)
def _patient_keys_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ledger a test opens in this process holds :data:`TEST_PATIENT_KEYS` without a
    grant from central, unless the test passes ``patient_keys=None`` (then it holds what
    central granted it, as a counter does).  Counter *processes* take central's grant; the
    test centrals hold the same keys (:func:`install_test_patient_keys`)."""
    real = Ledger.open.__func__  # type: ignore[attr-defined]

    async def open_with_keys(cls: type[Ledger], *args: Any, **kw: Any) -> Ledger:
        kw.setdefault("patient_keys", TEST_PATIENT_KEYS)
        return await real(cls, *args, **kw)  # type: ignore[no-any-return]
    monkeypatch.setattr(Ledger, "open", classmethod(open_with_keys))


def install_test_patient_keys(keys_file: Path) -> None:
    """Make a test central's patient keys :data:`TEST_PATIENT_KEYS` (replacing init's), so
    what tests seal in process and what central grants its counters are one pair."""
    keys_file.unlink(missing_ok=True)
    TEST_PATIENT_KEYS.write(keys_file)


@pytest.fixture
async def make_ledger(tmp_path: Path) -> AsyncIterator[LedgerFactory]:
    opened: list[Ledger] = []

    async def factory(node: str = "cashier-01", **kw: object) -> Ledger:
        kw.setdefault("clock", FakeClock())
        path = tmp_path / f"{node}.sqlite3"
        led = await Ledger.open(path, node, node_key(node), **kw)  # type: ignore[arg-type]
        opened.append(led)
        return led

    yield factory
    for led in opened:
        try:
            await led.close()
        except ValueError:
            pass


@pytest.fixture
async def ledger(make_ledger: LedgerFactory) -> Ledger:
    return await make_ledger()


@pytest.fixture
async def service(ledger: Ledger) -> CounterService:
    return CounterService(ledger, "op.wang")


async def registered(service: CounterService, card_no: str = "8600000001",
                     deposit: int = 10_000, national_id: str = ID_MALE) -> str:
    """Register a patient with a card and a first deposit; return the patient id."""
    r = await service.register_patient(name="张三", national_id=national_id,
                                       phone="13800138000", card_no=card_no,
                                       first_deposit=deposit, method="cash")
    return r.patient.patient_id


def item(price: int, qty: int = 1, code: str = "LAB-CBC",
         name: str = "血常规") -> dict[str, object]:
    return {"code": code, "name": name, "qty": qty, "unit_price": price}


async def business_signed(led: Ledger) -> int:
    """How many of its own events a counter signed that are business, not the audit
    trail (``audit.*``: logins, records opened — protocol/trail.py): what "nothing was
    signed" means in a test that logs in or taps a card."""
    rows = await led.run(lambda conn: conn.execute(
        "SELECT count(*) FROM events WHERE node = ? AND kind NOT LIKE 'audit.%'",
        (led.node_id,)).fetchall())
    return int(rows[0][0])
