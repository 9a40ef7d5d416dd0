"""Per-operation logs stay bounded in a long run (issue 10's soak: node processes and the World
server grew by megabytes a minute): a QNIC's operation log, an AWG's played bursts, a memory
link's attempt record, a link end's attempts, a BSA station's sent heralds, a binder's pairs and
the recent logs of delivered pairs and herald latencies keep only their latest entries however
many operations run, and the counters next to them keep the run's totals right (the memory
link's against its closed form, η_a·η_b of attempts interfere). A whole-run history stays
available where a test needs it, opted into by a constructor flag."""

from __future__ import annotations

import math

import numpy as np

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.clock import VirtualClock
from qnode_fw.experiments.memory_links import LinkRun
from qnode_fw.loop import EventLoop
from qnode_fw.recent import LatencyLog, RecentLog
from qnode_fw.rng import RandomStreams
from qnode_fw.units import US
from sim_backend.instruments.awg import PLAYED_LOG_SIZE
from sim_backend.link_schemes import SimLinkPhysics, build_sim_link
from sim_backend.memory_link import RECORD_SIZE
from sim_backend.qnic import OPERATION_LOG_SIZE
from sim_backend.world import World
from timing.binding import PAIRS_KEPT, PairBinder
from timing.comm_qubits import CommQubitPool
from timing.frames import Frame, FrameType, Outcome, link_id_for
from timing.herald_link import InProcessHeraldLink
from timing.link_end import HISTORY_SIZE, BsaStationRuntime, LinkEndRuntime
from timing.schedule import DemandCounter
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

MANY = 100_000
IDEAL = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf}


def rig(seed: int = 1):
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(seed)
    world = World(clock, streams, loop)
    return loop, world, DriverContext(clock=clock, streams=streams, world=world, loop=loop)


def qnic(ctx, node: str, **options):
    return open_instrument(InstrumentSpec(f"q{node}", "qnic", "sim", "sim", options={
        "node": node, "num_qubits": 2, "communication_qubits": [0], "memory": IDEAL, **options}), ctx)


def test_qnic_operation_log_keeps_the_latest_operations_and_counts_them_all():
    loop, _world, ctx = rig()
    q = qnic(ctx, "A")
    for i in range(MANY):
        q.init(i % 2)
    assert len(q.operation_log) == OPERATION_LOG_SIZE and q.operations == MANY
    assert q.operation_log[-1] == (0, "init", (MANY - 1) % 2)
    full = qnic(ctx, "B", full_operation_log=True)
    for i in range(3 * OPERATION_LOG_SIZE):
        full.init(0)
    assert len(full.operation_log) == full.operations == 3 * OPERATION_LOG_SIZE


def test_awg_keeps_the_latest_bursts_and_counts_them_all():
    loop, _world, ctx = rig()
    awg = open_instrument(InstrumentSpec("awg", "awg", "sim", "sim"), ctx)
    markers = np.zeros(16, np.uint8)
    markers[:4] = 1
    awg.upload_waveform(1, "attempt", np.zeros(16), 1e9, markers=markers)
    awg.select_waveform(1, "attempt")
    awg.set_output(1, True)
    awg.configure_burst(1, 1, trigger_source="BUS")
    awg.run()
    n = 4 * PLAYED_LOG_SIZE
    for _ in range(n):
        awg.trigger()
        loop.run_until(loop.now_ps() + 1 * US)     # the marker edges land on the loop
    assert len(awg.played) == PLAYED_LOG_SIZE and awg.bursts == n


def test_memory_link_record_is_bounded_and_its_totals_match_the_closed_form():
    loop, world, ctx = rig(3)
    period = 10 * US
    params = LinkSchemeParams("A-B", LinkScheme.BOTH_ENDPOINTS, "bsa",
                              (LinkEndParams("A", 0, 1.0), LinkEndParams("B", 0, 1.0)),
                              period_ps=period, start_ps=period)
    tagger = open_instrument(InstrumentSpec("bsa_tt", "time_tagger", "sim", "sim"), ctx)
    tagger.start_stream([1, 2, 3, 4, 5])
    link = build_sim_link(world, params, SimLinkPhysics(collection_efficiency=0.5),
                          taggers={"bsa": "bsa_tt"})
    qa, qb = qnic(ctx, "A"), qnic(ctx, "B")
    n = 2 * RECORD_SIZE + 100
    for k in range(n):
        loop.run_until(params.slot_time_ps(k))
        qa.emit(0, k)
        qb.emit(0, k)
        if k % 256 == 0:
            tagger.read_stream()                  # what a station's reads do with the tags
    assert len(link.record) == RECORD_SIZE and link.record[-1][0] == n - 1
    assert link.attempts == link.joint_attempts == n == sum(link.outcomes.values())
    # both photons reach the beam splitter (equal fibres: they interfere) with η_a·η_b
    p = link.eta(0, world) * link.eta(1, world)
    assert abs(link.interfered - n * p) <= 3 * math.sqrt(n * p * (1 - p)), (link.interfered, n * p)


def test_link_end_keeps_its_latest_attempts_and_counts_them_all():
    loop, _world, ctx = rig()
    q = qnic(ctx, "A")
    pool = CommQubitPool(q, loop.clock, held=set)
    params = LinkSchemeParams("A-B", LinkScheme.BOTH_ENDPOINTS, "bsa",
                              (LinkEndParams("A"), LinkEndParams("B")), period_ps=10 * US,
                              start_ps=10 * US)
    end = LinkEndRuntime(loop, params, 0, q, pool, InProcessHeraldLink(loop, "A-B").endpoint("A"),
                         on_pair_ready=lambda r: None, expiry_ps=5 * US)
    heard: list[int] = []
    end.attempt_listeners.append(heard.append)
    demand = DemandCounter()
    schedule = end.start_schedule(demand)
    demand.add()
    slots = 3 * HISTORY_SIZE
    loop.run_until(params.slot_time_ps(slots - 1) + 6 * US)
    # no herald ever comes: each qubit is back in the pool before the next slot
    assert schedule.fired == end.attempt_count == len(heard) == slots
    assert len(end.attempts) == HISTORY_SIZE
    assert [k for k, _t, _q in end.attempts] == list(range(slots - HISTORY_SIZE, slots))
    assert pool.pending == set()


def test_bsa_station_keeps_its_latest_heralds_and_counts_them_all():
    loop = EventLoop(VirtualClock())
    params = LinkSchemeParams("A-B", LinkScheme.BOTH_ENDPOINTS, "bsa",
                              (LinkEndParams("A"), LinkEndParams("B")), period_ps=10 * US,
                              send_failures=True)
    herald = InProcessHeraldLink(loop, "A-B")
    for node in ("A", "B"):
        herald.set_delay("bsa", node, 5 * US)
    tagger = open_instrument(InstrumentSpec("bsa_tt", "time_tagger", "sim", "sim"), rig()[2])
    station = BsaStationRuntime(loop, params, tagger, herald.endpoint("bsa"))
    received = [0]
    for node in ("A", "B"):
        herald.endpoint(node).subscribe(1, lambda peer, frame: received.__setitem__(0, received[0] + 1))
    outcomes = [Outcome.PSI_PLUS, Outcome.FAILURE, Outcome.PSI_MINUS, Outcome.FAILURE, Outcome.FAILURE]
    n = 5 * HISTORY_SIZE
    for k in range(n):
        station.heralder.on_outcome(k, outcomes[k % 5], k * 10 * US)
        if k % 1000 == 0:
            loop.run_until(k * 10 * US)
    loop.run_until(n * 10 * US)
    assert len(station.sent) == HISTORY_SIZE and station.sent[-1][0] == n - 1
    assert station.heralds_sent == 2 * n // 5 and station.failures_sent == 3 * n // 5
    assert station.last_herald_ps == (n - 3) * 10 * US            # the last Ψ- of the run
    assert received[0] == 2 * n                                   # every frame went out to both


def test_joint_attempts_are_counted_without_keeping_the_ids():
    rng = np.random.default_rng(5)
    run = LinkRun("A-B", None, "bsa", None, None)
    acted = [set(), set()]
    for k in range(MANY):
        # each end acts in most slots, sometimes alone; the later end acts within a few slots
        for i in rng.permutation(2):
            if rng.random() < 0.8:
                run.acted(int(i), k)
                acted[i].add(k)
    assert run.joint_attempts() == len(acted[0] & acted[1])
    assert len(run._acted) <= 1024


def test_binder_remembers_its_latest_pairs_and_counts_them_all():
    loop = EventLoop(VirtualClock())
    ready: list = []
    binder = PairBinder("A", "A-B", link_id_for("A-B"), "B", "bsa", loop.clock,
                        on_pair_ready=ready.append, expiry_ps=1 * US)
    n = 3 * PAIRS_KEPT
    for k in range(n):
        binder.record_emission(k, QubitAddress(0, 0))
        binder.on_herald("bsa", Frame(FrameType.HERALD, link_id_for("A-B"), 1, k, 10 * k + 1,
                                      Outcome.PSI_PLUS))
    assert len(ready) == binder.stats.bound == n
    assert len(binder.pairs) == PAIRS_KEPT
    assert next(iter(binder.pairs)) == PairName("bsa", 10 * (n - PAIRS_KEPT) + 1)
    # a name it still remembers is refused, as before
    binder.record_emission(n, QubitAddress(0, 0))
    binder.on_herald("bsa", Frame(FrameType.HERALD, link_id_for("A-B"), 1, n, 10 * (n - 1) + 1,
                                  Outcome.PSI_PLUS))
    assert binder.stats.repeated_name == 1 and len(ready) == n


def test_recent_log_keeps_the_latest_and_hands_a_reader_what_it_has_not_seen():
    log: RecentLog[int] = RecentLog(100)
    seen = 0
    got: list[int] = []
    for i in range(MANY):
        log.append(i)
        if i % 37 == 0:                        # a reader looking more often than 100 arrive
            got += log.since(seen)
            seen = len(log)
    got += log.since(seen)
    assert got == list(range(MANY)) and len(log) == MANY and log.kept == 100
    assert list(log) == list(range(MANY - 100, MANY)) and log[-1] == MANY - 1
    # a reader that looked too rarely gets what is still kept
    assert log.since(MANY - 500) == list(range(MANY - 100, MANY)) and log.since(MANY) == []


def test_latency_log_mean_is_over_the_whole_run():
    lat = LatencyLog(10)
    for i in range(1, MANY + 1):
        lat.append(i)
    assert len(lat) == MANY and lat.kept == 10
    assert lat.mean_ps() == (MANY + 1) / 2 and LatencyLog().mean_ps() is None
