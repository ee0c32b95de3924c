"""A fresh PostgreSQL database per test, on the machine's server (never skipped).

Tests that run central on PostgreSQL use :func:`fresh_database`: it creates
``onecard_t_<random>`` through the ``test`` database, yields its URL, and drops it after,
also when the test fails.  An unreachable server fails the test with a message saying so
(the machine's PostgreSQL is part of the test setup, like SQLite's files are).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

#: the server and the database that new ones are created through
ADMIN_URL = os.environ.get("ONECARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL} ({exc}): these tests need "
                    "it (start it: pg_ctlcluster 15 main start; or set ONECARD_TEST_PG)",
                    pytrace=False)


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database's URL; dropped afterwards (connections to it closed)."""
    name = f"onecard_t_{secrets.token_hex(6)}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_db(ADMIN_URL, name)
    finally:
        admin = await _admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
