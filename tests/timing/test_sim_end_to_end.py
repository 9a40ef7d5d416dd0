"""Heralding end to end on the simulated backend: a 2-node ``both_endpoints`` link with a BSA
station, run by the project's link runtime (timing.link_end, timing.comm_qubits, the BSA photonics
of sim_backend.link_schemes) with the emissions triggered by the simulated AWGs.

Each end's AttemptSchedule bus-triggers its AWG (AwgMarkerTrigger); the AWG's marker edge, cabled
to the emitter, starts the attempt (LinkEndRuntime.attempt); the photons, the BSA, the detectors
(with dark counts) and the station's time tagger are simulated; the station reads its tagger,
decodes each attempt and sends herald frames, in-process with the fibre delay on virtual time, or
over real ZeroMQ or UDP sockets on loopback in wall-clock time; each end binds the herald to the qubit
that emitted and raises PairReady.

tests/links covers the three schemes' rates without dark counts and with software triggers. Here:
the AWG path, a dark-count rate high enough to move the pair rate far from ½·η_a·η_b, every
PairReady checked against the density matrix of the two memories, and the network herald links
(ZeroMQ, UDP) with clock sync over them.

Closed form (the herald probability per attempt in which both ends emit). ``t_a``, ``t_b``:
probability that each photon reaches the beam splitter (collection × fibre transmission); ``e``:
detector efficiency; ``λ``: mean dark counts per detector in the detection window (rate × window;
the model draws darks uniformly around each attempt, so the window sees a Poisson number of them).
The detectors have no dead time here, as in docs/physics.md's dark-count check, so the window
holds every photon click and every dark count: a detector with ``k`` photons on it shows no click
with ``Z_k = (1−e)^k q`` and exactly one with ``O_k = (k e (1−e)^(k−1) + (1−e)^k λ) q``,
``q = e^(−λ)``. A herald is exactly one click on each detector of one of the four patterns
{aH,aV}, {bH,bV} (Ψ+), {aH,bV}, {aV,bH} (Ψ−) and none elsewhere. With the photonics of
docs/physics.md ("BSA station and memory links": both photons arrive w.p. t_a·t_b and are
projected uniformly on the four Bell states, Ψ± light one of their patterns, Φ± send both photons
to one detector; a lone photon goes to a random detector):

    P = t_a t_b (P_Ψ + P_Φ)/2 + (t_a(1−t_b) + t_b(1−t_a)) P_1 + (1−t_a)(1−t_b) P_0
    P_Ψ = O_1² Z_0² + O_0² Z_1² + 2 O_1 O_0 Z_1 Z_0      (the photons' pattern, its complement,
                                                           or one of the two it shares a detector with)
    P_Φ = 2 O_2 O_0 Z_0² + 2 O_0² Z_2 Z_0
    P_1 = 2 O_1 O_0 Z_0² + 2 O_0² Z_1 Z_0
    P_0 = 4 O_0² Z_0²

For λ = 0 this is ½·η_a·η_b (η = t·e); without photons it is 4(λe^(−λ))²e^(−2λ): the two closed
forms docs/physics.md states. A herald reports the state the memories were projected on exactly
when the photons' pattern or its complement (the other pattern of the same Ψ) fired:
``P_true = ½ t_a t_b (O_1² Z_0² + O_0² Z_1²)``. Those pairs hold the configured Werner fidelity
F to the reported state; every other herald (1−F)/3 (a Φ, or the other Ψ) or 1/4 (one photon).
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
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.clock import VirtualClock, WallClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, NS, US
from sim_backend.link_schemes import SimLinkPhysics, build_sim_link
from sim_backend.physics.detector import DetectorParams
from sim_backend.world import World
from timing.clock_sync import ClockSyncClient, ClockSyncResponder
from timing.comm_qubits import CommQubitPool
from timing.herald_link import HeraldEndpoint, InProcessHeraldLink, ZmqHeraldEndpoint
from timing.herald_udp import UdpHeraldEndpoint
from timing.link_end import BsaStationRuntime, LinkEndRuntime
from timing.schedule import AttemptSchedule, AwgMarkerTrigger, DemandCounter
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

LINK = "A-B"
WINDOW = 2 * NS
FIDELITY = 0.93
MEMORY = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf}


def herald_probability(t_a: float, t_b: float, e: float, lam: float) -> tuple[float, float]:
    """(P herald, P herald reporting the projected state) per joint attempt (module doc)."""
    q = math.exp(-lam)

    def z(k: int) -> float:
        return (1 - e) ** k * q

    def o(k: int) -> float:
        return (k * e * (1 - e) ** (k - 1) + (1 - e) ** k * lam) * q

    p_psi = o(1) ** 2 * z(0) ** 2 + o(0) ** 2 * z(1) ** 2 + 2 * o(1) * o(0) * z(1) * z(0)
    p_phi = 2 * o(2) * o(0) * z(0) ** 2 + 2 * o(0) ** 2 * z(2) * z(0)
    p_one = 2 * o(1) * o(0) * z(0) ** 2 + 2 * o(0) ** 2 * z(1) * z(0)
    p_none = 4 * o(0) ** 2 * z(0) ** 2
    p = (t_a * t_b * (p_psi + p_phi) / 2 + (t_a * (1 - t_b) + t_b * (1 - t_a)) * p_one
         + (1 - t_a) * (1 - t_b) * p_none)
    return p, t_a * t_b * (o(1) ** 2 * z(0) ** 2 + o(0) ** 2 * z(1) ** 2) / 2


def test_closed_form_reduces_to_the_documented_ones():
    p, p_true = herald_probability(0.4, 0.7, 0.8, 0.0)
    assert p == pytest.approx(0.5 * 0.32 * 0.56) and p_true == pytest.approx(p)
    lam = 0.03
    p, p_true = herald_probability(0.0, 0.0, 0.8, lam)
    assert p == pytest.approx(4 * (lam * math.exp(-lam)) ** 2 * math.exp(-2 * lam))
    assert p_true == 0


@dataclass
class SimLink:
    """Two end nodes and a BSA station on one World; ``hw_loop`` runs the simulated hardware
    (AWG triggers, photons, the station's tagger reads), ``node_loop`` the end nodes."""

    params: LinkSchemeParams
    world: World
    hw_loop: EventLoop
    node_loop: EventLoop
    ends: dict[str, LinkEndRuntime]
    schedules: dict[str, AttemptSchedule]
    demand: DemandCounter
    station: BsaStationRuntime
    t_photon: float
    efficiency: float
    lam: float
    ready: dict[str, list[tuple[PairReady, float]]] = field(default_factory=lambda: defaultdict(list))
    held: dict[str, set[QubitAddress]] = field(default_factory=lambda: defaultdict(set))
    waiting: dict[PairName, dict[str, PairReady]] = field(default_factory=lambda: defaultdict(dict))
    _emitted: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    _log_seen: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def emitted(self, node: str) -> dict[int, int]:
        """Attempt id -> qubit index, from the QNIC's own operation log (what really emitted)."""
        log = self.ends[node].qnic.operation_log
        for op in log[self._log_seen[node]:]:
            if op[1] == "emit":
                self._emitted[node][op[3]] = op[2]
        self._log_seen[node] = len(log)
        return self._emitted[node]

    def joint_attempts(self) -> set[int]:
        return set(self.emitted("A")) & set(self.emitted("B"))


def build(*, km: float, collection: float, efficiency: float, dark_hz: float, period_ps: int,
          qubits: int, seed: int, node_loop: EventLoop | None = None,
          endpoints: dict[str, HeraldEndpoint] | None = None,
          expiry_ps: int | None = None) -> SimLink:
    hw_clock = VirtualClock()
    hw_loop = EventLoop(hw_clock)
    node_loop = node_loop or hw_loop
    streams = RandomStreams(seed)
    world = World(hw_clock, streams, hw_loop)
    ctx = DriverContext(clock=hw_clock, loop=hw_loop, streams=streams, world=world)
    ends_params = (LinkEndParams("A", 0, km), LinkEndParams("B", 0, km))
    probe = LinkSchemeParams(LINK, LinkScheme.BOTH_ENDPOINTS, "bsa", ends_params, period_ps=period_ps)
    lead = -probe.action_offset_ps(0) + max(hw_clock.now_ps(), node_loop.now_ps()) + period_ps
    params = LinkSchemeParams(LINK, LinkScheme.BOTH_ENDPOINTS, "bsa", ends_params,
                              period_ps=period_ps, start_ps=-(-lead // period_ps) * period_ps,
                              window_ps=WINDOW)
    tagger = open_instrument(InstrumentSpec("bsa_tt", "time_tagger", "sim", "sim"), ctx)
    physics = SimLinkPhysics(collection_efficiency=collection, link_fidelity=FIDELITY,
                             detector=DetectorParams(efficiency, dark_hz, 0, 15.0))
    link = build_sim_link(world, params, physics, taggers={"bsa": "bsa_tt"})
    tagger.start_stream([1, 2, 3, 4, 5])
    if endpoints is None:
        herald = InProcessHeraldLink(hw_loop, LINK)
        for i, node in enumerate(params.nodes):
            herald.set_delay("bsa", node, params.delay_ps(i))  # along the quantum fibre
        endpoints = {n: herald.endpoint(n) for n in ("bsa", *params.nodes)}
    station = BsaStationRuntime(hw_loop, params, tagger, endpoints["bsa"])
    demand = DemandCounter()
    bed = SimLink(params, world, hw_loop, node_loop, {}, {}, demand, station,
                  link.eta(0, world), efficiency, dark_hz * WINDOW * 1e-12)
    for i, node in enumerate(params.nodes):
        qnic = open_instrument(InstrumentSpec(f"q{node}", "qnic", "sim", "sim", options={
            "node": node, "num_qubits": qubits, "memory": MEMORY,
            "full_operation_log": True}), ctx)      # emitted() reads the whole run
        pool = CommQubitPool(qnic, node_loop.clock, held=lambda node=node: bed.held[node])
        end = LinkEndRuntime(node_loop, params, i, qnic, pool, endpoints[node],
                             on_pair_ready=lambda r, node=node: _on_ready(bed, node, r),
                             fidelity_estimate=FIDELITY, expiry_ps=expiry_ps)
        bed.ends[node] = end
        bed.schedules[node] = _awg_schedule(bed, end, open_instrument(
            InstrumentSpec(f"awg{node}", "awg", "sim", "sim"), ctx))
    return bed


def _awg_schedule(bed: SimLink, end: LinkEndRuntime, awg) -> AttemptSchedule:
    """The end's schedule bus-triggers a one-marker burst; the marker, cabled to the emitter's
    trigger input, starts the attempt at the edge (on the hardware's time line)."""
    markers = np.zeros(16, np.uint8)
    markers[:4] = 1
    awg.upload_waveform(1, "attempt", np.zeros(16), 1e9, markers=markers)
    awg.set_output(1, True)
    awg.run()
    offset = end.action_offset_ps
    schedule = AttemptSchedule(bed.hw_loop, LINK, bed.params.schedule_config(),
                               AwgMarkerTrigger(awg, 1, "attempt"), bed.demand,
                               gate=lambda k: end.can_attempt(),
                               to_loop_time=lambda t: t + offset, from_loop_time=lambda t: t - offset)
    armed: set[int] = set()
    schedule.on_attempt(lambda k, t: armed.add(k))

    def edge(name: str, channel: int, marker: int, t_ps: int) -> None:
        if name == awg.name and channel == 1 and marker == 1:
            k = schedule.config.attempt_of(t_ps - offset)
            if k in armed:
                armed.discard(k)
                end.attempt(k)

    bed.world.marker_listeners.append(edge)
    return schedule


def _on_ready(bed: SimLink, node: str, ready: PairReady) -> None:
    """The runtime's stand-in: look at the pair in the registry the moment it is announced, hold
    the qubit until both ends have their half, then free both."""
    me = bed.ends[node]
    partner_index = bed.emitted(ready.partner).get(ready.attempt_id)
    fidelity = float("nan")
    if partner_index is not None:
        fidelity = bed.world.registry.bell_fidelity(me.qnic.key(ready.qubit.index),
                                                    bed.ends[ready.partner].qnic.key(partner_index),
                                                    ready.bell_state)
    bed.ready[node].append((ready, fidelity))
    bed.held[node].add(ready.qubit)
    both = bed.waiting[ready.name]
    both[node] = ready
    if len(both) == 2:
        for end, r in bed.waiting.pop(ready.name).items():
            bed.held[end].discard(r.qubit)


def check_pairs(bed: SimLink) -> tuple[int, int]:
    """Both ends bound the same pairs, each to the qubit that emitted for its attempt, named after
    the station, with the other end as partner; returns (pairs, pairs at the link fidelity)."""
    by_name = {n: {r.name: (r, f) for r, f in bed.ready[n]} for n in "AB"}
    assert set(by_name["A"]) == set(by_name["B"]), {n: e.binder.stats for n, e in bed.ends.items()}
    emitted = {n: bed.emitted(n) for n in "AB"}
    true_pairs = 0
    for name, (ra, fa) in by_name["A"].items():
        rb, fb = by_name["B"][name]
        assert name.origin == "bsa"
        assert ra.attempt_id == rb.attempt_id and ra.bell_state == rb.bell_state
        assert (ra.partner, rb.partner) == ("B", "A")
        assert ra.qubit.index == emitted["A"][ra.attempt_id]
        assert rb.qubit.index == emitted["B"][rb.attempt_id]
        assert fa == pytest.approx(fb, abs=1e-12)
        # every pair is one of the model's three cases, nothing in between
        assert min(abs(fa - v) for v in (FIDELITY, 0.25, (1 - FIDELITY) / 3)) < 1e-9, fa
        true_pairs += abs(fa - FIDELITY) < 1e-9
    return len(by_name["A"]), true_pairs


def run_virtual(bed: SimLink, slots: int) -> None:
    bed.station.start()
    bed.demand.add()
    stop = bed.params.slot_time_ps(slots) + bed.ends["A"].action_offset_ps
    bed.hw_loop.call_at(stop, bed.demand.release)
    bed.hw_loop.run_until(stop + 1 * MS)  # the last heralds land, expiries run
    bed.station.stop()


def assert_within_3_sigma(observed: int, n: int, p: float) -> None:
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(observed - n * p) <= 3 * sigma, (observed, n * p, sigma)


@pytest.mark.slow
def test_pair_rate_and_every_pair_state_match_the_physics_with_dark_counts():
    period = 10 * US
    bed = build(km=2.0, collection=0.5, efficiency=0.8, dark_hz=20e6, period_ps=period, qubits=4,
                seed=11)
    slots = 10_000
    run_virtual(bed, slots)

    n = len(bed.joint_attempts())
    # Both ends emitted in every slot (4 qubits cover the 2.1-slot herald round trip), so the
    # pair rate per second is the per-attempt probability over the attempt period.
    assert all(s.vetoed == 0 for s in bed.schedules.values())
    assert n == len(bed.emitted("A")) == len(bed.emitted("B")) == slots
    pairs, true_pairs = check_pairs(bed)
    p, p_true = herald_probability(bed.t_photon, bed.t_photon, bed.efficiency, bed.lam)
    assert_within_3_sigma(pairs, n, p)
    assert_within_3_sigma(true_pairs, n, p_true)
    # At this dark-count rate the dark-free ½·η_a·η_b is far outside the statistics.
    eta = bed.t_photon * bed.efficiency
    assert abs(pairs - n * 0.5 * eta * eta) > 5 * math.sqrt(n * p)
    # Every herald the station decoded bound a pair at both ends (none expired on the way).
    assert bed.station.heralder.detector.stats.heralds == pairs
    assert all(e.binder.stats.unknown_attempt == 0 for e in bed.ends.values())


def test_without_dark_counts_every_pair_holds_the_reported_bell_state():
    bed = build(km=2.0, collection=0.5, efficiency=0.9, dark_hz=0.0, period_ps=10 * US, qubits=4,
                seed=3)
    run_virtual(bed, 2_000)
    pairs, true_pairs = check_pairs(bed)
    assert pairs > 100 and true_pairs == pairs
    eta = bed.t_photon * bed.efficiency
    assert_within_3_sigma(pairs, len(bed.joint_attempts()), 0.5 * eta * eta)


def _network_endpoints(transport: str, ctx: zmq.Context) -> dict[str, HeraldEndpoint]:
    if transport == "zmq":
        bsa = ZmqHeraldEndpoint("bsa", LINK, bind="tcp://127.0.0.1:0", context=ctx)
        return {"bsa": bsa, **{e: ZmqHeraldEndpoint(e, LINK, connect={"bsa": bsa.address},
                                                     context=ctx) for e in "AB"}}
    udp = UdpHeraldEndpoint("bsa", LINK)
    ends = {e: UdpHeraldEndpoint(e, LINK, peers={"bsa": udp.address}) for e in "AB"}
    for e, ep in ends.items():
        udp.add_peer(e, ep.address)
    return {"bsa": udp, **ends}


@pytest.mark.parametrize("transport", ["zmq", "udp"])
def test_over_the_network_on_loopback_in_wall_clock_time(transport):
    """The same link with real herald sockets (ZeroMQ or UDP) and wall-clock end nodes that keep
    their clocks synchronised to the station over the herald link. The simulated hardware (AWGs,
    photons, BSA tagger and its reads) runs on its own virtual time line, paced to follow the
    wall clock, so both ends' photons still leave at the exact attempt time."""
    # Numba loads its compiled kernels on first use (tenths of a second): do that before the
    # wall clock matters, as a node does when it starts.
    run_virtual(build(km=2.0, collection=1.0, efficiency=0.9, dark_hz=1e6, period_ps=10 * US,
                      qubits=4, seed=0), 50)
    node_loop = EventLoop(WallClock())
    ctx = zmq.Context()
    endpoints = _network_endpoints(transport, ctx)
    bsa = endpoints["bsa"]
    for ep in endpoints.values():
        ep.attach(node_loop)
    # One attempt slot of simulated physics costs ~0.5 ms of this CPU; the expiry leaves room for
    # the scheduling hiccups of a loaded 2-core machine.
    period = 2 * MS
    try:
        bed = build(km=2.0, collection=1.0, efficiency=0.9, dark_hz=0.0, period_ps=period,
                    qubits=8, seed=7, node_loop=node_loop, endpoints=endpoints,
                    expiry_ps=100 * MS)
        ClockSyncResponder(bsa, bed.hw_loop.clock)
        syncs = {n: ClockSyncClient(node_loop, endpoints[n], "bsa", node_loop.clock,
                                    interval_ps=2 * MS) for n in "AB"}
        for s in syncs.values():
            s.start()

        def pace() -> None:
            # Catch the hardware up with the wall clock, one attempt period per turn at most, so
            # the node loop keeps serving its sockets while it catches up.
            now = bed.hw_loop.now_ps()
            bed.hw_loop.run_until(max(now, min(node_loop.now_ps(), now + period)))
            node_loop.call_later(20 * US, pace)

        node_loop.call_soon(pace)
        # The station's ROUTER can address an end once that end's DEALER has connected: wait for
        # each end's first clock-sync request (immediate over UDP).
        deadline = time.monotonic() + 5
        while any(bsa.window(n).highest == 0 for n in "AB"):
            assert time.monotonic() < deadline, "the ends never reached the station"
            node_loop.run_until(node_loop.now_ps() + 1 * MS)
        bed.station.start()
        bed.demand.add()
        deadline = time.monotonic() + 30
        while min(s.fired for s in bed.schedules.values()) < 150:  # 0.3 s if the CPU keeps up
            assert time.monotonic() < deadline, "the simulated hardware stalled"
            node_loop.run_until(node_loop.now_ps() + 10 * MS)
        bed.demand.release()
        node_loop.run_until(node_loop.now_ps() + 40 * MS)
        bed.station.stop()
        for s in syncs.values():
            s.stop()
    finally:
        for ep in endpoints.values():
            ep.close()
        ctx.term()
        node_loop.close()

    pairs, true_pairs = check_pairs(bed)
    assert pairs == true_pairs == bed.station.heralder.detector.stats.heralds > 20
    assert all(e.binder.stats.unknown_attempt == 0 for e in bed.ends.values())
    assert bsa.stats.send_failures == 0
    n = len(bed.joint_attempts())
    assert n == len(bed.emitted("A")) == len(bed.emitted("B"))
    eta = bed.t_photon * bed.efficiency
    assert_within_3_sigma(pairs, n, 0.5 * eta * eta)
    for s in syncs.values():
        assert s.exchanges > 10
