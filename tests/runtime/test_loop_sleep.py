"""How the wall-clock EventLoop waits for its next timer: it sleeps on a timerfd until
``timer_slack_ps`` before the deadline and polls without sleeping only for that last stretch, so
a loop with sub-millisecond timers does not spin on a core (docs/performance.md). Speed is
measured in bench/bench_timers.py; these tests check behaviour: timers never fire early, in
order, the timerfd's wake-ups are not counted as events, other threads still wake the loop, the
millisecond fallback still works, and a virtual loop never opens a timerfd."""

from __future__ import annotations

import select
import threading
import time

import pytest

import qnode_fw.loop as loop_module
from qnode_fw.clock import VirtualClock, WallClock
from qnode_fw.loop import DEFAULT_TIMER_SLACK_PS, EventLoop
from qnode_fw.units import MS, US
from qnode_fw.wakeup_timer import WakeupTimer, open_wakeup_timer

needs_timerfd = pytest.mark.skipif(open_wakeup_timer() is None, reason="no timerfd on this OS")


@needs_timerfd
def test_the_wakeup_timer_becomes_readable_after_its_delay_and_drains():
    timer = WakeupTimer()
    try:
        timer.arm(20 * 1_000_000)                              # 20 ms
        assert select.select([timer], [], [], 0)[0] == []      # not yet
        assert select.select([timer], [], [], 5.0)[0] == [timer]
        timer.drain()
        assert select.select([timer], [], [], 0)[0] == []
        timer.arm(10 * 1_000_000_000)                          # re-armed far away: quiet again
        assert select.select([timer], [], [], 0.05)[0] == []
    finally:
        timer.close()


def test_a_negative_slack_is_refused():
    with pytest.raises(ValueError, match="negative timer slack"):
        EventLoop(WallClock(), timer_slack_ps=-1)
    assert EventLoop(WallClock()).timer_slack_ps == DEFAULT_TIMER_SLACK_PS > 0


@pytest.mark.parametrize("slack_ps", [0, 20 * US, DEFAULT_TIMER_SLACK_PS, 2 * MS])
def test_sub_millisecond_timers_fire_in_order_and_never_early(slack_ps):
    loop = EventLoop(WallClock(), timer_slack_ps=slack_ps)
    fired: list[tuple[int, int]] = []
    start = loop.now_ps() + 1 * MS
    due = [start + k * 150 * US for k in range(40)]            # 150 us apart: below poll's ms
    for t in reversed(due):                                    # scheduled out of order
        loop.call_at(t, lambda t=t: fired.append((t, loop.now_ps())))
    try:
        loop.run_until(due[-1] + 1 * MS)
        assert [f[0] for f in fired] == due
        assert all(now >= t for t, now in fired)
        # Only the timers are events: the timerfd's wake-ups are not.
        assert loop.events_processed == len(due)
    finally:
        loop.close()


@needs_timerfd
def test_a_loop_waiting_for_a_far_timer_sleeps_on_the_timerfd_and_a_thread_still_wakes_it():
    loop = EventLoop(WallClock())
    woke: list[int] = []
    loop.call_later(30 * 1000 * MS, loop.stop)                 # 30 s away: never reached
    t = threading.Timer(0.2, loop.call_soon_threadsafe, (lambda: (woke.append(loop.now_ps()), loop.stop()),))
    t.start()
    began = time.monotonic()
    try:
        loop.run_forever()
        assert woke and time.monotonic() - began < 10
        assert loop._wakeup is not None                        # it slept on the timerfd
    finally:
        t.cancel()
        loop.close()
    assert loop._wakeup is None                                # close() gave the descriptor back


def test_without_a_timerfd_the_loop_sleeps_whole_milliseconds_and_still_fires_on_time(monkeypatch):
    monkeypatch.setattr(loop_module, "open_wakeup_timer", lambda: None)
    loop = EventLoop(WallClock())
    fired: list[tuple[int, int]] = []
    start = loop.now_ps()
    for k in (1, 2, 5):
        loop.call_at(start + k * 700 * US, lambda k=k: fired.append((k, loop.now_ps())))
    try:
        loop.run_until(start + 5 * MS)
    finally:
        loop.close()
    assert [k for k, _ in fired] == [1, 2, 5]
    assert all(now >= start + k * 700 * US for k, now in fired)


def test_a_virtual_loop_never_opens_a_timerfd_and_stays_deterministic():
    def order() -> list[int]:
        loop = EventLoop(VirtualClock())
        seen: list[int] = []
        for k in range(200):
            loop.call_later((k * 7919) % 1000 * US, seen.append, k)
        loop.run_until_idle()
        assert loop._wakeup is None and not loop._wakeup_tried
        loop.close()
        return seen

    assert order() == order()
