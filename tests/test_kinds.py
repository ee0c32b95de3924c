"""Every event kind's schema and semantic validator, with what each refuses."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.domain import REGISTRY
from tests.conftest import ID_FEMALE, TEST_PATIENT_KEYS

SCHEMAS = {k.name: k.body.SCHEMA for k in REGISTRY}
validate_body = REGISTRY.validate

#: a patient registered in a ledger from before details were sealed (protocol.privacy):
#: the checks of a clear ID number still hold for those
LEGACY_REGISTERED = {"patient_id": "P-a-000001", "name": "李四", "sex": "F",
                     "birth_date": "1949-12-31", "national_id": ID_FEMALE,
                     "phone": "13800138000"}

VALID: dict[str, dict[str, Any]] = {
    "patient.registered": {"patient_id": "P-a-000001", "sex": "F",
                           "birth_date": "1949-12-31",
                           **TEST_PATIENT_KEYS.sealed_details("P-a-000001", {
                               "name": "李四", "national_id": ID_FEMALE,
                               "phone": "13800138000", "contact": "北京市东城区 1 号"})},
    "patient.updated": {"patient_id": "P-a-000001", **TEST_PATIENT_KEYS.sealed_details(
        "P-a-000001", {"name": "李思", "phone": "+86 138 0013 8001"})},
    "card.issued": {"card_no": "8600000001", "patient_id": "P-a-000001", "medium": "chip"},
    "card.reported_lost": {"card_no": "8600000001", "patient_id": "P-a-000001",
                           "verified_by": "id_card", "reason": "stolen"},
    "card.replaced": {"old_card_no": "8600000001", "new_card_no": "8600000002",
                      "patient_id": "P-a-000001"},
    "account.deposited": {"patient_id": "P-a-000001", "amount": 10000, "method": "mobile",
                          "receipt_no": "D-a-000003", "reference": "WX-4200000001"},
    "account.charged": {"charge_id": "C-a-000004", "patient_id": "P-a-000001",
                        "card_no": "8600000001", "department": "检验科", "order_ref": "ORD-9",
                        "items": [{"code": "LAB-CBC", "name": "血常规", "qty": 2,
                                   "unit_price": 2500},
                                  {"code": "LAB-FEE", "name": "采血", "qty": 1,
                                   "unit_price": 300}],
                        "amount": 5300},
    "account.refunded": {"refund_id": "R-a-000005", "charge_id": "C-a-000004",
                         "patient_id": "P-a-000001", "amount": 2500, "to": "cash",
                         "approved_by": "dr.zhao", "reason": "cancelled",
                         "items": [{"line": 0, "qty": 1}]},
    "account.settled": {"patient_id": "P-a-000001", "amount": 0, "method": "cash",
                        "invoice_no": "INV-a-000006"},
    "account.credit_granted": {"patient_id": "P-a-000001", "limit": 500000,
                               "reason": "trauma, unconscious", "authorised_by": "dr.chen"},
    # conflict remedies (protocol/remedies.py), signed by central
    "debt.recorded": {"conflict_id": "overdraft-0123456789ab", "patient_id": "P-a-000001",
                      "amount": 3500, "debit": 0, "reason": "offline overdraft"},
    "charge.reversed": {"conflict_id": "lost_card_used-0123456789", "charge_id": "C-a-000004",
                        "patient_id": "P-a-000001", "amount": 5300, "reason": "stolen card"},
    "patient.merged": {"conflict_id": "duplicate_patient-01234567", "survivor_id": "P-a-000001",
                       "merged_id": "P-b-000001", "moved": 9500, "cards": ["8600000009"],
                       "reason": "same ID card"},
    "card.blocked": {"conflict_id": "double_replacement-0123456", "card_no": "8600000002",
                     "patient_id": "P-a-000001", "reason": "second replacement"},
    "conflict.accepted": {"conflict_id": "overdraft-0123456789ab", "patient_id": "P-a-000001",
                          "reason": "paid in cash at the ward"},
    # central's announcement of a conflict still open (protocol/remedies.py)
    "conflict.raised": {"conflict_id": "overdraft-0123456789ab", "conflict_kind": "overdraft",
                        "patient_id": "P-a-000001", "patients": ["P-a-000001"], "amount": 3500,
                        "summary": "Overdraft ¥35.00 — 张三"},
    "conflict.withdrawn": {"conflict_id": "overdraft-0123456789ab", "conflict_kind": "overdraft",
                           "patient_id": "P-a-000001", "patients": ["P-a-000001"],
                           "reason": "events that arrived later show it is not a conflict"},
    # moving in from the old system (protocol/moving_in.py), signed by central
    "account.opening_balance": {"patient_id": "P-central-A000123", "amount": 12345,
                                "old_patient_no": "A000123", "batch_id": "imp-20261201-0a1b",
                                "last_activity": "2026-10-31"},
    # a dormant account settled in an approved batch (protocol/dormant.py), by central
    "account.dormant_settled": {"patient_id": "P-a-000001", "amount": 12345,
                                "dormant_batch": "dorm-20261201-0a1b", "idle_since": "2024-06-30",
                                "selected_by": "fin.wang", "approved_by": "fin.li"},
    # the cashier's day close (protocol/dayclose.py)
    "report.closed": {"day": "2026-11-30", "start_ms": 1_796_000_000_000,
                      "end_ms": 1_796_086_400_000, "cashier": "wang.fang",
                      "figures": [{"section": "deposits", "line": "cash", "count": 2,
                                   "amount": 30000},
                                  {"section": "refunds", "line": "cash", "count": 1,
                                   "amount": 2500},
                                  {"section": "charges", "line": "", "count": 3,
                                   "amount": 7500}],
                      "expected_cash": 27500, "counted_cash": 27400},
    # the offline limits (protocol/account.py, issue 11), signed by central
    "limits.set": {"floor": 20000, "cap": 50000},
    # patient keys given to a counter (protocol/privacy.py), signed by central
    "privacy.key_granted": {"node": "cashier-01", "recipient": "ab" * 32, "key_id": "0a1b2c3d",
                            "data": "A" * 107, "lookup": "B" * 107, "names": "C" * 107},
    # the catalogue (protocol/catalogue.py), signed by central
    "catalogue.published": {"version": 3, "pages": 2, "charge_at": "send", "note": "2026 秋"},
    "catalogue.page": {"version": 3, "page": 1,
                       "items": [{"code": "REG-GEN", "type": "registration", "name": "普通挂号",
                                  "unit": "次", "price": 500},
                                 {"code": "D-AMX", "type": "drug", "name": "阿莫西林胶囊",
                                  "pinyin": "amxljn", "unit": "盒", "price": 1850,
                                  "insurance": "甲", "dept": "PHA-OP", "form": "胶囊",
                                  "strength": "0.25g×24", "dose_unit": "mg",
                                  "max_single": 1000, "max_daily": 4000,
                                  "stock_unit": "盒", "allergen": "青霉素类"}],
                       "depts": [{"code": "IM", "name": "内科", "type": "clinic"}],
                       "doctors": [{"doctor_id": "dr.zhao", "name": "赵医生", "dept": "IM",
                                    "title": "主任医师", "fee_code": "REG-EXP"}],
                       "sessions": [{"doctor_id": "dr.zhao", "weekday": 1, "period": "am",
                                     "capacity": 40}],
                       "templates": [{"code": "T-URI", "name": "上呼吸道感染",
                                      "type": "prescription",
                                      "lines": [{"code": "D-AMX", "qty": 1, "dose": 500,
                                                 "per_day": 3, "days": 5}]}]},
    # visits and queues (protocol/visit.py)
    "visit.registered": {"visit_id": "V-a-000007", "patient_id": "P-a-000001", "dept": "IM",
                         "doctor_id": "dr.zhao", "day": "2026-12-01", "queue_tag": "T01",
                         "queue_no": 7, "channel": "triage", "fee": 500,
                         "fee_code": "REG-GEN", "catalogue_version": 3,
                         "card_no": "8600000001", "card_entry": "chip"},
    "visit.progressed": {"visit_id": "V-a-000007", "patient_id": "P-a-000001",
                         "step": "called", "room": "诊室3"},
    "visit.fee_charged": {"visit_id": "V-a-000007", "patient_id": "P-a-000001",
                          "code": "CONSULT", "name": "诊查费", "amount": 1000,
                          "catalogue_version": 3},
    "visit.diagnosed": {"diagnosis_id": "DX-a-000009", "visit_id": "V-a-000007",
                        "patient_id": "P-a-000001", "icd10": "J06.9",
                        "text": "急性上呼吸道感染"},
    # a consultation fee charged twice, given back by central (protocol/visit.py)
    "visit.fee_returned": {"conflict_id": "double_fee-0123456789ab", "visit_id": "V-a-000007",
                           "patient_id": "P-a-000001", "amount": 1000,
                           "reason": "charged at two counters offline"},
    # what the doctor's checks know of a patient (protocol/clinical.py)
    "patient.allergy_recorded": {"patient_id": "P-a-000001", "substance": "青霉素类",
                                 "reaction": "皮疹"},
    "patient.insurance_set": {"patient_id": "P-a-000001", "insurance": "employee"},
    # stock per pharmacy and item (protocol/stock.py)
    "stock.received": {"pharmacy": "PHA-OP", "code": "D-AMX", "qty": 200, "batch": "B2611"},
    "stock.adjusted": {"pharmacy": "PHA-OP", "code": "D-AMX", "delta": -3, "reason": "damaged"},
    # orders (protocol/order.py)
    "order.placed": {"order_id": "O-a-000010", "visit_id": "V-a-000007",
                     "patient_id": "P-a-000001", "type": "drug", "exec_dept": "PHA-OP",
                     "catalogue_version": 3,
                     "lines": [{"code": "D-AMX", "name": "阿莫西林胶囊", "qty": 2,
                                "unit_price": 1850, "dose": 500, "per_day": 3, "days": 5}],
                     "total": 3700, "charged": 3700},
    "order.cancelled": {"order_id": "O-a-000010", "patient_id": "P-a-000001", "refund": 3700,
                        "reason": "patient declined", "approved_by": "dr.zhao"},
    # executing orders (protocol/execution.py)
    "order.checked_in": {"order_id": "O-a-000011", "patient_id": "P-a-000001", "dept": "LAB",
                         "day": "2026-12-01", "queue_tag": "L01", "queue_no": 3,
                         "specimen_id": "L01-261201-0003", "charged": 2500},
    "order.progressed": {"order_id": "O-a-000011", "patient_id": "P-a-000001",
                         "step": "resulted", "result": "WBC 6.1", "report_ref": "LIS-1"},
    "order.dispensed": {"dispense_id": "DS-a-000012", "order_id": "O-a-000010",
                        "patient_id": "P-a-000001", "pharmacy": "PHA-OP",
                        "lines": [{"code": "D-AMX", "qty": 1, "unit_price": 1850}],
                        "amount": 0},
    "order.returned": {"order_id": "O-a-000010", "patient_id": "P-a-000001",
                       "lines": [{"code": "D-AMX", "qty": 1}], "refund": 1850,
                       "reason": "out of stock", "approved_by": "dr.zhao"},
    "order.charge_returned": {"conflict_id": "double_dispense-0123456789", "order_id":
                              "O-a-000010", "patient_id": "P-a-000001", "amount": 1850,
                              "reason": "dispensed at two pharmacies"},
    "stock.transferred": {"from_pharmacy": "PHA-OP", "to_pharmacy": "PHA-ER",
                          "code": "D-AMX", "qty": 20, "note": "night stock"},
    "stock.corrected": {"conflict_id": "stock_below_zero-0123456789", "pharmacy": "PHA-OP",
                        "code": "D-AMX", "delta": 4, "reason": "count after double dispense"},
    # staff and their roles (protocol/staff.py), signed by central; peppered PIN hashes
    "staff.enrolled": {"staff_id": "wang.li", "name": "王丽", "roles": ["cashier", "supervisor"],
                       "pin_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
                       "at_nodes": ["cashier-01"]},
    "staff.changed": {"staff_id": "wang.li", "name": "王丽", "roles": ["doctor"],
                      "at_nodes": []},
    "staff.disabled": {"staff_id": "wang.li", "reason": "left the hospital"},
    "staff.enabled": {"staff_id": "wang.li", "reason": "back"},
    "staff.pin_reset": {"staff_id": "wang.li",
                        "pin_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"},
    # the audit trail (protocol/trail.py): sensitive actions that are not business
    "audit.login": {"staff_id": "wang.li", "outcome": "wrong_pin", "desk": "cashier",
                    "purpose": "login"},
    "audit.record_opened": {"patient_id": "P-a-000001", "how": "card", "desk": "doctor"},
    "audit.exported": {"what": "report.daily", "rows": 12, "destination": "file"},
    # central's own key rotation: the statement counters follow (protocol/rotation.py)
    "audit.node_changed": {"node": "central", "action": "rotate",
                           "fingerprint": "ed25519:8d2d-1c26-0127-c744-76b2-7136-c5e3-8c00",
                           "from_seq": 42, "public_key": "ea4a6c63e29c520abef5507b132ec5f9"
                                                         "954776aebebe7b92421eea691446d22c"},
    "audit.config_changed": {"key": "limits", "old": "floor ¥0.00 cap ¥0.00",
                             "new": "floor ¥200.00 cap ¥500.00"},
}


def test_every_kind_has_a_valid_example() -> None:
    assert set(VALID) == set(SCHEMAS)
    for kind, body in VALID.items():
        assert validate_body(kind, body) == [], kind


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_required_field_is_required(kind: str) -> None:
    for name, spec in SCHEMAS[kind].items():
        if spec.required:
            body = {k: v for k, v in VALID[kind].items() if k != name}
            codes = [p.code for p in validate_body(kind, body)]
            assert "field.missing" in codes, (kind, name)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_unknown_fields_and_wrong_types_are_named(kind: str) -> None:
    problems = validate_body(kind, {**VALID[kind], "surprise": 1})
    assert [(p.code, p.field) for p in problems] == [("field.unknown", "surprise")]
    first = next(iter(VALID[kind]))
    problems = validate_body(kind, {**VALID[kind], first: 3.5})
    assert problems and problems[0].field == first and "float" in problems[0].message


@pytest.mark.parametrize("kind,patch,code", [
    ("patient.registered", {"phone": None}, "patient.contact_required"),
    ("patient.registered", {"national_id": "11010519491231002Y"}, "national_id.chars"),
    ("patient.registered", {"national_id": "110105194912310021"}, "national_id.checksum"),
    ("patient.registered", {"birth_date": "1950-01-01"}, "patient.birth_date_mismatch"),
    ("patient.registered", {"sex": "M"}, "patient.sex_mismatch"),
    ("patient.registered", {"birth_date": "2023-02-30", "national_id": None},
     "patient.birth_date"),
    ("patient.registered", {"sex": "X"}, "field.choice"),
    ("patient.registered", {"name": ""}, "field.range"),
    ("patient.updated", {"phone": None, "name": None}, "patient.nothing_to_update"),
    ("card.issued", {"card_no": "12"}, "field.format"),
    ("card.replaced", {"new_card_no": "8600000001"}, "card.same_number"),
    ("account.deposited", {"amount": 0}, "field.range"),
    ("account.deposited", {"amount": -100}, "field.range"),
    ("account.deposited", {"method": "cheque"}, "field.choice"),
    ("account.deposited", {"amount": True}, "field.type"),
    ("account.charged", {"amount": 5000}, "charge.total_mismatch"),
    ("account.charged", {"items": []}, "field.range"),
    ("account.refunded", {"to": "wallet"}, "field.choice"),
    ("account.credit_granted", {"limit": -1}, "field.range"),
    ("conflict.raised", {"patient_id": "P-b-000001"}, "raised.patient_not_listed"),
    ("conflict.raised", {"patients": ["P a"]}, "field.format"),
    ("conflict.raised", {"patients": []}, "field.range"),
    ("conflict.raised", {"summary": "张三 13800138000"}, "raised.summary_identifies"),
    ("conflict.raised", {"amount": -1}, "field.range"),
    ("conflict.withdrawn", {"patient_id": "P-b-000001"}, "raised.patient_not_listed"),
    ("conflict.withdrawn", {"patients": []}, "field.range"),
    ("account.dormant_settled", {"approved_by": "FIN.WANG"}, "dormant.same_person"),
    ("account.dormant_settled", {"idle_since": "2024-02-30"}, "dormant.idle_since"),
    ("account.dormant_settled", {"amount": 0}, "field.range"),
    ("staff.enrolled", {"roles": ["cashier", "cashier"]}, "staff.role_twice"),
    ("staff.enrolled", {"roles": ["admin"]}, "field.choice"),
    ("staff.enrolled", {"roles": []}, "field.range"),
    ("staff.enrolled", {"pin_hash": "1234" * 8}, "staff.pin_hash"),
    ("staff.changed", {"name": None, "roles": None, "at_nodes": None}, "staff.no_change"),
    ("staff.pin_reset", {"pin_hash": "x" * 40}, "staff.pin_hash"),
    ("privacy.key_granted", {"data": None, "lookup": None, "names": None},
     "privacy.grant_empty"),
    ("privacy.key_granted", {"names": "not a sealed key"}, "privacy.grant"),
    ("patient.updated", {"name": "sb1:0a1b2c3d:" + "A" * 80, "name_tag": None},
     "privacy.tag_missing"),
    ("patient.updated", {"name": "李四", "name_tag": "00" * 16}, "privacy.tag_without_value"),
    ("privacy.key_granted", {"lookup": "not a sealed key"}, "privacy.grant"),
    ("privacy.key_granted", {"recipient": "cashier-01"}, "field.format"),
    ("patient.updated", {"national_id": "sb1:0a1b2c3d:" + "A" * 80}, "privacy.tag_missing"),
    ("patient.updated", {"phone": "sb1:0a1b2c3d:" + "A" * 80, "phone_tag": "ab" * 16},
     "privacy.tag_missing"),
    ("patient.updated", {"contact": "sb1:not hex:" + "A" * 80}, "privacy.sealed_format"),
    ("patient.updated", {"phone": "13800138000"}, "privacy.tag_without_value"),
    ("audit.login", {"outcome": "maybe"}, "field.choice"),
    ("audit.record_opened", {"how": "guess"}, "field.choice"),
    ("audit.exported", {"rows": -1}, "field.range"),
    ("audit.node_changed", {"action": "delete"}, "field.choice"),
    ("audit.node_changed", {"public_key": "EA" * 32}, "trail.public_key"),
    ("audit.node_changed", {"fingerprint": "ab12 cd34 ef56"}, "trail.fingerprint"),
    ("audit.node_changed", {"public_key": None, "fingerprint": None}, "trail.central_rotation"),
    ("audit.node_changed", {"from_seq": 1}, "trail.central_rotation"),
    ("audit.config_changed", {"new": "phone 13800138000"}, "trail.identifies"),
])
def test_semantic_and_range_problems(kind: str, patch: dict[str, Any], code: str) -> None:
    base = LEGACY_REGISTERED if kind == "patient.registered" else VALID[kind]
    body = {k: v for k, v in {**base, **patch}.items() if v is not None}
    assert code in [p.code for p in validate_body(kind, body)]


def test_unknown_kind() -> None:
    assert [p.code for p in validate_body("account.teleported", {})] == ["kind.unknown"]
