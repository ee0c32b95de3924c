"""``onecard-central backup`` and ``restore``: central's store, copied live and verified.

The file work (online backup API, temporary name, integrity check, rename, rotation,
the open-by-another-process check, ``.before-restore``) is :mod:`edge_node.backup`'s;
this module adds what is central's: where backups go (``[backup]`` in central's
config: ``dir``, default ``backups`` beside the database; ``keep``, default 7), the
chain verify of every node's events held at central, and a fresh store id for a
restored store (counters then pull from the start: their cursors counted positions of
the store as it was after the backup).
"""

from __future__ import annotations

import os
import sqlite3
import tomllib
from dataclasses import dataclass
from pathlib import Path

from central.config import CentralConfig, CentralConfigError
from central.db import NotSqlite
from central.store import keyring_of
from edge_node import backup as files
from protocol.crypto import blake2b_256
from protocol.errors import ProtocolError, SignatureError
from protocol.event import ChainError, ChainHead, check_link, decode_event
from protocol.keyring import key_at

PREFIX = "central"


@dataclass(frozen=True, slots=True)
class BackupSettings:
    dir: Path
    keep: int = 7


def settings(cfg: CentralConfig) -> BackupSettings:
    """``[backup]`` of central's config file (``dir``, ``keep``)."""
    try:
        raw = tomllib.loads(cfg.path.read_text(encoding="utf-8")).get("backup", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CentralConfigError(f"{cfg.path}: cannot read the config: {exc}") from None
    if not isinstance(raw, dict) or set(raw) - {"dir", "keep"}:
        raise CentralConfigError(f"{cfg.path}: [backup] takes only dir, keep")
    keep = raw.get("keep", 7)
    if type(keep) is not int or not 1 <= keep <= 10_000:
        raise CentralConfigError(f"{cfg.path}: [backup] keep must be a whole number ≥ 1")
    d = raw.get("dir", "")
    if not isinstance(d, str):
        raise CentralConfigError(f"{cfg.path}: [backup] dir must be a path string")
    where = Path(d).expanduser() if d else cfg.db.parent / "backups"
    return BackupSettings(where if where.is_absolute() else cfg.path.parent / where, keep)


def check_store_copy(conn: sqlite3.Connection) -> tuple[int, str]:
    """Every node's chain held at central: bytes against hashes, links, signatures with
    the enrolled keys, and each node's recorded head: (events, "" or the first fault)."""
    keys = keyring_of(conn)
    # each event is checked with the key valid at its seq.  A node re-enrolled with a new
    # key before central kept key histories (revoke, enrol) signed what came before with
    # its old one, which central does not have: those events are checked by hash and link
    # only (the chain of hashes ties them to the ones its current key signs)
    enrolled = {n: int(ms) for n, ms in conn.execute("SELECT id, enrolled_ms FROM nodes")}
    heads = {n: (s, bytes(h)) for n, s, h in
             conn.execute("SELECT id, head_seq, head_hash FROM nodes")}
    checked = 0
    node = ""
    head = ChainHead()
    for n, seq, h, data, received in conn.execute(
            "SELECT node, seq, CAST(hash AS BLOB), CAST(data AS BLOB), received_ms FROM events "
            "ORDER BY node, seq"):
        if n != node:
            if node and heads.get(node, (0, b""))[0] != head.seq:
                return checked, f"{node}: the recorded head is not the last event held"
            node, head = n, ChainHead()
        where = f"{n} seq {seq}"
        if blake2b_256(data) != h:
            return checked, f"{where}: stored bytes do not match the stored hash (altered)"
        try:
            ev = decode_event(data)
            if (ev.node, ev.seq) != (n, seq):
                return checked, f"{where}: the event inside says {ev.node} seq {ev.seq}"
            check_link(head, ev)
            if n not in keys:
                return checked, f"{where}: no enrolled key for this node"
            try:
                key = key_at(keys[n], seq)
                if key is None:
                    raise SignatureError(f"no key of {n} is valid at seq {seq}")
                ev.verify_signature(key)
            except SignatureError:
                if received >= enrolled.get(n, 0):
                    raise
        except ChainError as exc:
            return checked, f"{where}: chain broken: {exc}"
        except ProtocolError as exc:
            return checked, f"{where}: {exc.code}: {exc}"
        head = ChainHead(seq, h)
        checked += 1
    if node and heads.get(node, (0, b""))[0] != head.seq:
        return checked, f"{node}: the recorded head is not the last event held"
    return checked, ""


def backup(cfg: CentralConfig, directory: Path | None = None,
           keep: int | None = None) -> files.BackupResult:
    if cfg.postgres:
        raise NotSqlite("onecard-central backup", cfg.database)
    s = settings(cfg)
    return files.backup(cfg.db, directory or s.dir, PREFIX, keep or s.keep, check_store_copy)


def _new_store_id(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = ? WHERE key = 'store_id'", (os.urandom(16),))


def restore(cfg: CentralConfig, path: Path) -> tuple[int, Path | None]:
    """Put the verified backup ``path`` in place of central's store (server stopped)."""
    if cfg.postgres:
        raise NotSqlite("onecard-central restore", cfg.database)
    events = files.check_backup(path, check_store_copy)
    return events, files.restore(path, cfg.db, check_store_copy, _new_store_id)
