"""timing.link_stack on its own: parameter checks name the field, the qubit pool refuses foreign
and double releases, an attempt takes a free qubit (or is vetoed), the software trigger emits
through the QNIC at the attempt, a hardware edge emits the attempt its time belongs to, expiry
gives the qubit back, and the station reads its tagger on its timer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.addresses import QubitAddress
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import ConfigError
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import NS, US
from sim_backend.physics.tagger import TaggerParams
from sim_backend.world import World
from timing.detection import DetectorConfig
from timing.frames import FrameType, Outcome
from timing.herald_link import InProcessHeraldLink
from timing.link_stack import EndLinkParams, EndLinkStack, QubitPool, StationLinkStack
from timing.schedule import CallbackTrigger, ScheduleConfig

PERIOD = 10 * US
SCHEDULE = ScheduleConfig(start_ps=0, period_ps=PERIOD, window_ps=2 * NS)


def params(**kw) -> EndLinkParams:
    base = dict(link_name="A-B", node="A", partner="B", herald_origin="bsa",
                communication_qubits=(0, 1), expiry_ps=25 * US)
    base.update(kw)
    return EndLinkParams(**base)


@pytest.mark.parametrize("kw, field", [({"communication_qubits": ()}, "communication_qubits"),
                                       ({"communication_qubits": (1, 1)}, "communication_qubits"),
                                       ({"expiry_ps": 0}, "expiry_ps")])
def test_bad_end_parameters_name_the_field(kw, field):
    with pytest.raises(ConfigError) as err:
        params(**kw)
    assert err.value.field == field


def test_qubit_pool_hands_out_oldest_freed_first_and_refuses_foreign_or_double_release():
    pool = QubitPool(3, [4, 5])
    a, b = pool.acquire(), pool.acquire()
    assert (a, b, pool.acquire()) == (QubitAddress(3, 4), QubitAddress(3, 5), None)
    pool.release(b)
    pool.release(a)
    assert pool.acquire() == b
    with pytest.raises(ValueError, match="released twice"):
        pool.release(a)
    with pytest.raises(ValueError, match="does not belong"):
        pool.release(QubitAddress(0, 4))


def end_node(trigger=None, qubits=(0, 1)):
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(1)
    world = World(clock, streams, loop)
    ctx = DriverContext(clock=clock, loop=loop, streams=streams, world=world)
    qnic = open_instrument(InstrumentSpec("qa", "qnic", "sim", "sim", options={
        "node": "A", "num_qubits": 2,
        "memory": {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf}}), ctx)
    link = InProcessHeraldLink(loop, "A-B")
    link.set_delay("bsa", "A", 1 * US)
    ready = []
    stack = EndLinkStack(loop, params(communication_qubits=qubits), SCHEDULE, link.endpoint("A"),
                         qnic, on_pair_ready=ready.append, trigger=trigger)
    return loop, qnic, link, stack, ready


def emissions(qnic):
    """(time, qubit index, attempt id) of every emission the QNIC performed."""
    return [(op[0], op[2], op[3]) for op in qnic.operation_log if op[1] == "emit"]


def test_software_trigger_emits_a_free_qubit_at_each_attempt_and_vetoes_when_none_is_free():
    loop, qnic, link, stack, ready = end_node()
    stack.demand.add()
    loop.run_until(3 * PERIOD)
    # Two qubits, expiry 25 us: attempts 0 and 1 take them, 2 and 3 find none (vetoed), and the
    # expiry of attempt 0's qubit at 25 us frees it for attempt 3 at 30 us.
    assert emissions(qnic) == [(0, 0, 0), (PERIOD, 1, 1), (3 * PERIOD, 0, 3)]
    assert stack.schedule.vetoed == 1 and stack.binder.stats.expired == 1
    assert stack.stats.emitted == 3 and ready == []


def test_a_herald_binds_the_emitting_qubit_and_the_runtime_gives_it_back():
    loop, qnic, link, stack, ready = end_node(qubits=(1,))
    stack.demand.add()
    loop.run_until(PERIOD // 2)
    stack.demand.release()
    link.endpoint("bsa").send("A", FrameType.HERALD, 0, 4_321, Outcome.PSI_MINUS)
    loop.run_until(PERIOD + 2 * US)
    assert [(r.qubit, r.attempt_id, r.partner) for r in ready] == [(QubitAddress(0, 1), 0, "B")]
    assert len(stack.pool) == 0   # the runtime holds it now; the expiry does not take it back
    loop.run_until(5 * PERIOD)
    assert len(stack.pool) == 0
    stack.release(ready[0].qubit)
    assert len(stack.pool) == 1


def test_hardware_edges_emit_the_attempt_their_time_belongs_to():
    fired = []
    loop, qnic, link, stack, ready = end_node(trigger=CallbackTrigger(lambda k, t: fired.append(k)))
    stack.demand.add()
    loop.run_until(PERIOD)
    assert fired == [0, 1] and emissions(qnic) == []   # the hardware has not fired yet
    stack.emission_edge(PERIOD + 300)                 # a late edge still belongs to attempt 1
    stack.emission_edge(PERIOD + 400)                 # a second edge: nothing armed any more
    assert emissions(qnic) == [(PERIOD, 1, 1)]
    assert stack.stats.unarmed_edges == 1
    # Attempt 0's edge never came: its qubit expires and is disarmed, so a stray edge later
    # cannot emit a qubit another attempt owns.
    stack.demand.release()
    loop.run_until(4 * PERIOD)
    stack.emission_edge(300)
    assert emissions(qnic) == [(PERIOD, 1, 1)] and len(stack.pool) == 2


def test_station_reads_its_tagger_on_a_timer_and_heralds_both_ends():
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(2)
    world = World(clock, streams, loop)
    ctx = DriverContext(clock=clock, loop=loop, streams=streams, world=world)
    world.add_tagger("tt", TaggerParams(jitter_rms_ps=0))
    tagger = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), ctx)
    link = InProcessHeraldLink(loop, "A-B")
    got = {e: [] for e in "AB"}
    for end in "AB":
        link.set_delay("bsa", end, 2 * US)
        link.endpoint(end).subscribe(FrameType.HERALD,
                                     lambda peer, f, end=end: got[end].append((loop.now_ps(), f)))
    config = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=PERIOD)
    with pytest.raises(ConfigError):
        StationLinkStack(loop, link.endpoint("bsa"), config, ["A", "B"], tagger, clock,
                         read_interval_ps=0)
    station = StationLinkStack(loop, link.endpoint("bsa"), config, ["A", "B"], tagger, clock,
                               read_interval_ps=5 * US)
    station.start()
    stream = world.taggers["tt"]
    rng = np.random.default_rng(0)
    stream.write(1, np.array([PERIOD]), rng)
    stream.write(2, np.array([PERIOD + 400]), rng)
    stream.write(3, np.array([PERIOD + 500]), rng)
    loop.run_until(4 * PERIOD)
    # Read at 15 us (tags < 15 us, complete until then): herald sent, 2 us of fibre to each end.
    for end in "AB":
        assert [(t, f.attempt_id, f.timestamp_ps, f.outcome) for t, f in got[end]] == \
            [(15 * US + 2 * US, 1, PERIOD + 500, Outcome.PSI_PLUS)]
    assert station.tags_read == 3
    station.stop()
    assert not tagger.streaming
