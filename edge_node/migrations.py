"""The counter ledger's schema, as numbered migrations that record themselves.

Append a new ``(version, name, sql)``; never edit one that has shipped.  ``events``
is the only source of truth.  The projection tables (patients, cards, accounts,
charges, and whatever records later kinds declare) are not made here but from the
domain registry's declarations, and refolded whenever those change
(:meth:`edge_node.ledger.Ledger.open`); the ones migration 1 made are dropped then.
Derived indexes (the patient search, migration 7) are made here and filled by the
ledger, which rewrites them whenever they were made another way.
"""

from __future__ import annotations

import sqlite3
import time

from edge_node.db import transaction

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "event ledger and projections", """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE events (
    rowid INTEGER PRIMARY KEY,          -- local arrival order: the order rebuild refolds in
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    hlc_wall INTEGER NOT NULL,
    hlc_counter INTEGER NOT NULL,
    operator TEXT NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,                 -- the canonical signed bytes, exactly as signed
    UNIQUE (node, seq)
);
CREATE TABLE heads (node TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash BLOB NOT NULL)
    WITHOUT ROWID;
CREATE TABLE node_keys (node TEXT PRIMARY KEY, public_key BLOB NOT NULL, role TEXT NOT NULL)
    WITHOUT ROWID;
CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    online INTEGER NOT NULL DEFAULT 0,
    last_sync_ms INTEGER NOT NULL DEFAULT 0,
    acked_seq INTEGER NOT NULL DEFAULT 0,
    pull_cursor INTEGER NOT NULL DEFAULT 0,
    received INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
INSERT INTO sync_state (id) VALUES (1);

CREATE TABLE patients (
    patient_id TEXT PRIMARY KEY, name TEXT, sex TEXT, birth_date TEXT, national_id TEXT,
    phone TEXT, contact TEXT, registered_node TEXT, registered_ms INTEGER, merged_into TEXT
) WITHOUT ROWID;
CREATE INDEX patients_national_id ON patients (national_id) WHERE national_id != '';
CREATE INDEX patients_name ON patients (name);
CREATE TABLE cards (
    card_no TEXT PRIMARY KEY, patient_id TEXT, status TEXT, replaced_by TEXT,
    issued_node TEXT, issued_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX cards_patient ON cards (patient_id);
CREATE TABLE accounts (
    patient_id TEXT PRIMARY KEY, balance INTEGER, credit_limit INTEGER, deposited INTEGER,
    charged INTEGER, refunded_to_deposit INTEGER, refunded_to_cash INTEGER, settled INTEGER,
    money_seq INTEGER, closed INTEGER
) WITHOUT ROWID;
CREATE TABLE charges (
    charge_id TEXT PRIMARY KEY, patient_id TEXT, card_no TEXT, amount INTEGER,
    refunded INTEGER, department TEXT, order_ref TEXT, node TEXT, seq INTEGER, wall_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX charges_patient ON charges (patient_id);
CREATE TABLE patient_events (
    patient_id TEXT NOT NULL, event_rowid INTEGER NOT NULL,
    PRIMARY KEY (patient_id, event_rowid)
) WITHOUT ROWID;
"""),
    (2, "counter staff: operator login with Argon2id PIN hashes", """
CREATE TABLE staff (
    staff_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,                 -- cashier | supervisor | admin
    pin_hash TEXT NOT NULL,             -- Argon2id (argon2-cffi encoded form)
    created_ms INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,  -- wrong PINs in a row
    locked_until_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""),
    (3, "conflict remedies: central adjustments on accounts, reversals on charges", """
ALTER TABLE accounts ADD COLUMN adjusted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN reversed INTEGER NOT NULL DEFAULT 0
"""),
    (4, "accounts: the newest wallet stamp (seq, balance) written to or accepted from a card", """
ALTER TABLE accounts ADD COLUMN stamp_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN stamp_balance INTEGER NOT NULL DEFAULT 0
"""),
    (5, "patients: find the records merged into a survivor (its history includes theirs)", """
CREATE INDEX patients_merged_into ON patients (merged_into)
"""),
    (6, "events: the counter's own clock when it wrote or received each (its reports)", """
ALTER TABLE events ADD COLUMN local_ms INTEGER NOT NULL DEFAULT 0;
UPDATE events SET local_ms = hlc_wall;
CREATE INDEX events_node_local ON events (node, local_ms)
"""),
    (7, "patient search: one row per (term, patient), written with the patients", """
CREATE TABLE patient_search (
    term TEXT NOT NULL,                 -- kind prefix + normalised text (edge_node.search)
    patient_id TEXT NOT NULL,
    PRIMARY KEY (term, patient_id)
) WITHOUT ROWID;
CREATE INDEX patient_search_patient ON patient_search (patient_id)
"""),
    (8, "node keys over seqs: a rotated node's old key still verifies what it signed", """
-- Only nodes whose keys are more than one key from seq 1 on (node_keys has the current
-- key of every node): each key and the seqs it signs, from_seq <= seq < until_seq
-- (until_seq 0: open), in rowid order.  This node's own rows come from central's
-- directory or from onecard-edge rotate-key.
CREATE TABLE key_spans (
    node TEXT NOT NULL,
    public_key BLOB NOT NULL,
    from_seq INTEGER NOT NULL,
    until_seq INTEGER NOT NULL,
    PRIMARY KEY (node, public_key)
)
"""),
    (9, "staff signed by central: this counter's own count of their wrong PINs", """
-- Central's staff are records folded from its signed events (staff_members); what this
-- counter counts of their logins is local, like the staff table's own columns.
CREATE TABLE staff_attempts (
    staff_id TEXT PRIMARY KEY,
    failed INTEGER NOT NULL DEFAULT 0,  -- wrong PINs in a row
    locked_until_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID
"""),
    (10, "others' events central attested: their own signatures, checked in the background", """
-- An event in an events frame central attested (protocol 4) is stored and folded with
-- its own signature not checked yet: its row is here until the sync daemon's background
-- check (edge_node/sync/sigcheck.py) has checked it with its node's key at its seq.
CREATE TABLE sig_pending (event_rowid INTEGER PRIMARY KEY);
-- An attested event whose own signature does not verify: central attested a forgery
-- (compromised or buggy).  From the first on, this counter trusts no attestation.
CREATE TABLE sig_findings (
    event_rowid INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    found_ms INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0  -- told central (an error frame) yet
)
"""),
    (11, "patient search: patients whose terms the sync daemon writes in the background", """
-- Others' patients folded by the sync daemon's ingest: their search terms (~80 rows a
-- sealed name) are written by its background pass (edge_node/sync/indexer.py), not in
-- the ingest; until then the search checks these patients one by one (edge_node/search.py).
CREATE TABLE patient_search_due (patient_id TEXT PRIMARY KEY) WITHOUT ROWID
"""),
]


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply the migrations this database lacks, each in its own transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in MIGRATIONS:
        if version in done:
            continue
        with transaction(conn):
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version=?",
                            (version,)).fetchone():
                continue  # another process (the TUI or the sync daemon) was first
            for statement in sql.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                         (version, name, time.time_ns() // 1_000_000))
        applied.append(version)
    return applied
