"""Small display helpers shared by the console's screens (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from protocol.money import yuan

TIMEZONE = "Asia/Shanghai"


def when(ms: int, tz: str = TIMEZONE) -> str:
    if ms <= 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(ZoneInfo(tz)).strftime(
        "%Y-%m-%d %H:%M:%S")


def ago(ms: int) -> str:
    s = max(0, ms // 1000)
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    if s < 172800:
        return f"{s // 3600}h ago"
    return f"{s // 86400}d ago"


def signed(fen: int) -> str:
    return ("+" if fen > 0 else "") + yuan(fen) if fen else ""
