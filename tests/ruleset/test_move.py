"""The ``move`` action: a pair on a communication qubit is carried into a free storage qubit of the
same QNIC (SimQNIC.move: duration and depolarising error), promoted, and the qubits stay busy for
the move's duration; a move without a free storage qubit waits; static checks and install refuse
what cannot work; the buffered chain builder writes the QRNA Figure 2 repeater RuleSet."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import RuleSetError
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.builders import buffered_chain_rulesets
from qnode_fw.ruleset.checks import check_ruleset
from qnode_fw.ruleset.executor import PairDelivered, RuleSetExecutor
from qnode_fw.units import US
from sim_backend.memory_params import MemoryParams
from sim_backend.qnic import SimQNIC
from sim_backend.quantum import QuantumRegistry

MOVE_US = 40
P_MOVE = 0.1


def node(num_qubits=2, comm=(0,)):
    loop = EventLoop(VirtualClock())
    registry = QuantumRegistry()
    durations = dict(MemoryParams().durations_ps, move=MOVE_US * US)
    params = MemoryParams(math.inf, math.inf, math.inf, math.inf, 0.0, 0.0, 0.0, P_MOVE,
                          durations_ps=durations)
    qnic = SimQNIC("q", "B", 0, num_qubits, registry, loop.clock, np.random.default_rng(1),
                   params=params, communication_qubits=list(comm))
    partner = SimQNIC("qa", "A", 0, 4, registry, loop.clock, np.random.default_rng(2),
                      params=MemoryParams.ideal())
    delivered = []
    ex = RuleSetExecutor("B", loop, [qnic], send=lambda p, msg: None, deliver=delivered.append)
    return loop, registry, qnic, partner, ex, delivered


def store_then_deliver() -> m.RuleSet:
    return m.RuleSet("rs", "B", "A-B", (
        m.Stage("link", (m.Rule("store", ("A",), (m.EnoughResources("A", 1),), (m.Move("A"),)),)),
        m.Stage("stored", (m.Rule("deliver", ("A",), (m.EnoughResources("A", 1),),
                                  (m.Deliver("A"),)),)),
    ))


def ready(qubit: int, t: int) -> PairReady:
    return PairReady(QubitAddress(0, qubit), PairName("bsa", t), "A", BellState.PHI_PLUS, "A-B",
                     t, t, 0.9)


def test_move_carries_the_pair_into_storage_with_its_error_and_duration():
    loop, registry, qnic, partner, ex, delivered = node()
    ex.install(store_then_deliver())
    f = 0.9
    registry.create_bell_pair(qnic.key(0), partner.key(0), BellState.PHI_PLUS, f, at_ps=0)
    loop.run_until(5 * US)
    ex.on_pair_ready(ready(0, 1))
    assert [op[1:] for op in qnic.operation_log] == [("move", 0, 1)]
    (ev,) = delivered
    assert isinstance(ev, PairDelivered) and ev.qubit == QubitAddress(0, 1)
    # one-qubit depolarising p on a Werner pair: F' = (1 - p) F + p / 4
    assert registry.bell_fidelity(qnic.key(1), partner.key(0)) == pytest.approx((1 - P_MOVE) * f + P_MOVE / 4)
    # the communication qubit is free again for the link, but only once the move has finished
    for q in (QubitAddress(0, 0), QubitAddress(0, 1)):
        assert ex.free_at_ps(q) == 5 * US + MOVE_US * US
    assert QubitAddress(0, 0) not in ex.held_qubits()


def test_move_waits_for_a_free_storage_qubit():
    loop, registry, qnic, partner, ex, delivered = node()
    rs = m.RuleSet("rs", "B", "A-B", (
        m.Stage("link", (m.Rule("store", ("A",), (m.EnoughResources("A", 1),), (m.Move("A"),)),)),
        m.Stage("stored", (m.Rule("drop", ("A",), (m.PairAgeOver("A", 100 * US),),
                                  (m.Free("A"),)),)),
    ))
    ex.install(rs)
    ex.on_pair_ready(ready(0, 1))  # moved into qubit 1, which stays held in "stored"
    assert ex.held_qubits() == {QubitAddress(0, 1)}
    loop.run_until(60 * US)  # past the move: the communication qubit is free to herald again
    ex.on_pair_ready(ready(0, 60 * US))  # no storage left: this one waits on the communication qubit
    assert [op[1:] for op in qnic.operation_log] == [("move", 0, 1)]
    assert ex.held_qubits() == {QubitAddress(0, 0), QubitAddress(0, 1)}
    loop.run_until(200 * US)  # the first pair's discard timer frees the buffer; the second moves in
    moves = [op for op in qnic.operation_log if op[1] == "move"]
    assert [op[1:] for op in moves] == [("move", 0, 1), ("move", 0, 1)]
    assert moves[1][0] == 1 + 100 * US + 1  # created at 1 ps, discarded just past 100 us


def test_move_never_takes_a_storage_qubit_held_outside_the_executor():
    loop, registry, qnic, partner, ex, delivered = node(num_qubits=3)
    ex.held_elsewhere = lambda: {QubitAddress(0, 1)}
    ex.install(store_then_deliver())
    ex.on_pair_ready(ready(0, 1))
    assert [op[1:] for op in qnic.operation_log] == [("move", 0, 2)]


def test_static_checks_and_install_refuse_moves_that_cannot_work():
    back = m.RuleSet("rs", "B", "A-B", (
        m.Stage("link", (m.Rule("store", ("A",), (m.EnoughResources("A", 1),), (m.Promote("A"),)),)),
        m.Stage("stored", (m.Rule("again", ("A",), (m.EnoughResources("A", 1),),
                                  (m.Move("A", "link"),)),)),
    ))
    with pytest.raises(RuleSetError, match="moves back to Stage 'link'"):
        check_ruleset(back)
    unknown = m.RuleSet("rs", "B", "A-B", (
        m.Stage("link", (m.Rule("store", ("A",), (m.EnoughResources("A", 1),),
                                (m.Move("A", "nowhere"),)),)),))
    with pytest.raises(RuleSetError, match="unknown Stage 'nowhere'"):
        check_ruleset(unknown)
    unbound = m.RuleSet("rs", "B", "A-B", (
        m.Stage("link", (m.Rule("store", ("A",), (m.TimerExpired("t"),),
                                (m.Move("A"), m.SetTimer("t", 5))),)),
        m.Stage("stored", (m.Rule("deliver", ("A",), (m.EnoughResources("A", 1),),
                                  (m.Deliver("A"),)),)),))
    with pytest.raises(RuleSetError, match="move needs 1 pair"):
        check_ruleset(unbound)
    loop, registry, qnic, partner, ex, delivered = node(num_qubits=2, comm=(0, 1))
    with pytest.raises(RuleSetError, match="no QNIC of this node has a storage qubit"):
        ex.install(store_then_deliver())


def test_buffered_chain_rulesets_store_left_pass_right_then_swap():
    sets = buffered_chain_rulesets(["A", "B", "C"], {"B": "A"}, ruleset_id="c", connection="A-C")
    b = sets["B"]
    assert [s.name for s in b.stages] == ["buffer", "level-1"]
    rules = {r.name: r for r in b.stages[0].rules}
    assert rules["store-A"].actions == (m.Move("A"),)
    assert rules["pass-C"].actions == (m.Promote("C"),)
    assert any(isinstance(a, m.Swap) for r in b.stages[1].rules for a in r.actions)
    # the end nodes' RuleSets are the plain chain's
    assert [s.name for s in sets["A"].stages] == ["level-1", "deliver"]
    with pytest.raises(ValueError, match="must be a repeater"):
        buffered_chain_rulesets(["A", "B", "C"], {"A": "B"}, ruleset_id="c", connection="A-C")
