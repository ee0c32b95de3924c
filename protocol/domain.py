"""The registry of this version: every event kind and record, from the concept modules.

The lists are explicit (no import side effects): a new concept module adds its
``KINDS`` and ``RECORDS`` here, and that is the whole of adding a kind — the ledger's
tables, the fold, central's validation and reconciler input, the counter's rules,
screens, reports and notices all ask :data:`REGISTRY`.  ``tests/test_domain.py``
holds every registered kind to every facet.
"""

from __future__ import annotations

from protocol import (
    account,
    card,
    catalogue,
    clinical,
    dayclose,
    dormant,
    execution,
    moving_in,
    order,
    patient,
    privacy,
    remedy,
    staff,
    stock,
    trail,
    visit,
)
from protocol.core import Registry

REGISTRY = Registry(
    kinds=(*patient.KINDS, *card.KINDS, *account.KINDS, *remedy.KINDS, *moving_in.KINDS,
           *dormant.KINDS,
           *dayclose.KINDS, *catalogue.KINDS, *visit.KINDS, *clinical.KINDS, *stock.KINDS,
           *order.KINDS, *execution.KINDS, *staff.KINDS, *trail.KINDS,
           *privacy.KINDS),
    records=(*patient.RECORDS, *card.RECORDS, *account.RECORDS, *catalogue.RECORDS,
             *visit.RECORDS, *clinical.RECORDS, *stock.RECORDS, *order.RECORDS, *staff.RECORDS,
             *privacy.RECORDS),
    apply_money=account.apply_money,
    labels=(*patient.LABELS.items(), *card.LABELS.items(), *account.LABELS.items(),
            *dormant.LABELS.items(), *catalogue.LABELS.items(), *visit.LABELS.items(),
            *clinical.LABELS.items(), *stock.LABELS.items(), *order.LABELS.items(),
            *execution.STEP_LABELS.items(), *staff.LABELS.items(),
            *privacy.LABELS.items()),
)
