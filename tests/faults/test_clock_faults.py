"""Clock faults injected by a FaultPlan are seen by clock sync and reported by name: a step of the
node clock beyond the sync tolerance is a jump (with its size), a drift change beyond tolerance
is a drift fault, and neither is reported while the clocks behave (queueing jitter only)."""

from __future__ import annotations

import numpy as np
import pytest

from qnode_fw.clock import VirtualClock
from qnode_fw.faults import FaultTargets, apply_fault_plan, parse_fault_plan_yaml
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, US, fibre_delay_ps
from timing.clock_sync import (ClockSyncClient, ClockSyncResponder, SimulatedClock, SyncTolerance,
                               TwoWayEstimator)
from timing.herald_link import InProcessHeraldLink, LinkImpairments

JITTER_PS = 500_000          # 500 ns of queueing jitter per frame
TOLERANCE = SyncTolerance(max_step_ps=20 * US, max_drift_ppm=50.0)


def true_offset(node: SimulatedClock, station: SimulatedClock, node_ps: int) -> float:
    t = (node_ps - node.offset_ps) / (1 + node.drift_ppm * 1e-6)
    return t + station.offset_ps + station.drift_ppm * 1e-6 * t - node_ps


def sync_rig(seed: int = 5):
    loop = EventLoop(VirtualClock())
    node = SimulatedClock(loop.clock, offset_ps=-2 * MS, drift_ppm=3.0)
    station = SimulatedClock(loop.clock)
    link = InProcessHeraldLink(loop, "A-bsa", rng=np.random.default_rng(seed),
                               impairments=LinkImpairments(reorder_jitter_ps=JITTER_PS))
    link.set_delay("A", "bsa", fibre_delay_ps(5.0))
    ClockSyncResponder(link.endpoint("bsa"), station)
    client = ClockSyncClient(loop, link.endpoint("A"), "bsa", node, interval_ps=1 * MS,
                             estimator=TwoWayEstimator(block=8, window=32, tolerance=TOLERANCE))
    seen = []
    client.on_fault.append(seen.append)
    client.start()
    return loop, node, station, client, seen


def apply_yaml(loop, node_clock, text):
    plan = parse_fault_plan_yaml(text)
    return apply_fault_plan(plan, FaultTargets(loop, RandomStreams(1), clocks={"A": node_clock},
                                               nodes=["A", "bsa"]))


def test_quiet_clocks_raise_no_fault():
    loop, *_, client, seen = sync_rig()
    loop.run_until(600 * MS)
    assert client.exchanges > 500 and seen == [] and client.faults == []


@pytest.mark.parametrize("jump_us", [-150.0, 80.0])
def test_clock_jump_beyond_tolerance_is_detected_with_its_size(jump_us):
    loop, node, station, client, seen = sync_rig()
    applied = apply_yaml(loop, node, f"clocks: [{{node: A, at_s: 0.3, jump_us: {jump_us}}}]")
    loop.run_until(600 * MS)
    assert [e.kind for e in applied.log] == ["clock"] and applied.log[0].target == "A"
    (fault,) = seen
    assert fault.kind == "jump" and (fault.node, fault.station) == ("A", "bsa")
    # Station minus node: the node stepping forward by J makes the offset J smaller. The
    # filtered sample's error is within the queueing jitter.
    assert fault.value == pytest.approx(-jump_us * US, abs=JITTER_PS)
    assert 300 * MS <= fault.at_ps <= 330 * MS      # found within a few filter blocks
    assert "clock jump between A and bsa" in str(fault) and "tolerance 2e+07 ps" in str(fault)
    # The estimate follows the new offset at once (window restarted, not averaged over).
    e = client.estimate()
    assert abs(e.offset_ps - true_offset(node, station, e.at_ps)) <= e.uncertainty_ps


def test_a_step_inside_tolerance_is_absorbed_silently():
    loop, node, _, client, seen = sync_rig()
    apply_yaml(loop, node, "clocks: [{node: A, at_s: 0.3, jump_us: 5}]")
    loop.run_until(600 * MS)
    assert seen == []


def test_drift_beyond_tolerance_is_reported_once_with_the_fitted_rate():
    loop, node, station, client, seen = sync_rig()
    apply_yaml(loop, node, "clocks: [{node: A, at_s: 0.1, drift_ppm: 200}]")
    loop.run_until(1200 * MS)
    drift = [f for f in seen if f.kind == "drift"]
    assert len(drift) == 1
    # Reported when the fitted rate first crosses the tolerance, while the window still mixes
    # old and new rates; once the window holds only the new rate the fit is the truth: node 200
    # ppm fast against a perfect station, station minus node falls at 200 ppm.
    assert drift[0].value < -50.0 and drift[0].limit == 50.0 and drift[0].at_ps > 100 * MS
    assert client.estimate().drift_ppm == pytest.approx(-200.0 / (1 + 200e-6), abs=5.0)
    assert not [f for f in seen if f.kind == "jump"]   # a rate change is continuous: no step


@pytest.mark.parametrize("jump_us", [-500_000.0, 500_000.0])
def test_a_clock_jump_never_holds_a_qubit_past_its_expiry(jump_us):
    """The binder's expiry runs on the loop's monotonic time, not on the node clock that sync
    steers: a step of the node clock neither holds a waiting qubit longer nor frees it early."""
    from qnode_fw.addresses import QubitAddress
    from timing.binding import PairBinder
    from timing.frames import link_id_for

    loop = EventLoop(VirtualClock())
    node = SimulatedClock(loop.clock, offset_ps=7 * MS)
    released = []
    binder = PairBinder("A", "A-B", link_id_for("A-B"), "B", "bsa", node,
                        on_pair_ready=lambda ev: None, release=released.append,
                        expiry_ps=2 * MS, loop=loop)
    apply_yaml(loop, node, f"clocks: [{{node: A, at_s: 0.0005, jump_us: {jump_us}}}]")
    loop.call_at(0, binder.record_emission, 1, QubitAddress(0, 3))
    loop.run_until(2 * MS - 1)
    assert released == []                       # not early
    loop.run_until(2 * MS)
    assert released == [QubitAddress(0, 3)]     # not late


# -- what a node-clock fault must not spoil: ages, swapped pairs' ages, pair names ---------------

def ager_rig(jump_us: float):
    """An end node A: a binder stamping emissions on A's PC clock, feeding a RuleSet executor
    whose only way to end a pair is the discard timer (PairAgeOver 1 ms)."""
    from ruleset_recording_qnic import RecordingQNIC

    from qnode_fw.addresses import QubitAddress
    from qnode_fw.ruleset import model as m
    from qnode_fw.ruleset.executor import RuleSetExecutor
    from timing.binding import PairBinder
    from timing.frames import Frame, FrameType, Outcome, link_id_for

    loop = EventLoop(VirtualClock())
    node = SimulatedClock(loop.clock)
    ex = RuleSetExecutor("A", loop, [RecordingQNIC(0, 4, ())], send=lambda p, msg: None,
                         deliver=lambda ev: None)
    ex.install(m.RuleSet("rs", "A", "conn", (m.Stage("s", (
        m.Rule("discard", ("B",), (m.PairAgeOver("B", 1 * MS),), (m.Free("B"),)),
        m.Rule("never", ("B",), (m.SwapResultArrived("B", 1),), (m.PauliCorrection("B"), m.Free("B"))),
    )),)))
    readies = []

    def ready(ev):
        readies.append(ev)
        ex.on_pair_ready(ev)

    binder = PairBinder("A", "A-B", link_id_for("A-B"), "B", "bsa", node, on_pair_ready=ready,
                        expiry_ps=100 * US, loop=loop)
    binder.attach_frame = lambda t: binder.on_herald("bsa", Frame(
        FrameType.HERALD, link_id_for("A-B"), 1, 7, t, Outcome.PSI_PLUS))
    apply_yaml(loop, node, f"clocks: [{{node: A, at_s: 0.0005, jump_us: {jump_us}}}]")
    loop.call_at(1 * MS, binder.record_emission, 7, QubitAddress(0, 1))
    loop.call_at(1 * MS + 20 * US, binder.attach_frame, 1 * MS + 10 * US)
    return loop, ex, readies


@pytest.mark.parametrize("jump_us", [500.0, -500.0])
def test_a_node_clock_jump_never_holds_a_pair_past_its_ruleset_cutoff(jump_us):
    """A forward jump of the PC clock before the emission stamps the pair 500 us late; aged on
    that stamp (the executor's old rule, created_ps + limit on the loop) the pair would outlive
    its 1 ms discard timer by the jump. Ages run on the loop's monotonic clock: freed exactly at
    the cutoff, neither late nor (a backward jump) early."""
    from qnode_fw.addresses import QubitAddress

    loop, ex, readies = ager_rig(jump_us)
    loop.run_until(2 * MS)
    (ev,) = readies
    assert ev.created_ps == 1 * MS + jump_us * US          # the stamp is on the jumped PC clock
    assert ev.created_mono_ps == 1 * MS                     # the age is not
    assert ex.held_qubits() == {QubitAddress(0, 1)}         # not early
    loop.run_until(2 * MS + 1)
    assert ex.held_qubits() == set()                        # not late: freed at its cutoff


def test_a_swapped_pair_is_aged_from_the_receivers_own_half_not_the_swappers_clock():
    """A SwapResult says how much older the new pair's oldest half is than the receiver's half
    (older_ps, one duration on the swapper's clock); its created_ps is on the swapper's clock,
    which the receiver cannot read, and is not used for the age."""
    from ruleset_recording_qnic import RecordingQNIC

    from qnode_fw.addresses import PairName, QubitAddress
    from qnode_fw.bell import BellState
    from qnode_fw.events import PairReady
    from qnode_fw.ruleset import model as m
    from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor
    from qnode_fw.ruleset.messages import SwapResult, message_from_wire

    loop = EventLoop(VirtualClock())
    got = []
    ex = RuleSetExecutor("A", loop, [RecordingQNIC(0, 4, ())], send=lambda p, msg: None,
                         deliver=got.append)
    ex.install(m.RuleSet("rs", "A", "conn", (
        m.Stage("wait", (m.Rule("correct", ("B",), (m.SwapResultArrived("B", 4),),
                                (m.PauliCorrection("B"), m.Promote("B"))),)),
        m.Stage("done", (m.Rule("deliver", ("C",), (m.EnoughResources("C"),), (m.Deliver("C"),)),)),
    )))
    loop.run_until(5 * MS)
    mine = PairName("bsa", 4 * MS)
    ex.on_pair_ready(PairReady(QubitAddress(0, 1), mine, "B", BellState.PHI_PLUS, "A-B", 1,
                               123_456_789_000, 0.9, 4 * MS))
    # The swapper's clock is 1 s ahead of everything here; its pair with C is 300 us older.
    msg = SwapResult("rs", 4, 1, "B", mine, 0, 0, "C", PairName("B", 5 * MS), 0.8,
                     10**12 + 3700 * US, 300 * US)
    ex.on_message("B", message_from_wire(msg.to_wire()))
    (d,) = [e for e in got if isinstance(e, PairDelivered)]
    assert d.created_ps == 4 * MS - 300 * US


def test_a_repeated_pair_name_binds_nothing_and_frees_its_qubit():
    from qnode_fw.addresses import PairName, QubitAddress
    from timing.binding import PairBinder
    from timing.frames import Frame, FrameType, Outcome, link_id_for

    loop = EventLoop(VirtualClock())
    released, bound = [], []
    binder = PairBinder("A", "A-B", link_id_for("A-B"), "B", "bsa", loop.clock,
                        on_pair_ready=bound.append, release=released.append, expiry_ps=1 * MS,
                        loop=loop)
    for attempt, qubit in ((1, 0), (2, 1)):
        binder.record_emission(attempt, QubitAddress(0, qubit))
        binder.on_herald("bsa", Frame(FrameType.HERALD, link_id_for("A-B"), attempt, attempt,
                                      777, Outcome.PSI_MINUS))
    assert [ev.name for ev in bound] == [PairName("bsa", 777)]
    assert released == [QubitAddress(0, 1)] and binder.stats.repeated_name == 1


def test_a_bsa_station_never_reuses_a_herald_time_even_when_its_timebase_steps_back():
    """Pair names are <station, herald time>: a tagger whose timebase restarted (or a step back)
    must not name a second pair like an earlier one, or an end that missed the first herald
    would hold the second under the name its partner gave the first."""
    from timing.frames import FrameType, Outcome
    from timing.herald_link import InProcessHeraldLink
    from timing.link_end import BsaStationRuntime
    from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

    loop = EventLoop(VirtualClock())
    params = LinkSchemeParams("A-B", LinkScheme.BOTH_ENDPOINTS, "bsa",
                              (LinkEndParams("A", 0, 1.0), LinkEndParams("B", 0, 1.0)),
                              period_ps=10 * US)
    link = InProcessHeraldLink(loop, "A-B")
    got = []
    for node in ("A", "B"):
        link.set_delay("bsa", node, 5 * US)
        link.endpoint(node).subscribe(FrameType.HERALD, lambda peer, f, n=node: got.append(
            (n, f.outcome, f.timestamp_ps)))
    station = BsaStationRuntime(loop, params, None, link.endpoint("bsa"))
    for attempt, t in ((1, 5000), (2, 5000), (3, 4000), (4, 9000)):
        station._outcome(attempt, Outcome.PSI_PLUS, t)
    station._outcome(5, Outcome.FAILURE, 100)          # failures name no pair: sent as they are
    loop.run_until(1 * MS)
    for node in ("A", "B"):
        assert [(o, t) for n, o, t in got if n == node] == [
            (Outcome.PSI_PLUS, 5000), (Outcome.PSI_PLUS, 5001), (Outcome.PSI_PLUS, 5002),
            (Outcome.PSI_PLUS, 9000), (Outcome.FAILURE, 100)]


def test_a_crashed_node_sends_and_answers_no_clock_sync_and_restarts_knowing_nothing():
    """Virtual-testbed crash and restart of clock sync (HeraldClockSync.halt / resume): a dead
    station answers nothing, so its ends' exchange counts stop; a restarted end starts a new line
    (a new process has no estimate), and a jump seen before the crash leaves no pause behind."""
    from qnode_fw.testbed.herald_sync import VIRTUAL_SYNC_SETTINGS, HeraldClockSync

    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, "A-bsa")
    link.set_delay("A", "bsa", fibre_delay_ps(1.0))
    end = HeraldClockSync("A", loop, VIRTUAL_SYNC_SETTINGS)
    station = HeraldClockSync("bsa", loop, VIRTUAL_SYNC_SETTINGS)
    end.add_end("A-bsa", link.endpoint("A"), "bsa")
    station.add_station("A-bsa", link.endpoint("bsa"), ("A",))
    station.start()
    end.start()
    loop.run_until(5 * MS)
    client = end.clients["A-bsa"]
    before = client.exchanges
    assert before > 40 and client.estimator.samples >= 8
    station.halt()
    loop.run_until(10 * MS)
    assert client.exchanges == before and station.answered() == {"A-bsa": before}
    station.resume()
    end.halt()
    end.resume()
    assert client.estimator.samples == 0 and end.paused("A-bsa") is False
    loop.run_until(15 * MS)
    assert client.exchanges > before + 40 and client.estimator.samples >= 8
