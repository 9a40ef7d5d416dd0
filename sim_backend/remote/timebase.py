"""Time in processes mode: one testbed time base for every process, and hardware time in each.

**Testbed time.** The World server picks an epoch (a ``CLOCK_MONOTONIC`` reading) and hands it to
every node in its WELCOME. :class:`TestbedClock` is a :class:`~qnode_fw.clock.WallClock` whose
zero is that epoch, so a node loop built on it and the World read the same picosecond on one
host (``CLOCK_MONOTONIC`` is system-wide on Linux, network namespaces included). Nodes behave as
PCs whose clocks are perfectly disciplined; the herald-link clock sync measures offsets near 0.

**Hardware time.** A wall-clock loop fires a timer some microseconds after its deadline, but an
instrument triggered at ``t`` acts at ``t``: two memories that emit for the same attempt must
emit within the BSA's arrival tolerance (100 ps), far below any software jitter.
:class:`HardwareLoop` is the node loop as simulated hardware sees it: its timers run on the node
loop in wall time, and while a timer's callback runs, :class:`HardwareClock` reads exactly the
time the timer was set for. Simulated instruments read the hardware clock, so an emission that an
AWG marker edge at ``t`` starts is stamped ``t`` whatever the loop's lateness. Outside such a
callback the hardware clock is the wall clock (a software-triggered operation happens when the
software gets to it, as on a real node).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

from qnode_fw.clock import Clock, WallClock
from qnode_fw.loop import EventLoop, TimerHandle


def epoch_now_ns() -> int:
    """A new testbed epoch: now on the system-wide monotonic clock."""
    return time.monotonic_ns()


class TestbedClock(WallClock):
    """Monotonic wall time in ps since the testbed epoch (``time.monotonic_ns`` at ``epoch_ns``)."""

    __test__ = False   # not a pytest test class despite the name

    def __init__(self, epoch_ns: int) -> None:
        super().__init__()
        self._origin_ns = int(epoch_ns)
        self.epoch_ns = int(epoch_ns)


class HardwareClock(Clock):
    """The wall clock, except inside a hardware timer's callback, where it reads the timer's time."""

    def __init__(self, wall: Clock) -> None:
        self.wall = wall
        self.context_ps: int | None = None

    @property
    def is_virtual(self) -> bool:
        return False

    def now_ps(self) -> int:
        return self.context_ps if self.context_ps is not None else self.wall.now_ps()


class _HwTimer:
    __slots__ = ("when_ps", "seq", "handle", "done")

    def __init__(self, when_ps: int, seq: int) -> None:
        self.when_ps = when_ps
        self.seq = seq
        self.handle: TimerHandle | None = None
        self.done = False

    def __lt__(self, other: "_HwTimer") -> bool:
        return (self.when_ps, self.seq) < (other.when_ps, other.seq)


class HardwareLoop:
    """The node loop seen by simulated hardware (see the module docstring).

    It offers the scheduling half of :class:`~qnode_fw.loop.EventLoop` (``call_at``,
    ``call_later``, ``call_soon``, ``now_ps``), so a link's attempt schedule can run on it, and it
    knows the earliest hardware time still to come (:meth:`earliest_pending_ps`), which bounds what
    this node may still send to the World.
    """

    def __init__(self, loop: EventLoop, clock: HardwareClock) -> None:
        self.node_loop = loop
        self.clock = clock
        self._pending: list[_HwTimer] = []
        self._seq = itertools.count()

    @property
    def is_virtual(self) -> bool:
        return False

    @property
    def events_processed(self) -> int:
        return self.node_loop.events_processed

    def now_ps(self) -> int:
        return self.clock.now_ps()

    def call_at(self, when_ps: int, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        timer = _HwTimer(int(when_ps), next(self._seq))
        timer.handle = self.node_loop.call_at(timer.when_ps, self._run, timer, callback, args)
        heapq.heappush(self._pending, timer)
        return timer.handle

    def call_later(self, delay_ps: int, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        if delay_ps < 0:
            raise ValueError(f"negative delay {delay_ps} ps")
        return self.call_at(self.now_ps() + int(delay_ps), callback, *args)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self.call_at(self.now_ps(), callback, *args)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        self.node_loop.call_soon_threadsafe(callback, *args)

    def _run(self, timer: _HwTimer, callback: Callable[..., Any], args: tuple) -> None:
        timer.done = True
        outer = self.clock.context_ps
        self.clock.context_ps = timer.when_ps
        try:
            callback(*args)
        finally:
            self.clock.context_ps = outer

    def earliest_pending_ps(self) -> int | None:
        """The time of the earliest hardware timer that has neither run nor been cancelled."""
        pending = self._pending
        while pending and (pending[0].done or pending[0].handle.cancelled):   # type: ignore[union-attr]
            heapq.heappop(pending)
        return pending[0].when_ps if pending else None

    def horizon_ps(self) -> int:
        """No operation this node sends from now on happens before this time: not before the
        wall clock, a pending hardware timer, or the hardware callback running right now."""
        h = self.clock.wall.now_ps()
        pending = self.earliest_pending_ps()
        if pending is not None:
            h = min(h, pending)
        if self.clock.context_ps is not None:
            h = min(h, self.clock.context_ps)
        return h


__all__ = ["HardwareClock", "HardwareLoop", "TestbedClock", "epoch_now_ns"]
