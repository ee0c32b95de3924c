"""A real central store (SQLite) holding signed events from three counters and the
conflicts the reconciler raised over them, at pinned times — for the console's tests.

- overdraft (3 days ago): cashier-01 and cashier-02 each charged ¥50.00 of ¥65.00;
- lost card used (an hour ago): lost at cashier-01, charged ¥20.00 at cashier-02;
- duplicate patient (an hour ago): one national ID registered at both;
- clock skew: cashier-03's clock ran ten minutes fast.

Patients' names, ID numbers and phones are sealed with the tests' patient keys
(:data:`tests.conftest.TEST_PATIENT_KEYS`), as counters seal them; the keys file sits
beside the database (:func:`patient_keys_file`) for the console to open them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from central.config import write_key
from central.conflicts import ConflictWatch
from central.store import CentralStore, enrol_central
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import sign_event
from protocol.hlc import Hlc
from tests.conftest import TEST_PATIENT_KEYS

NOW_MS = 1_790_000_000_000  # pinned "now" of the console in these tests
HOUR, DAY = 3_600_000, 86_400_000
ID_MALE = "110101199003070011"
CENTRAL_SEED = hashlib.sha256(b"central").digest()


def patient_keys_file(db: Path) -> Path:
    """The patient keys file :func:`seed_central` wrote beside ``db``."""
    return db.parent / "patient-data.key"


def node_key(node: str) -> SigningKey:
    return SigningKey(hashlib.sha256(node.encode()).digest())


@dataclass
class Chains:
    """Each node's chain of signed events, to be pushed as a node would."""

    encoded: dict[str, list[bytes]] = field(default_factory=dict)
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def add(self, node: str, wall: int, kind: str, body: dict[str, Any]) -> None:
        seq, prev = self.heads.get(node, (0, ZERO_HASH))
        _, data, h = sign_event(node_key(node), node=node, seq=seq + 1, prev=prev,
                                hlc=Hlc(wall, 0), operator="op.wang", kind=kind, body=body)
        self.heads[node] = (seq + 1, h)
        self.encoded.setdefault(node, []).append(data)

    def patient(self, node: str, wall: int, pid: str, card: str, deposit: int, name: str,
                nid: str = "", phone: str = "") -> None:
        details = {"name": name, "phone": phone or f"1380000{card[-4:]}"}
        if nid:
            details["national_id"] = nid
        body: dict[str, Any] = {"patient_id": pid, "sex": "M", "birth_date": "1990-03-07",
                                **TEST_PATIENT_KEYS.sealed_details(pid, details)}
        self.add(node, wall, "patient.registered", body)
        self.add(node, wall + 1, "card.issued", {"card_no": card, "patient_id": pid})
        self.add(node, wall + 2, "account.deposited",
                 {"patient_id": pid, "amount": deposit, "method": "cash",
                  "receipt_no": f"D-{pid}"})

    def double_spend(self, wall: int, pid: str = "P-1", card: str = "8600000001",
                     charges: tuple[str, str] = ("C-1", "C-2")) -> None:
        """¥65.00 registered at cashier-01; each counter then takes ¥50.00 of it offline."""
        self.patient("cashier-01", wall, pid, card, 6_500, "张三")
        self.charge("cashier-01", wall + 100, pid, charges[0], 5_000, card)
        self.charge("cashier-02", wall + 101, pid, charges[1], 5_000, card)

    def charge(self, node: str, wall: int, pid: str, cid: str, amount: int, card: str) -> None:
        self.add(node, wall, "account.charged",
                 {"charge_id": cid, "patient_id": pid, "card_no": card, "amount": amount,
                  "department": "lab", "items": [{"code": "LAB-CBC", "name": "血常规", "qty": 1,
                                                  "unit_price": amount}]})


async def seed_central(directory: Path, database: str = "") -> tuple[Path, Path]:
    """Create ``central.sqlite3``, ``central.key`` and the patient keys
    (:func:`patient_keys_file`) in ``directory``; return the database's and the key's
    paths.  ``database``: a PostgreSQL URL to seed instead of the SQLite file."""
    db, key_file = directory / "central.sqlite3", directory / "central.key"
    key = SigningKey(CENTRAL_SEED)
    write_key(key_file, key)
    TEST_PATIENT_KEYS.write(patient_keys_file(db))
    ch = Chains()
    t = NOW_MS - 3 * DAY
    ch.double_spend(t, "P-cashier-01-000001", "8600000001",
                    ("C-cashier-01-000004", "C-cashier-02-000001"))
    t = NOW_MS - HOUR
    ch.patient("cashier-01", t, "P-cashier-01-000005", "8600000002", 10_000, "李四")
    ch.add("cashier-01", t + 10, "card.reported_lost",
           {"card_no": "8600000002", "patient_id": "P-cashier-01-000005",
            "verified_by": "id_card"})
    ch.charge("cashier-02", t + 20, "P-cashier-01-000005", "C-cashier-02-000002", 2_000,
              "8600000002")
    ch.patient("cashier-01", t + 30, "P-cashier-01-000009", "8600000003", 1_000, "王五",
               nid=ID_MALE)
    ch.patient("cashier-02", t + 40, "P-cashier-02-000003", "8600000004", 2_000, "王五",
               nid=ID_MALE)
    ch.patient("cashier-03", NOW_MS + 10 * 60_000, "P-cashier-03-000001", "8600000005", 3_000,
               "赵六")
    store = await CentralStore.open(database or db)
    try:
        await enrol_central(store, key)
        for node in ("cashier-01", "cashier-02", "cashier-03"):
            await store.enrol(node, node_key(node).public_key, "cashier", now_ms=NOW_MS - 4 * DAY)
        for node in ("cashier-01", "cashier-02", "cashier-03"):
            await store.ingest(node, ch.encoded[node], now_ms=NOW_MS - 60_000)
        await store.touch("cashier-01", online=True, now_ms=NOW_MS - 5_000)
        # cashier-02 said in its last hello that it holds 7 events central has not got
        head02 = (await store.head("cashier-02")).seq
        await store.touch("cashier-02", reported_seq=head02 + 7, now_ms=NOW_MS - 60_000)
        # the book only: no conflict.raised, so central's own chain starts empty (the
        # console tests count what resolving signs, and the snapshots pin the clock)
        await ConflictWatch(store, announce=False).catch_up()
    finally:
        await store.close()
    return db, key_file
