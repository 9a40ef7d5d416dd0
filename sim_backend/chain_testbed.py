"""A simulated testbed of connected nodes on one virtual-clock EventLoop.

Each node gets an in-process control link, a SimQNIC over one shared exact quantum registry, the
real RuleSet executor and the real ConnectionManager; heralded link-pair generation is Poisson at
each link's rate and creates Werner pairs of the link's fidelity straight into the executors (the
photonic heralding path is modelled elsewhere, in memory_link.py and the timing layer). The
"application" at each end consumes delivered pairs: once both halves of a pair are delivered it
records their exact fidelity and frees both qubits.

Used by the connection tests (tests/connection/) and by the simulated-testbed benchmark
(bench/bench_testbed.py), so that both measure the same assembly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.connection import ConnectionManager, MuxPolicy, ResourcePool, SetupSettings
from qnode_fw.connection.border import BorderRouter, VirtualLinkSpec
from qnode_fw.connection.planner import Refusal
from qnode_fw.connection.virtual_link import VirtualLink
from qnode_fw.control import Impairments, InProcessNetwork, LinkSettings
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.routing import LinkFigures, RouteTable, link_key, seconds_per_pair
from qnode_fw.ruleset.circuits import bsm_duration_ps
from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor
from qnode_fw.ruleset.messages import message_from_wire
from qnode_fw.units import MS, S, US
from sim_backend.memory_params import MemoryParams
from sim_backend.qnic import SimQNIC
from sim_backend.quantum.registry import QuantumRegistry


@dataclass
class LinkSpec:
    rate: float          # heralded pairs/s
    fidelity: float


@dataclass
class NodeStack:
    name: str
    qnic: SimQNIC
    executor: RuleSetExecutor
    pool: ResourcePool
    manager: ConnectionManager
    link: object
    delivered: list[PairDelivered] = field(default_factory=list)
    #: set when the node is a border router: inner connections' deliveries go to it
    border: BorderRouter | None = None


class SimTestbed:
    def __init__(self, links: dict[tuple[str, str], LinkSpec], *, qubits: int = 6,
                 policy: MuxPolicy = MuxPolicy.BUFFER, seed: int = 1,
                 memory_t2_ps: int = 1 * S, index_fidelity: float = 0.8,
                 control_delay_ps: int = 20 * US, timeout_ps: int = 200 * MS) -> None:
        self.loop = EventLoop(VirtualClock())
        self.rng = np.random.default_rng(seed)
        self.net = InProcessNetwork(self.loop, np.random.default_rng(seed + 1),
                                    Impairments(delay_ps=control_delay_ps))
        self.registry = QuantumRegistry()
        self.links = {link_key(*k): v for k, v in links.items()}
        names = sorted({n for k in self.links for n in k})
        costs = {k: seconds_per_pair(v.fidelity, v.rate, index_fidelity) for k, v in self.links.items()}
        self.costs = costs
        self.index_fidelity = index_fidelity
        self.memory_t2_ps = memory_t2_ps
        params = MemoryParams(storage_t2_ps=memory_t2_ps, communication_t2_ps=memory_t2_ps,
                              single_qubit_gate_error=0.0, two_qubit_gate_error=0.0,
                              measurement_error=0.0)
        settings = LinkSettings(heartbeat_ps=10 * MS, missed_heartbeats=3, retransmit_ps=2 * MS,
                                max_retransmits=5)
        self.nodes: dict[str, NodeStack] = {}
        self.crashed: set[str] = set()
        self.app_waiting: dict[PairName, tuple[str, QubitAddress]] = {}
        self.fidelities: dict[str, list[float]] = {}
        for n in names:
            # The classical control network reaches every node (swap results go from the
            # swapping node to both ends, which need not be its neighbours).
            peers = [p for p in names if p != n]
            link = self.net.link(n, peers, settings)
            qnic = SimQNIC(f"{n}-qnic", n, 0, qubits, self.registry, self.loop.clock,
                           np.random.default_rng([seed, len(self.nodes)]), params)
            stack_holder: list[NodeStack] = []
            ex = RuleSetExecutor(n, self.loop, [qnic],
                                 send=lambda p, msg, l=link, n=n: None if n in self.crashed
                                 else l.send(p, "rs.msg", msg.to_wire()),
                                 deliver=lambda ev, h=stack_holder: self._delivered(h[0], ev),
                                 rng=np.random.default_rng([seed, 99, len(self.nodes)]))
            link.add_handler("rs.msg", lambda p, t, pl, e=ex: e.on_message(p, message_from_wire(pl)))
            pool = ResourcePool(n, [QubitAddress(0, i) for i in range(qubits)], policy)
            mgr = ConnectionManager(
                n, self.loop, link, pool, ex,
                link_figures=lambda nb, me=n: self._figures(me, nb),
                memory_t_ps=memory_t2_ps, routes=RouteTable(n, costs),
                settings=SetupSettings(timeout_ps=timeout_ps, one_way_latency_ps=control_delay_ps),
                swap_operation_ps=bsm_duration_ps(qnic))
            stack = NodeStack(n, qnic, ex, pool, mgr, link)
            stack_holder.append(stack)
            self.nodes[n] = stack
        for s in self.nodes.values():
            s.link.start()
        self.generating = False
        self.unmatched = 0

    def _figures(self, a: str, b: str) -> LinkFigures:
        spec = self.links[link_key(a, b)]
        return LinkFigures(spec.rate, spec.fidelity, 1000)

    # -- link-pair generation ---------------------------------------------------------------
    def start_links(self) -> None:
        self.generating = True
        for key in self.links:
            self._schedule(key)

    def _schedule(self, key) -> None:
        if not self.generating:
            return
        gap = self.rng.exponential(1.0 / self.links[key].rate)
        self.loop.call_later(max(1, int(gap * S)), self._herald, key)

    def _free_qubit(self, node: str, conn: str | None) -> QubitAddress | None:
        s = self.nodes[node]
        busy = s.executor.held_qubits() | {q for (n, q) in self.app_waiting.values() if n == node}
        candidates = s.pool.partition(conn) if conn else s.pool.qubits
        for q in candidates:
            if q not in busy:
                return q
        return None

    def _herald(self, key) -> None:
        a, b = key
        if a in self.crashed or b in self.crashed:
            return          # a dead node's end of the link attempts nothing any more
        spec = self.links[key]
        now = self.loop.now_ps()
        conns = [None]
        if self.nodes[a].pool.policy is MuxPolicy.BUFFER:
            shared = [c for c in self.nodes[a].pool.connections if c in self.nodes[b].pool.connections]
            conns = sorted(shared, key=lambda c: now % max(1, len(shared)))  # rotate by time
            if shared:
                k = (now // 1000) % len(shared)
                conns = shared[k:] + shared[:k]
        for conn in conns:
            qa, qb = self._free_qubit(a, conn), self._free_qubit(b, conn)
            if qa is None or qb is None:
                continue
            self.registry.create_bell_pair(self.nodes[a].qnic.key(qa.index),
                                           self.nodes[b].qnic.key(qb.index),
                                           BellState.PHI_PLUS, spec.fidelity, at_ps=now)
            name = PairName(f"bsa-{a}{b}", now)
            for me, q, other in ((a, qa, b), (b, qb, a)):
                ev = PairReady(q, name, other, BellState.PHI_PLUS, f"{a}-{b}", 0, now, spec.fidelity)
                self.nodes[me].executor.on_pair_ready(ev, conn)
            break
        self._schedule(key)

    def _delivered(self, stack: NodeStack, ev) -> None:
        if not isinstance(ev, PairDelivered):
            return
        if stack.border is not None and stack.border.on_delivery(ev):
            return
        stack.delivered.append(ev)
        stack.manager.pair_delivered(ev.ruleset_id)
        other = self.app_waiting.pop(ev.name, None)
        if other is None:
            # The other half may never come (its end discarded it on a timer): the application
            # gives up on an unmatched half after a while, as a real one must.
            self.app_waiting[ev.name] = (stack.name, ev.qubit)
            self.loop.call_later(5 * MS, self._give_up_half, ev.name)
            return
        on, oq = other
        f = self.registry.bell_fidelity(stack.qnic.key(ev.qubit.index),
                                        self.nodes[on].qnic.key(oq.index))
        self.fidelities.setdefault(ev.connection, []).append(f)
        stack.qnic.init(ev.qubit.index)
        self.nodes[on].qnic.init(oq.index)

    def _give_up_half(self, name: PairName) -> None:
        held = self.app_waiting.pop(name, None)
        if held is not None:
            self.unmatched += 1
            self.nodes[held[0]].qnic.init(held[1].index)

    def crash(self, node: str) -> None:
        """``node``'s process dies: its control link goes silent (no goodbye), its links stop
        heralding and its executor's timers, still on the shared loop, send nothing."""
        self.crashed.add(node)
        self.net.crash(node)

    # -- recursion --------------------------------------------------------------------------
    def border_router(self, node: str, specs: list[VirtualLinkSpec],
                      inner_links: list[tuple[str, str]]) -> BorderRouter:
        """Make ``node`` a border router serving the virtual links ``specs``; its inner routes
        run over ``inner_links`` (its network) only."""
        inner = {link_key(*k) for k in inner_links}
        stack = self.nodes[node]
        stack.border = BorderRouter(stack.manager, stack.executor,
                                    RouteTable(node, {k: c for k, c in self.costs.items() if k in inner}),
                                    specs)
        return stack.border

    def advertise(self, inner_path: list[str], min_fidelity: float) -> VirtualLink | Refusal:
        """The virtual link over ``inner_path`` as its entry border router advertises it: the
        inner planner on the links' figures and the nodes' qubits."""
        return VirtualLink.advertised(inner_path, self._figures,
                                      lambda n: len(self.nodes[n].pool.qubits), self.memory_t2_ps,
                                      min_fidelity)

    def outer_routes(self, node: str, inner_links: list[tuple[str, str]],
                     virtual: VirtualLink) -> RouteTable:
        """``node``'s route table in the outer layer: the physical links outside the network
        and the virtual link in place of the network's inside."""
        inside = {link_key(*k) for k in inner_links}
        costs = {k: c for k, c in self.costs.items() if k not in inside}
        costs[link_key(virtual.entry, virtual.exit)] = virtual.cost(self.index_fidelity)
        return RouteTable(node, costs)

    # -- helpers ----------------------------------------------------------------------------
    def run(self, ms: float) -> None:
        self.loop.run_until(self.loop.now_ps() + int(ms * MS))

    def held_anywhere(self) -> dict[str, object]:
        out = {}
        for n, s in self.nodes.items():
            if s.executor.held_qubits():
                out[n] = s.executor.held_qubits()
            if s.manager.held():
                out[n + ":reserved"] = s.manager.held()
        return out


#: The network behind the border routers of :func:`border_chain`.
BORDER_CHAIN_INNER = [("X1", "X2"), ("X2", "X3")]


def border_chain(inner: LinkSpec, outer: LinkSpec, promise: float,
                 extra: dict[tuple[str, str], LinkSpec] | None = None, **kw) -> SimTestbed:
    """A - X1 ~ X3 - B: network X1-X2-X3 (links ``inner``) behind border routers X1 and X3, which
    serve it as one virtual link promising ``promise`` fidelity; A-X1 and X3-B are ``outer``;
    ``extra`` adds links outside the network. Every node's route table is the physical one: give
    an Initiator :meth:`SimTestbed.outer_routes` to route in the outer layer."""
    links = {("A", "X1"): outer, ("X1", "X2"): inner, ("X2", "X3"): inner, ("X3", "B"): outer}
    links.update(extra or {})
    tb = SimTestbed(links, **kw)
    for node, far in (("X1", "X3"), ("X3", "X1")):
        tb.border_router(node, [VirtualLinkSpec(far, promise)], BORDER_CHAIN_INNER)
    return tb


def chain_names(n: int) -> list[str]:
    """Node names along an n-node chain: A, B, C, ... up to 26 nodes, R00, R01, ... beyond."""
    if n <= 26:
        return [chr(ord("A") + i) for i in range(n)]
    return [f"R{i:02d}" for i in range(n)]


def chain(n: int, rate: float = 2000.0, fidelity: float = 0.97, **kw) -> SimTestbed:
    """An n-node repeater chain with identical links of ``rate`` heralded pairs/s and ``fidelity``."""
    names = chain_names(n)
    return SimTestbed({(names[i], names[i + 1]): LinkSpec(rate, fidelity) for i in range(n - 1)}, **kw)
