"""The QuISP-format 3-node swapping set imports and runs to the same outcome as the native set:
the same end-to-end pairs, delivered at A and C under the same names, physically paired (the
oracle of test_properties watches the QNIC operations), with the same Pauli corrections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset.builders import chain_rulesets
from qnode_fw.ruleset.bus import InProcessBus
from qnode_fw.ruleset.checks import check_connection
from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor
from qnode_fw.ruleset.quisp import import_quisp

from test_properties import Oracle, OracleQNIC

QUISP_SET = Path(__file__).resolve().parents[2] / "configs" / "rulesets" / "quisp_swap_3node.json"


def run_chain(sets: dict, seed: int = 11):
    rng = np.random.default_rng(seed)
    loop = EventLoop(VirtualClock())
    bus = InProcessBus(loop, np.random.default_rng(0))
    oracle = Oracle()
    got: list = []
    qnics = {}
    exs = {}
    for n in "ABC":
        qnics[n] = OracleQNIC(n, oracle, rng)
        ex = RuleSetExecutor(n, loop, [qnics[n]], send=None,
                             deliver=lambda e, n=n: got.append((n, e)))
        ex._send = bus.attach(n, ex.on_message)
        ex.install(sets[n])
        exs[n] = ex
    for k in range(6):
        for i, (x, y) in enumerate((("A", "B"), ("B", "C"))):
            name = PairName(f"bsa{i}", 1000 * k + i)
            qx, qy = 10 * k + i, 10 * k + i + 5
            oracle.link((x, qx), (y, qy))
            for node, q, partner in ((x, qx, y), (y, qy, x)):
                exs[node].on_pair_ready(PairReady(QubitAddress(0, q), name, partner,
                                                  BellState.PHI_PLUS, "l", k, 1000 * k, 0.95))
    loop.run_until(10**9)
    return got, oracle, qnics, exs


def test_quisp_set_runs_to_the_native_outcome() -> None:
    docs = json.loads(QUISP_SET.read_text())
    imported = {rs.owner: rs for rs in (
        import_quisp(d, address_map={1: "A", 2: "B", 3: "C"}, discard_after_ps=20_000_000,
                     tomography_as_delivery=True) for d in docs)}
    imported = check_connection(imported, lambda a, b: 5_000_000, lambda n: 0)
    native = chain_rulesets(["A", "B", "C"], ruleset_id="4242", connection="c")
    outcomes = []
    for sets in (imported, native):
        got, oracle, qnics, exs = run_chain(sets)
        ends = {n: {e.name: e for m, e in got if m == n and isinstance(e, PairDelivered)}
                for n in "AC"}
        assert len(ends["A"]) == 6 and ends["A"].keys() == ends["C"].keys()
        for name, a in ends["A"].items():
            c = ends["C"][name]
            assert (a.partner, c.partner) == ("C", "A")
            assert oracle.partner[("A", a.qubit.index)] == ("C", c.qubit.index)
        assert all(ex.held_qubits() == set() for ex in exs.values())
        outcomes.append((sorted((n, a.qubit.index) for n, a in ends["A"].items()),
                         [op for op in qnics["A"].ops], [op for op in qnics["B"].ops]))
    assert outcomes[0] == outcomes[1]
    assert {op[0] for op in outcomes[0][1]} >= {"X", "Z"}  # corrections did happen at A
