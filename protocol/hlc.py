"""Hybrid logical clock: wall milliseconds plus a counter, with the wall clock passed in.

HLC stamps order events across nodes consistently with causality (an event a node has
seen always sorts before the events it then writes) while staying close to real time.
The clock is a value object plus two pure transitions; the caller owns the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_COUNTER = 0xFFFF_FFFF
MAX_WALL_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: beyond it, a stamp is junk


@dataclass(frozen=True, slots=True, order=True)
class Hlc:
    """A stamp: ``(wall_ms, counter)``, ordered lexicographically."""

    wall: int = 0
    counter: int = 0

    def now(self, wall_ms: int) -> Hlc:
        """The stamp for a new local event when the wall clock reads ``wall_ms``."""
        if wall_ms > self.wall:
            return Hlc(wall_ms, 0)
        return self._bump(self.wall, self.counter + 1)

    def observe(self, remote: Hlc, wall_ms: int) -> Hlc:
        """The clock after receiving ``remote`` when the wall clock reads ``wall_ms``.

        The result is greater than both this clock and ``remote``.  Guarding against a
        remote stamp far in the future (clock skew) is the caller's job: central flags
        it as an integrity conflict rather than refusing the event.
        """
        wall = max(self.wall, remote.wall, wall_ms)
        if wall == self.wall == remote.wall:
            counter = max(self.counter, remote.counter) + 1
        elif wall == self.wall:
            counter = self.counter + 1
        elif wall == remote.wall:
            counter = remote.counter + 1
        else:
            counter = 0
        return self._bump(wall, counter)

    @staticmethod
    def _bump(wall: int, counter: int) -> Hlc:
        if counter > MAX_COUNTER:  # 4 billion events in one ms: move the wall on
            return Hlc(wall + 1, 0)
        return Hlc(wall, counter)

    def to_list(self) -> list[int]:
        return [self.wall, self.counter]
