"""Every node of a testbed in one process, on one virtual timeline.

The nodes share one :class:`~qnode_fw.loop.EventLoop` on a :class:`~qnode_fw.clock.VirtualClock`,
one simulated World (so a photon one node emits is the photon its BSA station detects) and one
:class:`~qnode_fw.control.InProcessNetwork` whose per-path delay is the fibre delay between the
nodes (classical signals in the same fibre bundle). Each node is the same :class:`~qnode_fw.node.Node`
that ``qnode run`` starts on a lab PC; only the environment differs.

:meth:`VirtualTestbed.crash` and :meth:`VirtualTestbed.restart` play a node PC that dies and boots
again (the fault plan's ``nodes:``): the crash silences its control link without a goodbye, ends
its connections and RuleSets without a word to anyone, loses its quantum memory (every qubit
re-initialised) and drops whatever its software had scheduled to send; the restart brings the
control link back with a new boot id and fresh per-peer state, so peers see "peer restarted".
Parts built around a node by an experiment (its link layer) follow through ``on_crash`` and
``on_restart``.

Each node has its own PC clock (:attr:`VirtualTestbed.clocks`, a
:class:`~timing.clock_sync.SimulatedClock` over the loop's, true until a fault plan's
``clocks:`` steps or detunes it): what the node's software stamps with (emission stamps, clock
sync exchanges). The loop's clock is the testbed's shared timing reference, which the attempt
grid runs on, and every node's monotonic clock, which timers and ages run on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import VirtualClock
from ..config.testbed import LoadedTestbed
from ..control import Impairments, InProcessNetwork, LinkSettings
from ..logs import event
from ..loop import EventLoop
from ..node import Node, NodeEnvironment, NodeStatus, link_costs
from ..rng import RandomStreams
from ..units import MS, US, fibre_delay_ps

log = logging.getLogger(__name__)

#: Control-plane delay between nodes with no fibre between them (switches, a campus LAN).
LAN_DELAY_PS = 50 * US


#: Shortest retransmission timeout of the virtual control links.
MIN_RETRANSMIT_PS = 1 * MS


@dataclass(frozen=True)
class VirtualSettings:
    heartbeat_ps: int = 100 * MS
    missed_heartbeats: int = 3
    #: Retransmission timeout; None: ``MIN_RETRANSMIT_PS`` or four round trips of the slowest
    #: path, whichever is longer. The control link delivers in order, so one lost message holds
    #: back every later one to that peer for this long: the wall-clock default (50 ms, for a LAN
    #: and a loaded PC) would outlast the RuleSets' discard timers of a simulated chain many times.
    retransmit_ps: int | None = None


class VirtualTestbed:
    """Build, start, run and stop every node of a testbed on one virtual clock."""

    def __init__(self, testbed: LoadedTestbed, *, seed: int | None = None,
                 settings: VirtualSettings = VirtualSettings()) -> None:
        from sim_backend.world import World   # only the virtual testbed needs the simulator

        self.testbed = testbed
        self.config = testbed.config
        self.seed = self.config.seed if seed is None else seed
        self.loop = EventLoop(VirtualClock())
        self.streams = RandomStreams(self.seed)
        self.world = World(self.loop.clock, self.streams, self.loop)
        self.network = InProcessNetwork(self.loop, self.streams.get("control/network"),
                                        Impairments(delay_ps=LAN_DELAY_PS))
        slowest = LAN_DELAY_PS
        for a, b in self.config.quantum_links():
            km = self.config.node(a).link_to(b).fibre_km   # type: ignore[union-attr]
            delay = max(LAN_DELAY_PS, fibre_delay_ps(km))
            slowest = max(slowest, delay)
            self.network.set_path(a, b, Impairments(delay_ps=delay))
        retransmit = settings.retransmit_ps or max(MIN_RETRANSMIT_PS, 4 * 2 * slowest)
        link_settings = LinkSettings(heartbeat_ps=settings.heartbeat_ps,
                                     missed_heartbeats=settings.missed_heartbeats,
                                     retransmit_ps=retransmit)
        costs = link_costs(self.config.nodes)
        from timing.clock_sync import SimulatedClock

        #: Every node's PC clock (module docstring): offset 0 and drift 0 unless a fault changes it.
        self.clocks: dict[str, SimulatedClock] = {a: SimulatedClock(self.loop.clock)
                                                  for a in self.config.addresses}
        self.nodes: dict[str, Node] = {}
        for cfg in self.config.nodes:
            peers = [n for n in self.config.addresses if n != cfg.address]
            env = NodeEnvironment(self.loop, self.network.link(cfg.address, peers, link_settings),
                                  self.streams, self.world, costs,
                                  document=testbed.node_documents.get(cfg.address))
            self.nodes[cfg.address] = Node(cfg, env)
        self.started = False
        self.crashed: set[str] = set()
        #: ``fn(address)`` after a node crashed / restarted (an experiment's per-node parts).
        self.on_crash: list[Callable[[str], None]] = []
        self.on_restart: list[Callable[[str], None]] = []
        self._sends: dict[str, _Incarnation] = {}

    def now_ps(self) -> int:
        return self.loop.now_ps()

    def start(self) -> None:
        started: list[Node] = []
        try:
            for node in self.nodes.values():
                node.start()
                started.append(node)
        except BaseException:
            for node in reversed(started):
                node.stop()
            raise
        self.started = True
        for address, node in self.nodes.items():
            self._guard_sends(address, node)
        event(log, logging.INFO, "testbed.started", testbed=self.config.name, nodes=len(self.nodes),
              seed=self.seed)

    def run_for(self, duration_ps: int) -> None:
        self.loop.run_until(self.loop.now_ps() + int(duration_ps))

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.stop()
        # Let the goodbyes arrive so no timer is left pointing at a stopped node.
        self.loop.run_until(self.loop.now_ps() + 10 * LAN_DELAY_PS)
        self.started = False

    # -- a node that dies and boots again ---------------------------------------------------------
    def _guard_sends(self, address: str, node: Node) -> None:
        # The executor sends some results only once its operation's time has passed (a loop
        # timer holding the send function): a dead process must not send them later, so each
        # incarnation gets its own send function and a crash retires it.
        if node.executor is not None:
            inner = self._sends[address].inner if address in self._sends else node.executor._send
            self._sends[address] = node.executor._send = _Incarnation(inner)

    def crash(self, address: str) -> None:
        """``address``'s process dies now: no goodbye, state and quantum memory lost."""
        node = self.nodes[address]
        if address in self.crashed:
            return
        self.crashed.add(address)
        self.network.crash(address)
        if address in self._sends:
            self._sends[address].alive = False
        if node.manager is not None:
            for conn_id, conn in list(node.manager.connections.items()):
                if conn.state != "closed":
                    # Its close messages meet a stopped link and go nowhere.
                    node.manager.teardown(conn_id, detail=f"{address} crashed")
        if node.executor is not None:
            for ruleset_id in list(node.executor.installed):
                node.executor.teardown(ruleset_id)
        for qnic in node.qnics.values():
            for index in range(qnic.num_qubits):
                qnic.init(index)
        event(log, logging.WARNING, "node.crashed", node=address)
        for fn in list(self.on_crash):
            fn(address)

    def restart(self, address: str) -> None:
        """``address`` boots again: control link with a new boot id, nothing installed."""
        node = self.nodes[address]
        if address not in self.crashed:
            return
        self.crashed.discard(address)
        link = node.control
        peers = link.peers
        # A new process: a later boot id and no memory of any peer's stream.
        link._peers.clear()
        for peer in peers:
            link.add_peer(peer)
        link.boot += 1
        link.start()
        self._guard_sends(address, node)
        event(log, logging.WARNING, "node.restarted", node=address, boot=link.boot)
        for fn in list(self.on_restart):
            fn(address)

    def status(self) -> dict[str, NodeStatus]:
        return {a: n.status() for a, n in self.nodes.items()}

    def all_peers_up(self) -> bool:
        return all(up for st in self.status().values() for up, _ in st.peers.values())


class _Incarnation:
    """A send function that works until its process incarnation is retired."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner
        self.alive = True

    def __call__(self, *args) -> None:
        if self.alive:
            self.inner(*args)
