"""Clocks: every component reads time from its node's clock, never from ``time`` directly.

Two implementations behind one interface keep a single code path for the lab and for CI:

* :class:`WallClock` - monotonic wall time in integer picoseconds, for node PCs in the lab and for
  the processes mode of a testbed;
* :class:`VirtualClock` - discrete-event time that only moves when the event loop advances it to the
  next scheduled event, so a simulation runs faster than real time and is reproducible.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """Source of the current time in integer picoseconds since the clock's epoch."""

    @property
    @abstractmethod
    def is_virtual(self) -> bool:
        """True when time advances only by the event loop (simulation)."""

    @abstractmethod
    def now_ps(self) -> int:
        """Current time in integer picoseconds."""


class WallClock(Clock):
    """Monotonic wall time, zero at construction (``time.monotonic_ns`` has ns resolution)."""

    def __init__(self) -> None:
        self._origin_ns = time.monotonic_ns()

    @property
    def is_virtual(self) -> bool:
        return False

    def now_ps(self) -> int:
        return (time.monotonic_ns() - self._origin_ns) * 1000


class VirtualClock(Clock):
    """Discrete-event time. Only :meth:`advance_to` moves it, and never backwards."""

    def __init__(self, start_ps: int = 0) -> None:
        self._now = int(start_ps)

    @property
    def is_virtual(self) -> bool:
        return True

    def now_ps(self) -> int:
        return self._now

    def advance_to(self, t_ps: int) -> None:
        if t_ps < self._now:
            raise ValueError(f"virtual clock cannot go back from {self._now} ps to {t_ps} ps")
        self._now = int(t_ps)
