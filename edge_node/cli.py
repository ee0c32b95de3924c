"""``onecard-edge``: set up and inspect a counter (edge node).

Every subcommand takes ``--config`` (default ``$ONECARD_EDGE_CONFIG`` or
``./onecard-edge.toml``).  Exit codes: 0 done, 1 refused or broken (a message says
why, one line on stderr: never a traceback), 2 usage.  Times are printed in the
config's ``timezone``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_node import config as cfgmod
from edge_node.backup import private_umask
from edge_node.errors import ConfigError, EdgeError, quiet_broken_pipe, unexpected_error
from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from edge_node.tui.describe import event_amount, family_of
from protocol import nationalid
from protocol.crypto import SigningKey, fingerprint
from protocol.domain import REGISTRY
from protocol.event import decode_event
from protocol.money import yuan
from protocol.privacy import NAME, SEALED_FIELDS, PatientKeys, is_sealed

DEFAULT_CONFIG = "onecard-edge.toml"


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("ONECARD_EDGE_CONFIG") or DEFAULT_CONFIG)


async def _open(args: argparse.Namespace, *, with_key: bool = False) -> tuple[cfgmod.EdgeConfig,
                                                                             Ledger]:
    cfg = cfgmod.load(_config_path(args))
    key = cfg.load_key()
    ledger = await Ledger.open(cfg.db, cfg.node_id, key, rule_config=cfg.rules)
    return cfg, ledger


def cmd_init(args: argparse.Namespace) -> int:
    """Create the node key (mode 0600) and a config; print the fingerprint to enrol."""
    path = _config_path(args)
    if path.exists() and not args.force:
        print(f"{path} already exists (use --force to overwrite the config; the key is kept)",
              file=sys.stderr)
        return 1
    base = path.parent.resolve()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else base
    cfg = cfgmod.EdgeConfig(
        node_id=args.node_id, role=args.role, db=data_dir / f"{args.node_id}.sqlite3",
        key_file=data_dir / "node.key", pepper_file=data_dir / "staff.pepper",
        language=args.language,
        sync=cfgmod.SyncConfig(args.central_url, args.central_key or ""),
    )
    # the [sync] TLS keys are checked (pin form, wss:// URL) and ca_file made absolute
    sync = cfgmod.from_dict({"node_id": cfg.node_id, "role": cfg.role, "language": cfg.language,
                             "sync": {"central_url": args.central_url,
                                      "ca_file": args.ca_file or "",
                                      "tls_pin": args.tls_pin or ""}}).sync
    cfg = dataclasses.replace(cfg, sync=dataclasses.replace(cfg.sync, ca_file=sync.ca_file,
                                                            tls_pin=sync.tls_pin))
    if cfg.key_file.exists():
        key = cfgmod.load_key(cfg.key_file)
        print(f"keeping the existing key {cfg.key_file}")
        if not cfg.db.exists():
            print("a re-installed counter? run  onecard-edge recover  before its first "
                  "business: it gets this counter's own chain back from central")
    else:
        key = SigningKey.generate()
        cfgmod.write_key(cfg.key_file, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfgmod.render(cfg), encoding="utf-8")
    print(f"counter {cfg.node_id} ({cfg.role}) configured in {path}")
    print(f"public key  {key.public_key.hex()}")
    print(f"fingerprint {key.fingerprint}")
    print("enrol it at central:  onecard-central enrol "
          f"{cfg.node_id} --key {key.public_key.hex()} --role {cfg.role}")
    if not cfg.pepper_file.exists():
        print(f"then install central's staff pepper as {cfg.pepper_file} (mode 0600): staff "
              "enrolled at central log in with it")
    return 0


async def cmd_rotate_key(args: argparse.Namespace) -> int:
    """A new node key from this counter's next seq on (stop its app and sync first).

    The new seed goes into the key file; the old one is kept beside it as
    ``node.key.retired-<its public key's first 16 hex digits>`` and never signs again;
    the ledger records which key signs which seqs, so every event the old key signed
    still verifies here.  Prints the command IT runs at central.
    """
    cfg = cfgmod.load(_config_path(args))
    old = cfg.load_key()
    new = SigningKey.generate()
    tmp = cfg.key_file.with_name(f".{cfg.key_file.name}.new")
    tmp.unlink(missing_ok=True)
    cfgmod.write_key(tmp, new)
    try:
        async with await Ledger.open(cfg.db, cfg.node_id, old, rule_config=cfg.rules) as ledger:
            own, held, pending = await ledger.recovery()
            if pending or held > own:
                raise ConfigError("this counter is recovering from central: let it finish "
                                  "(onecard-edge recover) before rotating its key")
            start = own + 1
            await ledger.rotate_own_key(new.public_key, start)
        retired = cfg.key_file.with_name(
            f"{cfg.key_file.name}.retired-{old.public_key.hex()[:16]}")
        os.replace(cfg.key_file, retired)
        os.replace(tmp, cfg.key_file)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"counter {cfg.node_id}: new key from seq {start} on, in {cfg.key_file}")
    print(f"public key  {new.public_key.hex()}")
    print(f"fingerprint {new.fingerprint}")
    print(f"the old key is kept as {retired}: it signs nothing more (its events up to seq "
          f"{start - 1} still verify)")
    print("rotate it at central:  onecard-central rotate "
          f"{cfg.node_id} --key {new.public_key.hex()} --from-seq {start}")
    print("then start this counter's app and sync again")
    return 0


def local_time(ms: int, timezone: str) -> str:
    """``ms`` since the epoch as a date and time in ``timezone`` (the config's)."""
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).strftime(
        "%Y-%m-%d %H:%M:%S")


async def cmd_info(args: argparse.Namespace) -> int:
    cfg, ledger = await _open(args)
    async with ledger:
        head = await ledger.head()
        st = await ledger.sync_state()
        n = await ledger.event_count()
        heads = await ledger.node_heads()
        own, held, pending = await ledger.recovery()
        try:
            pinned: tuple[bytes, int] | None = await ledger.central_pin(
                cfg.sync.central_public_key)
        except ConfigError:  # no key pinned (yet): said on the line
            pinned = None
        keys = await ledger.patient_keys()
        unchecked = await ledger.signatures_pending_count()
        findings = await ledger.signature_findings()
        base = await ledger.snapshot_base()
    last = (f"{local_time(st.last_sync_ms, cfg.timezone)} ({cfg.timezone})"
            if st.last_sync_ms else "never")
    print(f"node        {cfg.node_id} ({cfg.role})")
    print(f"fingerprint {cfg.load_key().fingerprint}")
    print(f"ledger      {cfg.db}  {n} events, own head seq {head.seq}")
    print(f"nodes known {', '.join(f'{k}@{v.seq}' for k, v in sorted(heads.items())) or '-'}")
    if base is not None:
        m = base.manifest
        print(f"started at  central's snapshot at position {m.cursor} ({m.events} events "
              f"before it, kept at central), made {local_time(m.made_ms, cfg.timezone)}")
    print(f"central     {' '.join(cfg.sync.urls)}  ({_transport(cfg.sync)})")
    print(f"central key {_central_pin(cfg, pinned)}")
    print(f"sync        {'online' if st.online else 'offline'}, {st.pending} own events pending, "
          f"{st.received} received, last sync {last}")
    print(f"last error  {st.last_error or '-'}")
    print(f"signatures  {unchecked} received event(s) central attested await the background "
          "check of their own signature" if unchecked else
          "signatures  every received event's own signature checked")
    if findings:
        f = findings[0]
        print(f"SECURITY    central attested {len(findings)} event(s) whose own signature does "
              f"not verify (first: {f.node} seq {f.seq}): central is compromised or buggy; "
              "this counter verifies every event itself now. Tell IT; run onecard-edge verify")
    print(f"patient keys {_patient_keys(keys)}")
    if pending or held > own:
        print(f"recovery    recovering from central…: own chain at seq {own}"
              f"{f' of {held}' if held > own else ', central not reached yet'}; "
              "no new event until it is back")
    return 0


def _patient_keys(keys: PatientKeys | None) -> str:
    """What central granted this counter of the hospital's patient keys (protocol.privacy)."""
    if keys is None:
        return "none (central grants what this counter's role gets when it connects)"
    what = [w for w, k in (("data key: reads ID numbers, phones, addresses", keys.data),
                           ("lookup key: finds by them", keys.lookup),
                           ("names key: reads and finds names", keys.names)) if k is not None]
    return f"{keys.key_id}: " + "; ".join(what)


def _central_pin(cfg: cfgmod.EdgeConfig, pinned: tuple[bytes, int] | None) -> str:
    """The key central is authenticated with: the config's, or the one central's
    rotation statement led to (kept in the ledger)."""
    if pinned is None:
        return "- ([sync] central_key is not central's public key)"
    key, seq = pinned
    if not seq:
        return f"{fingerprint(key)} (pinned in the config)"
    return (f"{fingerprint(key)} (central's rotation at its seq {seq}, signed by the key the "
            f"config pins, {fingerprint(cfg.sync.central_public_key)}; kept in the ledger)")


def cmd_backup(args: argparse.Namespace) -> int:
    """A verified copy of the live ledger into the backup dir; the oldest rotated out."""
    from edge_node import backup
    from edge_node.ledger import check_ledger_copy
    from edge_node.snapshot import forget_bases, keep_base_with

    cfg = cfgmod.load(_config_path(args))
    key = cfg.load_key()
    directory = Path(args.dir) if args.dir else cfg.backup_dir
    done = backup.backup(cfg.db, directory, cfg.node_id, args.keep or cfg.backup.keep,
                         check_ledger_copy(cfg.node_id, key.public_key))
    print(done.line())
    # a counter bootstrapped from central's snapshot: that snapshot goes with its backups
    # (once per snapshot), or a restore on a new disk could not rebuild
    try:
        kept, copied = keep_base_with(done.path, cfg.db, cfg.node_id)
    finally:
        forget_bases(directory, cfg.node_id, backup.backups(directory, cfg.node_id))
    if kept is not None:
        print(f"the snapshot it started from: {kept}"
              + (" (copied)" if copied else " (kept with an earlier backup)"))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Put a verified backup in place of the ledger (app and sync stopped)."""
    from edge_node import backup
    from edge_node.ledger import RECOVER_PENDING, check_ledger_copy
    from edge_node.snapshot import base_path, put_restored_base, stage_base_for_restore

    cfg = cfgmod.load(_config_path(args))
    key = cfg.load_key()
    src = Path(args.file)
    events = backup.check_backup(src, check_ledger_copy(cfg.node_id, key.public_key))

    def mark(conn: sqlite3.Connection) -> None:  # no own event until central is heard
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, 1)", (RECOVER_PENDING,))

    # the snapshot the backup started from, checked and staged before anything moves
    staged, warning = stage_base_for_restore(src, cfg.db, cfg.node_id)
    try:
        kept = backup.restore(src, cfg.db, check_ledger_copy(cfg.node_id, key.public_key),
                              mark)
        if staged is not None:
            put_restored_base(staged, cfg.db, kept)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    print(f"restored {src} ({events} events) as {cfg.db}"
          + (f"; the replaced file is kept as {kept}" if kept else ""))
    if staged is not None:
        print(f"the snapshot it started from is in place again: {base_path(cfg.db)}")
    if warning:
        print(warning, file=sys.stderr)
    print("next: onecard-edge recover (or start the sync): this counter takes no new event "
          "until central has given back whatever of its chain the backup lacks")
    return 0


def _hopeless(error: str) -> bool:
    """A sync error that retrying cannot mend: central refuses this counter (unknown,
    revoked, another key), or its own chain at central is not this key's or forks."""
    return error.startswith("central refused") or any(
        w in error for w in ("offline key backup", "Equivocation", "forked"))


async def cmd_recover(args: argparse.Namespace) -> int:
    """Sync until this counter's own chain and everyone's events are back from central."""
    cfg = cfgmod.load(_config_path(args))
    key = cfg.load_key()
    async with await Ledger.open(cfg.db, cfg.node_id, key, rule_config=cfg.rules,
                                 max_skew_ms=cfg.sync.max_skew_ms) as ledger:
        await ledger.mark_recovering()
        print(f"recovering from central… ({' '.join(cfg.sync.urls)})", flush=True)
        done, why = await _catch_up(cfg, key, ledger, args.timeout)
        own, held, _ = await ledger.recovery()
        n = await ledger.event_count()
    if not done:
        print(f"onecard-edge: not recovered: own chain at seq {own}"
              f"{f' of {held}' if held else ''}: {why}", file=sys.stderr)
        return 1
    print(f"recovered: own chain back to seq {own} (as central holds it), {n} events in the "
          f"ledger; this counter's next event is seq {own + 1}")
    return 0


async def _catch_up(cfg: cfgmod.EdgeConfig, key: SigningKey, ledger: Ledger,
                    timeout: float) -> tuple[bool, str]:
    """Sync until central's events are all here and this counter's own chain is back as
    far as central holds it, then stop: (done, why not)."""
    from edge_node.sync import daemon
    from edge_node.sync.tls import client_context

    await ledger.update_sync_state(last_error="")  # (an earlier run's is no answer)
    if not os.environ.get("ONECARD_DEBUG"):  # the outcome is one line, said by the caller
        logging.getLogger("onecard").addHandler(logging.NullHandler())
    client = daemon.SyncClient(ledger, key, cfg.sync.urls, cfg.sync.central_public_key,
                               daemon.SyncOptions.from_env(), wal_path=f"{cfg.db}-wal",
                               tls=client_context(cfg.sync), tls_pin=cfg.sync.tls_pin,
                               language=cfg.language)
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    done = False
    try:
        while not done and loop.time() < end and not task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(1.0, max(0.0, end - loop.time()))):
                    await client.caught_up.wait()
            own, held, pending = await ledger.recovery()
            done = client.caught_up.is_set() and not pending and own >= held
            client.caught_up.clear()
            if _hopeless((await ledger.sync_state()).last_error):
                break
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await task
    if done:
        return True, ""
    _, _, pending = await ledger.recovery()
    st = await ledger.sync_state()
    why = st.last_error or ("central did not send this counter's own events back"
                            if not pending else "central was not reached")
    if not _hopeless(st.last_error):
        why += f" (gave up after {timeout:g} s)"
    return False, why


async def cmd_bootstrap(args: argparse.Namespace) -> int:
    """A new or rebuilt counter: central's signed snapshot, then the events after it."""
    import time

    from edge_node import snapshot as snap
    from edge_node.backup import _shm_lock
    from edge_node.sync import daemon
    from edge_node.sync.tls import client_context

    cfg = cfgmod.load(_config_path(args))
    key = cfg.load_key()
    db = Path(cfg.db)
    if snap.ledger_events(db):
        print(f"onecard-edge: {db} already holds events (or started from a snapshot): "
              "bootstrap is for a new counter, or one whose ledger was lost. To start again, "
              "stop the counter's app and sync and move the ledger aside", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    said = [0]

    def progress(got: int, size: int) -> None:
        if size and got * 10 // size > said[0]:
            said[0] = got * 10 // size
            print(f"  … {got / 2**20:.0f} of {size / 2**20:.0f} MB", file=sys.stderr, flush=True)

    dl = snap.Download(db, progress)
    failed: list[str] = []
    stop = asyncio.Event()

    async def fetch(ws: Any, session: Any, welcome: Any) -> None:
        try:
            await dl(ws, session, welcome)
        except snap.SnapshotError as exc:
            failed.append(str(exc))
        if dl.done is not None or failed:
            stop.set()

    if not os.environ.get("ONECARD_DEBUG"):
        logging.getLogger("onecard").addHandler(logging.NullHandler())
    print(f"asking central for its snapshot… ({' '.join(cfg.sync.urls)})", flush=True)
    async with await Ledger.open(cfg.db, cfg.node_id, key, rule_config=cfg.rules,
                                 max_skew_ms=cfg.sync.max_skew_ms) as ledger:
        client = daemon.SyncClient(ledger, key, cfg.sync.urls, cfg.sync.central_public_key,
                                   daemon.SyncOptions.from_env(), tls=client_context(cfg.sync),
                                   tls_pin=cfg.sync.tls_pin, language=cfg.language,
                                   after_welcome=fetch)
        task = asyncio.create_task(client.run(stop))
        try:
            async with asyncio.timeout(args.timeout):
                while not stop.is_set() and not task.done():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await stop.wait()
                    if _hopeless((await ledger.sync_state()).last_error):
                        break
        except TimeoutError:
            pass
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await task
        last_error = (await ledger.sync_state()).last_error
    base = dl.done
    if base is None:
        why = failed[0] if failed else (last_error or "central was not reached") + (
            "" if _hopeless(last_error) else f" (gave up after {args.timeout:g} s; run "
            "bootstrap again to go on from where the download stopped)")
        print(f"onecard-edge: not bootstrapped: {why}", file=sys.stderr)
        return 1
    m = base.manifest
    t_download = time.monotonic() - t0
    raw = Path(f"{db}.snapshot.new")
    try:
        await asyncio.to_thread(snap.unpack, dl.part, raw, m)
        snap.check_file(raw, m, REGISTRY.fingerprint())
        kept = snap.install(db, cfg.node_id, raw, base, dl.part, _shm_lock)
    except snap.SnapshotError as exc:
        for p in (dl.part, dl.part_id, raw):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        print(f"onecard-edge: not bootstrapped: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(FileNotFoundError):
        dl.part_id.unlink()
    t_install = time.monotonic() - t0 - t_download
    print(f"central's snapshot at position {m.cursor} ({m.events} events, signed by central "
          f"key {fingerprint(base.central_key)}): {m.size / 2**20:.1f} MB in "
          f"{t_download:.1f} s, checked and installed in {t_install:.1f} s"
          + (f"; the ledger it replaced is kept as {kept}" if kept else ""), flush=True)
    async with await Ledger.open(cfg.db, cfg.node_id, key, rule_config=cfg.rules,
                                 max_skew_ms=cfg.sync.max_skew_ms) as ledger:
        done, why = await _catch_up(cfg, key, ledger, args.timeout)
        own, _, _ = await ledger.recovery()
        n = await ledger.event_count()
    if not done:
        print(f"onecard-edge: the snapshot is installed, but the events after it are not all "
              f"here yet: {why}. The sync daemon goes on with them", file=sys.stderr)
        return 1
    print(f"bootstrapped in {time.monotonic() - t0:.1f} s: {n} events after the snapshot; "
          f"own chain at seq {own}; this counter's next event is seq {own + 1}. The history "
          "before the snapshot stays at central")
    return 0


def _transport(sc: cfgmod.SyncConfig) -> str:
    """How the link to central is protected, as `info` says it."""
    if not sc.tls:
        return "plain ws://, not encrypted"
    checks = [f"verified by {sc.ca_file}" if sc.ca_file else
              "" if sc.tls_pin else "verified by the system's CAs"]
    if sc.tls_pin:
        checks.append(f"certificate pinned {sc.tls_pin}")
    return "TLS, " + " and ".join(c for c in checks if c)


async def cmd_verify(args: argparse.Namespace) -> int:
    _, ledger = await _open(args)
    async with ledger:
        report = await ledger.verify(
            progress=lambda k: print(f"  … {k} events checked", file=sys.stderr))
    print(report)
    return 0 if report.ok else 1


async def cmd_rebuild(args: argparse.Namespace) -> int:
    _, ledger = await _open(args)
    async with ledger:
        n = await ledger.rebuild(progress=lambda k: print(f"  … {k} events", file=sys.stderr))
    print(f"projections rebuilt from {n} events")
    return 0


async def _card_view(args: argparse.Namespace) -> tuple[CounterService, Any, Ledger]:
    _, ledger = await _open(args)
    service = CounterService(ledger)
    try:
        return service, await service.lookup_card(args.card), ledger
    except BaseException:
        await ledger.close()
        raise


async def cmd_balance(args: argparse.Namespace) -> int:
    _, view, ledger = await _card_view(args)
    await ledger.close()
    a = view.account
    print(f"card {args.card} ({view.card.status}) → patient {view.patient.patient_id} "
          f"{view.patient.name}")
    print(f"balance {yuan(a.balance)}  credit {yuan(a.credit_limit)}  "
          f"available {yuan(a.available)}{'  (settled: closed)' if a.closed else ''}")
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    cfg = cfgmod.load(_config_path(args))
    service, view, ledger = await _card_view(args)
    async with ledger:
        # every event of the record, oldest first by the one merge order (hlc): events
        # synced in from other counters are stored late but happened in between
        events = sorted(await service.history(view.patient.patient_id, -1),
                        key=lambda e: e.sort_key())
    pid = view.patient.patient_id
    family = family_of(pid, events)
    for ev in events[-args.limit:] if args.limit > 0 else []:
        amount = event_amount(ev, family)
        money = f" {yuan(amount)}" if amount is not None else ""
        others = [p for p in REGISTRY.patients_of(ev) if p != pid]
        record = f"  (record {others[0]})" if others and pid not in REGISTRY.patients_of(ev) \
            else ""  # an event of a record merged into this one
        detail = REGISTRY.describe(ev, "en")
        print(f"{local_time(ev.hlc.wall, cfg.timezone)}  {ev.node}#{ev.seq}  "
              f"{ev.operator:<10} {ev.kind}{money}{record}  {detail}")
    return 0


async def cmd_stock(args: argparse.Namespace) -> int:
    """The pharmacy's stock (the config's ``department``): text in the counter's language,
    or CSV; ``--low``: only the items at or below their low-stock level."""
    from edge_node.pharmacy import PharmacyService, report_csv, report_text

    cfg, ledger = await _open(args)
    if not cfg.department:
        await ledger.close()
        raise ConfigError("stock: this counter has no pharmacy: set department = "
                                 '"PHA-OP" (the pharmacy\'s code) in its config')
    async with ledger:
        svc = PharmacyService(ledger, pharmacy=cfg.department, low_stock=cfg.low_stock,
                              low_stock_items=cfg.low_stock_items)
        rows = await svc.stock(low_only=args.low)
        now = ledger.now_ms()
    if args.csv:
        sys.stdout.write(report_csv(cfg.department, rows))
    else:
        sys.stdout.write(report_text(cfg.department, rows, cfg.language,
                                     when=local_time(now, cfg.timezone), low_only=args.low))
    return 0


async def cmd_export(args: argparse.Namespace) -> int:
    """Every event as one JSON line (bytes as hex; national IDs masked unless --full)."""
    _, ledger = await _open(args)
    out = sys.stdout
    async with ledger:
        keys = await ledger.patient_keys() if args.full else None
        after = rows = 0
        while True:
            page = await ledger.events(after, 1000)
            if not page:
                break
            for rowid, data in page:
                ev = decode_event(data)
                body = _export_body(dict(ev.body), args.full, keys)
                out.write(json.dumps({
                    "node": ev.node, "seq": ev.seq, "hlc": [ev.hlc.wall, ev.hlc.counter],
                    "operator": ev.operator, "kind": ev.kind, "body": _jsonable(body),
                    "prev": ev.prev.hex(), "sig": ev.sig.hex(),
                }, ensure_ascii=False, sort_keys=True) + "\n")
                after = rowid
                rows += 1
        out.flush()
        await _exported(ledger, "events.full" if args.full else "events", rows)
    return 0


async def _exported(ledger: Ledger, what: str, rows: int) -> None:
    """Sign ``audit.exported`` for an export made here (the trail, protocol/trail.py), as
    the machine's login name; a ledger that cannot sign logs a warning."""
    import getpass

    try:
        who = getpass.getuser() or "edge-cli"
    except (KeyError, OSError):
        who = "edge-cli"
    try:
        await ledger.append(Op("audit.exported", {"what": what, "rows": rows,
                                                  "destination": "stdout"}), who[:64])
    except Exception:
        logging.getLogger("onecard.cli").warning("audit.exported not written", exc_info=True)


def _export_body(body: dict[str, Any], full: bool, keys: PatientKeys | None
              ) -> dict[str, Any]:
    """An event's body for ``export``: a sealed detail stays sealed, or is opened with
    ``keys`` (``--full``); a legacy clear ID number is masked unless ``--full``."""
    pid = str(body.get("patient_id", ""))
    for field in (NAME, *SEALED_FIELDS):
        value = body.get(field)
        if not isinstance(value, str) or not value:
            continue
        if is_sealed(value):
            if full and keys is not None:
                body[field] = keys.open(field, pid, value) or value
        elif field == "national_id" and not full:
            body[field] = nationalid.mask(value)
    return body


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def cmd_sync(args: argparse.Namespace) -> int:
    from edge_node.sync import daemon  # imported here: only this command needs websockets

    cfg = cfgmod.load(_config_path(args))
    try:
        asyncio.run(daemon.run(cfg))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edge_node.tui import app  # imported here: only this command needs textual

    cfg = cfgmod.load(_config_path(args))

    async def check() -> None:  # a bad key or ledger: one line here, not a broken screen
        ledger = await Ledger.open(cfg.db, cfg.node_id, cfg.load_key(), rule_config=cfg.rules)
        await ledger.close()

    asyncio.run(check())
    app.run(cfg, reader=make_reader(cfg))
    return 0


def cmd_display(args: argparse.Namespace) -> int:
    """The waiting-room display: read-only, no login, Ctrl+Q quits."""
    from edge_node.tui import display  # imported here: only this command needs textual

    cfg = cfgmod.load(_config_path(args))

    async def check() -> None:  # a missing or damaged ledger: one line here, not a screen
        ledger = await Ledger.open(cfg.db, cfg.node_id, rule_config=cfg.rules)
        await ledger.close()

    asyncio.run(check())
    display.run(cfg, args.dept or "")
    return 0


def make_reader(cfg: cfgmod.EdgeConfig) -> Any:
    """The reader ``[reader]`` configures (a wedge with a device also reads from it)."""
    try:
        reader = cfg.reader.make()
    except ImportError as exc:
        raise EdgeError(f'[reader] kind = "{cfg.reader.kind}" needs pyscard: '
                        f"pip install 'onecard[card]' ({exc})") from None
    if reader is not None and cfg.reader.kind == "wedge" and cfg.reader.device:
        reader = _DeviceWedge(reader, cfg.reader.device)
    return reader


class _DeviceWedge:
    """A wedge reader fed by a scanner's line device (serial/HID raw), not the keyboard."""

    def __init__(self, wedge: Any, device: str) -> None:
        self._wedge, self._device = wedge, device
        self._task: asyncio.Task[None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wedge, name)

    async def start(self) -> None:
        await self._wedge.start()
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader()
        f = open(self._device, "rb", buffering=0)  # noqa: SIM115 (owned by the transport)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), f)
        self._task = asyncio.create_task(self._wedge.run_stream(stream))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._wedge.stop()


async def cmd_staff_add(args: argparse.Namespace) -> int:
    """Add a staff member; the PIN is read twice without echo (or from stdin with --pin-stdin)."""
    from edge_node import staff

    cfgmod.load(_config_path(args))  # a config error before asking for the PIN
    if args.pin_stdin:
        pin = sys.stdin.readline().strip()
    else:
        if sys.stdin is None or not sys.stdin.isatty():
            print("onecard-edge: no terminal to ask the PIN on: give it on one line of stdin "
                  "with --pin-stdin, e.g.  echo 2468 | onecard-edge staff add "
                  f"{args.staff_id} NAME --pin-stdin", file=sys.stderr)
            return 2
        import getpass

        try:
            pin = getpass.getpass("PIN (4-12 digits): ")
            again = getpass.getpass("PIN again: ")
        except EOFError:
            print("no PIN given: nothing was changed", file=sys.stderr)
            return 1
        if again != pin:
            print("the two PINs differ: nothing was changed", file=sys.stderr)
            return 1
    _, ledger = await _open(args)
    async with ledger:
        who = await staff.add_staff(ledger, args.staff_id, args.name, pin, args.role,
                                    replace=args.reset)
    print(f"staff {who.staff_id} ({who.name}, {who.role}) may log in at this counter")
    return 0


async def cmd_staff_list(args: argparse.Namespace) -> int:
    from edge_node import staff

    _, ledger = await _open(args)
    async with ledger:
        people = await staff.list_staff(ledger)
    for s in people:
        print(f"{s.staff_id:<16} {s.role:<10} {s.name}")
    if not people:
        print("no staff yet: onecard-edge staff add STAFF_ID NAME", file=sys.stderr)
    return 0


async def cmd_staff_disable(args: argparse.Namespace) -> int:
    from edge_node import staff

    _, ledger = await _open(args)
    async with ledger:
        done = await staff.disable_staff(ledger, args.staff_id)
    if not done:
        print(f"no staff id {args.staff_id} at this counter", file=sys.stderr)
        return 1
    print(f"staff {args.staff_id} disabled: they can no longer log in")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onecard-edge", description=__doc__.splitlines()[0])
    p.add_argument("--config", help=f"counter config (default $ONECARD_EDGE_CONFIG or "
                   f"./{DEFAULT_CONFIG})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="create this counter's key and config; print its fingerprint")
    s.add_argument("node_id", help="unique counter id, e.g. cashier-01")
    s.add_argument("--role", default="cashier", choices=cfgmod.ROLES, help="counter role")
    s.add_argument("--data-dir", help="where the ledger and key live (default: beside config)")
    s.add_argument("--language", default="zh", choices=("zh", "en"), help="screen language")
    s.add_argument("--central-url", default="ws://127.0.0.1:8765/sync", help="central's URL")
    s.add_argument("--central-key", help="central's public key (hex), pinned")
    s.add_argument("--tls-pin", help="wss://: central's certificate pin, sha256:… (as "
                   "`onecard-central init --tls-self-signed` prints it)")
    s.add_argument("--ca-file", help="wss://: verify central's certificate by this PEM CA "
                   "file (default: the system's CAs)")
    s.add_argument("--force", action="store_true", help="overwrite an existing config")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("rotate-key", help="a new key for this counter from its next seq on "
                       "(stop its app and sync first); prints the command for central")
    s.set_defaults(func=cmd_rotate_key)

    for name, fn, help_ in (("info", cmd_info, "node id, fingerprint, ledger and sync status"),
                            ("verify", cmd_verify, "check every chain, hash and signature"),
                            ("rebuild", cmd_rebuild, "refold all projections from the events"),
                            ("export", cmd_export, "all events as JSON lines on stdout")):
        s = sub.add_parser(name, help=help_)
        s.set_defaults(func=fn)
        if name == "export":
            s.add_argument("--full", action="store_true", help="the patients' details in clear "
                           "where this counter may open them (else sealed, or masked)")
    s = sub.add_parser("balance", help="a card's patient, status and balance")
    s.add_argument("card")
    s.set_defaults(func=cmd_balance)
    s = sub.add_parser("history", help="a card's patient's account history")
    s.add_argument("card")
    s.add_argument("--limit", type=int, default=200)
    s.set_defaults(func=cmd_history)
    s = sub.add_parser("stock", help="the pharmacy's stock (its department): on hand, "
                       "received, dispensed, adjusted, moved; low items marked")
    s.add_argument("--low", action="store_true", help="only items at or below their "
                   "low-stock level")
    s.add_argument("--csv", action="store_true", help="CSV on stdout instead of text")
    s.set_defaults(func=cmd_stock)
    s = sub.add_parser("sync", help="run the sync daemon (long-running, beside the TUI)")
    s.set_defaults(func=cmd_sync)
    s = sub.add_parser("run", help="run the counter's terminal app (with the [reader] "
                       "configured)")
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("display", help="the waiting-room display for a second screen: the "
                       "numbers called and waiting, large, masked names (read-only, no login)")
    s.add_argument("--dept", help="the department's code (default: the config's department; "
                   "none: every clinic)")
    s.set_defaults(func=cmd_display)
    s = sub.add_parser("backup", help="a verified copy of the ledger (while it runs), "
                       "the oldest beyond --keep removed")
    s.add_argument("--dir", help="where (default: [backup] dir, or backups/ beside the ledger)")
    s.add_argument("--keep", type=int, default=0, help="newest backups kept (default: "
                   "[backup] keep, 7)")
    s.set_defaults(func=cmd_backup)
    s = sub.add_parser("restore", help="put a backup in place of the ledger (stop the app "
                       "and sync first); the replaced file is kept as .before-restore")
    s.add_argument("file", help="a backup file, e.g. backups/cashier-01-20260101T020000Z.sqlite3")
    s.set_defaults(func=cmd_restore)
    s = sub.add_parser("recover", help="after a re-install or a restore: get this counter's "
                       "own chain and everyone's events back from central, then stop")
    s.add_argument("--timeout", type=float, default=600, help="give up after this many "
                   "seconds (600)")
    s.set_defaults(func=cmd_recover)
    s = sub.add_parser("bootstrap", help="a new counter, or one whose ledger was lost, in a "
                       "hospital with a long history: central's signed snapshot of the "
                       "projections, then the events after it (stop the app and sync first)")
    s.add_argument("--timeout", type=float, default=600, help="give up after this many "
                   "seconds (600); run it again to go on with the download")
    s.set_defaults(func=cmd_bootstrap)

    s = sub.add_parser("staff", help="who may log in at this counter: add, list, disable")
    staff_sub = s.add_subparsers(dest="staff_command", required=True, metavar="ACTION")
    a = staff_sub.add_parser("add", help="add a staff member (PIN asked twice, not echoed)")
    a.add_argument("staff_id", help="login id, e.g. wang.li")
    a.add_argument("name", help="name shown on screen and receipts")
    a.add_argument("--role", default="cashier", choices=("cashier", "supervisor", "admin"),
                   help="cashier (default), supervisor (approves refunds), admin")
    a.add_argument("--reset", action="store_true", help="replace an existing id (new PIN)")
    a.add_argument("--pin-stdin", action="store_true",
                   help="read the PIN from one line of stdin (scripts), not the terminal")
    a.set_defaults(func=cmd_staff_add)
    a = staff_sub.add_parser("list", help="staff who may log in")
    a.set_defaults(func=cmd_staff_list)
    a = staff_sub.add_parser("disable", help="stop a staff id from logging in")
    a.add_argument("staff_id")
    a.set_defaults(func=cmd_staff_disable)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command: whatever goes wrong is one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    private_umask()  # patients' data: files 0600, directories 0700
    func: Callable[[argparse.Namespace], int | Awaitable[int]] = args.func
    try:
        result = func(args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the exit
        return int(result)  # type: ignore[arg-type]
    except BrokenPipeError:
        return quiet_broken_pipe()
    except EdgeError as exc:
        print(f"{exc.title}: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"Ledger: cannot be used: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"onecard-edge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line (ONECARD_DEBUG=1: the traceback)
        if (status := unexpected_error("onecard-edge", exc)) < 0:
            raise
        return status



if __name__ == "__main__":
    sys.exit(main())
