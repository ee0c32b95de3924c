"""The registry of this version: every event kind and record, from the concept modules.

The lists are explicit (no import side effects): a new concept module adds its
``KINDS`` and ``RECORDS`` here, and that is the whole of adding a kind — the ledger's
tables, the fold, central's validation and reconciler input, the counter's rules,
screens, reports and notices all ask :data:`REGISTRY`.  ``tests/test_domain.py``
holds every registered kind to every facet.
"""

from __future__ import annotations

from protocol import account, card, dayclose, dormant, moving_in, patient, remedy
from protocol.core import Registry

REGISTRY = Registry(
    kinds=(*patient.KINDS, *card.KINDS, *account.KINDS, *remedy.KINDS, *moving_in.KINDS,
           *dormant.KINDS,
           *dayclose.KINDS),
    records=(*patient.RECORDS, *card.RECORDS, *account.RECORDS),
    apply_money=account.apply_money,
    labels=(*patient.LABELS.items(), *card.LABELS.items(), *account.LABELS.items(),
            *dormant.LABELS.items()),
)
