"""One simulated link of any scheme, run end to end in virtual time: sim QNICs and taggers on a
World, the scheme's photonics, the timing layer's runtimes at both ends and at the station, and an
in-process herald link with fibre delays. The consumer at each end takes every heralded pair as
soon as it is ready, records the exact Bell fidelity of the two memories at that moment (the other
end's qubit is still waiting for its own herald), and frees its qubit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from sim_backend.link_schemes import SimLinkPhysics, build_sim_link
from sim_backend.world import World
from timing.comm_qubits import CommQubitPool
from timing.frames import FrameType
from timing.herald_link import InProcessHeraldLink
from timing.link_end import BsaStationRuntime, EppsStationRuntime, LinkEndRuntime
from timing.schedule import DemandCounter
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

IDEAL_MEMORY = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf,
                "storage_t1_ps": math.inf, "storage_t2_ps": math.inf,
                "single_qubit_gate_error": 0.0, "two_qubit_gate_error": 0.0,
                "measurement_error": 0.0, "move_error": 0.0}

STATION = {LinkScheme.BOTH_ENDPOINTS: "bsa", LinkScheme.MIDPOINT_SOURCE: "epps",
           LinkScheme.AT_SOURCE: "B"}


@dataclass
class LinkRun:
    params: LinkSchemeParams
    world: World
    link: object
    ends: list[LinkEndRuntime]
    ready: list[list[tuple[int, PairReady]]] = field(default_factory=lambda: [[], []])
    fidelity: dict[int, float] = field(default_factory=dict)
    frames: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # peer, node, k, t, outcome
    herald_link: InProcessHeraldLink | None = None
    duration_ps: int = 0

    def joint_attempts(self) -> set[int]:
        a, b = ({k for k, _, _ in e.attempts} for e in self.ends)
        return a & b

    def pairs(self) -> set[int]:
        return {r.attempt_id for _, r in self.ready[0]} & {r.attempt_id for _, r in self.ready[1]}


def run_link(scheme: LinkScheme, fibre_km: tuple[float, float], *, period_ps: int, slots: int,
             physics: SimLinkPhysics, communication_qubits: tuple[int, int] = (1, 1),
             seed: int = 1, herald_delay_ps: int = 1_300_000, guard_ps: int = 600_000,
             window_ps: int = 2_000) -> LinkRun:
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(seed)
    world = World(clock, streams, loop)
    ctx = DriverContext(clock=clock, streams=streams, world=world, loop=loop)
    station = STATION[scheme]
    ends = (LinkEndParams("A", 0, fibre_km[0]), LinkEndParams("B", 0, fibre_km[1]))
    probe = LinkSchemeParams("A-B", scheme, station, ends, period_ps=period_ps)
    # slot 0 late enough that every end can still act in it: all ends start in the same slot
    lead = max(-probe.action_offset_ps(i) for i in (0, 1)) + guard_ps
    params = LinkSchemeParams("A-B", scheme, station, ends, period_ps=period_ps,
                              start_ps=-(-lead // period_ps) * period_ps, window_ps=window_ps,
                              guard_ps=guard_ps, herald_delay_ps=herald_delay_ps)
    qnics = []
    for node, n in zip(params.nodes, communication_qubits):
        qnics.append(open_instrument(InstrumentSpec(f"q{node}", "qnic", "sim", "sim", options={
            "node": node, "num_qubits": n, "memory": IDEAL_MEMORY}), ctx))
    heralding = [station] if scheme is LinkScheme.BOTH_ENDPOINTS else \
        [params.nodes[i] for i in (0, 1) if params.heralds_locally(i)]
    taggers = {}
    for node in heralding:
        taggers[node] = open_instrument(InstrumentSpec(f"tt-{node}", "time_tagger", "sim", "sim"), ctx)
        taggers[node].start_stream([1, 2, 3, 4, 5])
    link = build_sim_link(world, params, physics, taggers={n: t.name for n, t in taggers.items()})
    hl = InProcessHeraldLink(loop, params.name)
    if scheme is LinkScheme.BOTH_ENDPOINTS:
        for i, node in enumerate(params.nodes):
            hl.set_delay(station, node, params.delay_ps(i))
    elif scheme is LinkScheme.MIDPOINT_SOURCE:
        hl.set_delay("A", "B", params.delay_ps(0) + params.delay_ps(1))
    else:
        hl.set_delay("A", "B", params.delay_ps(params.emitter_index))
    run = LinkRun(params, world, link, [], herald_link=hl)
    demand = DemandCounter()
    for i, node in enumerate(params.nodes):
        pool = CommQubitPool(qnics[i], clock)
        endpoint = hl.endpoint(node)
        endpoint.subscribe(FrameType.HERALD, lambda peer, f, node=node: run.frames.append(
            (peer, node, f.attempt_id, loop.now_ps(), int(f.outcome))))
        end = LinkEndRuntime(loop, params, i, qnics[i], pool, endpoint,
                             on_pair_ready=lambda r, i=i: _consume(run, i, r, loop.now_ps()),
                             tagger=taggers.get(node), fidelity_estimate=physics.link_fidelity,
                             full_attempt_history=True)
        run.ends.append(end)
    for end in run.ends:
        end.start_schedule(demand)
    if scheme is LinkScheme.BOTH_ENDPOINTS:
        BsaStationRuntime(loop, params, taggers[station], hl.endpoint(station)).start()
    elif scheme is LinkScheme.MIDPOINT_SOURCE:
        EppsStationRuntime(loop, params, lambda k: link.fire_source(k, world), demand)
    demand.add()
    stop = params.slot_time_ps(slots) + min(params.action_offset_ps(i) for i in (0, 1))
    loop.call_at(stop, demand.release)
    loop.run_until(stop + max(params.busy_ps(i) for i in (0, 1)) + 2 * period_ps)
    run.duration_ps = slots * period_ps
    return run


def _consume(run: LinkRun, i: int, ready: PairReady, now: int) -> None:
    run.ready[i].append((now, ready))
    other = run.ends[1 - i]
    end = run.ends[i]
    mine = end.qnic.key(ready.qubit.index)
    if ready.attempt_id not in run.fidelity:
        theirs = other.binder.pending.get(ready.attempt_id)
        if theirs is not None:  # the other half is still waiting for its herald: state untouched
            run.fidelity[ready.attempt_id] = run.world.registry.bell_fidelity(
                mine, other.qnic.key(theirs.index), ready.bell_state)
    end.qnic.init(ready.qubit.index)
