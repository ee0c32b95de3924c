"""Backups and restores of a SQLite file (a counter's ledger or central's store).

Theory of operation
-------------------
``backup`` copies the live database with SQLite's online backup API from a read
connection: one read transaction, so the copy is one consistent moment of the file
while the app, the sync daemon or the server go on writing (WAL: readers never block
writers).  The copy is written under a temporary name in the backup directory,
switched to a self-contained rollback-journal file, checked (``PRAGMA
integrity_check`` and the caller's chain verify), fsynced, and only then renamed to
its final name, so a backup file that exists is a verified one.  A copy that fails
its check is removed and the command fails.  The oldest backups beyond ``keep`` are
removed afterwards (names sort by time).

``restore`` checks the backup the same way first, refuses while any process has the
database open (SQLite's shared lock on ``<db>-shm``: :func:`_shm_lock`), keeps the
replaced file aside as ``<db>.before-restore`` (``.2``, ``.3``… when an earlier
restore's is still there; with its ``-wal`` if one was left), and renames a copy of the
backup into place: the database is at every instant either the old file or the whole
backup, never half of one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_node.errors import EdgeError

#: SQLite's WAL-index "DMS" lock: every connection to a WAL database holds a shared
#: POSIX lock on this byte of ``<db>-shm`` for as long as it is open (sqlite3 wal.c:
#: WALINDEX_LOCK_OFFSET 120 + the 8th lock slot).
SHM_DMS_BYTE = 128
SQLITE_MAGIC = b"SQLite format 3\x00"

#: A check of an open copy: returns (events checked, "") or (_, why it is broken).
Verify = Callable[[sqlite3.Connection], tuple[int, str]]


class BackupError(EdgeError):
    """A backup or restore could not be done; the message says why and what to do."""

    title = "Backup"


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int
    events: int
    removed: tuple[Path, ...]

    def line(self) -> str:
        """The one line a backup run prints (the systemd journal keeps it)."""
        gone = f", removed {len(self.removed)} old" if self.removed else ""
        return (f"backup {self.path}  {self.size} bytes, {self.events} events, "
                f"verified{gone}")


def make_private(path: Path) -> None:
    """Patients' data is for this machine's service account only: the database file
    (and its WAL and shared-memory files) mode 0600, whatever made them earlier.  New
    files are private already (the CLIs run with umask 077: :func:`private_umask`)."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.stat().st_mode & 0o077:
                p.chmod(0o600)
        except OSError:
            pass  # not there (yet), or not ours to change: opening will say if it matters


def private_umask() -> None:
    """Every file this process creates from now on is its owner's only (0600 files, 0700
    directories): ledgers, central's database, configs, keys, backups, exports."""
    os.umask(0o077)


def damage(path: Path) -> str:
    """Why ``path`` is not a usable SQLite file ("" when its header looks right).

    A 0-byte file would silently open as a new, empty database: refused here, since
    neither the ledger nor central's store ever leaves one (they make their schema in
    the same breath as the file).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(100)
        size = os.stat(path).st_size
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if size == 0:
        return "is empty (0 bytes)"
    if not head.startswith(SQLITE_MAGIC):
        if not head.strip(b"\x00"):
            return "is all zeros where its header should be"
        return "is not a SQLite database (its header is wrong)"
    if len(head) < 100:
        return "is truncated (shorter than a SQLite header)"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    # the header's page count is valid when the change counters match (SQLite ≥ 3.7)
    if head[24:28] == head[92:96] and pages and size < page * pages:
        return f"is truncated ({size} bytes of {page * pages})"
    return ""


def check_copy(conn: sqlite3.Connection, verify: Verify) -> tuple[int, str]:
    """``PRAGMA integrity_check``, then the chain verify: (events, "" or why broken)."""
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            return 0, "integrity check: " + "; ".join(str(r[0]) for r in rows[:5])
        return verify(conn)
    except sqlite3.DatabaseError as exc:
        return 0, f"cannot be read: {exc}"


def _ro_uri(path: Path) -> str:
    """A read-only SQLite URI for ``path`` (any characters in it escaped)."""
    return path.resolve().as_uri() + "?mode=ro"


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def backup(db: Path, directory: Path, prefix: str, keep: int, verify: Verify, *,
           now: dt.datetime | None = None) -> BackupResult:
    """Copy ``db`` (live) into ``directory``, verify it, rename it in, keep ``keep``."""
    why = damage(db)
    if why:
        raise BackupError(f"{db} {why}: nothing to back up")
    if not db.exists():
        raise BackupError(f"{db}: no database there to back up")
    if keep < 1:
        raise BackupError("keep must be at least 1")
    directory.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"{prefix}-{stamp}.sqlite3"
    tmp = directory / f".{final.name}.tmp"
    try:
        src = sqlite3.connect(_ro_uri(db), uri=True, timeout=30)
        try:
            src.execute("PRAGMA busy_timeout=30000")
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)  # all pages in one step: one read transaction, one moment
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                events, bad = check_copy(dst, verify)
            finally:
                dst.close()
        finally:
            src.close()
        if bad:
            raise BackupError(f"the copy of {db} does not verify ({bad}): removed; the "
                              "database itself may be damaged: run its verify")
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync_dir(directory)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {db}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            Path(f"{tmp}-journal").unlink()
    return BackupResult(final, final.stat().st_size, events, tuple(rotate(directory, prefix,
                                                                         keep)))


def backups(directory: Path, prefix: str) -> list[Path]:
    """The finished backups of ``prefix`` in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(f"{prefix}-*.sqlite3") if p.is_file())


def rotate(directory: Path, prefix: str, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest backups; return the removed."""
    old = backups(directory, prefix)[:-keep]
    for p in old:
        p.unlink()
    return old


@contextlib.contextmanager
def _shm_lock(db: Path) -> Iterator[bool]:
    """Hold an exclusive lock on the DMS byte (no SQLite connection can open the WAL
    index meanwhile); yields False when another process has the database open.

    Only from a process with no connection to ``db`` of its own: POSIX locks are per
    process, and closing any descriptor of the file drops this process's locks.
    """
    shm = Path(f"{db}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        yield True  # no WAL index: nobody has it open in WAL mode
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SHM_DMS_BYTE)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, SHM_DMS_BYTE)
    finally:
        os.close(fd)


def _free_name(path: Path) -> Path:
    """``path``, or ``path.2``, ``path.3``…: an earlier restore's kept file stays."""
    for n in range(1, 10_000):
        p = path if n == 1 else path.with_name(f"{path.name}.{n}")
        if not p.exists() and not Path(f"{p}-wal").exists():
            return p
    raise BackupError(f"too many {path.name}.N files beside {path.parent}: remove old ones")


def check_backup(path: Path, verify: Verify) -> int:
    """Verify a backup file before it is restored; its events, or BackupError."""
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    why = damage(path)
    if why:
        raise BackupError(f"the backup {path} {why}: choose another backup")
    try:
        conn = sqlite3.connect(_ro_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"the backup {path} cannot be opened: {exc}") from None
    try:
        events, bad = check_copy(conn, verify)
    finally:
        conn.close()
    if bad:
        raise BackupError(f"the backup {path} does not verify ({bad}): choose another backup")
    return events


def restore(path: Path, db: Path, verify: Verify,
            prepare: Callable[[sqlite3.Connection], None] | None = None) -> Path | None:
    """Put the verified backup ``path`` in place of ``db``; return where the replaced
    file was kept (None when there was none).

    ``prepare`` runs on the copy before it goes in (a marker the next open reads).
    Refuses (BackupError, nothing changed) while another process has ``db`` open.
    """
    check_backup(path, verify)
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(f".{db.name}.restoring")
    shutil.copyfile(path, tmp)
    try:
        if prepare is not None:
            conn = sqlite3.connect(tmp)
            try:
                with conn:
                    prepare(conn)
            finally:
                conn.close()
        _fsync(tmp)
        with _shm_lock(db) as free:
            if not free:
                raise BackupError(f"{db} is open in another process (the counter's app or "
                                  "sync, or central's server): stop it, then restore")
            aside = _free_name(db.with_name(db.name + ".before-restore"))
            kept: Path | None = None
            if db.exists():
                os.replace(db, aside)
                kept = aside
            wal = Path(f"{db}-wal")
            if wal.exists():  # committed pages not yet in the file: they stay with it
                os.replace(wal, Path(f"{aside}-wal"))
            with contextlib.suppress(FileNotFoundError):
                Path(f"{db}-shm").unlink()
            os.replace(tmp, db)
            _fsync_dir(db.parent)
            return kept
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
