"""What the doctor's checks need to know of a patient: allergies and insurance class.

Allergies are recorded (and withdrawn) at the doctor's station; the insurance class
(城镇职工 employee, 城乡居民 resident, 自费 none) at registration or the doctor's.  Both fold
into one :class:`Profile` per patient, order-independently: each allergy substance
keeps its last writer in the merge order (so a withdrawal after a record holds in
any arrival order), as does the insurance class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from protocol.core import (
    COUNTER,
    At,
    Kind,
    PatientId,
    Record,
    RuleConfig,
    State,
    Tx,
    later,
    no_money,
    no_notice,
    no_report,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import Body, Field, body, choice, ident, spec, text
from protocol.patient import Patient, patient_known

INSURANCE_TYPES = ("none", "employee", "resident")
LABELS = {"insurance.none": ("自费", "self-pay"),
          "insurance.employee": ("职工医保", "employee insurance"),
          "insurance.resident": ("居民医保", "resident insurance")}


@record("profiles", ("patient_id",))
@dataclass(frozen=True, slots=True)
class Profile(Record):
    patient_id: PatientId
    #: ``{substance: [active, reaction, merge order]}`` as sorted JSON
    allergies: str = ""
    insurance: str = ""
    insurance_at: str = ""

    def allergy_map(self) -> dict[str, list[object]]:
        if not self.allergies:
            return {}
        try:
            value = json.loads(self.allergies)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def active_allergies(self) -> list[tuple[str, str]]:
        """``(substance, reaction)`` of each allergy in force, sorted."""
        return sorted((s, str(v[1])) for s, v in self.allergy_map().items()
                      if isinstance(v, list) and len(v) == 3 and v[0])


def norm(substance: str) -> str:
    return " ".join(substance.split()).casefold()


# -- patient.allergy_recorded -------------------------------------------------------------
@body
class AllergyRecorded(Body):
    patient_id: str = spec(ident())
    substance: str = spec(text(32))  # an allergen class (青霉素类), a drug name or a code
    reaction: str = spec(text(64, required=False, lo=0), "")
    active: int = spec(Field(int, False, lo=0, hi=1), 1)  # 0: withdrawn (recorded wrongly)

    def problems(self) -> list[Problem]:
        if not norm(self.substance):
            return [Problem("allergy.substance", "name the substance", "substance")]
        return []


def _fold_allergy(tx: Tx, at: At, b: AllergyRecorded) -> None:
    p = tx.get_or_new(Profile, b.patient_id)
    allergies = p.allergy_map()
    key = norm(b.substance)
    old = allergies.get(key)
    if not isinstance(old, list) or len(old) != 3 or later(at.order, str(old[2])):
        allergies[key] = [b.active, b.reaction, at.order]
        tx.put(p.evolve(allergies=json.dumps(allergies, ensure_ascii=False, sort_keys=True,
                                             separators=(",", ":"))))


def _rule_allergy(state: State, b: AllergyRecorded, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id)
    if out or b.active:
        return out
    p = state.get_or_new(Profile, b.patient_id)
    if norm(b.substance) not in dict(p.active_allergies()):
        return [Problem("allergy.not_recorded", f"no allergy to {b.substance} is recorded",
                        "substance", {"substance": b.substance})]
    return []


ALLERGY_RECORDED = Kind(
    name="patient.allergy_recorded", body=AllergyRecorded, signer=COUNTER,
    title=("过敏史", "Allergy"),
    records=lambda b: refs(Patient, b.patient_id) | refs(Profile, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_allergy, money=no_money, rule=_rule_allergy,
    describe=lambda b, lang: (b.substance + (f" ({b.reaction})" if b.reaction else "")
                              + ("" if b.active else say((" 已撤销", " withdrawn"), lang))),
    report=no_report, notice=no_notice,
)


# -- patient.insurance_set ----------------------------------------------------------------
@body
class InsuranceSet(Body):
    patient_id: str = spec(ident())
    insurance: str = spec(choice(INSURANCE_TYPES))


def _fold_insurance(tx: Tx, at: At, b: InsuranceSet) -> None:
    p = tx.get_or_new(Profile, b.patient_id)
    if later(at.order, p.insurance_at):
        tx.put(p.evolve(insurance=b.insurance, insurance_at=at.order))


INSURANCE_SET = Kind(
    name="patient.insurance_set", body=InsuranceSet, signer=COUNTER,
    title=("医保类别", "Insurance class"),
    records=lambda b: refs(Patient, b.patient_id) | refs(Profile, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_insurance, money=no_money,
    rule=lambda state, b, cfg: patient_known(state, b.patient_id),
    describe=lambda b, lang: say(LABELS["insurance." + b.insurance], lang),
    report=no_report, notice=no_notice,
)

KINDS = (ALLERGY_RECORDED, INSURANCE_SET)
RECORDS = (Profile,)
