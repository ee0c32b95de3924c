"""Moving in from the hospital's old system: the opening balance (central signs it).

A hospital that switches to onecard brings its patients, their cards and the deposit
each still holds.  ``onecard-central import`` (:mod:`central.importer`) turns each row
of the old system's export into three events central signs: ``patient.registered`` and
``card.issued`` (the ordinary kinds, so every counter finds the patient and takes the
card like any other) and one ``account.opening_balance``, declared here:

- the balance is money the hospital already holds, not money taken in at a counter
  today, so it has its own money flow (``opening``), its own sum on the account
  (``Account.opening``) and its own section of the report (``opening_balances``): the
  daily audit counts it apart from deposits, and each balance is still exactly its
  account's flows;
- the body keeps the old system's patient number and the import batch, so every
  opening balance traces back to its line of the old system's export.

A counter's event of this kind is invalid (only central may sign it).
"""

from __future__ import annotations

import datetime as dt

from protocol.account import Account, add
from protocol.core import (
    CENTRAL_ONLY,
    At,
    Kind,
    Money,
    ReportLine,
    Tx,
    no_notice,
    no_rule,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import DATE_RE, Body, Field, amount, body, ident, spec, text

#: The report section and line an opening balance goes to (apart from deposits).
REPORT_SECTION = "opening_balances"
REPORT_LINE = "moved_in"


@body
class OpeningBalance(Body):
    patient_id: str = spec(ident())
    amount: int = spec(amount(lo=0))  # fen; 0 when the old account was empty
    old_patient_no: str = spec(text(64))  # the patient's number in the old system
    batch_id: str = spec(ident())  # the import run that brought it
    last_activity: str = spec(Field(str, False, pattern=DATE_RE), "")  # old system's date

    def problems(self) -> list[Problem]:
        if self.last_activity:
            try:
                dt.date.fromisoformat(self.last_activity)
            except ValueError:
                return [Problem("opening.last_activity", f"last activity {self.last_activity}"
                                " is not a real date", "last_activity",
                                 {"date": self.last_activity})]
        return []


def _fold_opening(tx: Tx, at: At, b: OpeningBalance) -> None:
    add(tx, b.patient_id, opening=b.amount)


def _describe(b: OpeningBalance, lang: str) -> str:
    return say((f"旧系统病历号 {b.old_patient_no}，批次 {b.batch_id}",
                f"old system no. {b.old_patient_no}, batch {b.batch_id}"), lang)


OPENING_BALANCE = Kind(
    name="account.opening_balance", body=OpeningBalance, signer=CENTRAL_ONLY,
    title=("期初余额（旧系统转入）", "Opening balance (moved in)"),
    records=lambda b: refs(Account, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_opening,
    money=lambda b: Money("opening", ((b.patient_id, b.amount),) if b.amount else ()),
    rule=no_rule,
    describe=_describe,
    report=lambda b: ReportLine(REPORT_SECTION, REPORT_LINE, b.amount),
    notice=no_notice,
)

KINDS = (OPENING_BALANCE,)
