"""RuleSet executor throughput and reaction latency, in process.

* events per second per node: PairReady events and messages a swapping node (B in A-B-C)
  consumes per wall-clock second, including rule evaluation and the issued QNIC operations;
* rule evaluations per second: Rule match attempts per second on that node;
* reaction latency: wall time from handing an event to the executor to the first QNIC operation
  it issues (B: the pair completing a swap → the BSM's CNOT; A: a SwapResult → its correction or
  delivery), p50 and p99.

The QNIC is a no-op driver so the figures are the executor's own cost. Baselines, measured in the
same run: raw ZeroMQ inproc one-way message rate and one-way latency (the floor for a control
message reaching the executor).
"""

from __future__ import annotations

import time

import numpy as np
import zmq

from drivers.qnic import QNIC, Basis, Gate, QubitRole
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.benchmarks import Figure
from qnode_fw.clock import VirtualClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset.builders import chain_rulesets
from qnode_fw.ruleset.executor import RuleSetExecutor
from qnode_fw.ruleset.runtime import InstalledRuleSet


class _NullQNIC(QNIC):
    model = "null"

    def __init__(self) -> None:
        super().__init__("null", "null")
        self.first_op_ns: int | None = None

    def _mark(self) -> None:
        if self.first_op_ns is None:
            self.first_op_ns = time.perf_counter_ns()

    def identify(self) -> str:
        return "null"

    qnic_address = property(lambda self: 0)
    num_qubits = property(lambda self: 1 << 30)

    def role(self, index: int) -> QubitRole:
        return QubitRole.COMMUNICATION

    def init(self, index: int) -> None:
        pass

    def gate(self, gate: Gate, *indices: int) -> None:
        self._mark()

    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        # Alternate outcomes so swap results carry non-zero Pauli frames too.
        self._mark()
        self._toggle = not getattr(self, "_toggle", False)
        return int(self._toggle)

    def emit(self, index: int, attempt_id: int) -> None:
        pass

    def move(self, source: int, destination: int) -> None:
        pass

    def duration_ps(self, operation: str) -> int:
        return 0


def _zmq_baseline(n: int) -> tuple[float, float]:
    """(messages/s, median one-way latency in µs) over a ZeroMQ inproc PAIR."""
    ctx = zmq.Context.instance()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://bench-ruleset")
    b.connect("inproc://bench-ruleset")
    payload = b"x" * 200
    t0 = time.perf_counter()
    for _ in range(n):
        a.send(payload)
        b.recv()
    rate = n / (time.perf_counter() - t0)
    lats = []
    for _ in range(min(n, 2000)):
        t = time.perf_counter_ns()
        a.send(payload)
        b.recv()
        lats.append(time.perf_counter_ns() - t)
    a.close(0)
    b.close(0)
    return rate, float(np.median(lats)) / 1e3


def run(quick: bool = False) -> list[Figure]:
    n_pairs = 2_000 if quick else 20_000
    loop = EventLoop(VirtualClock())
    sets = chain_rulesets(["A", "B", "C"], ruleset_id="bench", connection="A-C")
    qnics = {n: _NullQNIC() for n in "ABC"}
    inbox: list = []
    exs = {}
    for n in "ABC":
        exs[n] = RuleSetExecutor(n, loop, [qnics[n]],
                                 send=lambda peer, msg, src=n: inbox.append((src, peer, msg)),
                                 deliver=lambda ev: None)
        exs[n].install(sets[n])
    matches = [0]
    original = InstalledRuleSet.match

    def counting(self, *args):
        matches[0] += 1
        return original(self, *args)

    InstalledRuleSet.match = counting  # type: ignore[method-assign]
    b_lat, a_lat = [], []
    b_busy = a_busy = 0
    b_events = a_events = 0
    b_matches = 0
    try:
        for i in range(n_pairs):
            ts = 10 * i
            for (x, y, idx) in (("A", "B", 2 * i), ("C", "B", 2 * i + 1)):
                name = PairName(f"bsa-{min(x, y)}{max(x, y)}", ts)
                for node, partner, q in ((x, y, idx), (y, x, idx)):
                    ev = PairReady(QubitAddress(0, q), name, partner, BellState.PHI_PLUS, "l",
                                   i, loop.now_ps(), 0.95)
                    qnics[node].first_op_ns = None
                    before = matches[0]
                    t0 = time.perf_counter_ns()
                    exs[node].on_pair_ready(ev)
                    t1 = time.perf_counter_ns()
                    if node == "B":
                        b_busy += t1 - t0
                        b_events += 1
                        b_matches += matches[0] - before
                        if qnics["B"].first_op_ns is not None:
                            b_lat.append(qnics["B"].first_op_ns - t0)
            while inbox:
                src, dst, msg = inbox.pop(0)
                qnics[dst].first_op_ns = None
                t0 = time.perf_counter_ns()
                exs[dst].on_message(src, msg)
                if dst == "A":
                    a_busy += time.perf_counter_ns() - t0
                    a_events += 1
                    if qnics["A"].first_op_ns is not None:
                        a_lat.append(qnics["A"].first_op_ns - t0)
    finally:
        InstalledRuleSet.match = original  # type: ignore[method-assign]
    zmq_rate, zmq_lat_us = _zmq_baseline(2_000 if quick else 20_000)
    b_rate = b_events / (b_busy / 1e9)
    a_rate = a_events / (a_busy / 1e9)
    b_p50, b_p99 = (float(np.percentile(b_lat, q)) / 1e3 for q in (50, 99))
    a_p50 = float(np.percentile(a_lat, 50)) / 1e3 if a_lat else float("nan")
    a_p99 = float(np.percentile(a_lat, 99)) / 1e3 if a_lat else float("nan")
    evals = b_matches / (b_busy / 1e9)
    rows = [
        ("swapper_events_per_s", b_rate, "events/s", "zmq_inproc_msgs_per_s", zmq_rate,
         f"node B, {b_events} PairReady events"),
        ("end_node_events_per_s", a_rate, "events/s", "zmq_inproc_msgs_per_s", zmq_rate,
         f"node A, {a_events} SwapResult messages"),
        ("rule_evaluations_per_s", evals, "evals/s", "zmq_inproc_msgs_per_s", zmq_rate,
         "Rule match attempts on node B"),
        ("swap_reaction_p50", b_p50, "us", "zmq_inproc_one_way_p50", zmq_lat_us,
         "PairReady completing a swap -> BSM CNOT issued"),
        ("swap_reaction_p99", b_p99, "us", "zmq_inproc_one_way_p50", zmq_lat_us, ""),
        ("correction_reaction_p50", a_p50, "us", "zmq_inproc_one_way_p50", zmq_lat_us,
         "SwapResult with a non-zero frame -> Pauli correction issued"),
        ("correction_reaction_p99", a_p99, "us", "zmq_inproc_one_way_p50", zmq_lat_us, ""),
    ]
    return [Figure(n, round(v, 3), u, bn, round(bv, 3), note) for n, v, u, bn, bv, note in rows]


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
