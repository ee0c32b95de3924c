"""A fresh PostgreSQL database per test, on the machine's server (never skipped).

Tests that run central on PostgreSQL use :func:`fresh_database`: it creates
``onecard_t_<random>`` through the ``test`` database, yields its URL, and drops it after,
also when the test fails.  An unreachable server fails the test with a message saying so
(the machine's PostgreSQL is part of the test setup, like SQLite's files are).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

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


async def create_database() -> str:
    """A new, empty database (``onecard_t_<random>``): its URL."""
    name = f"onecard_t_{secrets.token_hex(6)}"
    admin = await _admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _with_db(ADMIN_URL, name)


async def drop_database(url: str) -> None:
    """Drop the database :func:`create_database` made (closing connections to it)."""
    name = url.rsplit("/", 1)[-1]
    assert name.startswith("onecard_t_"), url  # only what these tests made
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new, empty database's URL; dropped afterwards (connections to it closed)."""
    url = await create_database()
    try:
        yield url
    finally:
        await drop_database(url)


@contextlib.contextmanager
def fresh_database_sync() -> Iterator[str]:
    """:func:`fresh_database` for tests that run processes (no event loop of their own)."""
    url = asyncio.run(create_database())
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))


def rows(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Rows of one query on the database at ``url`` (as an auditor reads it)."""
    async def run() -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()
    return asyncio.run(run())
