"""Dormant accounts (DOMAIN 5.6): the settlement central signs for an idle balance.

Patients who stop coming leave their deposit behind.  Finance lists the accounts with
a positive balance and no activity for months (``onecard-central dormant report``),
tries to reach each patient, then settles the rest in a batch one person selects and
a supervisor approves (:mod:`central.dormant`).  Each account of an approved batch gets
one ``account.dormant_settled``, declared here and signed by central only:

- the money facet is the ordinary ``settle`` flow: the balance goes to 0 and leaves the
  deposit account exactly as a counter's settlement does, so every conservation check
  (deposits − charges + refunds − settlements + remedies = balances) and the
  reconciler's overdraft detector (a counter that charged offline meanwhile) treat it
  as one;
- the fold adds to ``Account.settled`` and closes the account (latest in the merge
  order wins, like a settlement; the next deposit reopens it); it writes no wallet
  stamp (no card was present), so ``money_seq`` is left alone;
- the report line is ``settlements`` / ``dormant``: the audit and central's report tell
  it apart from money paid back to a patient at a counter by that line;
- the body names the batch and both people (who selected, who approved: never the
  same), so the two-person rule reads from the event alone.

A counter's event of this kind is invalid (only central may sign it).
"""

from __future__ import annotations

import datetime as dt

from protocol.account import Account
from protocol.core import (
    CENTRAL_ONLY,
    At,
    Kind,
    Money,
    ReportLine,
    Tx,
    later,
    no_notice,
    no_rule,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import DATE_RE, Body, Field, amount, body, ident, spec, text

REPORT_SECTION = "settlements"
REPORT_LINE = "dormant"
LABELS = {"method.dormant": ("久悬账户结清", "Dormant, settled")}


@body
class DormantSettled(Body):
    patient_id: str = spec(ident())
    amount: int = spec(amount())  # fen: the whole balance when the batch was selected
    dormant_batch: str = spec(ident())  # the batch (central's dormant_batches table)
    idle_since: str = spec(Field(str, pattern=DATE_RE))  # last activity, local date
    selected_by: str = spec(text(64))
    approved_by: str = spec(text(64))

    def problems(self) -> list[Problem]:
        out = []
        try:
            dt.date.fromisoformat(self.idle_since)
        except ValueError:
            out.append(Problem("dormant.idle_since", f"idle since {self.idle_since} is not a "
                               "real date", "idle_since", {"date": self.idle_since}))
        if self.selected_by.strip().lower() == self.approved_by.strip().lower():
            out.append(Problem("dormant.same_person", "the batch's approver must be another "
                               "person than the one who selected it", "approved_by",
                               {"who": self.approved_by}))
        return out


def _fold(tx: Tx, at: At, b: DormantSettled) -> None:
    acct = tx.get_or_new(Account, b.patient_id)
    changes: dict[str, object] = {"settled": acct.settled + b.amount}
    if later(at.order, acct.closed_at):  # closes like a settlement; a later deposit reopens
        changes["closed"], changes["closed_at"] = 1, at.order
    tx.put(acct.evolve(**changes))


def _describe(b: DormantSettled, lang: str) -> str:
    # the amount is the history's own column: the line says which batch, since when, who
    return say((f"批次 {b.dormant_batch}，{b.idle_since} 起无业务"
                f"（{b.selected_by} 选定，{b.approved_by} 批准）",
                f"batch {b.dormant_batch}, idle since {b.idle_since} "
                f"(selected by {b.selected_by}, approved by {b.approved_by})"), lang)


DORMANT_SETTLED = Kind(
    name="account.dormant_settled", body=DormantSettled, signer=CENTRAL_ONLY,
    title=("久悬账户结清", "Dormant account settled"),
    records=lambda b: refs(Account, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold,
    money=lambda b: Money("settle", ((b.patient_id, -b.amount),)),
    rule=no_rule,
    describe=_describe,
    report=lambda b: ReportLine(REPORT_SECTION, REPORT_LINE, b.amount),
    notice=no_notice,
)

KINDS = (DORMANT_SETTLED,)
