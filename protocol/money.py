"""Money is integer fen (CNY cents) everywhere; these convert to and from what people type/read."""

from __future__ import annotations

import re

from protocol.errors import Problem

Fen = int
_YUAN_RE = re.compile(r"^(\d{1,9})(?:\.(\d{1,2}))?$")


def yuan(fen: Fen) -> str:
    """``1250`` → ``¥12.50`` (integer arithmetic only)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def parse_yuan(text: str, field: str = "amount") -> Fen | Problem:
    """``"12.5"``, ``"¥12.50"``, ``"1,200"`` → fen; a Problem for anything else (never a float)."""
    t = text.strip().replace("¥", "").replace("￥", "").replace(",", "").replace(" ", "")
    m = _YUAN_RE.match(t)
    if not m:
        return Problem("amount.format", f"{text!r} is not an amount in yuan like 12.50", field,
                       {"text": text})
    whole, frac = m.group(1), (m.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(frac)
