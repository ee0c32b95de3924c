"""A small hospital catalogue for tests, signed by central and given to counter ledgers.

``entries()`` is a realistic slice (clinic departments, a lab, an exam room, an
outpatient pharmacy; registration and consultation fees; lab tests, exams and drugs
with dose limits, insurance classes and an allergen; two doctors; templates), and
``give_catalogue(ledger)`` signs it with central's test key and ingests it, as a
counter would receive it through sync.
"""

from __future__ import annotations

from typing import Any

from edge_node.ledger import Ledger
from protocol.catalogue import publication
from protocol.crypto import ZERO_HASH
from protocol.event import CENTRAL, sign_event
from protocol.hlc import Hlc
from tests.conftest import node_key

PHARMACY = "PHA-OP"
LAB = "LAB"
EXAM = "RAD"
CLINIC = "IM"


def entries() -> dict[str, list[dict[str, Any]]]:
    drug = {"type": "drug", "unit": "盒", "dept": PHARMACY, "stock_unit": "盒"}
    return {
        "depts": [
            {"code": "IM", "name": "内科", "pinyin": "nk", "type": "clinic"},
            {"code": "SURG", "name": "外科", "pinyin": "wk", "type": "clinic"},
            {"code": "PED", "name": "儿科", "pinyin": "ek", "type": "clinic"},
            {"code": LAB, "name": "检验科", "pinyin": "jyk", "type": "lab"},
            {"code": EXAM, "name": "放射科", "pinyin": "fsk", "type": "exam"},
            {"code": PHARMACY, "name": "门诊西药房", "pinyin": "mzxyf", "type": "pharmacy"},
        ],
        "doctors": [
            {"doctor_id": "dr.zhao", "name": "赵敏", "dept": "IM", "title": "主任医师",
             "fee_code": "REG-EXP"},
            {"doctor_id": "dr.qian", "name": "钱程", "dept": "IM", "title": "住院医师",
             "fee_code": "REG-GEN"},
            {"doctor_id": "dr.sun", "name": "孙丽", "dept": "SURG", "title": "主治医师",
             "fee_code": "REG-GEN"},
        ],
        "sessions": [
            {"doctor_id": "dr.zhao", "weekday": d, "period": "am", "capacity": 30}
            for d in (1, 3, 5)] + [
            {"doctor_id": "dr.qian", "weekday": d, "period": p, "capacity": 50}
            for d in range(1, 8) for p in ("am", "pm")],
        "items": [
            {"code": "REG-GEN", "type": "registration", "name": "普通挂号", "pinyin": "ptgh",
             "unit": "次", "price": 500, "insurance": "甲"},
            {"code": "REG-EXP", "type": "registration", "name": "专家挂号", "pinyin": "zjgh",
             "unit": "次", "price": 1500, "insurance": "乙"},
            {"code": "CONSULT", "type": "consultation", "name": "诊查费", "pinyin": "zcf",
             "unit": "次", "price": 1000, "insurance": "甲"},
            {"code": "LAB-CBC", "type": "lab", "name": "血常规", "pinyin": "xcg", "unit": "次",
             "price": 2500, "insurance": "甲", "dept": LAB},
            {"code": "LAB-CRP", "type": "lab", "name": "C反应蛋白", "pinyin": "cfydb",
             "unit": "次", "price": 4000, "insurance": "乙", "dept": LAB},
            {"code": "LAB-GLU", "type": "lab", "name": "空腹血糖", "pinyin": "kfxt",
             "unit": "次", "price": 800, "insurance": "甲", "dept": LAB},
            {"code": "RAD-CXR", "type": "exam", "name": "胸部正位片", "pinyin": "xbzwp",
             "unit": "次", "price": 8000, "insurance": "甲", "dept": EXAM},
            {"code": "RAD-CT", "type": "exam", "name": "头颅CT平扫", "pinyin": "tlctps",
             "unit": "次", "price": 26000, "insurance": "丙", "dept": EXAM},
            {**drug, "code": "D-AMX", "name": "阿莫西林胶囊", "pinyin": "amxljn",
             "price": 1850, "insurance": "甲", "form": "胶囊", "strength": "0.25g×24粒",
             "dose_unit": "mg", "max_single": 1000, "max_daily": 4000,
             "allergen": "青霉素类"},
            {**drug, "code": "D-IBU", "name": "布洛芬缓释胶囊", "pinyin": "blfhsjn",
             "price": 1260, "insurance": "甲", "form": "胶囊", "strength": "0.3g×20粒",
             "dose_unit": "mg", "max_single": 600, "max_daily": 1200},
            {**drug, "code": "D-AZI", "name": "阿奇霉素片", "pinyin": "aqmsp",
             "price": 2390, "insurance": "乙", "form": "片", "strength": "0.25g×6片",
             "dose_unit": "mg", "max_single": 500, "max_daily": 500},
            {**drug, "code": "D-VITC", "name": "维生素C片", "pinyin": "wssCp",
             "price": 350, "insurance": "丙", "form": "片", "strength": "0.1g×100片",
             "dose_unit": "mg", "max_single": 1000, "max_daily": 3000},
        ],
        "templates": [
            {"code": "TPL-URI", "name": "上呼吸道感染", "type": "prescription",
             "dept": "IM", "lines": [{"code": "D-IBU", "qty": 1, "dose": 300, "per_day": 2,
                                      "days": 3},
                                     {"code": "D-AZI", "qty": 1, "dose": 500, "per_day": 1,
                                      "days": 3}]},
            {"code": "TPL-FEVER", "name": "发热检查", "type": "requisition", "dept": "IM",
             "lines": [{"code": "LAB-CBC", "qty": 1}, {"code": "LAB-CRP", "qty": 1}]},
        ],
    }


def catalogue_events(version: int = 1, charge_at: str = "send", *, seq: int = 1,
                     wall: int = 1_789_000_000_000,
                     changes: dict[str, list[dict[str, Any]]] | None = None,
                     prev: bytes = ZERO_HASH) -> list[bytes]:
    """Central's signed events publishing the test catalogue as ``version`` (central's
    chain from ``seq``/``prev``); ``changes`` replaces whole entry lists."""
    key = node_key(CENTRAL)
    out = []
    data = {**entries(), **(changes or {})}
    for i, (kind, body) in enumerate(publication(version, charge_at, data)):
        _, raw, prev = sign_event(key, node=CENTRAL, seq=seq + i, prev=prev,
                                  hlc=Hlc(wall + i, 0), operator="it.admin", kind=kind,
                                  body=body)
        out.append(raw)
    return out


async def give_catalogue(ledger: Ledger, version: int = 1, charge_at: str = "send",
                         **kw: Any) -> None:
    """Central's key known to ``ledger`` and the catalogue ingested, as sync does it."""
    await ledger.set_node_keys({CENTRAL: (node_key(CENTRAL).public_key, "central")})
    events = catalogue_events(version, charge_at, **kw)
    assert await ledger.ingest(events) == len(events)
