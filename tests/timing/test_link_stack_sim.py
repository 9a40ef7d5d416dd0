"""End to end on the simulated backend: a 2-node link with a BSA station, assembled with
timing.link_stack from the simulated instruments.

Each end's schedule bus-triggers its simulated AWG; the AWG marker edge starts the QNIC emission;
the simulated physics (fibre, BSA, detectors with dark counts, time tagger) writes the station's
tag stream; the station reads its tagger, detects heralds and sends herald frames over the herald
link (in-process on virtual time with the fibre delay, or real ZeroMQ on loopback in wall-clock
time); each end binds the herald to the qubit that emitted and raises PairReady.

Oracle: the herald probability per attempt in closed form (below), and the memories' density
matrix in the quantum registry (the ground truth of which pair was made), never the link's own
bookkeeping.

Closed form. ``t_a``, ``t_b``: probability that each photon reaches the beam splitter (collection
x fibre transmission); ``e``: detector efficiency; ``λ``: mean dark counts per detector in the
span where the model draws them (± ``dark_span_ps`` around the arrival). The detection window
covers that whole span, and the detectors' dead time (20 ns) is longer than the window, so a
detector either clicks once in the window or not at all: it "fires" with probability
``F1 = 1 − (1−e)e^{−λ}`` with one photon, ``F2 = 1 − (1−e)²e^{−λ}`` with two (Φ± bunch into one
detector), ``F0 = 1 − e^{−λ}`` with none. A herald is any fired set equal to one of the four
two-detector patterns {aH,aV}, {bH,bV} (Ψ+), {aH,bV}, {aV,bH} (Ψ−). Summing over where the photons
went (docs/physics.md, "BSA station and memory links": both arrive w.p. t_a·t_b and are projected
uniformly on the four Bell states, Ψ± light a pattern, Φ± one detector; a lone photon picks a
detector at random):

    P = t_a t_b [½ P_Ψ + ½ P_Φ] + (t_a(1−t_b) + t_b(1−t_a)) P_1 + (1−t_a)(1−t_b) P_0
    P_Ψ = F1²q² + F0²(1−F1)² + 2 F1 F0 (1−F1) q          (q = e^{−λ})
    P_Φ = 2 F2 F0 q² + 2 F0² (1−F2) q
    P_1 = 2 F1 F0 q² + 2 F0² (1−F1) q
    P_0 = 4 F0² q²

It reduces to ½·η_a·η_b (η = t·e) without dark counts, as docs/physics.md states. A herald reports
the state the memories were projected on only when the Ψ pattern or its complement fired (the
complement of a Ψ pattern is the other pattern of the same Ψ):
``P_true = ½ t_a t_b (F1²q² + F0²(1−F1)²)``; those pairs hold the configured Werner fidelity to
the reported state, every other herald 1/4 (a lone photon) or (1−F)/3 (a Φ or the other Ψ).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
import zmq

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.addresses import PairName
from qnode_fw.clock import VirtualClock, WallClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import NS, US, MS
from sim_backend.memory_link import LinkEnd, MemoryLink
from sim_backend.physics.detector import DetectorParams
from sim_backend.physics.fibre import Fibre
from sim_backend.physics.tagger import TaggerParams
from sim_backend.world import World
from timing.detection import DetectorConfig
from timing.herald_link import InProcessHeraldLink, ZmqHeraldEndpoint
from timing.link_stack import EndLinkParams, EndLinkStack, StationLinkStack, marker_edge_listener
from timing.schedule import AwgMarkerTrigger, ScheduleConfig

LINK = "A-B"
DARK_SPAN = 1 * NS      # darks are drawn within ±1 ns of the photons' arrival
WINDOW_MARGIN = 200  # ps on each side of the dark span: ≫ the 8 ps tagger and 6 ps detector jitter
LINK_FIDELITY = 0.93
DEAD_TIME = 20 * NS


def herald_probability(t_a: float, t_b: float, e: float, lam: float) -> tuple[float, float]:
    """(P herald, P herald reporting the projected state) per two-sided attempt (module doc)."""
    q = math.exp(-lam)
    f0, f1, f2 = 1 - q, 1 - (1 - e) * q, 1 - (1 - e) ** 2 * q
    p_psi = f1 ** 2 * q ** 2 + f0 ** 2 * (1 - f1) ** 2 + 2 * f1 * f0 * (1 - f1) * q
    p_phi = 2 * f2 * f0 * q ** 2 + 2 * f0 ** 2 * (1 - f2) * q
    p_one = 2 * f1 * f0 * q ** 2 + 2 * f0 ** 2 * (1 - f1) * q
    p_none = 4 * f0 ** 2 * q ** 2
    p = (t_a * t_b * (p_psi + p_phi) / 2 + (t_a * (1 - t_b) + t_b * (1 - t_a)) * p_one
         + (1 - t_a) * (1 - t_b) * p_none)
    p_true = t_a * t_b * (f1 ** 2 * q ** 2 + f0 ** 2 * (1 - f1) ** 2) / 2
    return p, p_true


def test_closed_form_limits():
    # Without dark counts: ½·η_a·η_b, all of it true heralds.
    p, p_true = herald_probability(0.4, 0.7, 0.8, 0.0)
    assert p == pytest.approx(0.5 * 0.32 * 0.56) and p_true == pytest.approx(p)
    # Without photons: two of four detectors fire by dark counts alone, in one of 4 patterns.
    lam = 0.03
    p, p_true = herald_probability(0.0, 0.0, 0.8, lam)
    assert p == pytest.approx(4 * (1 - math.exp(-lam)) ** 2 * math.exp(-2 * lam)) and p_true == 0


@dataclass
class SimLink:
    """Two end nodes and a BSA station on one World; ``hw_loop`` runs the simulated hardware."""

    world: World
    hw_loop: EventLoop
    ends: dict[str, EndLinkStack]
    qnics: dict[str, object]
    station: StationLinkStack
    t_photon: float
    efficiency: float
    lam: float
    ready: dict[str, list[tuple[PairReady, float]]] = field(default_factory=lambda: defaultdict(list))
    held: dict[PairName, dict[str, PairReady]] = field(default_factory=lambda: defaultdict(dict))
    _emitted: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    _log_seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def emitted(self, node: str) -> dict[int, int]:
        """Attempt id -> qubit index, from the QNIC's own operation log (what really emitted)."""
        log = self.qnics[node].operation_log
        for op in log[self._log_seen[node]:]:
            if op[1] == "emit":
                self._emitted[node][op[3]] = op[2]
        self._log_seen[node] = len(log)
        return self._emitted[node]


def build(*, km: float, collection: float, efficiency: float, dark_hz: float, period_ps: int,
          qubits: int, expiry_ps: int, read_interval_ps: int, seed: int, node_loop: EventLoop | None = None,
          endpoints=None, sync_interval_ps: int | None = None) -> SimLink:
    """Everything on the hardware loop's virtual clock unless ``node_loop`` (wall clock) and
    ``endpoints`` (ZeroMQ) are given; then only the simulated hardware is on the virtual loop."""
    hw_clock = VirtualClock()
    hw_loop = EventLoop(hw_clock)
    node_loop = node_loop or hw_loop
    streams = RandomStreams(seed)
    world = World(hw_clock, streams, hw_loop)
    ctx = DriverContext(clock=hw_clock, loop=hw_loop, streams=streams, world=world)
    world.add_tagger("bsa_tt", TaggerParams(jitter_rms_ps=8.0))
    tagger = open_instrument(InstrumentSpec("bsa_tt", "time_tagger", "sim", "sim"), ctx)
    memory = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf}
    fibre = Fibre(km)
    arrival = fibre.delay_ps
    sync_delay = arrival - DARK_SPAN - WINDOW_MARGIN - 100  # the sync tag precedes the window
    world.add_memory_link(MemoryLink(
        LINK, (LinkEnd("A", 0, fibre, collection), LinkEnd("B", 0, fibre, collection)), "bsa_tt",
        detectors=(DetectorParams(efficiency, dark_hz, DEAD_TIME, 15.0),) * 4,
        link_fidelity=LINK_FIDELITY, sync_delay_ps=sync_delay, dark_span_ps=DARK_SPAN))
    schedule = ScheduleConfig(start_ps=0, period_ps=period_ps, window_ps=2 * DARK_SPAN)
    if endpoints is None:
        link = InProcessHeraldLink(hw_loop, LINK)
        for end in "AB":
            link.set_delay("bsa", end, fibre.delay_ps)  # herald fibre runs along the quantum one
        endpoints = {n: link.endpoint(n) for n in ("A", "B", "bsa")}
    ends, qnics = {}, {}
    for node, partner in (("A", "B"), ("B", "A")):
        qnics[node] = open_instrument(InstrumentSpec(
            f"q{node}", "qnic", "sim", "sim",
            options={"node": node, "num_qubits": qubits, "memory": memory}), ctx)
        awg = open_instrument(InstrumentSpec(f"awg{node}", "awg", "sim", "sim"), ctx)
        markers = np.zeros(16, np.uint8)
        markers[:4] = 1  # one marker pulse at the start of the attempt waveform
        awg.upload_waveform(1, "attempt", np.zeros(16), 1e9, markers=markers)
        awg.set_output(1, True)
        awg.run()
        params = EndLinkParams(LINK, node, partner, "bsa", tuple(range(qubits)), expiry_ps,
                               fidelity_estimate=LINK_FIDELITY)
        stack = EndLinkStack(node_loop, params, schedule, endpoints[node], qnics[node],
                             on_pair_ready=lambda r: None,
                             trigger=AwgMarkerTrigger(awg, 1, "attempt"), attempt_loop=hw_loop,
                             sync_interval_ps=sync_interval_ps)
        world.marker_listeners.append(marker_edge_listener(stack, f"awg{node}", 1))
        ends[node] = stack
    detector = DetectorConfig(window_start_ps=arrival - sync_delay - DARK_SPAN - WINDOW_MARGIN,
                              window_ps=2 * (DARK_SPAN + WINDOW_MARGIN),
                              attempt_start_ps=schedule.start_ps + sync_delay,
                              attempt_period_ps=period_ps)
    station = StationLinkStack(node_loop, endpoints["bsa"], detector, ["A", "B"], tagger, hw_clock,
                               read_interval_ps=read_interval_ps)
    bed = SimLink(world, hw_loop, ends, qnics, station, collection * fibre.transmission, efficiency,
                  dark_hz * 2 * DARK_SPAN * 1e-12)
    for node, stack in ends.items():
        stack.on_pair_ready = lambda r, node=node: _on_ready(bed, node, r)
    return bed


def _on_ready(bed: SimLink, node: str, ready: PairReady) -> None:
    """The runtime's stand-in: look at the pair in the registry the moment it is announced, and
    give both qubits back once both ends have it (each check must still find the other half)."""
    partner_index = bed.emitted(ready.partner).get(ready.attempt_id)
    fidelity = float("nan")
    if partner_index is not None:
        fidelity = bed.world.registry.bell_fidelity(bed.qnics[node].key(ready.qubit.index),
                                                    bed.qnics[ready.partner].key(partner_index),
                                                    ready.bell_state)
    bed.ready[node].append((ready, fidelity))
    held = bed.held[ready.name]
    held[node] = ready
    if len(held) == 2:
        for end, r in bed.held.pop(ready.name).items():
            bed.ends[end].release(r.qubit)


def check_pairs(bed: SimLink) -> tuple[int, int]:
    """Both ends bound the same pairs, each to the qubit that emitted for its attempt, with the
    station as origin and the other end as partner; returns (pairs, pairs at link fidelity)."""
    by_name = {n: {r.name: (r, f) for r, f in bed.ready[n]} for n in "AB"}
    assert set(by_name["A"]) == set(by_name["B"])
    emitted = {n: bed.emitted(n) for n in "AB"}
    true_heralds = 0
    for name, (ra, fa) in by_name["A"].items():
        rb, fb = by_name["B"][name]
        assert isinstance(name, PairName) and name.origin == "bsa"
        assert ra.attempt_id == rb.attempt_id and ra.bell_state == rb.bell_state
        assert (ra.partner, rb.partner) == ("B", "A")
        assert ra.qubit.index == emitted["A"][ra.attempt_id]
        assert rb.qubit.index == emitted["B"][rb.attempt_id]
        assert fa == pytest.approx(fb, abs=1e-12)
        # Every pair is one of the model's three cases, nothing in between.
        assert min(abs(fa - v) for v in (LINK_FIDELITY, 0.25, (1 - LINK_FIDELITY) / 3)) < 1e-9
        true_heralds += abs(fa - LINK_FIDELITY) < 1e-9
    return len(by_name["A"]), true_heralds


def run_virtual(bed: SimLink, duration_ps: int) -> None:
    bed.station.start()
    for stack in bed.ends.values():
        stack.demand.add()
    bed.hw_loop.run_until(duration_ps)
    for stack in bed.ends.values():
        stack.demand.release()
    bed.hw_loop.run_until(duration_ps + 1 * MS)  # heralds in flight land, expiries run
    bed.station.stop()
    bed.hw_loop.run_until(duration_ps + 2 * MS)


def assert_within_3_sigma(observed: int, n: int, p: float) -> None:
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(observed - n * p) <= 3 * sigma, (observed, n * p, sigma)


@pytest.mark.slow
def test_heralded_pair_rate_and_states_match_the_physics_with_dark_counts():
    period = 10 * US
    bed = build(km=2.0, collection=0.5, efficiency=0.8, dark_hz=10e6, period_ps=period, qubits=8,
                expiry_ps=40 * US, read_interval_ps=5 * US, seed=11)
    duration = 100 * MS  # 10 000 attempt slots
    run_virtual(bed, duration)

    attempts = set(bed.emitted("A")) & set(bed.emitted("B"))
    n = len(attempts)
    # No slot was skipped for want of a qubit, and both ends emitted in every slot: the pair rate
    # per second is the per-attempt probability times the attempt rate.
    assert all(s.schedule.vetoed == 0 for s in bed.ends.values())
    assert n == len(bed.emitted("A")) == len(bed.emitted("B")) == duration // period + 1
    pairs, true_pairs = check_pairs(bed)
    p, p_true = herald_probability(bed.t_photon, bed.t_photon, bed.efficiency, bed.lam)
    assert_within_3_sigma(pairs, n, p)
    assert_within_3_sigma(true_pairs, n, p_true)
    # The dark counts matter at this rate: the dark-free ½·η_a·η_b is far outside the statistics.
    eta = bed.t_photon * bed.efficiency
    assert abs(pairs - n * 0.5 * eta * eta) > 5 * math.sqrt(n * p)
    # Every herald the station decoded reached both ends and bound a pair (none expired).
    assert bed.station.detector.stats.heralds == pairs
    assert all(s.binder.stats.unknown_attempt == 0 for s in bed.ends.values())


def test_without_dark_counts_every_pair_holds_the_reported_bell_state():
    bed = build(km=2.0, collection=0.5, efficiency=0.9, dark_hz=0.0, period_ps=10 * US, qubits=8,
                expiry_ps=40 * US, read_interval_ps=5 * US, seed=3)
    run_virtual(bed, 20 * MS)
    pairs, true_pairs = check_pairs(bed)
    assert pairs > 100 and true_pairs == pairs
    n = len(set(bed.emitted("A")) & set(bed.emitted("B")))
    eta = bed.t_photon * bed.efficiency
    assert_within_3_sigma(pairs, n, 0.5 * eta * eta)


def test_over_zeromq_on_loopback_in_wall_clock_time():
    """The same link with real ZeroMQ herald sockets and wall-clock nodes. The simulated hardware
    (AWG triggers, photons, tagger) keeps its own virtual time line, paced to follow the wall
    clock, so both ends still emit at the exact attempt time; schedule edges, tagger reads,
    herald frames, clock sync and binding all run as the node loop's wall time allows."""
    # Numba loads its compiled kernels on first use (tenths of a second): do that before the
    # wall clock matters, as a node does at start-up.
    run_virtual(build(km=2.0, collection=1.0, efficiency=0.9, dark_hz=1e6, period_ps=10 * US,
                      qubits=4, expiry_ps=40 * US, read_interval_ps=5 * US, seed=0), 1 * MS)
    node_loop = EventLoop(WallClock())
    ctx = zmq.Context()
    bsa = ZmqHeraldEndpoint("bsa", LINK, bind="tcp://127.0.0.1:0", context=ctx)
    endpoints = {"bsa": bsa, **{e: ZmqHeraldEndpoint(e, LINK, connect={"bsa": bsa.address},
                                                      context=ctx) for e in "AB"}}
    for ep in endpoints.values():
        ep.attach(node_loop)
    # The simulated physics of one attempt slot takes ~0.5 ms of this CPU. The expiry leaves room
    # for the scheduling hiccups of a loaded 2-core machine; the qubits cover it at this period.
    period = 2 * MS
    try:
        bed = build(km=2.0, collection=1.0, efficiency=0.9, dark_hz=0.0, period_ps=period,
                    qubits=64, expiry_ps=100 * MS, read_interval_ps=200 * US, seed=7,
                    node_loop=node_loop, endpoints=endpoints, sync_interval_ps=2 * MS)

        def pace() -> None:
            # Catch the hardware up with the wall clock, at most one attempt period per turn so
            # the node loop keeps reading sockets and the tagger while it catches up.
            now = bed.hw_loop.now_ps()
            bed.hw_loop.run_until(max(now, min(node_loop.now_ps(), now + period)))
            node_loop.call_later(20 * US, pace)

        node_loop.call_soon(pace)
        # The station's ROUTER can address an end once that end's DEALER has connected: wait
        # for each end's first clock-sync request.
        deadline = time.monotonic() + 5
        while {"A", "B"} - {p for p in "AB" if bsa.window(p).highest > 0}:
            assert time.monotonic() < deadline, "ends never reached the station"
            node_loop.run_until(node_loop.now_ps() + 1 * MS)
        bed.station.start()
        for stack in bed.ends.values():
            stack.demand.add()
        # 150 attempts: 0.3 s of wall time when the machine keeps up, longer when it does not.
        deadline = time.monotonic() + 30
        while min(s.schedule.fired for s in bed.ends.values()) < 150:
            assert time.monotonic() < deadline, "the simulated hardware stalled"
            node_loop.run_until(node_loop.now_ps() + 10 * MS)
        for stack in bed.ends.values():
            stack.demand.release()
        node_loop.run_until(node_loop.now_ps() + 40 * MS)
        bed.station.stop()
        node_loop.run_until(node_loop.now_ps() + 20 * MS)
    finally:
        for ep in endpoints.values():
            ep.close()
        ctx.term()
        node_loop.close()

    stats = {n: (s.binder.stats, s.stats) for n, s in bed.ends.items()}
    pairs, true_pairs = check_pairs(bed)
    assert pairs == true_pairs == bed.station.detector.stats.heralds > 20, stats
    assert all(s.binder.stats.unknown_attempt == 0 and s.schedule.vetoed == 0
               for s in bed.ends.values())
    assert bsa.stats.send_failures == 0
    n = len(set(bed.emitted("A")) & set(bed.emitted("B")))
    assert n == len(bed.emitted("A")) == len(bed.emitted("B"))
    eta = bed.t_photon * bed.efficiency
    assert_within_3_sigma(pairs, n, 0.5 * eta * eta)
    # Clock sync ran over the same sockets; the simulated hardware follows the wall clock within
    # the pacing, so the station time base sits within a few ms of each node's.
    for stack in bed.ends.values():
        assert stack.sync is not None and stack.sync.exchanges > 10
