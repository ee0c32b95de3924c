"""Central's reconciler behind the ack, in a process of its own (`onecard-central serve`).

A push is acked once it is stored; the reconciler (a process of ``serve``'s, named
``onecard-recon``) folds what was stored behind it.  These tests stop that process with
SIGSTOP to hold it between the acks and its catch-up, then kill ``serve`` or the
reconciler with SIGKILL there: nothing is lost, it resumes from its checkpoint and every
conflict is raised and announced once, with no further push.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.ingest import KEYS, push_all
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import decode_event, sign_event
from protocol.hlc import Hlc
from tests.support.pg import fresh_database_sync
from tests.support.sync_cluster import Central, run_async, wait_for

pytestmark = pytest.mark.slow
NODE = "burst-01"
KEY = SigningKey(b"r" * 32)
PATIENTS = 150  # four events each; every tenth patient overdraws (a conflict apiece)
OVERDRAWN = PATIENTS // 10


def burst(n_patients: int = PATIENTS) -> list[bytes]:
    """A counter's events: register, deposit ¥100.00, charge ¥25.00 or, for every tenth
    patient, ¥250.00 (an overdraft), and a second small charge."""
    out, prev, seq = [], ZERO_HASH, 0
    for p in range(n_patients):
        pid, card = f"P-{NODE}-{p:05d}", f"86{p:010d}"
        big = p % 10 == 0
        for kind, body in (
            ("patient.registered", {"patient_id": pid, "sex": "F", "birth_date": "1970-01-02",
                                    **KEYS.sealed_details(pid, {"name": f"病人{p}",
                                                                "phone": f"139{p:08d}"})}),
            ("account.deposited", {"patient_id": pid, "amount": 10_000, "method": "cash",
                                   "receipt_no": f"D-{p}"}),
            ("account.charged", {"charge_id": f"C-{p}-1", "patient_id": pid, "card_no": card,
                                 "amount": 25_000 if big else 2_500, "department": "lab",
                                 "items": [{"code": "LAB", "name": "化验", "qty": 1,
                                            "unit_price": 25_000 if big else 2_500}]}),
            ("account.charged", {"charge_id": f"C-{p}-2", "patient_id": pid, "card_no": card,
                                 "amount": 100, "department": "lab",
                                 "items": [{"code": "LAB", "name": "化验", "qty": 1,
                                            "unit_price": 100}]}),
        ):
            seq += 1
            _, data, prev = sign_event(KEY, node=NODE, seq=seq, prev=prev,
                                       hlc=Hlc(1_790_000_000_000 + seq, 0), operator="op.li",
                                       kind=kind, body=body)
            out.append(data)
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def central(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Central]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database_sync()) if request.param != "sqlite" else ""
        c = Central.init(tmp_path / "central", database=url)
        c.enrol(NODE, KEY)
        try:
            yield c
        finally:
            c.stop()


def reconciler(central: Central) -> int:
    """The pid of ``serve``'s reconciler process (0: none yet)."""
    assert central.proc is not None
    root = Path(f"/proc/{central.proc.pid}/task")
    for task in root.iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if (Path(f"/proc/{pid}/comm").read_text().strip() == "onecard-recon"
                        and alive(int(pid))):
                    return int(pid)
    return 0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has not: it is dead, only not yet waited for)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cursor(central: Central) -> int:
    return int(central.rows("SELECT COALESCE(MAX(pos), 0) FROM events")[0][0])


def folded_to(central: Central) -> int:
    """The reconciler's checkpoint: the cursor position its stored state is folded to."""
    value = central.rows("SELECT value FROM meta WHERE key = 'recon'")[0][0]
    return int(json.loads(value)["pos"]) if value else 0


def overdrafts(central: Central) -> list[str]:
    return [r[0] for r in central.rows("SELECT id FROM conflicts WHERE kind = 'overdraft'")]


def announced(central: Central) -> list[str]:
    """The conflict ids central's ``conflict.raised`` events announced, each time."""
    out = []
    for (data,) in central.rows("SELECT data FROM events WHERE node = 'central'"):
        ev = decode_event(bytes(data))
        if ev.kind == "conflict.raised":
            out.append(str(ev.body["conflict_id"]))
    return out


def push(central: Central, events: list[bytes]) -> None:
    """Push ``events`` as the counter does (500 a batch, 4 in flight); return at the last
    ack."""
    run_async(push_all(central.url, NODE, KEY, bytes.fromhex(central.key_hex), events))


def reconciled_once(central: Central) -> None:
    """Every stored event reconciled, and each overdraft raised and announced once."""
    wait_for(lambda: folded_to(central) == cursor(central) and len(announced(central))
             == OVERDRAWN, 60, "every event reconciled and every overdraft announced")
    assert len(set(overdrafts(central))) == len(overdrafts(central)) == OVERDRAWN
    assert sorted(announced(central)) == sorted(overdrafts(central))


def test_kill_9_between_ack_and_reconcile_loses_nothing(central: Central) -> None:
    central.start()
    wait_for(lambda: reconciler(central), 20, "serve's reconciler process")
    recon = reconciler(central)
    os.kill(recon, signal.SIGSTOP)  # the reconciler holds still: acks must not wait for it
    push(central, burst())
    top = cursor(central)
    assert len(central.rows(f"SELECT 1 FROM events WHERE node = '{NODE}'")) == 4 * PATIENTS
    assert folded_to(central) < top and overdrafts(central) == []
    central.kill()  # SIGKILL serve between the acks and the catch-up
    wait_for(lambda: not alive(recon), 10, "the reconciler to die with serve")
    assert folded_to(central) < top  # nothing was reconciled meanwhile …
    central.start()  # … and serve catches up from the checkpoint before it listens
    reconciled_once(central)
    central.stop()  # a restart replays nothing and announces nothing twice
    central.start()
    wait_for(lambda: reconciler(central), 20, "serve's reconciler process")
    reconciled_once(central)


def test_a_killed_reconciler_is_started_again_and_catches_up_without_a_push(
        central: Central) -> None:
    central.start()
    wait_for(lambda: reconciler(central), 20, "serve's reconciler process")
    recon = reconciler(central)
    os.kill(recon, signal.SIGSTOP)
    push(central, burst())
    assert folded_to(central) < cursor(central)
    os.kill(recon, signal.SIGKILL)  # the reconciler alone dies, mid-burst
    wait_for(lambda: reconciler(central) not in (0, recon), 20,
             "serve to start its reconciler again")
    reconciled_once(central)  # from the checkpoint, with no further push
    assert central.proc is not None and central.proc.poll() is None
    # it indexed the patients for the console's search with central's patient keys
    from edge_node.search import PatientIndex, plan

    index = PatientIndex()
    index.use_keys(KEYS)
    [exact] = [p for p in plan("病人7", KEYS) if p.clear == "m=病人7"]
    wait_for(lambda: central.rows("SELECT value FROM meta WHERE key = 'recon_search'")
             == [(index.fingerprint(),)] and not central.rows(
                 "SELECT pid FROM recon_search_due"), 30, "the console's search index made")
    assert central.rows(f"SELECT pid FROM recon_search WHERE term = 'X:{exact.key}'") == [
        (f"P-{NODE}-00007",)]
