"""Latency of a patient search at the counter with 100k patients on record (one JSON line).

A real ledger is filled with signed history: ``--patients`` patients with common Chinese
names (one in five with a heteronym surname such as 曾 or 单), phones, half of them
with a national ID number, each with a card and a deposit; the projections and the
search index are then built by ``Ledger.rebuild`` (timed: ``index_build_s``).  Names,
ID numbers, phones are sealed as counters seal them (:mod:`protocol.privacy`): names are
found by the counter's keyed name terms, which is what ``index_rows`` counts.  Then
``CounterService.search_patients`` is timed as the search screen calls it on every
keystroke (index ranges, ranking, and the patients' records, accounts and cards for the
50 shown) for each kind of query: a surname alone (thousands match), a full name, name
pinyin and initials, a whole phone, its last four digits, a national ID number, a
patient number, and a miss.

Usage: ``python bench/search.py [--patients 100000] [-n 200]`` (n queries of each kind).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_node import search
from edge_node.ledger import Ledger, _select_all
from edge_node.service import CounterService
from protocol import nationalid
from protocol.crypto import SigningKey
from protocol.errors import Problem
from protocol.event import ChainHead, sign_event
from protocol.hlc import Hlc
from protocol.patient import Patient
from protocol.privacy import SEALED_FIELDS, PatientKeys

NODE = "cashier-01"
#: the hospital's patient keys (counters get them from central; a bench holds them): the
#: ID numbers and phones are sealed and found by their keyed tags, as at a counter
KEYS = PatientKeys.of(bytes(range(32)), bytes(range(32, 64)))
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭肖田董袁潘于蒋蔡余"
            "杜叶程苏魏丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙"
            "史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
HETERONYM_SURNAMES = "曾单解仇区朴查盖乐吕"
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红志建国文辉力鹏飞斌宇浩凯"
         "俊帅欣怡婷雪琳晨阳佳鑫颖子涵梓萱一诺雨轩博文思远嘉怡")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 3)


def national_id(rnd: random.Random, i: int) -> str:
    born = f"{rnd.randint(1940, 2020)}{rnd.randint(1, 12):02d}{rnd.randint(1, 28):02d}"
    body = f"110101{born}{i % 1000:03d}"
    return body + nationalid.check_digit(body)


def person(rnd: random.Random, i: int) -> dict[str, str]:
    surname = rnd.choice(HETERONYM_SURNAMES if rnd.random() < 0.2 else SURNAMES)
    name = surname + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice((1, 2, 2))))
    body = {"name": name, "phone": f"1{rnd.randint(3, 9)}{rnd.randint(0, 10**9 - 1):09d}"}
    if i % 2:
        nid = national_id(rnd, i)
        parsed = nationalid.parse(nid)
        assert not isinstance(parsed, Problem)
        body.update(national_id=nid, sex=parsed.sex, birth_date=parsed.birth_date)
    else:
        body.update(sex=rnd.choice("MF"), birth_date=f"{rnd.randint(1940, 2020)}-03-01")
    return body


def fill(path: Path, key: SigningKey, patients: list[dict[str, str]]) -> None:
    """Signed registrations, cards and deposits straight into the events table."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")  # bulk set-up only
    head = ChainHead()
    rows: list[tuple[object, ...]] = []
    wall = 1_790_000_000_000

    def add(kind: str, body: dict[str, object]) -> None:
        nonlocal head, wall
        wall += 1
        ev, data, h = sign_event(key, node=NODE, seq=head.seq + 1, prev=head.hash,
                                 hlc=Hlc(wall, 0), operator="bench", kind=kind, body=body)
        rows.append((NODE, ev.seq, h, wall, 0, "bench", kind, data, wall))
        head = ChainHead(ev.seq, h)
        if len(rows) >= 5000:
            flush()

    def flush() -> None:
        con.executemany("INSERT INTO events (node, seq, hash, hlc_wall, hlc_counter, operator, "
                        "kind, data, local_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        rows.clear()

    for p, details in enumerate(patients):
        pid = f"P-{NODE}-{p:06d}"
        clear = {k: v for k, v in details.items() if k in ("name", *SEALED_FIELDS)}
        add("patient.registered", {"patient_id": pid,
                                   **{k: v for k, v in details.items() if k not in clear},
                                   **KEYS.sealed_details(pid, clear)})
        add("card.issued", {"card_no": f"86{p:08d}", "patient_id": pid})
        add("account.deposited", {"patient_id": pid, "amount": 10_000, "method": "cash",
                                  "receipt_no": f"D-b{p}"})
    flush()
    con.execute("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)", (NODE, head.seq, head.hash))
    con.execute("INSERT OR REPLACE INTO meta VALUES ('hlc_wall', ?)", (wall,))
    con.commit()
    con.close()


def queries(rnd: random.Random, patients: list[dict[str, str]], n: int) -> dict[str, list[str]]:
    """``n`` queries of each kind, typed as staff would type them."""
    picks = [(rnd.randrange(len(patients))) for _ in range(n)]
    with_id = [i for i in picks if "national_id" in patients[i]] or [1]
    out = {
        "surname": [patients[i]["name"][0] for i in picks],
        "name": [patients[i]["name"] for i in picks],
        "pinyin": [search.readings(patients[i]["name"])[0] for i in picks],
        "initials": [search.initials(patients[i]["name"])[0] for i in picks],
        "phone": [patients[i]["phone"] for i in picks],
        "phone_last4": [patients[i]["phone"][-4:] for i in picks],
        "national_id": [patients[i]["national_id"] for i in with_id],
        "patient_no": [f"P-{NODE}-{i:06d}" for i in picks],
        "miss": [f"qx{i}" for i in range(n)],
    }
    return out


async def measure(n_patients: int, n: int, base: Path) -> dict[str, object]:
    rnd = random.Random(16)
    path = base / "ledger.sqlite3"
    key = SigningKey(bytes(range(32)))
    led = await Ledger.open(path, NODE, key, patient_keys=KEYS)  # creates the schema
    await led.close()
    patients = [person(rnd, i) for i in range(n_patients)]
    t0 = time.perf_counter()
    fill(path, key, patients)
    fill_s = time.perf_counter() - t0
    led = await Ledger.open(path, NODE, key, patient_keys=KEYS)
    t0 = time.perf_counter()
    await led.rebuild()
    rebuild_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the index alone, written afresh from the patients table (as an upgrade does at open)
    [index] = led._all_indexes()
    await led.write(lambda c: led._reindex(c, index, _select_all(c, Patient)))
    index_s = time.perf_counter() - t0
    await led.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    rows = await led.run(lambda c: c.execute("SELECT count(*) FROM patient_search").fetchone()[0])
    svc = CounterService(led, "bench")
    timings: dict[str, list[float]] = {}
    found: dict[str, float] = {}
    every: list[float] = []
    for kind, qs in queries(rnd, patients, n).items():
        ts = []
        hits = 0
        for q in qs:
            t = time.perf_counter()
            got = await svc.search_patients(q, 50)
            ts.append(time.perf_counter() - t)
            hits += bool(got)
        timings[kind] = ts
        every += ts
        found[kind] = round(hits / len(qs), 3)
    await led.close()
    return {
        "patients": n_patients, "index_rows": rows, "fill_s": round(fill_s, 1),
        "rebuild_s": round(rebuild_s, 1), "index_build_s": round(index_s, 1),
        "p50_ms": pct(every, 0.5), "p99_ms": pct(every, 0.99), "max_ms": pct(every, 1.0),
        "by_kind": {k: {"p50_ms": pct(ts, 0.5), "p99_ms": pct(ts, 0.99), "found": found[k]}
                    for k, ts in timings.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("-n", type=int, default=200, help="timed queries of each kind")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="onecard-bench-", dir=os.environ.get("BENCH_DIR")) \
            as d:
        out: dict[str, object] = {"bench": "search", "n": args.n}
        out.update(asyncio.run(measure(args.patients, args.n, Path(d))))
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
