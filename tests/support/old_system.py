"""An old system's export, made up: ``n`` patients with cards and balances (tests, bench).

Deterministic for a seed.  About a third of the patients have no national ID (sex and
birth date given instead), some only another contact than a phone, some no card; the
balances have every number of decimals up to two, zeros included.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass

from protocol.nationalid import check_digit

HEADER = ["old_patient_no", "name", "national_id", "sex", "birth_date", "phone", "contact",
          "card_no", "balance", "last_activity"]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"


def national_id(birth: str, i: int, male: bool) -> str:
    """A valid GB 11643 number born ``birth`` (YYYY-MM-DD), unique for each ``i``."""
    d17 = f"{110000 + i // 500:06d}{birth.replace('-', '')}{(i % 500) * 2 + male:03d}"
    return d17 + check_digit(d17)


@dataclass(frozen=True, slots=True)
class Export:
    text: str
    rows: list[dict[str, str]]

    @property
    def total_fen(self) -> int:
        return sum(_fen(r["balance"]) for r in self.rows)


def _fen(yuan: str) -> int:
    whole, _, frac = yuan.partition(".")
    return int(whole) * 100 + int(frac.ljust(2, "0") or 0)


def yuan_text(fen: int, i: int) -> str:
    """``fen`` in yuan as an old system might write it: 12, 12.5, 12.50 or 12.05."""
    whole, cents = divmod(fen, 100)
    if cents == 0:
        return (f"{whole}", f"{whole}.0", f"{whole}.00")[i % 3]
    if cents % 10 == 0:
        return (f"{whole}.{cents // 10}", f"{whole}.{cents:02d}")[i % 2]
    return f"{whole}.{cents:02d}"


def make_rows(n: int, seed: int = 16, first: int = 1) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(first, first + n):
        male = rnd.random() < 0.5
        birth = f"{rnd.randint(1930, 2020)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        with_id = i % 3 != 0
        fen = rnd.choice((0, rnd.randint(1, 999), rnd.randint(1000, 9_999_999)))
        rows.append({
            "old_patient_no": f"A{i:07d}",
            "name": rnd.choice(_SURNAMES) + "".join(rnd.choices(_GIVEN, k=rnd.randint(1, 2))),
            "national_id": national_id(birth, i, male) if with_id else "",
            "sex": ("M" if male else "F") if not with_id or i % 2 else "",
            "birth_date": birth if not with_id or i % 4 == 1 else "",
            "phone": f"13{rnd.randint(0, 9)}{rnd.randint(0, 99_999_999):08d}" if i % 7 else "",
            "contact": "" if i % 7 else "家属 王先生 北京市朝阳区",
            "card_no": f"86{i:010d}" if i % 11 else "",
            "balance": yuan_text(fen, i),
            "last_activity": f"2026-{rnd.randint(1, 11):02d}-{rnd.randint(1, 28):02d}"
            if i % 5 else "",
        })
    return rows


def render(rows: list[dict[str, str]], header: list[str] | None = None) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header or HEADER)
    for r in rows:
        w.writerow([r.get(h, "") for h in HEADER])
    return out.getvalue()


def export(n: int, seed: int = 16) -> Export:
    rows = make_rows(n, seed)
    return Export(render(rows), rows)
