"""The one transaction path of a counter's SQLite file (ledger, staff, sync state, schema)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``conn`` (``BEGIN IMMEDIATE`` … ``COMMIT``), rolled back
    if the block raises; inside another, a savepoint that rolls back only its own part.

    The one transaction path of the counter's file: ledger, staff, sync state.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT nested")
        try:
            yield conn
            conn.execute("RELEASE nested")
        except BaseException:
            conn.execute("ROLLBACK TO nested")
            conn.execute("RELEASE nested")
            raise
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction on ``conn`` that is always rolled back (a dry run: whatever the
    block does is undone; one consistent view of the file throughout); inside another
    transaction, a savepoint rolled back the same way."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT dry")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK TO dry")
            conn.execute("RELEASE dry")
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
