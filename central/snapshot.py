"""Central's snapshots of the counters' projections, made and served (:mod:`protocol.snapshot`).

Theory of operation
-------------------
``onecard-central snapshot`` (a systemd timer runs it nightly) keeps a *mirror* in
``[central] snapshot_dir``: a counter ledger that holds no events, only the projections
every counter folds — folded from central's store in position order by the counters'
own fold (:meth:`edge_node.ledger.Ledger.fold_trusted`), so it is the state any counter
holding the same events has (same events, same state, whatever the order).  Each run
folds what came since the last one, its position written in the transaction of each
step, so a run cut short goes on where it stopped and a restart refolds nothing.  The
mirror starts afresh when it was folded by another version (the fold's or the search
index's fingerprint changed) or from another store.

The run then copies the mirror (``VACUUM INTO``: one consistent file, compact),
writes it as one zstd stream ``snap-<position>.zst`` while hashing it, and beside it
the manifest ``snap-<position>.manifest`` (its canonical bytes), renamed into place
last; the two newest are kept (a counter part-way through the older one finishes it).
The names in the search index are the hospital's sealed-name tags, made with the
patient keys central holds (:mod:`protocol.privacy`): a counter granted the same keys
uses the index as it comes.

``serve`` answers a counter's ``snapshot_get`` (:func:`send_snapshot`): the newest
manifest, signed with central's key at that moment, then the stream in parts from the
offset asked, each awaited (the websocket's flow control paces a slow link).  Asked
for a snapshot that was replaced meanwhile, it answers with the newest from its start.

Memory stays bounded at any history: the fold goes a page of events at a time and
the copy, compression and hashing stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

import zstandard as zstd

from central.store import CentralStore
from edge_node.search import PatientIndex
from protocol.crypto import SigningKey, blake2b_256
from protocol.domain import REGISTRY
from protocol.errors import ProtocolError
from protocol.event import ChainHead
from protocol.messages import SNAPSHOT_CHUNK, SnapshotGet
from protocol.privacy import PatientKeys
from protocol.session import CentralSession
from protocol.snapshot import Manifest, signing_payload

log = logging.getLogger("onecard.central.snapshot")

MIRROR = "mirror.sqlite3"
MIRROR_NODE = "central-snapshot"  # the mirror ledger's node id (it appends nothing)
FOLD_PAGE = 5_000  # events folded per step (one transaction)
KEEP = 2
LEVEL = 3  # zstd: 15% smaller than zlib's 6 here, 8x faster to make, 2x to unpack
_POS, _EVENTS, _STORE = "snapshot.position", "snapshot.events", "snapshot.store"


def _meta(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def _index_fingerprint(keys: PatientKeys | None) -> str:
    ix = PatientIndex()
    ix.use_keys(keys)
    return ix.fingerprint()


def _stale(mirror: Path, store: bytes, keys: PatientKeys | None) -> str:
    """Why the mirror cannot be folded on ("" when it can, or there is none)."""
    if not mirror.exists():
        return ""
    try:
        meta = _meta(mirror)
    except sqlite3.Error as exc:
        return f"it cannot be read ({exc})"
    if meta.get("projection_schema") != REGISTRY.fingerprint():
        return "it was folded by another version"
    if meta.get(f"index:{PatientIndex.TABLE}") != _index_fingerprint(keys):
        return "its search index was made another way or with other keys"
    if meta.get(_STORE) != store:
        return "it was folded from another store"
    return ""


def _discard(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


async def fold_mirror(store: CentralStore, directory: Path, keys: PatientKeys | None, *,
                      progress: Callable[[int], None] | None = None) -> tuple[Path, int]:
    """Fold the mirror up to central's cursor now; (its path, the position reached)."""
    from edge_node.ledger import Ledger

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mirror = directory / MIRROR
    store_id = await store.store_id()
    why = _stale(mirror, store_id, keys)
    if why:
        log.warning("snapshot mirror %s: %s: folding it afresh from the first event", mirror,
                    why)
        _discard(mirror)
    led = await Ledger.open(mirror, MIRROR_NODE, None, patient_keys=keys,
                            max_skew_ms=store.max_skew_ms)
    try:
        # a cache central can make again from its store: no fsync per step, but never a
        # damaged file after a power cut (WAL with NORMAL: the last steps may be lost, and
        # each step's position is in its own transaction)
        await led.run(lambda c: c.execute("PRAGMA synchronous=NORMAL"))
        meta = await led.run(lambda c: dict(c.execute(
            "SELECT key, value FROM meta WHERE key IN (?, ?)", (_POS, _EVENTS)).fetchall()))
        pos, events = int(meta.get(_POS, 0)), int(meta.get(_EVENTS, 0))
        target = await store.cursor()
        last_told = events
        while pos < target:
            rows = [r for r in await store.events_since(pos, FOLD_PAGE) if r[0] <= target]
            if not rows:
                break
            pos, events = rows[-1][0], events + len(rows)
            await led.fold_trusted([d for _, d, _ in rows], time.time_ns() // 1_000_000,
                                   {_POS: pos, _EVENTS: events, _STORE: store_id})
            if progress is not None and events // 100_000 != last_told // 100_000:
                progress(events)
                last_told = events
        await led.write(lambda c: c.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [(_POS, pos), (_EVENTS, events), (_STORE, store_id)]))
    finally:
        await led.close()
    return mirror, pos


def _write_snapshot(mirror: Path, directory: Path, level: int) -> tuple[Path, Path, Manifest]:
    """Copy the mirror, stream it compressed beside its manifest (blocking: a thread)."""
    raw = directory / ".snapshot.copy"
    _discard(raw)
    src = sqlite3.connect(mirror)
    try:
        src.execute("VACUUM INTO ?", (str(raw),))
    finally:
        src.close()
    conn = sqlite3.connect(raw, isolation_level=None)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        pos, events, store = int(meta[_POS]), int(meta[_EVENTS]), bytes(meta[_STORE])
        heads = {str(n): ChainHead(int(s), bytes(h))
                 for n, s, h in conn.execute("SELECT node, seq, hash FROM heads")}
        # what is the mirror's own, not a counter's: its node id and its position
        conn.execute("DELETE FROM meta WHERE key IN ('node_id', ?, ?, ?)", (_POS, _EVENTS, _STORE))
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    stream_tmp = directory / f".snap-{pos}.zst.tmp"
    hashed = _Hashing(stream_tmp)
    with raw.open("rb") as f, hashed:
        zstd.ZstdCompressor(level=level, threads=-1, write_checksum=True).copy_stream(
            f, cast(IO[bytes], hashed), read_size=1 << 20, write_size=1 << 20)
    raw_size = raw.stat().st_size
    raw.unlink()
    wall = int(meta.get("hlc_wall", 0) or 0)
    counter = int(meta.get("hlc_counter", 0) or 0)
    manifest = Manifest(
        store=store, cursor=pos, events=events, heads=heads, clock=(wall, counter),
        registry=REGISTRY.fingerprint(), index=str(meta.get(f"index:{PatientIndex.TABLE}", "")),
        raw_size=raw_size, hash=hashed.digest(), size=stream_tmp.stat().st_size,
        made_ms=time.time_ns() // 1_000_000)
    stream = directory / f"snap-{pos}.zst"
    os.replace(stream_tmp, stream)
    man_tmp = directory / f".snap-{pos}.manifest.tmp"
    man_tmp.write_bytes(manifest.encode())
    man = directory / f"snap-{pos}.manifest"
    os.replace(man_tmp, man)  # last: a manifest in place names a whole stream
    return stream, man, manifest


class _Hashing:
    """A file written through, its bytes hashed as they go (BLAKE2b-256), fsynced at close."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("wb")
        self._h = hashlib.blake2b(digest_size=32)

    def write(self, data: bytes) -> int:
        self._h.update(data)
        return self._f.write(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def __enter__(self) -> _Hashing:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


def snapshots(directory: Path) -> list[tuple[int, Path, Path]]:
    """``(position, manifest, stream)`` of each whole snapshot, newest first."""
    out = []
    for man in directory.glob("snap-*.manifest"):
        try:
            pos = int(man.name[len("snap-"):-len(".manifest")])
        except ValueError:
            continue
        stream = directory / f"snap-{pos}.zst"
        if stream.exists():
            out.append((pos, man, stream))
    return sorted(out, reverse=True)


def prune(directory: Path, keep: int = KEEP) -> list[Path]:
    gone = []
    for _, man, stream in snapshots(directory)[keep:]:
        for p in (man, stream):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                gone.append(p)
    return gone


async def make(store: CentralStore, directory: Path, keys: PatientKeys | None, *,
               level: int = LEVEL, keep: int = KEEP,
               progress: Callable[[int], None] | None = None) -> tuple[Manifest, Path]:
    """Fold the mirror to central's cursor and write a snapshot of it; (its manifest, the
    stream).  The position is the one reached when the run began."""
    newest = snapshots(directory) if directory.exists() else []
    mirror, pos = await fold_mirror(store, directory, keys, progress=progress)
    if newest and newest[0][0] == pos:  # nothing new since the last one: it stands
        _, man, stream = newest[0]
        try:
            return Manifest.decode(man.read_bytes()), stream
        except ProtocolError as exc:  # (made by a version that wrote another layout)
            log.warning("snapshot %s: %s: writing it again", man, exc)
    stream, _, manifest = await asyncio.to_thread(_write_snapshot, mirror, directory, level)
    prune(directory, keep)
    return manifest, stream


# -- serving -----------------------------------------------------------------------------
async def send_snapshot(ws: object, session: CentralSession, key: SigningKey, directory: Path,
                        msg: SnapshotGet) -> None:
    """Answer ``msg``: the newest snapshot's manifest (signed now) and its stream's parts
    from the offset asked (from 0 when another snapshot was asked for)."""
    send = ws.send  # type: ignore[attr-defined]
    found = snapshots(directory) if directory.exists() else []
    if not found:
        await send(session.send_snapshot_part(b"", 0, b"", True))
        return
    _, man, stream = found[0]
    raw = await asyncio.to_thread(man.read_bytes)
    sid = blake2b_256(raw)
    offset = msg.offset if msg.snapshot == sid else 0
    size = (await asyncio.to_thread(stream.stat)).st_size
    offset = min(offset, size)
    sig = key.sign(signing_payload(raw))
    await send(session.send_snapshot_part(sid, offset, b"", offset >= size, raw, sig))
    if offset >= size:
        return
    with stream.open("rb") as f:
        f.seek(offset)
        while offset < size:
            data = await asyncio.to_thread(f.read, SNAPSHOT_CHUNK)
            if not data:
                raise OSError(f"{stream} ended at byte {offset} of {size}")
            last = offset + len(data) >= size
            await send(session.send_snapshot_part(sid, offset, data, last))
            offset += len(data)
