"""Memory links heralded at both end points: the BSA station's tag stream, decoded by the timing
layer's HeraldDetector (independent code), against the closed forms ½·η_a·η_b for the herald
probability and 4·λ²·e^{−4λ} for dark-count-only false heralds; every decoded herald leaves the
memories in the reported Bell state with the configured fidelity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.rng import RandomStreams
from qnode_fw.units import NS, US
from sim_backend.memory_link import LinkEnd, MemoryLink
from sim_backend.physics.detector import DetectorParams
from sim_backend.physics.fibre import Fibre
from sim_backend.physics.tagger import TaggerParams
from sim_backend.world import World
from timing.detection import DetectorConfig, HeraldDetector

PERIOD = 10 * US
WINDOW = 2 * NS


def make_testbed(km_each_side, det_eff, dark_hz=0.0, collection=1.0, fidelity=0.93, seed=1, period=PERIOD,
                 dead_time_ps=20 * NS):
    clock = VirtualClock()
    streams = RandomStreams(seed)
    world = World(clock, streams)
    ctx = DriverContext(clock=clock, streams=streams, world=world)
    world.add_tagger("bsa_tt", TaggerParams(jitter_rms_ps=8.0))
    tt = open_instrument(InstrumentSpec("bsa_tt", "time_tagger", "sim", "sim"), ctx)
    memory = {"communication_t2_ps": math.inf, "communication_t1_ps": math.inf}
    qa = open_instrument(InstrumentSpec("qa", "qnic", "sim", "sim", options={"node": "A", "memory": memory}), ctx)
    qb = open_instrument(InstrumentSpec("qb", "qnic", "sim", "sim", options={"node": "B", "memory": memory}), ctx)
    fibre = Fibre(km_each_side)
    arrival = fibre.delay_ps
    link = world.add_memory_link(MemoryLink(
        "AB", (LinkEnd("A", 0, fibre, collection), LinkEnd("B", 0, fibre, collection)), "bsa_tt",
        detectors=(DetectorParams(det_eff, dark_hz, dead_time_ps, 15.0),) * 4, link_fidelity=fidelity,
        sync_delay_ps=arrival - WINDOW, dark_span_ps=20 * NS))
    tt.start_stream([1, 2, 3, 4, 5])
    detector = HeraldDetector(DetectorConfig(window_start_ps=WINDOW // 2, window_ps=WINDOW,
                                             attempt_start_ps=arrival - WINDOW, attempt_period_ps=period))
    return clock, world, tt, qa, qb, link, detector


def run_attempts(n, clock, tt, qa, qb, detector, on_herald=None, period=PERIOD):
    heralds = []
    for k in range(n):
        clock.advance_to(k * period)
        qa.emit(0, k)
        qb.emit(0, k)
        if on_herald is not None:
            # read after this attempt's photons arrived, before the next attempt overwrites the qubits
            clock.advance_to(k * period + period - 1)
            for h in detector.push(tt.read_stream(), complete_until_ps=clock.now_ps() - 1):
                heralds.append(h)
                on_herald(h)
    clock.advance_to(n * period + 200 * US)
    heralds.extend(detector.push(tt.read_stream()))
    heralds.extend(detector.flush())
    return [h for h in heralds if h.outcome.bell_state is not None]


@pytest.mark.parametrize("km_each_side, det_eff", [(0.0, 0.9), (10.0, 0.9), (25.0, 0.9), (10.0, 0.5)])
def test_herald_probability_vs_fibre_length_and_detector_efficiency(km_each_side, det_eff):
    clock, world, tt, qa, qb, link, detector = make_testbed(km_each_side, det_eff)
    n = 3000
    heralds = run_attempts(n, clock, tt, qa, qb, detector)
    eta = Fibre(km_each_side).transmission * det_eff
    p = 0.5 * eta * eta
    assert abs(len(heralds) - n * p) <= 3 * math.sqrt(n * p * (1 - p))
    # ψ+ and ψ− equally likely
    plus = sum(h.outcome.bell_state is BellState.PSI_PLUS for h in heralds)
    assert abs(plus - len(heralds) / 2) <= 3 * math.sqrt(len(heralds) / 4)
    assert [h.attempt_id for h in heralds] == sorted({h.attempt_id for h in heralds})


def test_every_decoded_herald_leaves_the_reported_bell_state():
    # the attempt period (40 us) exceeds the 5 km flight time, so a herald is decoded before the
    # next attempt re-uses the communication qubits
    clock, world, tt, qa, qb, link, detector = make_testbed(5.0, 0.9, fidelity=0.93, period=40 * US)
    fidelities = []

    def check(h):
        fidelities.append(world.registry.bell_fidelity(qa.key(0), qb.key(0), h.outcome.bell_state))

    heralds = run_attempts(300, clock, tt, qa, qb, detector, on_herald=check, period=40 * US)
    assert len(heralds) > 50
    assert fidelities == pytest.approx([0.93] * len(fidelities), abs=1e-12)


def test_dark_count_false_heralds_match_closed_form():
    rate = 25e6  # absurd dark rate so that darks alone herald often enough to count
    clock, world, tt, qa, qb, link, detector = make_testbed(1.0, 0.9, dark_hz=rate, collection=0.0, seed=5,
                                                            dead_time_ps=0)
    n = 3000
    heralds = run_attempts(n, clock, tt, qa, qb, detector)
    lam = rate * WINDOW * 1e-12
    # exactly one dark on each detector of one of the 4 herald pairs and none on the other two
    # (dead time off: with 20 ns of it at this rate, darks before the window would hide later ones)
    p = 4 * (lam * math.exp(-lam)) ** 2 * math.exp(-2 * lam)
    assert abs(len(heralds) - n * p) <= 3 * math.sqrt(n * p * (1 - p))
    # false heralds leave unentangled memories: fidelity to the reported state is 1/4 (mixed)
    assert world.registry.bell_fidelity(qa.key(0), qb.key(0)) == pytest.approx(0.25)


def test_lost_photons_leave_the_memories_maximally_mixed():
    clock, world, tt, qa, qb, link, detector = make_testbed(0.0, 0.9, collection=0.0)
    qa.emit(0, 0)
    qb.emit(0, 0)
    assert np.allclose(world.registry.density_matrix([qa.key(0), qb.key(0)]), np.eye(4) / 4)


def test_switched_transceiver_emits_into_the_routed_link_and_loses_photons_while_switching():
    """QRNA minimal repeater: B's single communication qubit sits behind a 1x2 switch; output 1
    feeds link AB, output 2 link BC. An emission goes to the link the switch routes to at that
    instant, and is lost while the switch moves."""
    clock = VirtualClock()
    streams = RandomStreams(2)
    world = World(clock, streams)
    ctx = DriverContext(clock=clock, streams=streams, world=world)
    ideal = {"communication_t2_ps": math.inf, "communication_t1_ps": math.inf, "storage_t2_ps": math.inf,
             "storage_t1_ps": math.inf}
    qa = open_instrument(InstrumentSpec("qa", "qnic", "sim", "sim", options={"node": "A", "memory": ideal}), ctx)
    qc = open_instrument(InstrumentSpec("qc", "qnic", "sim", "sim", options={"node": "C", "memory": ideal}), ctx)
    qb = open_instrument(InstrumentSpec("qb", "qnic", "sim", "sim", options={
        "node": "B", "num_qubits": 2, "communication_qubits": [0], "memory": ideal}), ctx)
    sw = open_instrument(InstrumentSpec("swB", "optical_switch", "sim", "sim",
                                        options={"num_outputs": 2, "switching_time_ps": 10 * US}), ctx)
    for name in ("ttAB", "ttBC"):
        open_instrument(InstrumentSpec(name, "time_tagger", "sim", "sim"), ctx).start_stream([1, 2, 3, 4, 5])
    fibre = Fibre(0.0)
    ab = world.add_memory_link(MemoryLink("AB", (LinkEnd("A", 0, fibre, 1.0), LinkEnd("B", 0, fibre, 1.0, ("swB", 1, 1))),
                                          "ttAB"))
    bc = world.add_memory_link(MemoryLink("BC", (LinkEnd("B", 0, fibre, 1.0, ("swB", 1, 2)), LinkEnd("C", 0, fibre, 1.0)),
                                          "ttBC"))
    sw.connect(1, 1)
    clock.advance_to(20 * US)  # settled on AB
    qa.emit(0, 1)
    qb.emit(0, 1)
    assert ab.attempts == 1 and bc.attempts == 0
    sw.connect(1, 2)
    clock.advance_to(25 * US)  # still switching: B's photon is lost, C's attempt is one-sided
    qb.emit(0, 2)
    qc.emit(0, 2)
    assert [e.attempt_id for e in world.lost_emissions] == [2]
    clock.advance_to(40 * US)
    world.advance()
    assert bc.attempts == 1 and bc.record[-1][2:] == (False, True)
    qb.emit(0, 3)
    qc.emit(0, 3)
    assert bc.attempts == 2 and bc.record[-1][2] is True
    assert sw.command_log == [(0, 1, 1), (20 * US, 1, 2)]
