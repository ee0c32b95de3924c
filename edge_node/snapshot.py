"""Bootstrap a counter from central's signed snapshot (:mod:`protocol.snapshot`).

Theory of operation
-------------------
``onecard-edge bootstrap`` makes a new or rebuilt counter usable in a hospital with
years of history without folding every event: it downloads central's newest snapshot
(the projections folded up to one position of central's store, as a zstd stream of a
SQLite file in this ledger's schema, with no events), checks it, puts it in place of
the (empty) ledger, and then syncs the events after that position as any counter does.

1. *Download* (:func:`download`, over the sync connection, protocol 5): the stream is
   written to ``<ledger>.snapshot.zst.part`` as it comes; a download cut short goes on
   from where it stopped (the manifest beside it says which snapshot it is).  The
   first frame carries the manifest, whose signature the sync session checks with the
   key central authenticated with.
2. *Check* (:func:`unpack`): the stream's size, then the file it unpacks to — its size
   and BLAKE2b-256 against the signed manifest — and that it is a ledger of this
   version's fold and index.  Anything else: refused, nothing installed, the download
   deleted.
3. *Install* (:func:`install`): the file becomes the ledger in one rename, refused
   while another process has the ledger open; the ledger it replaces (no events of its
   own) is kept aside.  Its ``meta`` records the manifest, central's signature and the
   key that checked it (:data:`SNAPSHOT_META`); its pull cursor is the snapshot's
   position, each node's chain head is the one the manifest names (this counter's own
   included: a rebuilt counter's next event continues its chain, after central gave
   back whatever of it came after the snapshot), and no own event is written until
   central has been heard (as after a restore).
4. The compressed stream is kept as ``<ledger>.snapshot.zst``: the *base*.  ``rebuild``
   starts from it and refolds the events after it; ``verify`` checks its signature and
   hash, and each node's chain from the head the manifest names.

The history before the snapshot stays at central (``onecard-central verify`` walks
it); this counter holds and verifies the events after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard as zstd

from edge_node.errors import ConfigError, EdgeError
from protocol.crypto import fingerprint, is_valid_signature
from protocol.errors import ProtocolError, SchemaError
from protocol.event import ChainHead
from protocol.snapshot import Manifest, signing_payload

#: ledger ``meta`` key: the snapshot the projections started from (JSON)
SNAPSHOT_META = "snapshot"
BASE_SUFFIX = ".snapshot.zst"
PART_SUFFIX = ".snapshot.zst.part"
READ_CHUNK = 1 << 20
#: the stream is inflated from pieces this size: what one piece unpacks to (about nine
#: times as much for a ledger) is what the unpack holds in memory at once, a few times over
INFLATE_CHUNK = 64 << 10


class SnapshotError(EdgeError):
    """A snapshot that cannot be used: what is wrong, and nothing was installed."""


@dataclass(frozen=True, slots=True)
class Base:
    """The snapshot a ledger's projections started from."""

    manifest: Manifest
    raw: bytes  # the manifest's bytes, as central signed them
    sig: bytes
    central_key: bytes  # the key that checked ``sig`` when it was installed

    def to_json(self) -> str:
        return json.dumps({"manifest": self.raw.hex(), "sig": self.sig.hex(),
                           "central_key": self.central_key.hex()})

    @classmethod
    def from_json(cls, text: str) -> Base:
        try:
            d = json.loads(text)
            raw = bytes.fromhex(d["manifest"])
            return cls(Manifest.decode(raw), raw, bytes.fromhex(d["sig"]),
                       bytes.fromhex(d["central_key"]))
        except (ValueError, KeyError, TypeError, ProtocolError) as exc:
            raise SnapshotError(f"the ledger's record of its snapshot is damaged: {exc}") \
                from None

    def signed(self) -> bool:
        return is_valid_signature(self.central_key, signing_payload(self.raw), self.sig)


def base_of(conn: sqlite3.Connection) -> Base | None:
    """The snapshot this ledger started from (None: it folded every event itself)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (SNAPSHOT_META,)).fetchone()
    return Base.from_json(str(row[0])) if row else None


def base_heads(conn: sqlite3.Connection) -> dict[str, ChainHead]:
    """Each node's chain head where the snapshot left it ({} without one)."""
    b = base_of(conn)
    return dict(b.manifest.heads) if b is not None else {}


def base_path(db: str | Path) -> Path:
    return Path(f"{db}{BASE_SUFFIX}")


# -- the stream --------------------------------------------------------------------------
def inflate(stream: Path, hasher: Any = None) -> Iterator[bytes]:
    """The bytes of the file ``stream`` (a zstd stream) holds, a chunk at a time
    (``hasher``: updated with the stream's own bytes as they are read)."""
    z = zstd.ZstdDecompressor().decompressobj(write_size=1 << 20)
    try:
        with stream.open("rb") as f:
            while chunk := f.read(INFLATE_CHUNK):
                if hasher is not None:
                    hasher.update(chunk)
                out = z.decompress(chunk)
                if out:
                    yield out
                if z.eof:
                    break
        tail = z.flush()
        if tail:
            yield tail
    except zstd.ZstdError as exc:
        raise SnapshotError(f"{stream} is damaged or altered: not a whole zstd stream "
                            f"({exc})") from None
    if not z.eof or z.unused_data:
        raise SnapshotError(f"{stream} is damaged or altered: its zstd stream is cut short "
                            "or has bytes after its end")


def unpack(stream: Path, raw: Path, m: Manifest) -> None:
    """Unpack ``stream`` into ``raw`` (fsynced), checking the stream against the manifest:
    its size, its hash (which central signed), and what it unpacks to (at most the file's
    size, which a damaged stream cannot pass).  One pass; a thread writes while this one
    inflates (both release the GIL: two cores)."""
    size = stream.stat().st_size
    if size != m.size:
        raise SnapshotError(f"the snapshot stream is {size} bytes, its manifest says {m.size}")
    h = _blake2b()
    n = 0
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)  # (memory: 8 chunks at most)
    failed: list[BaseException] = []

    def write(out: BinaryIO) -> None:
        try:
            while (chunk := chunks.get()) is not None:
                if not failed:
                    out.write(chunk)
        except BaseException as exc:  # (a full disk: said by the caller)
            failed.append(exc)
            while chunks.get() is not None:
                pass

    try:
        with raw.open("wb") as out:
            writer = threading.Thread(target=write, args=(out,), name="snapshot-writer")
            writer.start()
            try:
                for chunk in inflate(stream, h):
                    n += len(chunk)
                    if n > m.raw_size:
                        raise SnapshotError("the snapshot unpacks to more bytes than its "
                                            f"manifest says ({m.raw_size})")
                    if failed:
                        break
                    chunks.put(chunk)
            finally:
                chunks.put(None)
                writer.join()
            if failed:
                raise failed[0]
            out.flush()
            os.fsync(out.fileno())
        if n != m.raw_size or h.digest() != m.hash:
            raise SnapshotError("the snapshot does not match the hash central signed (damaged "
                                "or altered on the way): refused, nothing installed")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            raw.unlink()
        raise


def check_base(db: str | Path, base: Base) -> str:
    """Why the kept base of ``db`` does not hold what its manifest says ("" when it does)."""
    path = base_path(db)
    if not base.signed():
        return (f"the snapshot's manifest is not signed by central's key "
                f"{fingerprint(base.central_key)}")
    if not path.exists():
        return (f"the snapshot this ledger started from ({path}) is missing: the events "
                "after it still verify, but rebuild cannot start without it")
    if path.stat().st_size != base.manifest.size:
        return f"the snapshot {path} is not the size its manifest says (altered)"
    if blake2b_file(path) != base.manifest.hash:
        return f"the snapshot {path} does not match the hash central signed (altered)"
    return ""


def _blake2b() -> Any:
    import hashlib
    return hashlib.blake2b(digest_size=32)


# -- the download -------------------------------------------------------------------------
class Download:
    """The sync client's ``after_welcome`` for a bootstrap: fetch central's newest snapshot
    into ``<ledger>.snapshot.zst.part``, going on from a download cut short.  ``done`` holds
    the checked manifest, signature and central's key once the stream is whole."""

    def __init__(self, db: Path, progress: Callable[[int, int], None] | None = None) -> None:
        self.part = Path(f"{db}{PART_SUFFIX}")
        self.part_id = Path(f"{db}{PART_SUFFIX}.id")
        self.progress = progress
        self.done: Base | None = None
        self.received = 0  # bytes received in this run (resumed ones not counted)

    async def __call__(self, ws: Any, session: Any, welcome: Any) -> None:
        from protocol.messages import OLDEST_SNAPSHOT, Ping, SnapshotPart

        if session.proto < OLDEST_SNAPSHOT:
            raise SnapshotError(f"central speaks protocol {session.proto}, which has no "
                                "snapshots: upgrade central, or sync the whole history "
                                "(onecard-edge sync)")
        asked, offset = b"", 0
        if self.part.exists() and self.part_id.exists():
            asked, offset = self.part_id.read_bytes(), self.part.stat().st_size
        await ws.send(session.send_snapshot_get(asked, offset))
        out: BinaryIO | None = None
        first: tuple[Manifest, bytes, bytes] | None = None
        try:
            while True:
                data = await ws.recv()
                if isinstance(data, str):
                    raise SnapshotError("central sent a text frame")
                msg = session.receive(data)
                if isinstance(msg, Ping):
                    await ws.send(session.send_pong(msg.n))
                    continue
                if not isinstance(msg, SnapshotPart):
                    raise SnapshotError(f"central sent {msg.TYPE} during the snapshot")
                if out is None or first is None:
                    if not msg.snapshot:
                        raise SnapshotError("central has no snapshot to give yet: make one "
                                            "there (onecard-central snapshot), then try again")
                    manifest = Manifest.decode(msg.manifest)
                    if manifest.store != welcome.store:
                        raise SnapshotError("central's snapshot is of another store than the "
                                            "one it serves")
                    if msg.snapshot != asked or msg.offset == 0:
                        self.part_id.write_bytes(msg.snapshot)
                        out = self.part.open("wb")  # another snapshot, or from its start
                    else:
                        out = self.part.open("r+b")
                        out.truncate(msg.offset)
                    out.seek(msg.offset)
                    first = (manifest, msg.manifest, msg.sig)
                if msg.offset + len(msg.data) > first[0].size:
                    raise SnapshotError("central sent more of the snapshot than its manifest "
                                        "says it holds: refused")
                out.write(msg.data)
                self.received += len(msg.data)
                if self.progress is not None and msg.data:
                    self.progress(msg.offset + len(msg.data), first[0].size)
                if msg.last:
                    break
            if out is None or first is None:
                raise SnapshotError("central ended the snapshot before it began")
            out.flush()
            os.fsync(out.fileno())
        finally:
            if out is not None:
                out.close()
        manifest, raw, sig = first
        if self.part.stat().st_size != manifest.size:
            raise SnapshotError(f"the snapshot stream is {self.part.stat().st_size} bytes, "
                                f"its manifest says {manifest.size}")
        self.done = Base(manifest, raw, sig, session.central_key)


# -- what the file must be ---------------------------------------------------------------
def check_file(raw: Path, m: Manifest, registry: str) -> None:
    """The unpacked file is a ledger of this version's fold, with no events, at the
    manifest's heads; or SnapshotError."""
    if m.registry != registry:
        raise SnapshotError(
            "central's snapshot was folded by another version of onecard (its fold "
            f"{m.registry[:12]}…, this counter's {registry[:12]}…): upgrade so both run the "
            "same version, or make a new snapshot at central (onecard-central snapshot)")
    try:
        conn = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SnapshotError(f"the snapshot cannot be opened: {exc}") from None
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("projection_schema") != registry:
            raise SnapshotError("the snapshot's projections are not the fold its manifest names")
        if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
            raise SnapshotError("the snapshot holds events: it is not a snapshot")
        heads = {str(n): ChainHead(int(s), bytes(h))
                 for n, s, h in conn.execute("SELECT node, seq, hash FROM heads")}
        if heads != m.heads:
            raise SnapshotError("the snapshot's chain heads are not the ones its manifest names")
    except sqlite3.Error as exc:
        raise SnapshotError(f"the snapshot is not a ledger file: {exc}") from None
    finally:
        conn.close()


def install(db: Path, node_id: str, raw: Path, base: Base, stream: Path,
            shm_free: Callable[[Path], Any]) -> Path | None:
    """Make the checked file ``raw`` the ledger ``db`` of ``node_id``; keep ``stream`` as
    its base.  Returns where the replaced ledger was kept (None: there was none).

    ``shm_free``: a context manager factory yielding whether nobody has ``db`` open
    (:func:`edge_node.backup._shm_lock`)."""
    from edge_node.backup import _free_name, _fsync, _fsync_dir
    from edge_node.ledger import INDEX_INTERIM, RECOVER_PENDING

    m = base.manifest
    conn = sqlite3.connect(raw, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM meta WHERE key IN ('node_id', ?)", (SNAPSHOT_META,))
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
            ("node_id", node_id), (SNAPSHOT_META, base.to_json()),
            ("sync.central_store", m.store),
            # no own event until central said how far it holds this counter's chain
            (RECOVER_PENDING, 1)]
            # the search index as central made it, until this counter's grant comes
            + ([(INDEX_INTERIM, 1)] if m.index else []))
        if m.index:  # the patients whose terms are written without names until then
            conn.execute("CREATE TABLE IF NOT EXISTS index_interim "
                         "(patient_id TEXT PRIMARY KEY) WITHOUT ROWID")
        own = m.heads.get(node_id)
        conn.execute("UPDATE sync_state SET pull_cursor = ?, acked_seq = ?, received = 0, "
                     "online = 0, last_error = '' WHERE id = 1",
                     (m.cursor, own.seq if own else 0))
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    _fsync(raw)
    with shm_free(db) as free:
        if not free:
            raise SnapshotError(f"{db} is open in another process (the counter's app or "
                                "sync): stop them, then bootstrap")
        kept: Path | None = None
        if db.exists():
            aside = _free_name(db.with_name(db.name + ".before-bootstrap"))
            os.replace(db, aside)
            kept = aside
            wal = Path(f"{db}-wal")
            if wal.exists():
                os.replace(wal, Path(f"{aside}-wal"))
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}-shm").unlink()
        os.replace(stream, base_path(db))
        os.replace(raw, db)
        _fsync_dir(db.parent)
    return kept


def ledger_events(db: Path) -> int:
    """How many events the ledger at ``db`` holds (0: none, or no ledger yet)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
            started = conn.execute("SELECT 1 FROM meta WHERE key = ?",
                                   (SNAPSHOT_META,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read the ledger {db}: {exc}") from None
    return int(row[0]) + (1 if started else 0)


# -- the base's rows, for rebuild ---------------------------------------------------------
@contextlib.contextmanager
def opened_base(db: str | Path, base: Base) -> Iterator[sqlite3.Connection]:
    """The base unpacked beside the ledger and opened read-only (removed after)."""
    path = base_path(db)
    if not path.exists():
        raise ConfigError(
            f"this ledger started from central's snapshot, and that snapshot ({path}) is "
            "missing: rebuild cannot start without it. Bootstrap the counter again "
            "(move the ledger aside; onecard-edge bootstrap)")
    raw = Path(f"{db}.snapshot.unpacked")
    unpack(path, raw, base.manifest)
    try:
        conn = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
        try:
            yield conn
        finally:
            conn.close()
    finally:
        with contextlib.suppress(FileNotFoundError):
            raw.unlink()


def base_rows(conn: sqlite3.Connection, table: str, page: int = 5_000
              ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """The base's rows of ``table``, a page at a time, with its column names."""
    try:
        cur = conn.execute(f"SELECT * FROM {table}")
    except sqlite3.OperationalError as exc:
        raise SchemaError(f"the snapshot has no table {table}: {exc}") from None
    names = [d[0] for d in cur.description]
    while rows := cur.fetchmany(page):
        yield names, rows


def blake2b_file(path: Path) -> bytes:
    h = _blake2b()
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    digest: bytes = h.digest()
    return digest


# -- backups: the base goes with them -------------------------------------------------------
def kept_base(directory: Path, prefix: str, m: Manifest) -> Path:
    """Where a backup directory keeps the base of ``prefix``'s backups that started from
    the snapshot ``m``: one file per snapshot, whichever backups refer to it."""
    return directory / f"{prefix}-base-{m.hash.hex()[:32]}{BASE_SUFFIX}"


def backup_base(path: Path) -> Base | None:
    """The snapshot the ledger (or backup) file ``path`` started from (None: none)."""
    from edge_node.backup import _ro_uri

    try:
        conn = sqlite3.connect(_ro_uri(path), uri=True)
        try:
            return base_of(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def copy_base(src: Path, dst: Path, m: Manifest) -> None:
    """Copy the base ``src`` to ``dst`` (a temp name, checked against the manifest the
    copy's ledger names, fsynced, renamed in): ``dst`` is whole or absent."""
    from edge_node.backup import _fsync_dir

    tmp = dst.with_name(f".{dst.name}.tmp")
    h = _blake2b()
    n = 0
    try:
        with src.open("rb") as f, tmp.open("wb") as out:
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
                n += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if n != m.size or h.digest() != m.hash:
            raise SnapshotError(f"{src} is not the snapshot its ledger started from (altered "
                                "or replaced): not copied")
        os.replace(tmp, dst)
        _fsync_dir(dst.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def keep_base_with(backup_file: Path, db: Path, prefix: str) -> tuple[Path | None, bool]:
    """After a backup of ``db`` into ``backup_file``: keep the base it started from in the
    backup's directory too, so a restore on a new disk can rebuild and verify it.
    Returns (the kept base or None when the ledger did not start from a snapshot, whether
    it was copied now); SnapshotError when the ledger's own base is missing or altered."""
    base = backup_base(backup_file)
    if base is None:
        return None, False
    dst = kept_base(backup_file.parent, prefix, base.manifest)
    if dst.exists() and dst.stat().st_size == base.manifest.size:
        return dst, False  # an earlier backup kept it (checked when it was copied)
    src = base_path(db)
    if not src.exists():
        raise SnapshotError(
            f"the snapshot this ledger started from ({src}) is missing, so the backup "
            f"{backup_file} is kept without it: restored on a new disk it works but cannot "
            "be rebuilt. Bootstrap the counter again to have one (onecard-edge bootstrap)")
    copy_base(src, dst, base.manifest)
    return dst, True


def forget_bases(directory: Path, prefix: str, backups: list[Path]) -> list[Path]:
    """Remove the bases of ``prefix`` kept in ``directory`` that none of ``backups``
    (the ones still kept) started from; return those removed."""
    wanted = set()
    for b in backups:
        with contextlib.suppress(ConfigError, SnapshotError):
            base = backup_base(b)
            if base is not None:
                wanted.add(kept_base(directory, prefix, base.manifest).name)
    removed = []
    for p in directory.glob(f"{prefix}-base-*{BASE_SUFFIX}"):
        if p.name not in wanted:
            p.unlink()
            removed.append(p)
    return removed


def stage_base_for_restore(backup_file: Path, db: Path, prefix: str
                           ) -> tuple[Path | None, str]:
    """Before a restore of ``backup_file`` over ``db``: the base the backup started from,
    copied (checked) beside the ledger under a temp name, to be put in place with
    :func:`put_restored_base` once the ledger is; and a warning ("" when none).
    (None, ""): nothing to do (no base, or the one in place is already the right one)."""
    base = backup_base(backup_file)
    if base is None or not check_base(db, base):
        return None, ""
    kept = kept_base(backup_file.parent, prefix, base.manifest)
    if not kept.exists():
        return None, (
            f"warning: the snapshot this backup started from is not beside it ({kept.name}) "
            f"nor in place ({base_path(db)}): the restored counter works and syncs, but "
            "rebuild cannot start and verify says the snapshot is missing until the "
            "counter is bootstrapped again (onecard-edge bootstrap)")
    staged = Path(f"{db}{BASE_SUFFIX}.restoring")
    copy_base(kept, staged, base.manifest)
    return staged, ""


def put_restored_base(staged: Path, db: Path, replaced: Path | None) -> None:
    """The staged base in place for the restored ledger ``db``; the base of the ledger it
    replaced goes with that one (``replaced``: where the restore kept it)."""
    from edge_node.backup import _fsync_dir

    current = base_path(db)
    if current.exists():
        if replaced is not None:
            os.replace(current, base_path(replaced))
        else:
            current.unlink()
    os.replace(staged, current)
    _fsync_dir(db.parent)
