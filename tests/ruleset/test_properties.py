"""Property tests: under lost, duplicated and reordered messages and pairs lost at one end, no
wrongly paired pair is ever delivered, and every qubit is freed or delivered within its timer.

Ground truth comes from what the QNICs physically did, not from the executors' messages: an
oracle watches every node's operations (a Bell-state measurement is CNOT(a, b), H(a), then
measuring both; init breaks a qubit's entanglement) and keeps the physical partner of each qubit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.qnic import Basis, Gate
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset.builders import ChainTimers, chain_rulesets
from qnode_fw.ruleset.bus import InProcessBus, LinkFaults
from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor

from ruleset_recording_qnic import RecordingQNIC

Q = tuple  # (node, index)


class Oracle:
    def __init__(self) -> None:
        self.partner: dict[Q, Q | None] = {}

    def link(self, a: Q, b: Q | None) -> None:
        self.partner[a] = b
        if b is not None:
            self.partner[b] = a

    def detach(self, q: Q) -> None:
        other = self.partner.pop(q, None)
        if other is not None and self.partner.get(other) == q:
            self.partner[other] = None

    def join(self, a: Q, b: Q) -> None:
        """Entanglement swap at a and b: their partners become partners of each other."""
        pa, pb = self.partner.pop(a, None), self.partner.pop(b, None)
        if pa is not None:
            self.partner[pa] = pb
        if pb is not None:
            self.partner[pb] = pa


class OracleQNIC(RecordingQNIC):
    def __init__(self, node: str, oracle: Oracle, rng: np.random.Generator) -> None:
        super().__init__(0, 1 << 20)
        self.node, self.oracle, self.rng = node, oracle, rng
        self.cnot: dict[int, int] = {}
        self.bsm: dict[int, int] = {}
        self.measured: set[int] = set()

    def gate(self, gate, *idx) -> None:
        super().gate(gate, *idx)
        if Gate(gate) is Gate.CNOT:
            self.cnot[idx[0]] = idx[1]
        elif Gate(gate) is Gate.H and idx[0] in self.cnot:
            b = self.cnot.pop(idx[0])
            self.bsm[idx[0]] = b
            self.bsm[b] = idx[0]

    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        self.ops.append(("measure", index, Basis(basis).value))
        other = self.bsm.get(index)
        if other is not None and other in self.measured:
            self.measured.discard(other)
            self.bsm.pop(index), self.bsm.pop(other)
            self.oracle.join((self.node, index), (self.node, other))
        else:
            self.measured.add(index)
        return int(self.rng.integers(2))

    def init(self, index: int) -> None:
        super().init(index)
        self.measured.discard(index)
        self.cnot.pop(index, None)
        self.oracle.detach((self.node, index))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_nodes=st.sampled_from([3, 4, 5]), rounds=st.sampled_from([0, 1]),
       loss=st.floats(0, 0.3), dup=st.floats(0, 0.3), jitter_ps=st.integers(0, 4_000_000),
       one_end_loss=st.floats(0, 0.3), n_pairs=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_no_wrong_pairing_and_nothing_held_forever(n_nodes, rounds, loss, dup, jitter_ps,
                                                   one_end_loss, n_pairs, seed) -> None:
    rng = np.random.default_rng(seed)
    path = [f"n{i}" for i in range(n_nodes)]
    loop = EventLoop(VirtualClock())
    bus = InProcessBus(loop, rng, LinkFaults(1_000_000, jitter_ps, loss, dup))
    timers = ChainTimers()
    sets = chain_rulesets(path, ruleset_id="p", connection="c", purification_rounds=rounds,
                          timers=timers, one_way_latency_ps=lambda a, b: bus.max_one_way_ps())
    oracle = Oracle()
    delivered: list[tuple[str, PairDelivered]] = []
    exs = {}
    for n in path:
        qnic = OracleQNIC(n, oracle, rng)
        ex = RuleSetExecutor(n, loop, [qnic], send=None, deliver=lambda e, n=n: delivered.append((n, e)))
        ex._send = bus.attach(n, ex.on_message)
        ex.install(sets[n], path)
        exs[n] = ex
    next_q = {n: 0 for n in path}
    ready_at: dict[tuple[str, int], int] = {}

    def herald(i: int, t: int) -> None:
        x, y = path[i], path[i + 1]
        name = PairName(f"bsa{i}", t)
        qx, qy = next_q[x], next_q[y]
        next_q[x] += 1
        next_q[y] += 1
        lost = rng.random() < one_end_loss
        lost_end = int(rng.integers(2))
        oracle.link((x, qx), (y, qy))
        for k, (node, q, partner) in enumerate(((x, qx, y), (y, qy, x))):
            if lost and k == lost_end:
                oracle.detach((node, q))
                continue
            ready_at[(node, q)] = t
            exs[node].on_pair_ready(PairReady(QubitAddress(0, q), name, partner,
                                              BellState.PHI_PLUS, f"L{i}", 0, t, 0.95))

    horizon = 0
    for i in range(n_nodes - 1):
        for _ in range(n_pairs * (2 if rounds else 1)):
            t = int(rng.integers(0, 30_000_000))
            horizon = max(horizon, t)
            loop.call_at(t, herald, i, t)
    # Longest any qubit may be held: the end nodes' top-level wait timer, plus message delay.
    limit = timers.waiter(n_nodes) + bus.max_one_way_ps() * 4
    loop.run_until(horizon + limit)

    assert not bus.errors, bus.errors[:3]
    for n, ex in exs.items():
        assert ex.held_qubits() == set(), f"{n} still holds {ex.held_qubits()}"
    by_name: dict[PairName, list[tuple[str, PairDelivered]]] = {}
    for node, ev in delivered:
        assert ev.delivered_ps - ready_at[(node, ev.qubit.index)] <= limit
        by_name.setdefault(ev.name, []).append((node, ev))
        real = oracle.partner.get((node, ev.qubit.index))
        # The real other half, if it still exists, sits at the claimed partner.
        assert real is None or real[0] == ev.partner, (node, ev, real)
    for name, ends in by_name.items():
        assert len(ends) <= 2
        if len(ends) == 2:
            (na, a), (nc, c) = ends
            assert {na, nc} == {path[0], path[-1]} and a.partner == nc and c.partner == na
            assert oracle.partner.get((na, a.qubit.index)) == (nc, c.qubit.index)


def test_faultless_chain_delivers_every_pair_both_ends() -> None:
    """With no faults, every generated end-to-end pair is delivered at both ends, correctly
    paired (the property test's oracle as ground truth)."""
    rng = np.random.default_rng(3)
    path = ["A", "B", "C", "D", "E"]
    loop = EventLoop(VirtualClock())
    bus = InProcessBus(loop, rng)
    sets = chain_rulesets(path, ruleset_id="p", connection="c")
    oracle = Oracle()
    got: list = []
    exs = {}
    for n in path:
        ex = RuleSetExecutor(n, loop, [OracleQNIC(n, oracle, rng)], send=None,
                             deliver=lambda e, n=n: got.append((n, e)))
        ex._send = bus.attach(n, ex.on_message)
        ex.install(sets[n])
        exs[n] = ex
    for k in range(4):
        for i in range(4):
            name = PairName(f"bsa{i}", 1000 * k + i)
            oracle.link((path[i], 10 * k + i), (path[i + 1], 10 * k + i + 5))
            for node, q, partner in ((path[i], 10 * k + i, path[i + 1]),
                                     (path[i + 1], 10 * k + i + 5, path[i])):
                exs[node].on_pair_ready(PairReady(QubitAddress(0, q), name, partner,
                                                  BellState.PHI_PLUS, "l", 0, 1000 * k, 0.95))
    loop.run_until(10**9)
    a = {e.name: e for n, e in got if n == "A"}
    e = {ev.name: ev for n, ev in got if n == "E"}
    assert len(a) == 4 and a.keys() == e.keys()
    for name in a:
        assert oracle.partner[("A", a[name].qubit.index)] == ("E", e[name].qubit.index)
