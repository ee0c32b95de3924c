"""``onecard-central``: set up central, enrol and revoke counters, list them, serve.

    onecard-central [--config PATH] init [--dir DIR] [--host H] [--port N]
                                    [--tls-self-signed [--tls-name NAME]...]
    onecard-central [--config PATH] enrol NODE --key PUBKEY_HEX --role ROLE [--operator STAFF]
    onecard-central [--config PATH] rotate NODE --key PUBKEY_HEX [--from-seq N]
                                    [--operator STAFF]
    onecard-central [--config PATH] rotate-central [--key-file PATH] [--operator STAFF]
    onecard-central [--config PATH] revoke NODE [--operator STAFF]
    onecard-central [--config PATH] nodes
    onecard-central [--config PATH] serve [--host H] [--port N]
    onecard-central [--config PATH] conflicts list [--kind K] [--status S] [--node N]
    onecard-central [--config PATH] conflicts show ID
    onecard-central [--config PATH] conflicts ack ID --operator STAFF
    onecard-central [--config PATH] conflicts resolve ID --remedy CODE --reason TEXT
                                    --operator STAFF
    onecard-central [--config PATH] console [--operator STAFF]
    onecard-central [--config PATH] import FILE.csv [--dry-run] [--operator STAFF]
                                    [--batch-rows N]
    onecard-central [--config PATH] catalogue import PATH|--sample [--dry-run]
                                    [--charge-at send|execution] [--note TEXT]
                                    [--operator STAFF]
    onecard-central [--config PATH] catalogue show
    onecard-central [--config PATH] dormant report [--months N] [--csv FILE]
    onecard-central [--config PATH] dormant settle --select FILE.csv --operator STAFF
                                    [--months N]
    onecard-central [--config PATH] dormant approve BATCH --operator STAFF [--chunk N]
    onecard-central [--config PATH] dormant list | show BATCH | cancel BATCH --operator STAFF
    onecard-central [--config PATH] backup [--dir DIR] [--keep N]
    onecard-central [--config PATH] restore FILE
    onecard-central [--config PATH] audit daily [--date YYYY-MM-DD]
    onecard-central [--config PATH] audit log [--who STAFF] [--what KIND...] [--patient PID]
                                    [--node NODE] [--since DAY] [--until DAY] [--limit N]
                                    [--csv]
    onecard-central [--config PATH] balance CARD|PATIENT
    onecard-central [--config PATH] verify
    onecard-central [--config PATH] staff add STAFF_ID NAME --role ROLE... [--at NODE...]
                                    [--pin-stdin] --operator STAFF
    onecard-central [--config PATH] staff set-role STAFF_ID [--role ROLE...] [--name NAME]
                                    [--at NODE... | --everywhere] --operator STAFF
    onecard-central [--config PATH] staff disable|enable STAFF_ID [--reason TEXT]
                                    --operator STAFF
    onecard-central [--config PATH] staff reset-pin STAFF_ID [--pin-stdin] --operator STAFF
    onecard-central [--config PATH] staff list | pepper

Exit status: 0 done, 1 refused (bad input, node unknown, bad lines in an import; the
audit: findings or the day does not balance; verify: a bad event), 2 usage or config
error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from central.config import (
    CentralConfig,
    CentralConfigError,
    default_config_path,
    load_key,
    render_config,
    write_key,
)
from central.console.format import ago
from central.db import NotSqlite, PgError
from central.store import CentralStore, DamagedStore, Signer, enrol_central, keyring_of
from edge_node.backup import BackupError, private_umask
from edge_node.errors import quiet_broken_pipe, unexpected_error
from edge_node.reports import ljust
from protocol.crypto import SigningKey, fingerprint
from protocol.event import CENTRAL, NODE_ID_RE
from protocol.messages import ROLES
from protocol.money import yuan


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onecard-central",
        description="The onecard central server: enrol counters and serve their sync.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="central TOML config (default: $ONECARD_CENTRAL_CONFIG or the data dir)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    i = sub.add_parser("init", help="create central's key, config and database")
    i.add_argument("--dir", type=Path, default=None, help="where to put them (default: data dir)")
    i.add_argument("--host", default="127.0.0.1",
                   help='address `serve` listens on (127.0.0.1; "0.0.0.0": counters on '
                   "other machines)")
    i.add_argument("--port", type=int, default=8765, help="port `serve` listens on (8765)")
    i.add_argument("--tls-self-signed", action="store_true",
                   help="make a self-signed TLS certificate (openssl) so central serves "
                   "wss://; prints the pin for counters' [sync] tls_pin")
    i.add_argument("--tls-name", action="append", default=[], metavar="NAME",
                   help="a name or IP counters dial, put in the certificate (repeatable; "
                   "this machine's names and 127.0.0.1 are always in it)")
    i.add_argument("--database", default="", metavar="URL",
                   help="keep central's data in PostgreSQL: postgresql://USER@HOST:5432/NAME "
                   "(the database must exist; default: a SQLite file beside the config)")

    e = sub.add_parser("enrol", help="enrol a counter by its public key")
    e.add_argument("node", help="the counter's node id, e.g. cashier-01")
    e.add_argument("--key", required=True, help="the counter's public key, 64 hex digits")
    e.add_argument("--role", required=True, help=f"one of: {', '.join(sorted(ROLES - {CENTRAL}))}")

    t = sub.add_parser("rotate", help="give a counter a new key from a seq on; its old key "
                       "still verifies what it signed before")
    t.add_argument("node", help="the counter's node id")
    t.add_argument("--key", required=True,
                   help="the counter's new public key, 64 hex digits (onecard-edge rotate-key)")
    t.add_argument("--from-seq", type=int, default=None, metavar="N",
                   help="the counter's first seq signed with the new key (default: the one "
                   "after the last central holds or the counter said it holds)")

    k = sub.add_parser("rotate-central", help="give central a new key: the old one signs the "
                       "statement counters follow to it; everything signed before still "
                       "verifies")
    k.add_argument("--key-file", type=Path, default=None, metavar="PATH",
                   help="the new key's seed, 64 hex digits as init writes one (default: a new "
                   "key made here)")

    r = sub.add_parser("revoke", help="revoke a counter: it can no longer connect or push")
    r.add_argument("node", help="the counter's node id")
    for q in (e, t, k, r):  # named in the signed audit.node_changed
        q.add_argument("--operator", default=None, help="your staff id (default: login name)")

    sub.add_parser("nodes", help="list counters: role, online, last seen, head seq, lag, pending")

    s = sub.add_parser("serve", help="serve counters over websockets (GET /healthz for health)")
    s.add_argument("--host", default=None, help="listen address (config: host)")
    s.add_argument("--port", type=int, default=None, help="listen port, 0 = any (config: port)")
    c = sub.add_parser("conflicts", help="conflicts the reconciler raised: list, show, resolve")
    csub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    cl = csub.add_parser("list", help="the conflict queue (open and acknowledged by default)")
    cl.add_argument("--kind", default=None, help="only this kind, e.g. overdraft")
    cl.add_argument("--status", default=None, help="open, acknowledged, resolved or withdrawn")
    cl.add_argument("--node", default=None, help="only conflicts involving this counter")
    cl.add_argument("--all", action="store_true", help="every status")
    cs = csub.add_parser("show", help="one conflict: explanation, events, remedies")
    cs.add_argument("id", help="the conflict id, e.g. overdraft-1a2b3c4d5e6f")
    ca = csub.add_parser("ack", help="acknowledge: someone is looking at it")
    ca.add_argument("id", help="the conflict id")
    ca.add_argument("--operator", required=True, help="your staff id")
    cr = csub.add_parser("resolve", help="sign a remedy as central's event; it syncs everywhere")
    cr.add_argument("id", help="the conflict id")
    cr.add_argument("--remedy", required=True, help="a remedy code `show` lists (debt, …)")
    cr.add_argument("--reason", required=True, help="why (kept in the event, for audit)")
    cr.add_argument("--operator", required=True, help="your staff id (named in the event)")
    csub.add_parser("refold", help="refold the reconciler's state and the accounts table from "
                    "every event (at serve's next catch-up; the book keeps its statuses)")
    k = sub.add_parser("console", help="the IT console: conflict queue, detail, resolve, "
                       "node health, search (keyboard; footer lists the keys)")
    k.add_argument("--operator", default=None,
                   help="your staff id, named in the remedies you sign (default: $USER)")
    m = sub.add_parser("import", help="move in from the old system: patients, cards and "
                       "opening balances from a CSV file (docs/import.md)")
    m.add_argument("file", type=Path, help="the old system's export: UTF-8 CSV, header row")
    m.add_argument("--dry-run", action="store_true",
                   help="check every line and print the summary; write nothing")
    m.add_argument("--operator", default=None,
                   help="your staff id, named in the events (default: $USER)")
    m.add_argument("--batch-rows", type=int, default=500,
                   help="lines signed per store transaction (500)")
    g = sub.add_parser("catalogue", help="the hospital's catalogue: publish a version from "
                       "its CSV export, show the current one (docs/catalogue.md)")
    gsub = g.add_subparsers(dest="action", required=True, metavar="ACTION")
    gi = gsub.add_parser("import", help="check the export and sign it as the next version; "
                         "every bad line named, nothing published if one is bad")
    gi.add_argument("path", type=Path, nargs="?", default=None,
                    help="a folder with items.csv (and depts, doctors, sessions, templates"
                    ".csv), or one items CSV file; UTF-8 or GB18030")
    gi.add_argument("--sample", action="store_true",
                    help="the sample catalogue shipped with onecard instead of PATH")
    gi.add_argument("--dry-run", action="store_true",
                    help="check every line and print what would be published; write nothing")
    gi.add_argument("--charge-at", choices=("send", "execution"), default=None,
                    help="charge orders when the doctor sends them or when they are executed"
                    " (default: as the current version, else send)")
    gi.add_argument("--note", default="", help="a note kept in the version (200 characters)")
    gi.add_argument("--operator", default=None,
                    help="your staff id, named in the events (default: $USER)")
    gsub.add_parser("show", help="the current version: when published, the charging "
                    "setting, counts")
    d = sub.add_parser("dormant", help="dormant accounts: report, then settle in a batch "
                       "one person selects and a supervisor approves (docs/dormant.md)")
    dsub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    dr = dsub.add_parser("report", help="accounts with a balance and no activity for N months,"
                         " with totals by age band")
    dr.add_argument("--months", type=int, default=None,
                    help="no activity for this many months (config: [dormant] months, 24)")
    dr.add_argument("--csv", type=Path, default=None,
                    help="write the accounts with contact details (phones in clear) here")
    ds = dsub.add_parser("settle", help="make a pending batch of the accounts a report's CSV"
                         " (edited down) lists")
    ds.add_argument("--select", type=Path, required=True,
                    help="the CSV of `dormant report --csv`, keeping the lines to settle")
    ds.add_argument("--operator", required=True, help="your staff id (who selected)")
    ds.add_argument("--months", type=int, default=None,
                    help="as in the report (config: [dormant] months, 24)")
    da = dsub.add_parser("approve", help="approve a pending batch (another supervisor) and"
                         " sign its settlements; again after a crash to finish")
    da.add_argument("batch", help="the batch id, e.g. dorm-20261201T080000-0a1b2c")
    da.add_argument("--operator", required=True, help="your staff id (named in the events)")
    da.add_argument("--chunk", type=int, default=200,
                    help="accounts signed per store transaction (200)")
    dsub.add_parser("list", help="every batch: status, accounts, amount, who")
    dw = dsub.add_parser("show", help="one batch: each account and what became of it")
    dw.add_argument("batch", help="the batch id")
    dc = dsub.add_parser("cancel", help="cancel a pending batch")
    dc.add_argument("batch", help="the batch id")
    dc.add_argument("--operator", required=True, help="your staff id")
    b = sub.add_parser("backup", help="a verified copy of the database (while serving), the "
                       "oldest beyond --keep removed")
    b.add_argument("--dir", type=Path, default=None,
                   help="where (default: [backup] dir, or backups/ beside the database)")
    b.add_argument("--keep", type=int, default=None, help="newest backups kept ([backup] keep, 7)")
    rs = sub.add_parser("restore", help="put a backup in place of the database (stop `serve` "
                        "first); the replaced file is kept as .before-restore")
    rs.add_argument("file", type=Path, help="a backup file, e.g. backups/central-….sqlite3")
    a = sub.add_parser("audit", help="the daily audit: recompute the money from the events, "
                       "check it balances, compare the counters' day closes, flag anomalies")
    asub = a.add_subparsers(dest="action", required=True, metavar="ACTION")
    ad = asub.add_parser("daily", help="audit one business day: HTML and CSV report, "
                         "findings raised as conflicts (exit 1 when any)")
    ad.add_argument("--date", default=None, help="the business day, YYYY-MM-DD (default: "
                    "yesterday in [audit] timezone)")
    al = asub.add_parser("log", help="the audit log: sensitive actions (logins, records "
                         "opened, refunds, approvals, exports, counters, settings, staff) from "
                         "the signed events, most recent first")
    al.add_argument("--who", default="", help="a staff id: what they did or approved")
    al.add_argument("--what", nargs="+", default=[], metavar="KIND",
                    help="kinds (audit.login …) or families (audit, staff, card, approved)")
    al.add_argument("--patient", default="", help="a patient id")
    al.add_argument("--node", default="", help="where: a counter's node id, or central")
    al.add_argument("--since", default="", help="from this day, YYYY-MM-DD ([audit] timezone)")
    al.add_argument("--until", default="", help="to this day, inclusive, YYYY-MM-DD")
    al.add_argument("--limit", type=int, default=200, help="at most N lines (200)")
    al.add_argument("--csv", action="store_true", help="CSV with a header row, for a "
                    "spreadsheet (the export is itself logged)")
    lim = sub.add_parser("limits", help="offline limits: what a counter may charge one "
                         "account before it syncs again; past them a supervisor approves")
    lsub = lim.add_subparsers(dest="action", required=True, metavar="ACTION")
    lsub.add_parser("show", help="the limits in force (and the config's [limits])")
    ls = lsub.add_parser("set", help="sign the limits as central's event; counters take "
                         "them at their next sync")
    ls.add_argument("--floor", type=int, default=None,
                    help="fen: offline, one charge above this needs a supervisor (0: none)")
    ls.add_argument("--cap", type=int, default=None,
                    help="fen: offline, one counter may charge one account this much "
                    "since its last sync (0: none)")
    ls.add_argument("--operator", default=None, help="who sets them (default: login name)")
    b = sub.add_parser("balance", help="a card's or patient's account as central holds it")
    b.add_argument("what", help="a card number or a patient id")
    sub.add_parser("verify", help="walk every chain central holds: hashes, signatures, "
                   "links; name the first bad event (exit 1)")
    sn = sub.add_parser("snapshot", help="fold the counters' projections to now and write "
                        "them as a signed snapshot, for new counters (onecard-edge bootstrap);"
                        " run nightly by onecard-central-snapshot.timer")
    sn.add_argument("--keep", type=int, default=2, help="snapshots kept (2)")
    _staff_parser(sub)
    return p


def _staff_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from protocol.staff import ROLES as STAFF_ROLES

    roles = ", ".join(STAFF_ROLES)
    s = sub.add_parser("staff", help="staff and their roles, signed by central: they sync to "
                       "every counter and log in there offline (docs/deployment.md)")
    ssub = s.add_subparsers(dest="action", required=True, metavar="ACTION")

    def who(p: argparse.ArgumentParser) -> None:
        p.add_argument("staff_id", help="login id, e.g. wang.li")
        p.add_argument("--operator", default=None,
                       help="your staff id, named in the event (default: $USER)")

    def pin(p: argparse.ArgumentParser) -> None:
        p.add_argument("--pin-stdin", action="store_true",
                       help="read the PIN from one line of stdin (scripts), not the terminal")
        p.add_argument("--pin", default=None, help=argparse.SUPPRESS)  # tests only: the PIN
        # would show in the process list and the shell's history

    a = ssub.add_parser("add", help="enrol a member of staff (PIN asked twice, not echoed)")
    who(a)
    a.add_argument("name", help="name shown on screen and receipts")
    a.add_argument("--role", action="append", default=[], metavar="ROLE",
                   help=f"repeatable (or comma-separated): {roles}")
    a.add_argument("--at", action="append", default=[], metavar="NODE",
                   help="only at this counter (repeatable; default: every counter)")
    pin(a)
    c = ssub.add_parser("set-role", help="new roles, name or counters (what is given changes)")
    who(c)
    c.add_argument("--role", action="append", default=[], metavar="ROLE",
                   help=f"the new roles, repeatable: {roles}")
    c.add_argument("--name", default="", help="a new name")
    c.add_argument("--at", action="append", default=[], metavar="NODE",
                   help="only at these counters from now on (repeatable)")
    c.add_argument("--everywhere", action="store_true", help="at every counter from now on")
    for name, text in (("disable", "stop them logging in at every counter"),
                       ("enable", "let a disabled member of staff log in again")):
        d = ssub.add_parser(name, help=text)
        who(d)
        d.add_argument("--reason", default="", help="why (kept in the event)")
    r = ssub.add_parser("reset-pin", help="a new PIN (asked twice, not echoed)")
    who(r)
    pin(r)
    ssub.add_parser("list", help="every member of staff central signed: roles, counters, state")
    ssub.add_parser("pepper", help="make the staff PIN pepper if there is none; say where it "
                    "is (copy it to every counter)")


def main(argv: list[str] | None = None) -> int:
    """Run one command; a config error or a closed stdout (``| head``) is no traceback."""
    args = _parser().parse_args(argv)
    private_umask()  # patients' data: files 0600, directories 0700
    try:
        status = _run(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at the exit
        return status
    except BrokenPipeError:
        return quiet_broken_pipe()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line (ONECARD_DEBUG=1: the traceback)
        if (status := unexpected_error("onecard-central", exc)) < 0:
            raise
        return status



#: commands that work on central's SQLite file itself, refused on PostgreSQL (NotSqlite)
SQLITE_ONLY = {"backup": "onecard-central backup", "restore": "onecard-central restore"}


def _run(args: argparse.Namespace) -> int:
    cfg_path: Path = args.config or default_config_path()
    db = cfg_path  # (named in a message about a damaged database once the config says)
    try:
        if args.command == "init":
            return _init(cfg_path, args.dir, args.port, explicit=args.config is not None,
                         database=args.database,
                         host=args.host, tls_self_signed=args.tls_self_signed,
                         tls_names=args.tls_name)
        cfg = CentralConfig.load(cfg_path)
        db = cfg.db
        if cfg.postgres and args.command in SQLITE_ONLY:
            raise NotSqlite(SQLITE_ONLY[args.command], cfg.database)
        if args.command == "restore":  # (the database may be gone: that is why)
            return _restore(cfg, args.file)
        if not cfg.postgres and not cfg.db.exists():
            raise CentralConfigError(f"{cfg.db}: no database there (the config's db; "
                                     "`onecard-central init` creates it)")
        if args.command == "enrol":
            return asyncio.run(_enrol(cfg, args.node, args.key, args.role,
                                      _operator(args.operator)))
        if args.command == "rotate":
            return asyncio.run(_rotate(cfg, args.node, args.key, args.from_seq,
                                       _operator(args.operator)))
        if args.command == "rotate-central":
            return asyncio.run(_rotate_central(cfg, args.key_file, _operator(args.operator)))
        if args.command == "revoke":
            return asyncio.run(_revoke(cfg, args.node, _operator(args.operator)))
        if args.command == "nodes":
            return asyncio.run(_nodes(cfg))
        if args.command == "conflicts":
            return asyncio.run(_conflicts(cfg, args))
        if args.command == "console":
            return _console(cfg, args.operator)
        if args.command == "import":
            return _import(cfg, args)
        if args.command == "catalogue":
            return _catalogue(cfg, args)
        if args.command == "dormant":
            from central import dormant

            return asyncio.run(dormant.run(
                cfg, args.action, months=getattr(args, "months", None),
                csv_path=getattr(args, "csv", None), select_path=getattr(args, "select", None),
                batch_id=getattr(args, "batch", ""), operator=getattr(args, "operator", ""),
                chunk=getattr(args, "chunk", dormant.CHUNK)))
        if args.command == "backup":
            from central import backup

            print(backup.backup(cfg, args.dir, args.keep).line())
            return 0
        if args.command == "audit" and args.action == "log":
            return asyncio.run(_audit_log(cfg, args))
        if args.command == "audit":
            return _audit(cfg, args.date)
        if args.command == "limits":
            return _limits(cfg, args)
        if args.command == "balance":
            return asyncio.run(_balance(cfg, args.what))
        if args.command == "verify":
            if cfg.postgres:
                raise NotSqlite("onecard-central verify", cfg.database, instead=(
                    "its events were verified as they were ingested; re-checking every "
                    "chain in a PostgreSQL database is not built yet"))
            return _verify(cfg)
        if args.command == "staff":
            return _staff(cfg, args)
        if args.command == "snapshot":
            return asyncio.run(_snapshot(cfg, max(1, args.keep)))
        if args.command == "serve":
            if args.host is not None:
                cfg = dataclasses.replace(cfg, host=args.host)
            if args.port is not None:
                cfg = dataclasses.replace(cfg, port=args.port)
            return _serve(cfg)
    except CentralConfigError as exc:
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 2
    except (DamagedStore, BackupError, NotSqlite, PgError) as exc:
        # (PostgreSQL's errors, unreachable included: one line naming the database)
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        if not isinstance(exc, sqlite3.OperationalError) and isinstance(
                exc, sqlite3.DatabaseError):  # corrupt pages inside a file that opened
            print(f"onecard-central: {DamagedStore(str(db), f'is damaged (SQLite: {exc})')}",
                  file=sys.stderr)
            return 1
        print(f"onecard-central: the database cannot be used: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except OSError as exc:
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 1
    return 2


async def _reachable(target: str) -> None:
    """Open (creating its tables) and close the store at ``target``, or raise."""
    store = await CentralStore.open(target)
    await store.close()


def _init(cfg_path: Path, directory: Path | None, port: int, *, explicit: bool = False,
          host: str = "127.0.0.1", tls_self_signed: bool = False,
          tls_names: list[str] | None = None, database: str = "") -> int:
    """The config goes to ``--config`` when given (else into ``--dir``); the key, the
    database (and the TLS certificate and key) into ``--dir`` (else beside the config)."""
    from central.tls import CERT_NAME, KEY_NAME, certificate_names, make_self_signed

    d = directory or cfg_path.parent
    if directory is not None and not explicit:
        cfg_path = d / "central.toml"
    if cfg_path.exists():
        print(f"onecard-central: {cfg_path} exists; refusing to overwrite", file=sys.stderr)
        return 1
    if tls_self_signed:
        certificate_names(tls_names or [])  # a bad --tls-name: before anything is written
    if database:  # a URL that cannot be used or reached: before anything is written
        if not database.startswith(("postgresql://", "postgres://")):
            raise CentralConfigError(f"--database {database!r}: a PostgreSQL URL, "
                                     "postgresql://USER@HOST:5432/NAME")
        asyncio.run(_reachable(database))
    try:
        d.mkdir(parents=True, exist_ok=True)
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        if tls_self_signed:
            make_self_signed(d, tls_names or [])
        same = d.resolve() == cfg_path.parent.resolve()

        def where(name: str) -> str:
            return name if same else str(d.resolve() / name)

        text = render_config(db=where("central.sqlite3"), key_file=where("central.key"),
                             pepper_file=where("staff.pepper"),
                             patient_keys_file=where("patient-data.key"),
                             host=host, port=port,
                             tls_cert=where(CERT_NAME) if tls_self_signed else "",
                             tls_key=where(KEY_NAME) if tls_self_signed else "",
                             database=database)
        cfg_path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"onecard-central: cannot write {cfg_path}: {exc}", file=sys.stderr)
        return 2
    cfg = CentralConfig.load(cfg_path)
    key = SigningKey.generate()
    try:
        write_key(cfg.key_file, key)
    except FileExistsError:
        print(f"onecard-central: {cfg.key_file} exists; refusing to overwrite central's key",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"onecard-central: cannot write {cfg.key_file}: {exc}", file=sys.stderr)
        return 2
    from central.staff import ensure_pepper

    try:
        ensure_pepper(cfg.pepper_file)
    except OSError as exc:
        print(f"onecard-central: cannot write {cfg.pepper_file}: {exc}", file=sys.stderr)
        return 2
    from protocol.privacy import PatientKeys

    try:
        PatientKeys.generate().write(cfg.patient_keys_file)
    except FileExistsError:
        print(f"onecard-central: {cfg.patient_keys_file} exists; refusing to overwrite the "
              "patient data keys", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"onecard-central: cannot write {cfg.patient_keys_file}: {exc}",
              file=sys.stderr)
        return 2

    async def setup() -> None:
        store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
        try:
            await enrol_central(store, key)
        finally:
            await store.close()

    asyncio.run(setup())
    print(f"config      {cfg_path}")
    print(f"database    {cfg.where}")
    print(f"key file    {cfg.key_file} (keep secret, mode 0600)")
    print(f"pepper      {cfg.pepper_file} (keep secret, mode 0600): copy it to every counter "
          "as its pepper_file")
    print(f"patient keys {cfg.patient_keys_file} (keep secret, mode 0600; back it up: the "
          "ID numbers, phones and addresses counters seal open only with it)")
    print(f"central key {key.public_key.hex()}")
    print(f"fingerprint {key.fingerprint}")
    print('Pin the central key in every counter\'s config: [sync] central_key = "…"')
    if cfg.tls_cert is not None:
        from central.tls import certificate_pin

        pin = certificate_pin(cfg.tls_cert)
        print(f"tls cert    {cfg.tls_cert} (self-signed, key {cfg.tls_key}, mode 0600)")
        print(f"tls pin     {pin}")
        print(f"Counters: --central-url wss://HOST:{cfg.port}/sync --tls-pin {pin}")
    return 0


def _operator(given: str | None) -> str:
    """Who runs the command: ``--operator``, else the login name ("central-cli" when
    there is none, as in a container)."""
    if given:
        return given
    import getpass

    try:
        return getpass.getuser() or "central-cli"
    except (KeyError, OSError):
        return "central-cli"


async def _signer(store: CentralStore, cfg: CentralConfig, operator: str) -> Signer:
    """Central's key (enrolled as node ``central``) and the operator: what signs a node
    command's ``audit.node_changed`` in the command's own transaction."""
    key = load_key(cfg.key_file)
    await enrol_central(store, key)
    return key, operator[:64]


async def _enrol(cfg: CentralConfig, node: str, key_hex: str, role: str,
                 operator: str = "central-cli") -> int:
    if not NODE_ID_RE.match(node) or node == CENTRAL:
        print(f"onecard-central: {node!r} is not a valid counter node id", file=sys.stderr)
        return 1
    if role not in ROLES or role == CENTRAL:
        print(
            f"onecard-central: role must be one of {', '.join(sorted(ROLES - {CENTRAL}))}",
            file=sys.stderr,
        )
        return 1
    try:
        pubkey = bytes.fromhex(key_hex.strip())
        fp = fingerprint(pubkey)
    except ValueError:
        print("onecard-central: --key must be 64 hex digits (32 bytes)", file=sys.stderr)
        return 1
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        await store.enrol(node, pubkey, role, signer=await _signer(store, cfg, operator))
    except ValueError as exc:
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"enrolled {node} as {role}")
    print(f"fingerprint {fp}  — compare with the one the counter shows")
    return 0


async def _rotate(cfg: CentralConfig, node: str, key_hex: str, from_seq: int | None,
                  operator: str = "central-cli") -> int:
    try:
        pubkey = bytes.fromhex(key_hex.strip())
        fp = fingerprint(pubkey)
    except ValueError:
        print("onecard-central: --key must be 64 hex digits (32 bytes)", file=sys.stderr)
        return 1
    if from_seq is not None and from_seq < 1:
        print("onecard-central: --from-seq must be 1 or more", file=sys.stderr)
        return 1
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        rec = await store.node(node)
        start = await store.rotate(node, pubkey, from_seq,
                                   signer=await _signer(store, cfg, operator))
    except ValueError as exc:
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"rotated {node}: new key {fp} from seq {start}; the old key stays valid up to "
          f"seq {start - 1} (everything it signed before still verifies)")
    if rec is not None and rec.reported_seq >= start:
        print(f"warning: {node} said it holds its events up to seq {rec.reported_seq}: those "
              f"from seq {start} on, signed with its old key, will be refused", file=sys.stderr)
    print("the counter connects with its new key from now on (onecard-edge rotate-key "
          "installs it there)")
    return 0


async def _rotate_central(cfg: CentralConfig, key_file: Path | None,
                          operator: str = "central-cli") -> int:
    """Central's new key (made here, or read from ``key_file``) from its next seq on.

    The new seed is written beside the key file first (``.central.key.new``); the store
    then signs, with the old key, the rotation statement and records the key spans, in
    one transaction; last the old seed is kept as ``central.key.retired-<16 hex>`` and
    the new one takes the key file's name.  (Interrupted between the two, the store
    names the new key and the ``.new`` file holds it: move it in place.)"""
    old = load_key(cfg.key_file)
    new = load_key(key_file) if key_file is not None else SigningKey.generate()
    if new.public_key == old.public_key:
        print(f"onecard-central: {key_file} holds the key central has now", file=sys.stderr)
        return 1
    tmp = cfg.key_file.with_name(f".{cfg.key_file.name}.new")
    retired = cfg.key_file.with_name(f"{cfg.key_file.name}.retired-{old.public_key.hex()[:16]}")
    tmp.unlink(missing_ok=True)
    write_key(tmp, new)
    committed = False
    try:
        store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
        try:
            seq, start = await store.rotate_central(
                new.public_key, await _signer(store, cfg, operator))
        except ValueError as exc:
            print(f"onecard-central: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()
        committed = True
        os.replace(cfg.key_file, retired)
        os.replace(tmp, cfg.key_file)
    finally:
        if not committed:
            tmp.unlink(missing_ok=True)
    print(f"central's new key signs from its seq {start} on; the old key signed its last "
          f"event, seq {seq}: the rotation statement counters follow to the new key")
    print(f"central key {new.public_key.hex()}")
    print(f"fingerprint {new.fingerprint}")
    print(f"the old key is kept as {retired}: it signs nothing more (central's events up to "
          f"seq {seq} still verify with it everywhere)")
    print("a running `onecard-central serve` takes the new key within seconds; each counter "
          "that pinned the old key takes the new one from the statement when it next "
          "connects (no config to edit)")
    print(f'new counters pin the new key: [sync] central_key = "{new.public_key.hex()}"')
    return 0


async def _revoke(cfg: CentralConfig, node: str, operator: str = "central-cli") -> int:
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        ok = await store.revoke(node, signer=await _signer(store, cfg, operator))
    finally:
        await store.close()
    if not ok:
        print(f"onecard-central: {node} is not an enrolled counter", file=sys.stderr)
        return 1
    print(f"revoked {node}: it can no longer connect; its events so far are kept")
    return 0


async def _nodes(cfg: CentralConfig) -> int:
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        nodes = await store.nodes()
        lags = await store.lags()
    finally:
        await store.close()
    now = time.time_ns() // 1_000_000
    print(
        f"{'node':<20} {'role':<13} {'state':<8} {'last seen':<12} {'head':>8} {'lag':>8}"
        f" {'pending':>8}  fingerprint"
    )
    for n in nodes:
        state = "revoked" if n.revoked else ("online" if n.online else "offline")
        seen = ago(now - n.last_seen_ms) if n.last_seen_ms else "never"
        if n.id == CENTRAL:  # this machine: never "offline" to itself
            state, seen = "self", "-"
        lag = "-" if n.id == CENTRAL else str(lags.get(n.id, 0))
        pending = "-" if n.id == CENTRAL else str(n.pending)
        print(
            f"{n.id:<20} {n.role:<13} {state:<8} {seen:<12} {n.head.seq:>8} {lag:>8}"
            f" {pending:>8}  {fingerprint(n.pubkey)}"
        )
    return 0


async def _conflicts(cfg: CentralConfig, args: argparse.Namespace) -> int:
    from central import conflicts as cf
    from protocol.money import yuan

    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        if args.action == "list":
            try:
                rows = await cf.list_conflicts(store, kind=args.kind, status=args.status,
                                               node=args.node)
            except ValueError as exc:
                print(f"onecard-central: {exc}", file=sys.stderr)
                return 1
            if not args.status and not args.all:
                rows = [r for r in rows if r.status in ("open", "acknowledged")]
            counts: dict[str, int] = {}
            for r in rows:
                counts[r.kind] = counts.get(r.kind, 0) + 1
            print(f"{'id':<32} {'status':<13} {'severity':<8} {'amount':>12}  title")
            for r in rows:
                print(f"{r.id:<32} {r.status:<13} {r.severity:<8} {yuan(r.amount):>12}  {r.title}")
            print(f"{len(rows)} conflict(s)" + (": " + ", ".join(
                f"{k} {n}" for k, n in sorted(counts.items())) if counts else ""))
            return 0
        if args.action == "refold":
            from central.recon_store import ask_refold
            await store.write_many(ask_refold())
            print("the reconciler refolds every event at serve's next catch-up (at once if "
                  "serve is running, else when it starts); counters keep syncing meanwhile")
            return 0
        row = await cf.get_conflict(store, args.id)
        if row is None:
            print(f"onecard-central: no conflict {args.id}", file=sys.stderr)
            return 1
        if args.action == "show":
            print(f"{row.id}  {row.kind}  {row.severity}  {row.status}")
            print(row.title)
            print()
            print(row.explanation)
            print()
            print("events:   " + ", ".join(f"{n} #{s}" for n, s in row.events))
            names = await _patient_names(cfg, store, row.patients)
            print("patients: " + (", ".join(f"{pid} ({names[pid]})" if names.get(pid) else pid
                                            for pid in row.patients) or "-"))
            print("nodes:    " + (", ".join(row.nodes) or "-"))
            if row.status == "resolved":
                print(f"resolved by {row.resolved_by} with {row.resolved_kind} "
                      f"({row.resolved_event}): {row.resolved_reason}")
            else:
                print("remedies:")
                for option in row.remedies:
                    print(f"  {option.code:<8} {option.label}: {option.effect}")
            return 0
        if args.action == "ack":
            ok = await cf.acknowledge(store, args.id, args.operator)
            print(f"{args.id} acknowledged" if ok else f"{args.id} is {row.status}")
            return 0 if ok else 1
        if args.action == "resolve":
            key = load_key(cfg.key_file)
            try:
                events = await cf.resolve(store, key, args.id, args.remedy, reason=args.reason,
                                          operator=args.operator)
            except cf.ResolveError as exc:
                print(f"onecard-central: {exc}", file=sys.stderr)
                return 1
            for ev in events:
                print(f"signed {ev.kind} as central #{ev.seq}")
            print(f"{args.id} resolved; the remedy syncs to every counter")
            return 0
    finally:
        await store.close()
    return 2


def _import(cfg: CentralConfig, args: argparse.Namespace) -> int:
    import getpass

    from central import importer

    operator = args.operator
    if operator is None:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container): say who with --operator
            operator = ""
    return asyncio.run(importer.run(cfg, args.file, dry_run=args.dry_run, operator=operator,
                                    batch_rows=args.batch_rows))


def _catalogue(cfg: CentralConfig, args: argparse.Namespace) -> int:
    import getpass

    from central import catalogue

    if args.action == "show":
        return asyncio.run(catalogue.run(cfg, "show"))
    if (args.path is None) == (not args.sample):
        print("onecard-central: catalogue import: give PATH or --sample (one of them)",
              file=sys.stderr)
        return 2
    operator = args.operator
    if operator is None:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container): say who with --operator
            operator = ""
    return asyncio.run(catalogue.run(
        cfg, "import", path=catalogue.SAMPLE if args.sample else args.path,
        dry_run=args.dry_run, charge_at=args.charge_at, note=args.note, operator=operator))


def _limits(cfg: CentralConfig, args: argparse.Namespace) -> int:
    import getpass

    from central import limits

    operator = getattr(args, "operator", None)
    if operator is None:
        try:
            operator = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container): say who with --operator
            operator = ""
    return asyncio.run(limits.run(cfg, args.action, floor=getattr(args, "floor", None),
                                  cap=getattr(args, "cap", None), operator=operator,
                                  out=sys.stdout, err=sys.stderr))


def _staff(cfg: CentralConfig, args: argparse.Namespace) -> int:
    import getpass

    from central import staff

    if getattr(args, "operator", "x") is None:
        try:
            args.operator = getpass.getuser()
        except (KeyError, OSError):  # no login name (a container): say who with --operator
            args.operator = ""
    return asyncio.run(staff.run(cfg, args))


def _restore(cfg: CentralConfig, file: Path) -> int:
    from central import backup

    events, kept = backup.restore(cfg, file)
    print(f"restored {file} ({events} events) as {cfg.db}"
          + (f"; the replaced file is kept as {kept}" if kept else ""))
    print("next: start `onecard-central serve`; counters push again whatever the backup "
          "lacks and pull from the start (the restored store has a new id)")
    return 0


async def _audit_log(cfg: CentralConfig, args: argparse.Namespace) -> int:
    """``audit log``: 0 listed (even none), 2 a filter that cannot be used."""
    import csv

    from central import audit, trail

    f = trail.Filters(who=args.who.strip(), what=tuple(args.what), patient=args.patient.strip(),
                      node=args.node.strip(), since=args.since.strip(),
                      until=args.until.strip(), limit=args.limit)
    try:
        tz = audit.AuditConfig.load(cfg.path, cfg.db).timezone
    except audit.AuditConfigError as exc:
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 2
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        try:
            entries = await trail.query(store, f, lang=cfg.language, timezone=tz)
        except trail.FilterError as exc:
            print(f"onecard-central: audit log: {exc}", file=sys.stderr)
            return 2
        if args.csv:
            w = csv.writer(sys.stdout)
            w.writerow(trail.HEADER)
            w.writerows(e.row() for e in entries)
            # an export of the trail is itself on the trail
            key = load_key(cfg.key_file)
            await enrol_central(store, key)
            await sign_trail(store, key, "audit.exported", {
                "what": "audit.log", "rows": len(entries), "destination": "stdout"},
                _operator(None))
        else:
            for e in entries:
                print(f"{e.when}  {e.where:<14} {e.who:<20} {e.what}  {e.detail}")
            if not entries:
                print("(no entries)", file=sys.stderr)
    finally:
        await store.close()
    return 0


async def sign_trail(store: CentralStore, key: SigningKey, kind: str, body: dict[str, object],
                     operator: str) -> None:
    """Sign one trail event as central's (protocol.trail)."""
    from central.conflicts import sign_central

    await sign_central(store, key, [(kind, body)], operator=operator[:64])


def _audit(cfg: CentralConfig, date: str | None) -> int:
    """``audit daily``: 0 the day balanced with no finding, 1 findings, 2 usage/config."""
    import datetime as dt

    from central import audit
    from central.console.i18n import Translator

    try:
        acfg = audit.AuditConfig.load(cfg.path, cfg.db)
    except audit.AuditConfigError as exc:
        print(f"onecard-central: {exc}", file=sys.stderr)
        return 2
    if date is None:
        day = acfg.default_day(time.time_ns() // 1_000_000)
    else:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            print(f"onecard-central: --date must be YYYY-MM-DD, not {date!r}", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    tr = Translator(cfg.language)

    async def go() -> tuple[audit.AuditReport, Path, Path]:
        store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
        try:
            return await audit.run(store, day, acfg, tr)
        finally:
            await store.close()

    rep, html_path, csv_path = asyncio.run(go())
    print(tr("audit.title", day=day.isoformat()))
    for flow, fen in rep.flows.items():  # (padded by display width: Chinese is two wide)
        print(f"  {ljust(tr(f'flow.{flow}'), 20)} {rep.counts[flow]:>6} {yuan(fen):>16}")
    print(f"  {ljust(tr('audit.opening'), 20)} {'':>6} {yuan(rep.opening):>16}")
    print(f"  {ljust(tr('audit.closing'), 20)} {'':>6} {yuan(rep.closing):>16}")
    print(tr("audit.balanced") if rep.balanced else tr("audit.not_balanced"))
    for f in rep.findings:
        print(f"  [{f.severity}] {f.conflict_id(day)}  {f.title}")
    print(tr("audit.findings", n=len(rep.findings)) if rep.findings
          else tr("audit.no_findings"))
    if rep.bad or rep.invalid or rep.unknown:
        print(tr("audit.skipped", bad=rep.bad, invalid=rep.invalid, unknown=rep.unknown))
    print(tr("audit.files", html=html_path, csv=csv_path))
    return 0 if rep.balanced and not rep.findings else 1


async def _patient_names(cfg: CentralConfig, store: CentralStore,
                         pids: tuple[str, ...]) -> dict[str, str]:
    """Each patient's name as central's IT may see it: the book names patients by number,
    the names are sealed; central's patient keys open them (``***`` without)."""
    from central.console.data import ConsoleData
    from protocol.privacy import KeyFileError, PatientKeys

    if not pids:
        return {}
    try:
        keys: PatientKeys | None = PatientKeys.read(cfg.patient_keys_file)
    except KeyFileError:
        keys = None
    data = ConsoleData(store, patient_keys=keys)
    await data.refresh()
    await data.load_names(pids)
    return {pid: data.name(pid) for pid in pids}


async def _snapshot(cfg: CentralConfig, keep: int) -> int:
    """Fold the snapshot mirror to now; write a snapshot unless nothing came since."""
    import time

    from central import snapshot
    from protocol.privacy import KeyFileError, PatientKeys

    keys: PatientKeys | None
    try:
        keys = PatientKeys.read(cfg.patient_keys_file)
    except (KeyFileError, OSError):
        keys = None  # (names not indexed in it: a counter indexes them with its own keys)
        print(f"onecard-central: no patient keys at {cfg.patient_keys_file}: the snapshot's "
              "search index holds no names (each counter makes it with its keys)",
              file=sys.stderr)
    t0 = time.monotonic()
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        manifest, stream = await snapshot.make(
            store, cfg.snapshots, keys, keep=keep,
            progress=lambda n: print(f"  … {n} events folded", file=sys.stderr, flush=True))
    finally:
        await store.close()
    print(f"snapshot at position {manifest.cursor}: {manifest.events} events folded, "
          f"{len(manifest.heads)} chains; {stream} ({manifest.size / 2**20:.1f} MB, "
          f"{manifest.raw_size / 2**20:.1f} MB unpacked) in {time.monotonic() - t0:.1f} s")
    return 0


async def _balance(cfg: CentralConfig, what: str) -> int:
    """A card's or patient's account as central's reconciler folded it (brought up to
    date first if no ``serve`` is doing so: :meth:`ConsoleData.refresh`)."""
    from central.console.data import ConsoleData
    from central.console.i18n import Translator
    from protocol.domain import REGISTRY
    from protocol.privacy import SEALED_NAME, KeyFileError, PatientKeys, name_of

    tr = Translator(cfg.language)
    store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
    try:
        data = ConsoleData(store)
        await data.refresh()
        view = data.view
        card = await view.card(what.strip())
        pid = card.patient_id if card is not None else what.strip()
        patient = await view.patient(pid)
        if patient is None:
            print(f"onecard-central: {tr('balance.unknown', what=what)}", file=sys.stderr)
            return 1
        acct = await view.account(pid)
        cards = {no: await view.card(no) for no in sorted(await view.cards_of(pid))}
        timeline = await view.person_timeline(pid)
    finally:
        await store.close()
    try:  # the name is sealed: central's patient keys open it
        keys: PatientKeys | None = PatientKeys.read(cfg.patient_keys_file)
    except KeyFileError:
        keys = None
    name = name_of(patient, keys)
    print(tr("balance.patient", name=SEALED_NAME if name is None else name or "-", pid=pid))
    if patient.merged_into:
        print("  " + tr("balance.merged", pid=patient.merged_into))
    for no, c in cards.items():
        print(tr("balance.card", card=no, status=c.status if c is not None else "-"))
    print(tr("balance.balance", amount=yuan(acct.balance)))
    if acct.credit_limit:
        print(tr("balance.credit", amount=yuan(acct.credit_limit)))
    print(tr("balance.last"))
    lang = cfg.language
    for ev in timeline.events[-10:]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(ev.hlc.wall / 1000))
        delta = REGISTRY.money(ev).delta(pid)
        money = yuan(delta) if delta else ""
        print(f"  {when}  {ev.node} #{ev.seq:<6} {REGISTRY.title(ev.kind, lang):<10} "
              f"{money:>12}  {REGISTRY.describe(ev, lang)}")
    return 0


def _verify(cfg: CentralConfig) -> int:
    """Every chain central holds, by the counter's own verification (exit 1: the first
    bad event)."""
    from central.console.i18n import Translator
    from edge_node.ledger import Ledger, VerifyReport

    tr = Translator(cfg.language)
    conn = sqlite3.connect(f"file:{cfg.db}?mode=ro", uri=True, timeout=10)
    try:
        # the counter's check reads `heads (node, seq, hash)`: central keeps them in nodes
        conn.execute("CREATE TEMP VIEW heads AS SELECT id AS node, head_seq AS seq,"
                     " head_hash AS hash FROM nodes")
        report: VerifyReport = Ledger._verify_tx(conn, keyring_of(conn))
        if report.ok:  # a node whose head says it has events none of which are held
            row = conn.execute("SELECT id, head_seq FROM nodes WHERE head_seq > 0 AND id NOT"
                               " IN (SELECT DISTINCT node FROM events) ORDER BY id").fetchone()
            if row is not None:
                report = VerifyReport(False, report.checked, str(row[0]), int(row[1]),
                                      "its recorded head has no events held")
    finally:
        conn.close()
    if report.ok:
        print(tr("verify.ok", n=report.checked))
        return 0
    print(tr("verify.bad", node=report.node, seq=report.seq, reason=report.reason,
             n=report.checked), file=sys.stderr)
    return 1


def _console(cfg: CentralConfig, operator: str | None) -> int:
    import getpass

    from central.console.app import ConsoleApp

    async def check() -> None:  # a damaged database: one line here, not a traceback in the app
        store = await CentralStore.open(cfg.store_at, max_skew_ms=cfg.max_skew_ms)
        await store.close()

    asyncio.run(check())
    ConsoleApp(cfg.store_at, cfg.key_file, operator or getpass.getuser(),
               max_skew_ms=cfg.max_skew_ms, language=cfg.language,
               patient_keys_file=cfg.patient_keys_file).run()
    return 0


def _serve(cfg: CentralConfig) -> int:
    from central.server import run_server

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s %(message)s",
    )
    load_key(cfg.key_file)  # fail early with a clear message (run_server checks tls_cert and
    # tls_key next, before it opens the store: a CentralConfigError, one line, exit 2)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_server(cfg, stop=stop)

    asyncio.run(go())
    return 0


if __name__ == "__main__":
    sys.exit(main())
