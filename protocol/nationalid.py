"""Chinese resident identity card numbers (GB 11643-1999): 17 digits + ISO 7064 MOD 11-2 check.

The number encodes the birth date (digits 7-14, YYYYMMDD) and sex (digit 17: odd is
male, even is female), so the registration form derives both instead of asking twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from protocol.errors import Problem

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


@dataclass(frozen=True, slots=True)
class NationalId:
    number: str
    birth_date: str  # YYYY-MM-DD
    sex: str  # "M" | "F"


def parse(number: str) -> NationalId | Problem:
    """Parse and check an 18-character ID number; a Problem says exactly what is wrong."""
    n = number.strip().upper()
    if len(n) != 18:
        return Problem("national_id.length", f"ID number must be 18 characters, got {len(n)}",
                       "national_id", {"n": len(n)})
    # isascii: str.isdigit() also admits other scripts' digits, which int() may refuse
    if not n.isascii() or not n[:17].isdigit() or not (n[17].isdigit() or n[17] == "X"):
        return Problem("national_id.chars", "ID number is 17 digits then a digit or X",
                       "national_id")
    try:
        born = dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return Problem("national_id.birth_date",
                       f"ID number holds an impossible birth date {n[6:10]}-{n[10:12]}-{n[12:14]}",
                       "national_id", {"date": f"{n[6:10]}-{n[10:12]}-{n[12:14]}"})
    if born.year < 1880:
        return Problem("national_id.birth_date", f"ID number birth year {born.year} is too early",
                       "national_id", {"variant": "too_early", "year": born.year})
    expected = check_digit(n[:17])
    if n[17] != expected:
        return Problem("national_id.checksum",
                       "ID number check digit is wrong (mistyped digit?)", "national_id")
    return NationalId(n, born.isoformat(), "M" if int(n[16]) % 2 else "F")


def mask(number: str) -> str:
    """For screens and logs: ``110105********123X`` (region and last four kept)."""
    if len(number) < 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
