"""A new counter in a hospital with a long history: bootstrap from central's snapshot.

Makes, once, in a temp dir, a central store (SQLite) holding ``--events`` signed events of
``--nodes`` counters (patients registered with cards and deposits, then charges; one
patient per 20 events; names and phones sealed with central's patient keys), written
straight into central's tables as ``serve`` would have stored them.  Then, each in its
own process, timed, with its peak RSS:

1. ``onecard-central snapshot``: fold the mirror from the first event and write the
   signed snapshot;
2. ``--after`` more events (a day's work) reach central;
3. ``onecard-edge bootstrap`` of a new counter against a central serving the store
   (the bench's own server: ``CentralServer`` without its reconciler, which a real
   central had caught up long before — the snapshot and the pull do not use it);
4. the counter is *usable*: a patient found by name, a card charged, its balance right;
   then ``--charges`` more charges timed (p50, p99), beside a counter of 1,000 events
   (``bench/edge_append.py``'s) charging in the same process.

Prints one JSON line.  Usage: ``python bench/bootstrap.py [--events 1000000]``
(``BENCH_DIR=/some/disk`` for the temp files).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_node import config as cfgmod  # noqa: E402
from protocol.crypto import SigningKey  # noqa: E402
from protocol.event import ChainHead, sign_event  # noqa: E402
from protocol.hlc import Hlc  # noqa: E402
from protocol.privacy import PatientKeys  # noqa: E402

BIN = Path(sys.executable).parent
ITEMS = [{"code": "LAB-CBC", "name": "血常规", "qty": 1, "unit_price": 2500}]
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢"
            "宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程")
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬建国志文"
DEPOSIT = 10**8
NEW_KEY = SigningKey(bytes([99]) * 32)  # the counter that bootstraps ("cashier-new")
PRICE = 2500


def node_key(i: int) -> SigningKey:
    return SigningKey(bytes([i + 1]) * 32)


def node_id(i: int) -> str:
    return f"cashier-{i + 1:02d}"


def plan(n: int) -> tuple[int, int]:
    """(patients, charges) of a node with ``n`` events: 3 events a patient, the rest
    charges, one patient per 20 events."""
    patients = max(1, min(n // 20, n // 3))
    return patients, n - 3 * patients


def expected_balance(n: int, p: int, after: int = 0) -> int:
    """Patient ``p``'s balance on a node with ``n`` events (then ``after`` more charges)."""
    patients, charges = plan(n)
    total = charges + after
    count = total // patients + (1 if p < total % patients else 0)
    return DEPOSIT - PRICE * count


def generate(args: tuple[int, int, int, bytes, str]) -> str:
    """Worker: node ``i``'s first ``n`` events (then ``after`` more charges) into a file."""
    i, n, after, keys_raw, out = args
    keys = PatientKeys.of(keys_raw[:32], keys_raw[32:])
    key, node = node_key(i), node_id(i)
    rng = random.Random(i)
    con = sqlite3.connect(out)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE TABLE ev (seq INTEGER PRIMARY KEY, hash BLOB, data BLOB)")
    head = ChainHead()
    wall = 1_790_000_000_000 + i
    rows: list[tuple[int, bytes, bytes]] = []

    def add(kind: str, body: dict[str, Any]) -> None:
        nonlocal head, wall
        wall += 7
        ev, data, h = sign_event(key, node=node, seq=head.seq + 1, prev=head.hash,
                                 hlc=Hlc(wall, 0), operator="bench", kind=kind, body=body)
        rows.append((ev.seq, h, data))
        head = ChainHead(ev.seq, h)
        if len(rows) >= 5000:
            con.executemany("INSERT INTO ev VALUES (?, ?, ?)", rows)
            rows.clear()

    patients, charges = plan(n)
    for p in range(patients):
        pid = f"P-{node}-{p}"
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN)
                                              for _ in range(rng.choice((1, 2, 2))))
        add("patient.registered", {"patient_id": pid, "sex": rng.choice("MF"),
                                   "birth_date": f"{rng.randint(1940, 2020)}-0{rng.randint(1, 9)}-1"
                                   f"{rng.randint(0, 9)}",
                                   **keys.sealed_details(pid, {
                                       "name": name,
                                       "phone": f"13{rng.randint(10**8, 10**9 - 1)}"})})
        add("card.issued", {"card_no": card_no(i, p), "patient_id": pid})
        add("account.deposited", {"patient_id": pid, "amount": DEPOSIT, "method": "cash",
                                  "receipt_no": f"D-{node}-{p}"})
    for c in range(charges + after):
        p = c % patients
        add("account.charged", {"charge_id": f"C-{node}-{c}", "patient_id": f"P-{node}-{p}",
                                "card_no": card_no(i, p), "items": ITEMS, "amount": PRICE,
                                "department": "检验科"})
    con.executemany("INSERT INTO ev VALUES (?, ?, ?)", rows)
    con.commit()
    con.close()
    return out


def card_no(i: int, p: int) -> str:
    return f"86{i + 1:02d}{p:07d}"


def central_cli(cfg: Path, *args: str) -> str:
    r = subprocess.run([str(BIN / "onecard-central"), "--config", str(cfg), *args],
                       capture_output=True, text=True, check=False)
    if r.returncode:
        raise SystemExit(f"onecard-central {' '.join(args)}: {r.stderr}")
    return r.stdout


def timed(argv: list[str]) -> tuple[float, float, str, str]:
    """Run ``argv``: (seconds, its peak RSS in MB, stdout, stderr)."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=fo, stderr=fe, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        took = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode:
        raise SystemExit(f"{' '.join(argv[-2:])} failed: {err or out}")
    return took, usage.ru_maxrss / 1024, out, err


def merge(central_db: Path, parts: list[Path], upto: dict[int, int]) -> int:
    """Interleave the nodes' events (seqs ≤ upto[i]) into central's store; the new cursor."""
    con = sqlite3.connect(central_db)
    con.execute("PRAGMA synchronous=OFF")
    pos = con.execute("SELECT pos FROM cursor").fetchone()[0]
    srcs = [sqlite3.connect(p) for p in parts]
    done = {i: con.execute("SELECT head_seq FROM nodes WHERE id=?", (node_id(i),)).fetchone()[0]
            for i in range(len(parts))}
    now = int(time.time() * 1000)
    while True:
        moved = 0
        for i, src in enumerate(srcs):
            rows = src.execute("SELECT seq, hash, data FROM ev WHERE seq > ? AND seq <= ? "
                               "ORDER BY seq LIMIT 100", (done[i], upto[i])).fetchall()
            if not rows:
                continue
            con.executemany("INSERT INTO events (pos, node, seq, hash, data, received_ms) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [(pos + k + 1, node_id(i), s, h, d, now)
                             for k, (s, h, d) in enumerate(rows)])
            pos += len(rows)
            done[i] = rows[-1][0]
            con.execute("UPDATE nodes SET head_seq=?, head_hash=? WHERE id=?",
                        (rows[-1][0], rows[-1][1], node_id(i)))
            moved += len(rows)
        if not moved:
            break
    con.execute("UPDATE cursor SET pos=?", (pos,))
    con.commit()
    con.close()
    for s in srcs:
        s.close()
    return int(pos)


async def serve_child(cfg_path: str, port: int) -> None:
    """The bench's central: serves the store (snapshots, pulls, grants) without the
    reconciler (it would fold the whole generated history first)."""
    from websockets.asyncio.server import serve

    from central.config import CentralConfig, load_key
    from central.privacy import Granter, central_keys
    from central.server import WS_MAX_SIZE, CentralServer
    from central.store import CentralStore

    cfg = CentralConfig.load(cfg_path)
    key = load_key(cfg.key_file)
    store = await CentralStore.open(cfg.store_at)
    granter = Granter(store, key, central_keys(cfg), cfg.reveal_roles, cfg.lookup_roles,
                      cfg.name_roles)
    app = CentralServer(store, key, granter=granter, snapshot_dir=cfg.snapshots)
    async with serve(app.handler, "127.0.0.1", port, max_size=WS_MAX_SIZE, compression=None,
                     max_queue=4):
        print("listening", flush=True)
        await asyncio.Future()


async def usable(config: str, card: str, name: str, want: int, charges: int = 0,
                 patients: int = 0) -> dict[str, Any]:
    """In a fresh process: the counter finds the patient, charges the card, and the balance
    is right.  ``charges``: then that many more charges timed, on node 0's ``patients``
    cards, beside a counter of 1,000 events (bench.edge_append) charging in the same
    window."""
    import resource

    from bench.edge_append import measure, pct
    from edge_node.ledger import Ledger
    from edge_node.service import CounterService

    cfg = cfgmod.load(config)
    t0 = time.perf_counter()
    led = await Ledger.open(cfg.db, cfg.node_id, cfg.load_key(), rule_config=cfg.rules)
    open_s = time.perf_counter() - t0
    try:
        t = time.perf_counter()
        found = await led.search_patients(name, limit=50)
        search_ms = (time.perf_counter() - t) * 1000
        svc = CounterService(led, "bench")
        view = await svc.lookup_card(card)
        before = view.account.balance if view.account else None
        t = time.perf_counter()
        await svc.charge(card, ITEMS, "检验科")
        charge_ms = (time.perf_counter() - t) * 1000
        after = (await svc.lookup_card(card)).account.balance
        times = []
        extra = time.perf_counter()
        for k in range(charges):
            t = time.perf_counter()
            await svc.charge(card_no(0, (k * 7919) % patients), ITEMS, "检验科")
            times.append(time.perf_counter() - t)
    finally:
        await led.close()
    out = {"open_s": round(open_s, 2), "search_ms": round(search_ms, 2),
           "found": len(found), "charge_ms": round(charge_ms, 2),
           "balance_right": before == want and after == want - PRICE,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if charges:
        with tempfile.TemporaryDirectory(prefix="onecard-bench-",
                                         dir=os.environ.get("BENCH_DIR")) as d:
            ref = await measure(1000, charges, Path(d))
        out["charges"] = {"n": charges, "p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99),
                          "ledger_1k_p50_ms": ref["charge_p50_ms"],
                          "ledger_1k_p99_ms": ref["charge_p99_ms"]}
        out["charges"]["p99_ratio_vs_1k"] = round(
            out["charges"]["p99_ms"] / float(ref["charge_p99_ms"]), 2)  # type: ignore[arg-type]
    out["extra_s"] = round(time.perf_counter() - extra, 1)  # not part of "usable"
    return out


def vm_hwm(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        asyncio.run(serve_child(sys.argv[2], int(sys.argv[3])))
        return
    if len(sys.argv) >= 2 and sys.argv[1] == "--usable":
        print(json.dumps(asyncio.run(usable(sys.argv[2], sys.argv[3], sys.argv[4],
                                            *map(int, sys.argv[5:8])))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--after", type=int, default=2_000, help="events per node after the "
                    "snapshot (a day's work at the whole hospital: nodes × after)")
    ap.add_argument("--charges", type=int, default=300, help="charges timed at the "
                    "bootstrapped counter, and at a counter of 1,000 events beside it")
    ap.add_argument("--resume", action="store_true", help="with --data: keep central's store "
                    "and snapshot mirror a run stopped part way left (the first fold of 10M "
                    "events takes most of an hour), and go on from them")
    ap.add_argument("--data", help="keep the generated events in this directory and use them "
                    "again in the next run with the same sizes (signing is the slow part); "
                    "central's store, snapshot and the counter are made afresh each run")
    args = ap.parse_args()
    out: dict[str, Any] = {"bench": "bootstrap", "events": args.events, "nodes": args.nodes}
    with contextlib.ExitStack() as stack:
        resume = False
        if args.data:
            d = Path(args.data)
            d.mkdir(parents=True, exist_ok=True)
            resume = args.resume and (d / "central" / "central.sqlite3").exists()
            for sub in ("counter",) if resume else ("central", "counter"):
                shutil.rmtree(d / sub, ignore_errors=True)
        else:
            d = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="onecard-bench-", dir=os.environ.get("BENCH_DIR"))))
        cfg = d / "central" / "central.toml"
        if not resume:
            prepare(d, cfg, args, out)
        run_on(d, cfg, args, out)
    print(json.dumps(out, ensure_ascii=False))


def prepare(d: Path, cfg: Path, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Central made and its counters enrolled; the nodes' events signed (or kept)."""
    central_cli(cfg, "init", "--dir", str(d / "central"))
    text = cfg.read_text()
    cfg.write_text(text.replace("verify_workers = -1", "verify_workers = 1"))
    kept = d / "patient-data.key"  # the events generated before were sealed with it
    if kept.exists():
        (d / "central" / "patient-data.key").unlink()
        PatientKeys.read(kept).write(d / "central" / "patient-data.key")
    else:
        PatientKeys.read(d / "central" / "patient-data.key").write(kept)
    keys = PatientKeys.read(d / "central" / "patient-data.key")
    for i in range(args.nodes):
        central_cli(cfg, "enrol", node_id(i), "--key", node_key(i).public_key.hex(),
                    "--role", "cashier")
    central_cli(cfg, "enrol", "cashier-new", "--key", NEW_KEY.public_key.hex(), "--role",
                "cashier")
    per = args.events // args.nodes
    t0 = time.perf_counter()
    parts = [d / f"gen-{i}.sqlite3" for i in range(args.nodes)]
    marker = d / "generated.json"
    sizes = {"events": args.events, "nodes": args.nodes, "after": args.after,
             "keys": keys.key_id}
    if not (marker.exists() and json.loads(marker.read_text()) == sizes):
        for p in parts:
            p.unlink(missing_ok=True)
        with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 2) as pool:
            raw = (keys.data or b"") + (keys.lookup or b"")
            pool.map(generate, [(i, per, args.after, raw, str(parts[i]))
                                for i in range(args.nodes)])
        marker.write_text(json.dumps(sizes))
        out["generate_s"] = round(time.perf_counter() - t0, 1)


def run_on(d: Path, cfg: Path, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Central's store from the generated events, its snapshot, the day after it, and the
    new counter bootstrapped and used (``--resume``: the store and snapshot mirror a run
    stopped part way left, folded on from where they are)."""
    per = args.events // args.nodes
    parts = [d / f"gen-{i}.sqlite3" for i in range(args.nodes)]
    t0 = time.perf_counter()
    db = d / "central" / "central.sqlite3"
    cursor = merge(db, parts, {i: per for i in range(args.nodes)})
    out["store_s"] = round(time.perf_counter() - t0, 1)
    out["central_events"] = cursor
    out["central_mb"] = round(db.stat().st_size / 2**20)

    took, rss, so, _ = timed([str(BIN / "onecard-central"), "--config", str(cfg),
                              "snapshot"])
    out["snapshot"] = {"s": round(took, 1), "peak_rss_mb": round(rss, 1),
                       "said": so.strip()}
    stream = max((d / "central" / "snapshots").glob("snap-*.zst"),
                 key=lambda p: p.stat().st_mtime)
    out["snapshot"]["mb"] = round(stream.stat().st_size / 2**20, 1)
    out["events_after_snapshot"] = merge(db, parts, {i: per + args.after
                                                     for i in range(args.nodes)}) - cursor

    from tests.support.sync_cluster import free_port
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(cfg), str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and "listening" in server.stdout.readline()
        cd = d / "counter"
        cd.mkdir()
        cfgmod.write_key(cd / "node.key", NEW_KEY)
        ckey = (d / "central" / "central.key").read_text().strip()
        pub = SigningKey(bytes.fromhex(ckey)).public_key.hex()
        ecfg = cfgmod.EdgeConfig(node_id="cashier-new", role="cashier",
                                 db=cd / "cashier-new.sqlite3", key_file=cd / "node.key",
                                 sync=cfgmod.SyncConfig(f"ws://127.0.0.1:{port}/sync", pub))
        epath = cd / "onecard-edge.toml"
        epath.write_text(cfgmod.render(ecfg), encoding="utf-8")
        took, rss, so, _ = timed([str(BIN / "onecard-edge"), "--config", str(epath),
                                   "bootstrap"])
        out["bootstrap"] = {"s": round(took, 1), "peak_rss_mb": round(rss, 1),
                            "said": so.strip().splitlines()}
        out["central_serve_peak_rss_mb"] = round(vm_hwm(server.pid), 1)
        out["counter_ledger_mb"] = round((cd / "cashier-new.sqlite3").stat().st_size
                                         / 2**20, 1)
        p = 1  # node 0's patient 1
        want = expected_balance(per, p, args.after)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, __file__, "--usable", str(epath),
                            card_no(0, p), "王", str(want), str(args.charges),
                            str(plan(per)[0])],
                           capture_output=True, text=True, check=True)
        out["usable"] = json.loads(r.stdout.strip().splitlines()[-1])
        out["usable"]["s"] = round(time.perf_counter() - t0 - out["usable"].pop("extra_s"),
                                   1)
        out["bootstrap_to_usable_s"] = round(out["bootstrap"]["s"] + out["usable"]["s"], 1)
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
