"""Attempt schedule: exact attempt times and ids, demand-driven pause/resume, gate vetoes, and
triggers through the real Keysight 33500 driver against its SCPI emulator."""

import pytest

from drivers.registry import InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import ConfigError
from qnode_fw.loop import EventLoop
from sim_backend.emulators.awg import Keysight33500Emulator
from timing.schedule import (AttemptSchedule, AwgMarkerTrigger, CallbackTrigger, DemandCounter,
                             ScheduleConfig)

CFG = ScheduleConfig(start_ps=5_000, period_ps=1_000, window_ps=200)


def make(loop, demand, **kw):
    fired = []
    sched = AttemptSchedule(loop, "A-B", CFG, CallbackTrigger(lambda k, t: fired.append((k, t, loop.now_ps()))),
                            demand, **kw)
    return sched, fired


def test_attempts_at_start_plus_k_period_only_while_demand():
    loop = EventLoop(VirtualClock())
    demand = DemandCounter()
    sched, fired = make(loop, demand)
    loop.run_until(7_500)
    assert fired == [] and not sched.running          # no demand: nothing disturbs the memories
    demand.add(2)                                     # at 7.5 ns: next slot is attempt 3 (8 ns)
    loop.run_until(10_000)
    assert fired == [(3, 8_000, 8_000), (4, 9_000, 9_000), (5, 10_000, 10_000)]
    demand.release(2)
    loop.run_until(20_000)
    assert len(fired) == 3 and not sched.running
    demand.add()
    loop.run_until(21_000)
    assert [k for k, _, _ in fired[3:]] == [15, 16]   # ids from time, not from a counter


def test_demand_dropping_between_arming_and_firing_cancels_the_attempt():
    loop = EventLoop(VirtualClock())
    demand = DemandCounter()
    sched, fired = make(loop, demand)
    demand.add()
    loop.call_at(5_500, demand.release)
    loop.run_until(9_000)
    assert [k for k, _, _ in fired] == [0]


def test_gate_vetoes_single_attempts():
    loop = EventLoop(VirtualClock())
    demand = DemandCounter()
    demand.add()
    sched, fired = make(loop, demand, gate=lambda k: k % 2 == 0)
    seen = []
    sched.on_attempt(lambda k, t: seen.append(k))
    loop.run_until(9_500)
    assert [k for k, _, _ in fired] == [0, 2, 4] == seen and sched.vetoed == 2


def test_time_map_fires_at_the_local_loop_time():
    loop = EventLoop(VirtualClock())
    demand = DemandCounter()
    demand.add()
    # This node's loop runs 300 ps behind the station time base the schedule is written in.
    sched, fired = make(loop, demand, to_loop_time=lambda t: t - 300, from_loop_time=lambda t: t + 300)
    loop.run_until(6_600)
    assert fired == [(0, 5_000, 4_700), (1, 6_000, 5_700)]


def test_bad_schedule_names_the_field():
    with pytest.raises(ConfigError, match="window_ps"):
        ScheduleConfig(0, 1_000, 2_000)
    with pytest.raises(ConfigError, match="period_ps"):
        ScheduleConfig(0, 0, 1)


def test_awg_marker_trigger_sends_one_bus_trigger_per_attempt():
    emu = Keysight33500Emulator().start()
    awg = open_instrument(InstrumentSpec(name="awg-1", kind="awg", model="keysight_33500b",
                                         resource=emu.visa_socket_resource, limits={},
                                         options={"timeout_s": 1.0}))
    try:
        loop = EventLoop(VirtualClock())
        demand = DemandCounter()
        trigger = AwgMarkerTrigger(awg, 1)
        sched = AttemptSchedule(loop, "A-B", CFG, trigger, demand)
        demand.add()
        loop.run_until(7_000)
        awg.identify()  # a query round trip: every write before it has been handled
        # The driver reads the error queue after each setting; those queries are its business.
        sent = [m.decode() for m in emu.log.received() if m not in (b"SYST:ERR?", b"*IDN?")]
        assert sent[:4] == ["SOUR1:BURS:MODE TRIG", "SOUR1:BURS:NCYC 1", "TRIG1:SOUR BUS",
                            "SOUR1:BURS:STAT ON"]
        assert sent.count("*TRG") == 3 == trigger.fired == sched.fired
        assert emu.triggers == 3
    finally:
        awg.close()
        emu.stop()
