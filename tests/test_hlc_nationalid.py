"""Hybrid logical clock transitions and GB 11643 ID numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import nationalid
from protocol.errors import Problem
from protocol.hlc import Hlc
from tests.conftest import ID_FEMALE, ID_MALE


def test_now_follows_wall_and_counts_within_a_millisecond() -> None:
    c = Hlc()
    a = c.now(1000)
    b = a.now(1000)
    d = b.now(999)  # wall clock stepped back: still moves forward
    e = d.now(2000)
    assert (a, b, d, e) == (Hlc(1000, 0), Hlc(1000, 1), Hlc(1000, 2), Hlc(2000, 0))


stamps = st.builds(Hlc, st.integers(0, 10**13), st.integers(0, 1000))


@given(stamps, stamps, st.integers(0, 10**13))
def test_observe_is_after_both(local: Hlc, remote: Hlc, wall: int) -> None:
    after = local.observe(remote, wall)
    assert after > local and after > remote and after.wall >= wall


@given(stamps, st.lists(st.integers(0, 10**13), max_size=30))
def test_now_is_strictly_increasing(start: Hlc, walls: list[int]) -> None:
    c = start
    for w in walls:
        n = c.now(w)
        assert n > c
        c = n


@pytest.mark.parametrize("number,born,sex", [(ID_MALE, "1990-03-07", "M"),
                                             (ID_FEMALE, "1949-12-31", "F")])
def test_valid_numbers_give_birth_date_and_sex(number: str, born: str, sex: str) -> None:
    parsed = nationalid.parse(number)
    assert not isinstance(parsed, Problem)
    assert (parsed.birth_date, parsed.sex) == (born, sex)
    assert nationalid.parse(number.lower()) == parsed  # a lower-case x is accepted


@pytest.mark.parametrize("number,code", [
    ("11010119900307001", "national_id.length"),
    ("110101199003070012", "national_id.checksum"),
    ("110101199013070011", "national_id.birth_date"),  # month 13
    ("1101011990030700A1", "national_id.chars"),
])
def test_invalid_numbers_say_what_is_wrong(number: str, code: str) -> None:
    parsed = nationalid.parse(number)
    assert isinstance(parsed, Problem) and parsed.code == code


@given(st.text("0123456789", min_size=17, max_size=17))
def test_exactly_one_check_character_is_accepted(first17: str) -> None:
    good = first17 + nationalid.check_digit(first17)
    results = [nationalid.parse(first17 + c) for c in "0123456789X"]
    accepted = [r for r in results if not isinstance(r, Problem)]
    if isinstance(nationalid.parse(good), Problem):  # impossible birth date
        assert accepted == []
    else:
        assert [a.number for a in accepted] == [good]


def test_mask_keeps_region_and_last_four() -> None:
    assert nationalid.mask(ID_FEMALE) == "110105********002X"
