"""The node event loop: timers, deferred calls and I/O readiness on one thread.

One loop class serves both clocks. With a :class:`~qnode_fw.clock.VirtualClock` the loop is a
discrete-event simulator: it jumps the clock to the next timer, so many nodes sharing one loop share
one virtual timeline. With a :class:`~qnode_fw.clock.WallClock` it sleeps in ``zmq.Poller.poll``
until the next timer is due or a registered socket becomes readable.

Sleeping in wall-clock mode: ``poll`` resolves whole milliseconds, so the loop also registers a
``timerfd`` (:mod:`qnode_fw.wakeup_timer`) armed for ``next timer - timer_slack_ps`` and sleeps
until it or a socket wakes it; only the last ``timer_slack_ps`` before a deadline is spent polling
without sleeping. Without a ``timerfd`` (not Linux) it sleeps whole milliseconds and spins the
rest, as every loop did before: a loop with timers every 100 µs then spins on a whole core and
competes with its own process's ZeroMQ I/O thread (docs/performance.md, "Timers in wall-clock
mode").

Events at equal times run in the order they were scheduled (a sequence number breaks ties), which
makes a virtual run deterministic: same seed, same configuration, same event order.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from .clock import Clock, VirtualClock
from .wakeup_timer import WakeupTimer, open_wakeup_timer

log = logging.getLogger(__name__)

Callback = Callable[..., Any]

_PS_PER_MS = 1_000_000_000

#: How long before a timer's deadline a wall-clock loop stops sleeping and polls without sleeping.
#: A sleeping thread wakes late by the kernel's timer slack (50 µs for an ordinary thread: the
#: hrtimer may fire anywhere in [deadline, deadline + slack] so that wake-ups coalesce) plus the
#: time to be scheduled again; spinning the last 50 µs makes the usual wake-up land before the
#: deadline while a loop with 100 µs between timers still sleeps half of the time. Measured with
#: 0, 50 and 100 µs in docs/performance.md ("Timers in wall-clock mode").
DEFAULT_TIMER_SLACK_PS = 50_000_000


class TimerHandle:
    """A scheduled call; :meth:`cancel` it to stop it from running."""

    __slots__ = ("when_ps", "seq", "callback", "args", "cancelled")

    def __init__(self, when_ps: int, seq: int, callback: Callback, args: tuple) -> None:
        self.when_ps = when_ps
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: "TimerHandle") -> bool:  # heap order: time, then scheduling order
        return (self.when_ps, self.seq) < (other.when_ps, other.seq)


class EventLoop:
    """Timers, deferred calls and socket readiness, driven by one :class:`Clock`."""

    def __init__(self, clock: Clock | None = None, *, timer_slack_ps: int | None = None) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        #: Wall clock: the last stretch before a timer's deadline that is polled, not slept.
        self.timer_slack_ps = DEFAULT_TIMER_SLACK_PS if timer_slack_ps is None else int(timer_slack_ps)
        if self.timer_slack_ps < 0:
            raise ValueError(f"negative timer slack {self.timer_slack_ps} ps")
        # The timerfd that ends a sub-millisecond sleep; opened on the first such sleep (a
        # virtual loop never sleeps, and simulations make thousands of loops).
        self._wakeup: WakeupTimer | None = None
        self._wakeup_fd: int | None = None
        self._wakeup_tried = False
        self._wakeup_at_ps: int | None = None   # when the armed timerfd fires (loop time)
        # Heap of (when_ps, seq, handle) tuples: tuple comparison runs in C, about 1.6x faster
        # than ordering handles with a Python __lt__ (bench_timers).
        self._timers: list[tuple[int, int, TimerHandle]] = []
        self._ready: deque[tuple[Callback, tuple]] = deque()
        self._seq = itertools.count()
        self._readers: dict[Any, Callback] = {}
        self._poller = zmq.Poller()
        self._stopping = False
        self._running = False
        self.events_processed = 0
        # Self-pipe so other threads (instrument reader threads, signal handlers) can wake a
        # wall-clock loop that is sleeping in poll().
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # A loop nobody closed gives its pipe back when it is collected: simulations and tests
        # make thousands of loops, and descriptors past 1023 break select()-based libraries
        # (pyvisa-py) elsewhere in the process.
        self._release_pipe = weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._threadsafe: deque[tuple[Callback, tuple]] = deque()
        self._threadsafe_lock = threading.Lock()
        self.add_reader(self._wake_r, self._drain_wakeups)

    # -- time -------------------------------------------------------------------------------
    @property
    def is_virtual(self) -> bool:
        return self.clock.is_virtual

    def now_ps(self) -> int:
        return self.clock.now_ps()

    # -- scheduling -------------------------------------------------------------------------
    def call_at(self, when_ps: int, callback: Callback, *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` at absolute time ``when_ps`` (or as soon as possible after)."""
        when = int(when_ps)
        seq = next(self._seq)
        handle = TimerHandle(when, seq, callback, args)
        heapq.heappush(self._timers, (when, seq, handle))
        return handle

    def call_later(self, delay_ps: int, callback: Callback, *args: Any) -> TimerHandle:
        if delay_ps < 0:
            raise ValueError(f"negative delay {delay_ps} ps")
        return self.call_at(self.now_ps() + int(delay_ps), callback, *args)

    def call_soon(self, callback: Callback, *args: Any) -> None:
        """Run ``callback(*args)`` on the next loop iteration, at the current time."""
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback: Callback, *args: Any) -> None:
        """Like :meth:`call_soon`, callable from any thread; wakes a sleeping loop."""
        with self._threadsafe_lock:
            self._threadsafe.append((callback, args))
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:  # pipe full: the loop is already going to wake up
            pass

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._threadsafe_lock:
            items, self._threadsafe = self._threadsafe, deque()
        self._ready.extend(items)

    # -- I/O --------------------------------------------------------------------------------
    def add_reader(self, source: Any, callback: Callback) -> None:
        """Call ``callback()`` whenever ``source`` (a zmq socket or a file descriptor) is readable."""
        self._readers[source] = callback
        self._poller.register(source, zmq.POLLIN)

    def remove_reader(self, source: Any) -> None:
        if self._readers.pop(source, None) is not None:
            self._poller.unregister(source)

    # -- running ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Make the running ``run_*`` call return after the current event."""
        self._stopping = True

    def _run_ready(self) -> None:
        while self._ready and not self._stopping:
            callback, args = self._ready.popleft()
            self.events_processed += 1
            callback(*args)

    def _poll(self, timeout_ms: float) -> None:
        # Only the wake pipe registered: in virtual mode nothing outside can make progress, so
        # skip the syscall entirely.
        if len(self._readers) == 1 and timeout_ms == 0:
            if self._threadsafe:
                self._drain_wakeups()
            return
        for source, _ in self._poller.poll(timeout_ms):
            callback = self._readers.get(source)
            if callback is not None:
                self.events_processed += 1
                callback()
            elif source == self._wakeup_fd and self._wakeup is not None:
                self._wakeup.drain()       # it only ended the sleep; the timers run below
                self._wakeup_at_ps = None

    def _wakeup_timer(self) -> WakeupTimer | None:
        if not self._wakeup_tried:
            self._wakeup_tried = True
            self._wakeup = open_wakeup_timer()
            if self._wakeup is not None:
                self._wakeup_fd = self._wakeup.fileno()
                self._poller.register(self._wakeup_fd, zmq.POLLIN)
                self._release_wakeup = weakref.finalize(self, self._wakeup.close)
        return self._wakeup

    def _sleep_ms(self, now_ps: int, deadline_ps: int) -> int:
        """The poll timeout (ms) for a timer due at ``deadline_ps``; 0 within the timer slack."""
        sleep_ps = deadline_ps - self.timer_slack_ps - now_ps
        if sleep_ps <= 0:
            return 0
        wakeup = self._wakeup_timer()
        if wakeup is None:
            # Whole milliseconds only: the rest of the way is spun.
            return sleep_ps // _PS_PER_MS
        wake_at = deadline_ps - self.timer_slack_ps
        if wake_at != self._wakeup_at_ps:
            # Arming is a syscall (several µs): a poll that a socket ended early sleeps on
            # towards the same wake-up without arming again.
            wakeup.arm(sleep_ps // 1000)
            self._wakeup_at_ps = wake_at
        # The timerfd ends the sleep; the timeout only bounds it should the timerfd not fire.
        return sleep_ps // _PS_PER_MS + 1

    def _pop_due(self, now: int) -> TimerHandle | None:
        timers = self._timers
        while timers:
            when, _, head = timers[0]
            if head.cancelled:
                heapq.heappop(timers)
                continue
            if when <= now:
                heapq.heappop(timers)
                return head
            return None
        return None

    def _next_timer_ps(self) -> int | None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def run_once(self, until_ps: int | None = None, block: bool = True) -> bool:
        """Run one step: deferred calls, I/O, then every timer due now. Returns False when idle.

        ``until_ps`` caps how far time may advance. In virtual mode "idle" means no deferred call
        and no timer at or before ``until_ps``; in wall mode the loop sleeps until the next timer,
        ``until_ps`` or I/O, whichever comes first.
        """
        self._run_ready()
        if self._stopping:
            return True
        nxt = self._next_timer_ps()
        if until_ps is not None and (nxt is None or nxt > until_ps):
            nxt_cap = until_ps
        else:
            nxt_cap = nxt
        if self.clock.is_virtual:
            self._poll(0)
            if self._ready:
                return True
            if nxt is None or (until_ps is not None and nxt > until_ps):
                if until_ps is not None and until_ps > self.clock.now_ps():
                    self.clock.advance_to(until_ps)  # type: ignore[attr-defined]
                return False
            self.clock.advance_to(nxt)  # type: ignore[attr-defined]
        else:
            now = self.clock.now_ps()
            if nxt_cap is None:
                timeout_ms: float = -1 if block else 0
            elif not block:
                timeout_ms = 0
            else:
                timeout_ms = self._sleep_ms(now, nxt_cap)
            self._poll(timeout_ms)
            if nxt_cap is None and not self._ready and not block:
                return False
        now = self.clock.now_ps()
        while not self._stopping:
            handle = self._pop_due(now)
            if handle is None:
                break
            self.events_processed += 1
            handle.callback(*handle.args)
        if not self.clock.is_virtual and until_ps is not None and now >= until_ps and not self._ready:
            return False
        return True

    def run_until(self, until_ps: int) -> None:
        """Run every event up to and including time ``until_ps``; the clock ends at ``until_ps``."""
        self._stopping = False
        self._running = True
        try:
            while not self._stopping:
                if self.clock.now_ps() >= until_ps and not self._ready and (
                    self._next_timer_ps() is None or self._next_timer_ps() > until_ps
                ):
                    break
                if not self.run_once(until_ps=until_ps) and self.clock.is_virtual:
                    break
        finally:
            self._running = False

    def run_until_idle(self, max_events: int | None = None) -> None:
        """Virtual mode: run until nothing is scheduled (or ``max_events`` have run)."""
        if not self.clock.is_virtual:
            raise RuntimeError("run_until_idle needs a virtual clock; use run_until or run_forever")
        self._stopping = False
        start = self.events_processed
        while not self._stopping and self.run_once():
            if max_events is not None and self.events_processed - start >= max_events:
                break

    def run_forever(self) -> None:
        """Run until :meth:`stop` is called (in virtual mode also returns when idle)."""
        self._stopping = False
        while not self._stopping:
            progressed = self.run_once()
            if not progressed and self.clock.is_virtual:
                break

    def close(self) -> None:
        for source in list(self._readers):
            self.remove_reader(source)
        if self._wakeup is not None:
            self._poller.unregister(self._wakeup_fd)
            self._release_wakeup()
            self._wakeup, self._wakeup_fd = None, None
        self._release_pipe()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
