"""A counter's real ledger filled over the last four years (a clock we move), for the
dormant-account tests: who is dormant, for how long, and with how much, is known to the fen.

Days ago, at cashier-01 (one patient each, registered with a first deposit):

====  =====================================  ===========  =================
 who   what                                   balance      idle (N = 6)
====  =====================================  ===========  =================
 A     registered 1520 days ago, ¥123.45      ¥123.45      36+
 F     registered 1000, settled 990           0            (no balance)
 B     registered 910 with ¥200, charged 900  ¥144.45      24-36
 G     registered 800; card reported lost 30  ¥88.00       (card active)
 C     registered 455, ¥300.01                ¥300.01      12-24
 D     registered 245, ¥70.00                 ¥70.00       6-12
 E     registered 90, ¥99.99                  ¥99.99       (3 months)
====  =====================================  ===========  =================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.crypto import SigningKey

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

DAY = 86_400_000
ID_MALE = "110101199003070011"


class Clock:
    """A wall clock we set; each reading moves it 1 ms (events stay ordered)."""

    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        self.t += 1
        return self.t


@dataclass
class Filled:
    pids: dict[str, str] = field(default_factory=dict)  # A … G → patient id
    cards: dict[str, str] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)


async def fill(db: Path, node: str, key: SigningKey, now_ms: int) -> Filled:
    """Write the table above into the ledger at ``db`` (its events at those times)."""
    clock = Clock(now_ms - 1520 * DAY)
    led = await Ledger.open(db, node, key, clock=clock)
    out = Filled()
    try:
        svc = CounterService(led, "op.wang")

        async def register(who: str, days: int, fen: int, nid: str = "") -> None:
            clock.t = now_ms - days * DAY
            card = f"8600{ord(who):06d}"
            phone = f"1390000{ord(who):04d}"
            r = await svc.register_patient(name=f"患者{who}", sex="" if nid else "M",
                                           birth_date="" if nid else "1960-05-05",
                                           national_id=nid, phone=phone, card_no=card,
                                           first_deposit=fen, contact=f"家属{who}")
            out.pids[who], out.cards[who], out.phones[who] = r.patient.patient_id, card, phone

        await register("A", 1520, 12_345, nid=ID_MALE)
        await register("F", 1000, 5_000)
        clock.t = now_ms - 990 * DAY
        await svc.settle(out.cards["F"], approval=SUP)
        await register("B", 910, 20_000)
        clock.t = now_ms - 900 * DAY
        await svc.charge(out.cards["B"], [{"code": "LAB-CBC", "name": "血常规", "qty": 1,
                                           "unit_price": 5_555}], "lab")
        await register("G", 800, 8_800)
        await register("C", 455, 30_001)
        await register("D", 245, 7_000)
        await register("E", 90, 9_999)
        clock.t = now_ms - 30 * DAY
        await svc.report_lost(out.cards["G"], "id_card")
    finally:
        await led.close()
    return out


#: With N = 6 months: who is dormant, in which band, with how much (fen).
DORMANT_6 = {"A": ("36+", 12_345), "B": ("24-36", 14_445), "C": ("12-24", 30_001),
             "D": ("6-12", 7_000)}


async def fill_many(db: Path, node: str, key: SigningKey, now_ms: int, n: int,
                    days: int = 800) -> dict[str, int]:
    """``n`` patients registered ``days`` ago, patient i with ¥10.00 + i fen; their ids
    and balances."""
    clock = Clock(now_ms - days * DAY)
    led = await Ledger.open(db, node, key, clock=clock)
    out: dict[str, int] = {}
    try:
        svc = CounterService(led, "op.wang")
        for i in range(n):
            r = await svc.register_patient(name=f"患者{i}", sex="F", birth_date="1970-01-01",
                                           phone=f"137{i:08d}", card_no=f"87{i:08d}",
                                           first_deposit=1_000 + i)
            out[r.patient.patient_id] = 1_000 + i
    finally:
        await led.close()
    return out
