"""A 3-node chain A - B - C in virtual time whose middle node is a repeater, built from the real
parts: sim QNICs, taggers, optical switch and both-endpoints memory links on one World; a BSA
station runtime per link; the timing layer's link ends at every node; RuleSet executors exchanging
swap results over an in-process control bus; an application at A and C that takes each delivered
end-to-end pair, records its exact fidelity and frees it.

``repeater="switched"``: B is the QRNA Figure 2 minimal repeater (one communication qubit, one
storage qubit, a 1x2 optical switch; SwitchedTransceiver, buffered RuleSet that moves the left
pair into storage). ``repeater="two_comm"``: B has one communication qubit per link, no switch,
no moves (plain chain RuleSet). End nodes have enough communication qubits to try in every slot.
With ``repeater_ruleset=False`` no node runs a RuleSet: every pair is freed as soon as it is ready
and B wants pairs on both links all the time (a scheduler-only run)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.clock import VirtualClock
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.ruleset.builders import ChainTimers, buffered_chain_rulesets, chain_rulesets
from qnode_fw.ruleset.bus import InProcessBus, LinkFaults
from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor
from qnode_fw.units import MS, US
from sim_backend.link_schemes import SimLinkPhysics, build_sim_link
from sim_backend.world import World
from timing.comm_qubits import CommQubitPool
from timing.herald_link import InProcessHeraldLink
from timing.link_end import BsaStationRuntime, LinkEndRuntime
from timing.schedule import DemandCounter
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams
from timing.switched import SwitchedRoute, SwitchedTransceiver, SwitchPolicy

IDEAL = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf,
         "storage_t1_ps": math.inf, "storage_t2_ps": math.inf,
         "single_qubit_gate_error": 0.0, "two_qubit_gate_error": 0.0, "measurement_error": 0.0,
         "move_error": 0.0}


@dataclass(frozen=True)
class ChainSettings:
    km_to_bsa: float = 1.0
    period_ps: int = 12 * US
    herald_delay_ps: int = 1_300_000
    switching_time_ps: int = 23 * US
    switch_loss_db: float = 1.0
    move_ps: int = 31 * US
    move_error: float = 0.05
    cnot_ps: int = 6 * US
    h_ps: int = 100_000
    measure_ps: int = 1_500_000
    end_comm_qubits: int = 4
    control_delay_ps: int = 5 * US
    physics: SimLinkPhysics = field(default_factory=lambda: SimLinkPhysics(
        collection_efficiency=1.0, link_fidelity=0.92))

    @property
    def bsm_ps(self) -> int:
        return self.cnot_ps + self.h_ps + 2 * self.measure_ps


@dataclass
class Chain:
    loop: EventLoop
    world: World
    settings: ChainSettings
    links: dict[str, LinkSchemeParams]
    qnics: dict[str, object]
    executors: dict[str, RuleSetExecutor]
    ends: dict[tuple[str, str], LinkEndRuntime]
    transceiver: SwitchedTransceiver | None = None
    switch: object = None
    e2e: list[tuple[int, PairName, float]] = field(default_factory=list)  # (time, name, fidelity)
    waiting: dict[PairName, tuple[str, QubitAddress]] = field(default_factory=dict)
    app_held: dict[str, set[QubitAddress]] = field(default_factory=lambda: {"A": set(), "C": set()})
    b_pairs_freed: int = 0

    def run(self, until_ps: int) -> None:
        self.loop.run_until(until_ps)

    def swap_times(self) -> list[int]:
        """When B ran its Bell-state measurements (one per end-to-end pair)."""
        return [op[0] for op in self.qnics["B"].operation_log if op[1] == "CNOT"]


def build_chain(repeater: str, settings: ChainSettings = ChainSettings(), *, seed: int = 1,
                policy: SwitchPolicy | None = None, repeater_ruleset: bool = True) -> Chain:
    s = settings
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(seed)
    world = World(clock, streams, loop)
    ctx = DriverContext(clock=clock, streams=streams, world=world, loop=loop)
    links = {}
    start = -(-(2 * int(s.km_to_bsa * 4_897_000) + s.period_ps) // s.period_ps) * s.period_ps
    for name, a, b in (("AB", "A", "B"), ("BC", "B", "C")):
        links[name] = LinkSchemeParams(name, LinkScheme.BOTH_ENDPOINTS, f"bsa-{name}",
                                       (LinkEndParams(a, 0, s.km_to_bsa), LinkEndParams(b, 0, s.km_to_bsa)),
                                       period_ps=s.period_ps, start_ps=start,
                                       herald_delay_ps=s.herald_delay_ps)
    durations = {"init": 2 * US, "measure": s.measure_ps, "single_qubit_gate": s.h_ps,
                 "two_qubit_gate": s.cnot_ps, "emit": 3 * US, "absorb": 1 * US, "move": s.move_ps}
    qnics = {}
    for node in ("A", "C"):
        qnics[node] = open_instrument(InstrumentSpec(f"q{node}", "qnic", "sim", "sim", options={
            "node": node, "num_qubits": s.end_comm_qubits, "memory": dict(IDEAL, durations_ps=durations)}), ctx)
    b_memory = dict(IDEAL, move_error=s.move_error, durations_ps=durations)
    comm = [0] if repeater == "switched" else [0, 1]
    qnics["B"] = open_instrument(InstrumentSpec("qB", "qnic", "sim", "sim", options={
        "node": "B", "num_qubits": 2, "communication_qubits": comm, "memory": b_memory,
        "full_operation_log": True}), ctx)             # swap_times() reads the whole run
    switch = None
    switches, wired = {}, {}
    if repeater == "switched":
        switch = open_instrument(InstrumentSpec("swB", "optical_switch", "sim", "sim", options={
            "num_inputs": 1, "num_outputs": 2, "switching_time_ps": s.switching_time_ps,
            "insertion_loss_db": s.switch_loss_db}), ctx)
        switches = {"AB": {"B": ("swB", 1, 1)}, "BC": {"B": ("swB", 1, 2)}}
    else:
        wired = {"AB": {"B": (0,)}, "BC": {"B": (1,)}}
    taggers = {}
    for name, params in links.items():
        tt = open_instrument(InstrumentSpec(f"tt-{params.station}", "time_tagger", "sim", "sim"), ctx)
        tt.start_stream([1, 2, 3, 4, 5])
        taggers[name] = tt
        build_sim_link(world, params, s.physics, taggers={params.station: tt.name},
                       switches=switches.get(name), qubits=wired.get(name))

    bus = InProcessBus(loop, np.random.default_rng(seed), LinkFaults(delay_ps=s.control_delay_ps))
    chain = Chain(loop, world, s, links, qnics, {}, {}, switch=switch)
    for node in ("A", "B", "C"):
        holder = []
        send = bus.attach(node, lambda peer, msg, h=holder: h[0].on_message(peer, msg))
        ex = RuleSetExecutor(node, loop, [qnics[node]], send=send,
                             deliver=lambda ev, node=node: _delivered(chain, node, ev),
                             held_elsewhere=lambda node=node: chain.app_held.get(node, set()))
        holder.append(ex)
        chain.executors[node] = ex
    timers = ChainTimers(swap_base_ps=20 * MS, step_ps=20 * MS, wait_margin_ps=2 * MS)
    latency = lambda a, b: bus.max_one_way_ps()  # noqa: E731
    swap_time = lambda n: s.bsm_ps if n == "B" else 0  # noqa: E731
    if repeater == "switched":
        sets = buffered_chain_rulesets(["A", "B", "C"], {"B": "A"}, ruleset_id="e2e", connection="A-C",
                                       timers=timers, one_way_latency_ps=latency, swap_operation_ps=swap_time)
    else:
        sets = chain_rulesets(["A", "B", "C"], ruleset_id="e2e", connection="A-C", timers=timers,
                              one_way_latency_ps=latency, swap_operation_ps=swap_time)
    for node, rs in sets.items():
        if repeater_ruleset:  # without them every heralded pair is freed at once (unassigned)
            chain.executors[node].install(rs, ["A", "B", "C"])

    herald_links = {}
    for name, params in links.items():
        hl = InProcessHeraldLink(loop, name)
        for i, node in enumerate(params.nodes):
            hl.set_delay(params.station, node, params.delay_ps(i))
        herald_links[name] = hl
        BsaStationRuntime(loop, params, taggers[name], hl.endpoint(params.station)).start()
    pools = {}
    for node in ("A", "B", "C"):
        ex = chain.executors[node]
        pools[node] = CommQubitPool(qnics[node], clock,
                                    held=lambda ex=ex, node=node: ex.held_qubits() | chain.app_held.get(node, set()),
                                    free_at_ps=ex.free_at_ps)

    def on_ready(node):
        ex = chain.executors[node]

        def ready(ev):
            if node == "B" and not repeater_ruleset:
                qnics["B"].init(ev.qubit.index)  # a scheduler-only run: B consumes at once
                chain.b_pairs_freed += 1
            else:
                ex.on_pair_ready(ev, "e2e")
            if node == "B" and chain.transceiver is not None:
                chain.transceiver.reevaluate()
        return ready

    for name, params in links.items():
        for i, node in enumerate(params.nodes):
            chain.ends[(name, node)] = LinkEndRuntime(
                loop, params, i, qnics[node], pools[node], herald_links[name].endpoint(node),
                on_pair_ready=on_ready(node), qubits=wired.get(name, {}).get(node),
                fidelity_estimate=s.physics.link_fidelity)
    demand = DemandCounter()
    chain.ends[("AB", "A")].start_schedule(demand)
    chain.ends[("BC", "C")].start_schedule(demand)
    partner = {"AB": "A", "BC": "C"}
    if repeater_ruleset:
        wants = lambda link: chain.executors["B"].pairs_with(partner[link]) == 0  # noqa: E731
    else:
        wants = lambda link: True  # noqa: E731
    if repeater == "switched":
        chain.transceiver = SwitchedTransceiver(
            loop, switch, 1, {"AB": SwitchedRoute(chain.ends[("AB", "B")], 1),
                              "BC": SwitchedRoute(chain.ends[("BC", "B")], 2)},
            s.switching_time_ps, policy or SwitchPolicy(("AB", "BC")), wants)
        chain.transceiver.start()
    else:
        for name in ("AB", "BC"):
            chain.ends[(name, "B")].start_schedule(demand, gate=lambda k, name=name: wants(name))
    demand.add()
    return chain


def _delivered(chain: Chain, node: str, ev) -> None:
    if not isinstance(ev, PairDelivered):
        return
    chain.app_held[node].add(ev.qubit)
    other = chain.waiting.pop(ev.name, None)
    if other is None:
        chain.waiting[ev.name] = (node, ev.qubit)
        return
    o_node, o_qubit = other
    f = chain.world.registry.bell_fidelity(chain.qnics[node].key(ev.qubit.index),
                                           chain.qnics[o_node].key(o_qubit.index))
    chain.e2e.append((chain.loop.now_ps(), ev.name, f))
    for n, q in ((node, ev.qubit), (o_node, o_qubit)):
        chain.qnics[n].init(q.index)
        chain.app_held[n].discard(q)
