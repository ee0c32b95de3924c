"""Central's side of patients' data at rest (:mod:`protocol.privacy`): the keys, the grants.

Central holds the hospital's patient keys (``patient_keys_file``, made by ``init``).  When
a counter authenticates, ``serve`` makes sure central has granted the counter's *current*
key what its role gets (``[privacy]``): if not — a counter enrolled since, a counter that
rotated its key, a policy or key change — it signs ``privacy.key_granted`` before the
welcome, so the counter pulls its keys in the same session as everything else.  One path
for enrolment, rotation and upgrades; the grant is on the signed trail like any event.

The console, the importer and the dormant-account export open sealed details with the
full keys (:func:`central_keys`): central's IT may read them; the file never leaves
central.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from central.config import CentralConfig, CentralConfigError
from central.store import CentralStore, Query, Statements
from protocol.core import State
from protocol.crypto import SigningKey
from protocol.domain import REGISTRY
from protocol.event import CENTRAL
from protocol.privacy import (
    NAME_ROLES,
    KeyFileError,
    KeyGrant,
    PatientKeys,
    grant_body,
    grant_of,
)

log = logging.getLogger("onecard.central.privacy")

KIND = "privacy.key_granted"


def central_keys(cfg: CentralConfig) -> PatientKeys:
    """The hospital's patient keys from ``patient_keys_file`` (a clear error if absent)."""
    try:
        return PatientKeys.read(cfg.patient_keys_file)
    except KeyFileError as exc:
        raise CentralConfigError(str(exc)) from None


def ensure_keys_file(cfg: CentralConfig, state: State) -> PatientKeys:
    """At ``serve``: the keys, made now if central never had any (a central set up before
    patient data was sealed).  Missing while grants exist is refused: new keys would
    leave every detail sealed so far unreadable — restore the file from the backup."""
    if not cfg.patient_keys_file.exists():
        if state.all(KeyGrant):
            raise CentralConfigError(
                f"{cfg.patient_keys_file}: the patient data keys file is missing but counters "
                "hold keys from it: restore it from central's backup (new keys would leave "
                "every sealed ID number, phone and address unreadable)")
        keys = PatientKeys.generate()
        keys.write(cfg.patient_keys_file)
        log.warning("made the patient data keys %s (key id %s): back this file up with "
                    "central's key", cfg.patient_keys_file, keys.key_id)
        return keys
    return central_keys(cfg)


@dataclass
class Granter:
    """Grants each counter key its patient keys once, as ``serve`` sees them connect."""

    store: CentralStore
    key: SigningKey
    keys: PatientKeys
    reveal_roles: tuple[str, ...]
    lookup_roles: tuple[str, ...]
    name_roles: tuple[str, ...] = NAME_ROLES

    def __post_init__(self) -> None:
        #: (node, recipient) → what central last granted it this run (or found granted)
        self._given: dict[tuple[str, str], tuple[str, bool, bool, bool]] = {}

    def wanted(self, role: str) -> tuple[bool, bool, bool]:
        return role in self.reveal_roles, role in self.lookup_roles, role in self.name_roles

    async def ensure(self, node: str, public_key: bytes, role: str,
                     state: State | None = None) -> bool:
        """Grant ``node``'s ``public_key`` what ``role`` gets unless it has it; whether a
        grant was signed.  ``state``: central's folded records (the reconciler's)."""
        reveal, lookup, names = self.wanted(role)
        want = (self.keys.key_id, reveal, lookup, names)
        ref = (node, public_key.hex())
        if self._given.get(ref) == want:
            return False
        if state is not None and _holds(grant_of(state, node, public_key), want):
            self._given[ref] = want
            return False
        if not (reveal or lookup or names):
            self._given[ref] = want
            return False  # (nothing to give; a grant once given stays in events)
        body = grant_body(node, public_key, self.keys, reveal=reveal, lookup=lookup,
                          names=names)
        assert body is not None
        problems = REGISTRY.validate(KIND, body, CENTRAL)
        if problems:  # (a bug: the body is ours)
            raise ValueError("; ".join(p.message for p in problems))

        async def plan(query: Query) -> tuple[list[tuple[str, dict[str, Any]]], Statements]:
            return [(KIND, body)], []

        await self.store.append_central(self.key, plan, operator="central")
        self._given[ref] = want
        log.info("granted node=%s the patient %s (key id %s)", node,
                 ", ".join(w for w, on in (("data key", reveal), ("lookup key", lookup),
                                           ("names key", names)) if on), self.keys.key_id)
        return True


def _holds(grant: KeyGrant | None, want: tuple[str, bool, bool, bool]) -> bool:
    if grant is None:
        return False
    return (grant.key_id, bool(grant.data), bool(grant.lookup), bool(grant.names)) == want
