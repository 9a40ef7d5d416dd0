"""The guarantees of issue 10 at the component level, under faults injected by a FaultPlan.

Nodes run the real stack above the wire: RuleSet executors whose messages travel on reliable
control links (:class:`InProcessControlLink`, retransmission, dedup, epochs, heartbeats), with
the plan's message faults applied by the same shim the testbed runner uses, and a node that
crashes (no goodbye, state lost) and restarts with a new boot id. Ground truth is the physical
partner of every qubit, kept by the RuleSet property tests' oracle from the QNIC operations.

* **No wrong pairs**: a delivered half's real partner, if it still exists, sits at the node the
  delivery names, and when both halves are delivered they are each other's partner.
* **No stuck qubits**: when the run has settled, no executor holds a qubit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.control import Impairments, InProcessNetwork, LinkSettings
from qnode_fw.events import PairReady
from qnode_fw.faults import FaultPlan, FaultTargets, MessageFaults, NodeCrash, apply_fault_plan
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.ruleset.builders import ChainTimers, chain_rulesets
from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor
from qnode_fw.ruleset.messages import message_from_wire
from qnode_fw.units import MS, US
from test_properties import Oracle, OracleQNIC

LINK = LinkSettings(heartbeat_ps=2 * MS, missed_heartbeats=3, retransmit_ps=1 * MS,
                    max_retransmits=6)
DELAY_PS = 50 * US
TIMERS = ChainTimers(swap_base_ps=20 * MS, step_ps=20 * MS, wait_margin_ps=15 * MS,
                     purify_ps=15 * MS)


class Chain:
    """Executors on a chain, their control links, and crash/restart for the fault plan."""

    def __init__(self, path, rounds, seed):
        self.path = path
        self.loop = EventLoop(VirtualClock())
        self.rng = np.random.default_rng(seed)
        self.net = InProcessNetwork(self.loop, np.random.default_rng(seed + 1),
                                    Impairments(delay_ps=DELAY_PS))
        self.sets = chain_rulesets(path, ruleset_id="p", connection="c",
                                   purification_rounds=rounds, timers=TIMERS,
                                   one_way_latency_ps=lambda a, b: DELAY_PS)
        self.oracle = Oracle()
        self.delivered: list[tuple[str, PairDelivered]] = []
        self.links, self.exs, self.boot = {}, {}, {n: 0 for n in path}
        for n in path:
            self._start(n, install=True)

    def _start(self, n, install):
        link = self.net.link(n, [p for p in self.path if p != n], LINK, boot=self.boot[n])
        ex = RuleSetExecutor(n, self.loop, [OracleQNIC(n, self.oracle, self.rng)],
                             send=lambda peer, msg, l=link: l.send(peer, "rs.msg", msg.to_wire()),
                             deliver=lambda e, n=n: self.delivered.append((n, e)))
        link.add_handler("rs.msg", lambda p, t, pl, ex=ex: ex.on_message(p, message_from_wire(pl)))
        if install:
            ex.install(self.sets[n], self.path)
        link.start()
        self.links[n], self.exs[n] = link, ex

    def crash(self, n):
        self.net.crash(n)
        ex = self.exs[n]
        for rs_id in list(ex.installed):     # the process is gone: so is its quantum state
            ex.teardown(rs_id)

    def restart(self, n):
        self.boot[n] += 1
        self._start(n, install=False)         # the connection does not come back by itself

    def herald(self, i, t, qubits):
        x, y = self.path[i], self.path[i + 1]
        qx, qy = next(qubits[x]), next(qubits[y])
        self.oracle.link((x, qx), (y, qy))
        for node, q, partner in ((x, qx, y), (y, qy, x)):
            self.exs[node].on_pair_ready(PairReady(QubitAddress(0, q), PairName(f"bsa{i}", t),
                                                   partner, BellState.PHI_PLUS, f"L{i}", 0, t,
                                                   0.95))


def check_guarantees(chain: Chain) -> None:
    for n, ex in chain.exs.items():
        assert ex.held_qubits() == set(), f"{n} still holds {ex.held_qubits()}"
    ends: dict[PairName, list] = {}
    for node, ev in chain.delivered:
        ends.setdefault(ev.name, []).append((node, ev))
        # Delivered halves are released, not re-initialised, so the oracle still knows them.
        real = chain.oracle.partner.get((node, ev.qubit.index))
        assert real is None or real[0] == ev.partner, (node, ev, real)
    for name, halves in ends.items():
        assert len(halves) <= 2, (name, halves)
        if len(halves) == 2:
            (na, a), (nc, c) = halves
            assert {na, nc} == {chain.path[0], chain.path[-1]}
            assert a.partner == nc and c.partner == na
            assert chain.oracle.partner.get((na, a.qubit.index)) == (nc, c.qubit.index)


messages = st.builds(MessageFaults, drop=st.floats(0, 0.2), dup=st.floats(0, 0.2),
                     reorder=st.floats(0, 0.3), reorder_us=st.floats(1, 3000),
                     delay=st.floats(0, 0.2), delay_us=st.floats(1, 30_000))


@settings(max_examples=25, deadline=None)
@given(n_nodes=st.sampled_from([3, 4]), rounds=st.sampled_from([0, 1]), control=messages,
       crash=st.none() | st.tuples(st.integers(1, 2), st.floats(0.001, 0.04), st.floats(0.001, 0.05)),
       n_pairs=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_no_wrong_pairs_and_no_stuck_qubits_under_message_faults_and_a_crash(
        n_nodes, rounds, control, crash, n_pairs, seed):
    path = [f"n{i}" for i in range(n_nodes)]
    chain = Chain(path, rounds, seed)
    nodes = []
    if crash is not None:
        which, at_s, back_s = crash
        nodes = [NodeCrash(node=path[min(which, n_nodes - 2)], crash_at_s=at_s,
                           restart_after_s=back_s)]
    plan = FaultPlan(control=control, nodes=nodes)
    applied = apply_fault_plan(plan, FaultTargets(
        chain.loop, RandomStreams(seed), control_links=chain.links, crash=chain.crash,
        restart=chain.restart, nodes=path))
    qubits = {n: iter(range(10_000)) for n in path}
    for i in range(n_nodes - 1):
        for _ in range(n_pairs * (2 if rounds else 1)):
            t = int(chain.rng.integers(0, 30 * MS))
            chain.loop.call_at(t, chain.herald, i, t, qubits)
    # Everything settles within the longest discard timer after the last herald, plus the
    # restart and a heartbeat timeout.
    chain.loop.run_until(30 * MS + TIMERS.waiter(n_nodes) + 200 * MS)
    check_guarantees(chain)
    if crash is not None:
        assert [e.kind for e in applied.log][:1] == ["crash"]
    stats = applied.message_stats("control")
    assert (stats.messages > 0) == control.active   # the faults really were in the path


def test_faultless_control_links_deliver_every_pair_at_both_ends():
    chain = Chain(["A", "B", "C"], 0, 4)
    qubits = {n: iter(range(100)) for n in chain.path}
    for k in range(5):
        for i in range(2):
            chain.loop.call_at(k * MS, chain.herald, i, k * MS + i, qubits)
    chain.loop.run_until(200 * MS)
    check_guarantees(chain)
    by_node = {n: {e.name for m, e in chain.delivered if m == n} for n in ("A", "C")}
    assert len(by_node["A"]) == 5 and by_node["A"] == by_node["C"]
