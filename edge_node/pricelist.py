"""The counter's price list: what can be charged, at how many fen, found by code, name,
or the name's pinyin or initials (``xcg`` finds 血常规).

A price list is a TOML file of ``[[item]]`` tables (see ``edge_node/data/prices.toml``,
the built-in sample).  Loading checks every item and reports every problem at once, so
a hospital's finance office can fix a list in one go.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_node.errors import ConfigError
from edge_node.search import item_terms, normalise
from protocol.fields import MAX_AMOUNT

Fen = int
CATEGORIES = ("registration", "consultation", "exam", "lab", "drug", "treatment", "material")


@dataclass(frozen=True, slots=True)
class PriceItem:
    code: str
    name_zh: str
    name_en: str
    category: str
    unit_price: Fen
    unit: str = ""

    def name(self, language: str = "zh") -> str:
        return self.name_en if language == "en" else self.name_zh

    def line(self, qty: int, language: str = "zh") -> dict[str, Any]:
        """The item as a charge line for :meth:`CounterService.charge`."""
        return {"code": self.code, "name": self.name(language)[:64], "qty": qty,
                "unit_price": self.unit_price}


class PriceList:
    """Items by code, in file order; :meth:`search` for the charge screen."""

    def __init__(self, items: list[PriceItem]) -> None:
        self.items = list(items)
        self._by_code = {i.code.upper(): i for i in self.items}
        self._pinyin: list[tuple[str, ...]] | None = None  # made at the first pinyin search

    def __len__(self) -> int:
        return len(self.items)

    def get(self, code: str) -> PriceItem | None:
        return self._by_code.get(code.strip().upper())

    def search(self, query: str, limit: int = 50) -> list[PriceItem]:
        """Exact code first, then codes starting with the query, then names containing it,
        then names whose pinyin or initials are it, start with it, or contain it."""
        q = query.strip().lower()
        if not q:
            return self.items[:limit]
        exact = [i for i in self.items if i.code.lower() == q]
        prefix = [i for i in self.items if i.code.lower().startswith(q) and i not in exact]
        found = exact + prefix
        named = [i for i in self.items if i not in found
                 and (q in i.name_zh.lower() or q in i.name_en.lower())]
        found += named
        key = normalise(q)
        if key.isascii() and key.isalpha() and len(found) < limit:
            tiers: list[list[PriceItem]] = [[], [], []]
            taken = set(map(id, found))
            for item, terms in zip(self.items, self._pinyin_terms(), strict=True):
                if id(item) in taken:
                    continue
                if key in terms:
                    tiers[0].append(item)
                elif any(t.startswith(key) for t in terms):
                    tiers[1].append(item)
                elif any(key in t for t in terms):
                    tiers[2].append(item)
            found += [i for tier in tiers for i in tier]
        return found[:limit]

    def _pinyin_terms(self) -> list[tuple[str, ...]]:
        """Each item's Chinese name in full pinyin and in initials (every reading)."""
        if self._pinyin is None:
            self._pinyin = [item_terms(i.name_zh) for i in self.items]
        return self._pinyin

    def by_category(self, category: str) -> list[PriceItem]:
        return [i for i in self.items if i.category == category]


def parse(text: str, source: str = "price list") -> PriceList:
    """A price list from TOML text; :class:`ConfigError` listing every bad item."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    items: list[PriceItem] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, entry in enumerate(raw.get("item", []), start=1):
        where = f"{source} item {n}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not a table")
            continue
        code = entry.get("code")
        price = entry.get("unit_price")
        if not isinstance(code, str) or not code.strip() or len(code) > 32:
            problems.append(f"{where}: code must be 1-32 characters")
            continue
        if code.upper() in seen:
            problems.append(f"{where}: code {code} appears twice")
        seen.add(code.upper())
        if type(price) is not int or not 0 <= price <= MAX_AMOUNT:
            problems.append(f"{where} ({code}): unit_price must be whole fen (500 is ¥5.00)")
            continue
        name_zh = str(entry.get("name_zh") or entry.get("name") or "")
        name_en = str(entry.get("name_en") or name_zh)
        if not name_zh:
            problems.append(f"{where} ({code}): name_zh is required")
            continue
        category = str(entry.get("category", "treatment"))
        if category not in CATEGORIES:
            problems.append(f"{where} ({code}): category must be one of {', '.join(CATEGORIES)}")
            continue
        items.append(PriceItem(code, name_zh, name_en, category, price, str(entry.get("unit", ""))))
    if problems:
        raise ConfigError("; ".join(problems))
    if not items:
        raise ConfigError(f"{source}: no [[item]] entries")
    return PriceList(items)


def sample_text() -> str:
    return resources.files("edge_node").joinpath("data/prices.toml").read_text(encoding="utf-8")


def load(path: str | Path | None = None) -> PriceList:
    """The price list at ``path``, or the built-in sample when ``path`` is empty."""
    if not path:
        return parse(sample_text(), "built-in price list")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the price list {p}: {exc}") from None
    return parse(text, str(p))
