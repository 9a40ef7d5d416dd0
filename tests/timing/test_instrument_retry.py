"""A periodic instrument-driven loop survives an instrument outage (timing.recovery): the backoff's
bounds, an attempt schedule whose trigger fails for a while, a station heralder reading every slot
whose tagger fails for a while. The outage's first error comes out of the loop (for the failure
policy), the later ones do not; the loop runs on at the backoff's pace and at its own again once
the instrument answers, and a Recovery says for how long and after how many retries."""

from __future__ import annotations

import pytest

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.config.faults import InstrumentFault
from qnode_fw.errors import InstrumentTimeout
from qnode_fw.faults.instruments import InstrumentFaultShim
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, US
from sim_backend.world import World
from timing.heralders import TaggerHeralder
from timing.recovery import InstrumentRetry, Recovery, RetryBackoff
from timing.schedule import AttemptSchedule, CallbackTrigger, DemandCounter, ScheduleConfig
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams


def test_backoff_doubles_from_1_ms_and_stops_at_100_ms():
    b = RetryBackoff()
    assert [b.delay_ps(k) // MS for k in range(10)] == [1, 2, 4, 8, 16, 32, 64, 100, 100, 100]
    assert b.delay_ps(10_000) == 100 * MS
    with pytest.raises(ValueError):
        RetryBackoff(first_ps=0)
    with pytest.raises(ValueError):
        RetryBackoff(first_ps=2 * MS, max_ps=MS)


class FlakyTrigger:
    """A trigger whose instrument times out on ``failing`` calls from ``from_ps`` on."""

    def __init__(self, loop: EventLoop, from_ps: int, failing: int) -> None:
        self.loop = loop
        self.from_ps = from_ps
        self.failing = failing
        self.calls: list[tuple[int, bool]] = []          # (time, worked)

    def __call__(self, attempt_id: int, t_ps: int) -> None:
        now = self.loop.now_ps()
        if now >= self.from_ps and self.failing > 0:
            self.failing -= 1
            self.calls.append((now, False))
            raise InstrumentTimeout("no reply", resource="sim://awg/test", command="trigger()")
        self.calls.append((now, True))


def run_reporting(loop: EventLoop, until_ps: int) -> list[InstrumentTimeout]:
    """Run the loop as the failure policy does: every error out of it is caught, the loop goes on."""
    errors = []
    while True:
        try:
            loop.run_until(until_ps)
            return errors
        except InstrumentTimeout as exc:
            errors.append(exc)


def test_an_attempt_schedule_retries_its_trigger_with_backoff_and_resumes():
    loop = EventLoop(VirtualClock())
    period = 10 * US
    flaky = FlakyTrigger(loop, from_ps=5 * MS, failing=5)
    demand = DemandCounter()
    schedule = AttemptSchedule(loop, "A-B", ScheduleConfig(0, period, period), CallbackTrigger(flaky),
                               demand)
    recoveries: list[Recovery] = []
    schedule.retry.listeners.append(recoveries.append)
    demand.add()
    errors = run_reporting(loop, 100 * MS)
    # one error out of the loop for the whole outage; it carries the retry for the policy
    [error] = errors
    assert error.retrying is schedule.retry
    failed = [t for t, ok in flaky.calls if not ok]
    assert failed[0] == 5 * MS
    # the retries 1, 2, 4 and 8 ms apart (on the attempt grid), the next call 16 ms later works
    assert [b - a for a, b in zip(failed, failed[1:])] == [1 * MS, 2 * MS, 4 * MS, 8 * MS]
    back = next(t for t, ok in flaky.calls if ok and t > failed[0])
    assert back - failed[-1] == 16 * MS
    [r] = recoveries
    assert (r.resource, r.command, r.retries, r.down_ps, r.downtime_ps) == (
        "sim://awg/test", "trigger()", 4, 5 * MS, 31 * MS)
    # every slot again after the recovery, to the end of the run
    after = [t for t, ok in flaky.calls if t >= back]
    assert all(ok for t, ok in flaky.calls if t >= back)
    assert len(after) == (100 * MS - back) // period + 1
    assert schedule.fired == len([c for c in flaky.calls if c[1]])
    assert not schedule.retry.down and schedule.retry.recoveries == 1


def test_a_second_outage_is_reported_again_and_recovers_again():
    loop = EventLoop(VirtualClock())
    flaky = FlakyTrigger(loop, from_ps=1 * MS, failing=2)
    demand = DemandCounter()
    schedule = AttemptSchedule(loop, "A-B", ScheduleConfig(0, 100 * US, 100 * US),
                               CallbackTrigger(flaky), demand)
    demand.add()
    assert len(run_reporting(loop, 10 * MS)) == 1
    flaky.failing = 3
    assert len(run_reporting(loop, 30 * MS)) == 1
    assert schedule.retry.recoveries == 2 and schedule.retry.total_retries == 1 + 2


def test_a_station_reading_every_slot_reads_again_after_a_tagger_outage():
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(1)
    world = World(clock, streams, loop)
    tagger = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"),
                             DriverContext(clock=clock, loop=loop, streams=streams, world=world))
    tagger.start_stream([1, 2, 3, 4, 5])
    params = LinkSchemeParams("A-B", LinkScheme.BOTH_ENDPOINTS, "bsa",
                              (LinkEndParams("A", 0, 1.0), LinkEndParams("B", 0, 1.0)),
                              period_ps=50 * US)
    heralder = TaggerHeralder(loop, tagger, params, None, lambda *a: None, every_slot=True)
    reads: list[int] = []
    inner = tagger.read_stream
    tagger.read_stream = lambda: (reads.append(loop.now_ps()), inner())[1]
    shim = InstrumentFaultShim(tagger, streams.get("faults"))
    heralder.start()
    loop.run_until(2 * MS)
    shim.arm(InstrumentFault(node="bsa", instrument="tt", fault="timeout", count=3,
                             command="read_stream"))
    errors = run_reporting(loop, 20 * MS)
    assert len(errors) == 1 and heralder.retry.recoveries == 1
    assert heralder.retry.listeners == []          # nobody listening: the loop runs on alone
    gaps = sorted({b - a for a, b in zip(reads, reads[1:])})
    # every slot (50 us), and the backoff's 1, 2 and 4 ms rounded up to the next read slot
    assert gaps[0] == 50 * US and max(gaps) >= 4 * MS
    assert reads[-1] >= 20 * MS - 50 * US


def test_instrument_retry_calls_through_and_counts():
    loop = EventLoop(VirtualClock())
    retry = InstrumentRetry(loop, "test")
    assert retry.call(lambda x: x + 1, 1) == 2 and not retry.down

    def fail():
        raise InstrumentTimeout("no reply", resource="r", command="c")

    with pytest.raises(InstrumentTimeout):
        retry.call(fail)
    assert retry.down and retry.delay_ps == 1 * MS
    assert retry.call(fail) is None and retry.delay_ps == 2 * MS
    loop.run_until(5 * MS)
    got: list[Recovery] = []
    retry.listeners.append(got.append)
    assert retry.call(lambda: "ok") == "ok"
    assert got == [Recovery("test", "r", "c", "r: no reply (after command 'c')", 0, 5 * MS, 1)]
