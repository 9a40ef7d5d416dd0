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
