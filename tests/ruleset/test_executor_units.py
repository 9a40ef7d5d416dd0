"""One test per condition and per action of the executor, with exact QNIC operation sequences
and exact messages; plus assignment, message-guard and teardown behaviour."""

from __future__ import annotations

import pytest

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import ProtocolError, RuleSetError
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.circuits import bbpssw
from qnode_fw.ruleset.executor import (MeasurementOutcome, NoticeReceived, PairDelivered,
                                       RuleSetExecutor)
from qnode_fw.ruleset.messages import Notice, PurificationResult, SwapResult

from ruleset_recording_qnic import RecordingQNIC

PM = m.PurificationMethod


def R(name, partners, conds, acts) -> m.Rule:
    return m.Rule(name, tuple(partners), tuple(conds), tuple(acts))


DELIVER = {p: R(f"deliver-{p}", [p], [m.EnoughResources(p)], [m.Deliver(p)]) for p in "BC"}


class Node:
    def __init__(self, *stages: m.Stage, node: str = "A", outcomes=(), timing=()) -> None:
        self.loop = EventLoop(VirtualClock())
        self.qnic = RecordingQNIC(0, 32, outcomes)
        self.sent: list = []
        self.got: list = []
        self.ex = RuleSetExecutor(node, self.loop, [self.qnic],
                                  send=lambda peer, msg: self.sent.append((peer, msg)),
                                  deliver=self.got.append)
        self.rs = m.RuleSet("rs", node, "conn", tuple(stages), tuple(timing))
        self.ex.install(self.rs)

    def pair(self, index: int, partner: str = "B", ts: int | None = None, fid: float = 0.9,
             created: int = 0, state: BellState = BellState.PHI_PLUS) -> PairName:
        name = PairName(f"bsa-{partner}", ts if ts is not None else 1000 + index)
        self.ex.on_pair_ready(PairReady(QubitAddress(0, index), name, partner, state, "l", index,
                                        created, fid))
        return name

    def delivered(self) -> list[PairDelivered]:
        return [e for e in self.got if isinstance(e, PairDelivered)]

    def ops(self) -> list[tuple]:
        out, self.qnic.ops = self.qnic.ops, []
        return out


# -- conditions -----------------------------------------------------------------------------

def test_enough_resources_counts_and_min_fidelity_and_binds_smallest_names() -> None:
    n = Node(m.Stage("s", (R("two", ["B"], [m.EnoughResources("B", 2, 0.8)],
                                 [m.Deliver("B")]),)))
    n.pair(1, ts=30, fid=0.7)
    n.pair(2, ts=20, fid=0.9)
    assert n.delivered() == []
    n.pair(3, ts=10, fid=0.85)
    assert [d.name.timestamp_ps for d in n.delivered()] == [10, 20]
    assert n.ex.held_qubits() == {QubitAddress(0, 1)}


def test_fidelity_at_least() -> None:
    n = Node(m.Stage("s", (R("good", ["B"], [m.FidelityAtLeast("B", 0.9)], [m.Deliver("B")]),
                           R("old", ["B"], [m.PairAgeOver("B", 10)], [m.Free("B")]))))
    n.pair(1, fid=0.85)
    n.pair(2, fid=0.95)
    assert [d.qubit.index for d in n.delivered()] == [2]


def purifier(method=PM.SINGLE_X) -> tuple[m.Stage, m.Stage]:
    return (m.Stage("pur", (
        R("purify", ["B"], [m.EnoughResources("B", method.pairs_needed)],
          [m.Purify("B", method, 7)]),
        R("keep", ["B"], [m.PurificationResultArrived("B", 7, m.Parity.MATCH)], [m.Promote("B")]),
        R("drop", ["B"], [m.PurificationResultArrived("B", 7, m.Parity.MISMATCH)],
          [m.Free("B", "mismatch")]))), m.Stage("done", (DELIVER["B"],)))


def test_purify_single_x_exact_operations_and_message() -> None:
    n = Node(*purifier(), outcomes=[1])
    k = n.pair(1, ts=5)
    s = n.pair(2, ts=6)
    assert n.ops() == [("CNOT", 1, 2), ("measure", 2, "Z"), ("init", 2)]
    assert n.sent == [("B", PurificationResult("rs", 7, 1, "A", k, (s,), "SINGLE_X", (1,)))]
    assert n.ex.held_qubits() == {QubitAddress(0, 1)}


@pytest.mark.parametrize("method, node, ops", [
    (PM.SINGLE_Z, "A", [("CNOT", 2, 1), ("measure", 2, "X")]),
    (PM.SINGLE_Y, "A", [("S", 1), ("S", 2), ("CNOT", 2, 1), ("measure", 2, "X"), ("SDG", 1)]),
    (PM.SINGLE_Y, "Z", [("SDG", 1), ("SDG", 2), ("CNOT", 2, 1), ("measure", 2, "X"), ("S", 1)]),
    (PM.DOUBLE_X, "A", [("CNOT", 1, 2), ("CNOT", 3, 2), ("measure", 2, "Z"), ("measure", 3, "X")]),
    (PM.DOUBLE_Z, "A", [("CNOT", 2, 1), ("CNOT", 2, 3), ("measure", 2, "X"), ("measure", 3, "Z")]),
])
def test_purify_methods_exact_circuits(method, node, ops) -> None:
    n = Node(*purifier(method), node=node)
    for i in range(1, method.pairs_needed + 1):
        n.pair(i)
    got = [op for op in n.ops() if op[0] != "init"]
    assert got == ops


def test_purification_result_match_promotes_with_bbpssw_estimate() -> None:
    n = Node(*purifier(), outcomes=[0])
    k, s = n.pair(1, fid=0.9), n.pair(2, fid=0.9)
    n.ex.on_message("B", PurificationResult("rs", 7, 1, "B", k, (s,), "SINGLE_X", (0,)))
    (d,) = n.delivered()
    assert d.name == k and d.fidelity_estimate == pytest.approx(bbpssw(0.9, 0.9)[1])
    assert d.fidelity_estimate == pytest.approx(0.9264, abs=1e-4)


@pytest.mark.parametrize("theirs", [
    dict(result=(1,)),                                     # parity differs
    dict(sacrificed=(PairName("bsa-B", 99),)),             # they sacrificed another pair
    dict(method="SINGLE_Z"),                               # they ran another circuit
])
def test_purification_result_mismatch_frees(theirs) -> None:
    n = Node(*purifier(), outcomes=[0])
    k, s = n.pair(1), n.pair(2)
    n.ops()
    fields = dict(sacrificed=(s,), method="SINGLE_X", result=(0,)) | theirs
    n.ex.on_message("B", PurificationResult("rs", 7, 1, "B", k, **fields))
    assert n.delivered() == [] and n.ex.held_qubits() == set()
    assert n.ops() == [("init", 1)]


def test_purification_result_before_own_measurement_waits_in_inbox() -> None:
    n = Node(*purifier(), outcomes=[1])
    k, s = PairName("bsa-B", 1001), PairName("bsa-B", 1002)
    n.ex.on_message("B", PurificationResult("rs", 7, 1, "B", k, (s,), "SINGLE_X", (1,)))
    n.pair(1)
    n.pair(2)
    assert [d.name for d in n.delivered()] == [k]


def corrector() -> tuple[m.Stage, m.Stage]:
    return (m.Stage("wait", (
        R("correct", ["B"], [m.SwapResultArrived("B", 4)], [m.PauliCorrection("B"),
                                                           m.Promote("B")]),
        R("expire", ["B"], [m.PairAgeOver("B", 10**9)], [m.Free("B")]))),
        m.Stage("done", (DELIVER["C"],)))


@pytest.mark.parametrize("fx, fz, ops", [(0, 0, []), (1, 0, [("X", 1)]), (0, 1, [("Z", 1)]),
                                         (1, 1, [("Z", 1), ("X", 1)])])
def test_swap_result_renames_and_corrects_by_pair_name(fx, fz, ops) -> None:
    n = Node(*corrector())
    mine = n.pair(1)
    other = n.pair(2)
    new = PairName("B", 5000)
    n.ex.on_message("B", SwapResult("rs", 4, 1, "B", mine, fx, fz, "C", new, 0.8, 17))
    assert n.ops() == ops
    (d,) = n.delivered()
    assert (d.qubit, d.name, d.partner, d.fidelity_estimate, d.created_ps) == (
        QubitAddress(0, 1), new, "C", 0.8, 17)
    assert n.ex.held_qubits() == {QubitAddress(0, 2)} and other != mine


def test_pair_age_over_frees_exactly_after_limit() -> None:
    n = Node(m.Stage("s", (R("expire", ["B"], [m.PairAgeOver("B", 1000)], [m.Free("B")]),
                           R("never", ["B"], [m.SwapResultArrived("B", 1)],
                             [m.PauliCorrection("B"), m.Free("B")]))))
    n.pair(1, created=0)
    n.loop.run_until(1000)
    assert n.ex.held_qubits() == {QubitAddress(0, 1)}
    n.loop.run_until(1001)
    assert n.ex.held_qubits() == set() and n.ops() == [("init", 1)]


def test_stage_timeout_counts_from_stage_entry() -> None:
    n = Node(m.Stage("s0", (R("later", ["B"], [m.EnoughResources("B")], [m.Promote("B")]),)),
             m.Stage("s1", (R("timeout", ["B"], [m.StageTimeout("B", 500)], [m.Free("B")]),
                            R("never", ["B"], [m.SwapResultArrived("B", 1)],
                              [m.PauliCorrection("B"), m.Free("B")]))))
    n.loop.run_until(2000)
    n.pair(1, created=0)          # age 2000 already; the stage timeout counts from entry
    n.loop.run_until(2500)
    assert n.ex.held_qubits() == {QubitAddress(0, 1)}
    n.loop.run_until(2501)
    assert n.ex.held_qubits() == set()


def test_set_timer_and_timer_expired() -> None:
    n = Node(m.Stage("s", (
        R("arm", [], [m.VariableCompare("armed", m.CompareOp.EQ, 0)],
          [m.SetTimer("t", 500), m.SetVariable("armed", 1)]),
        R("fire", ["B"], [m.TimerExpired("t"), m.EnoughResources("B")], [m.Free("B")]),
        R("expire", ["B"], [m.PairAgeOver("B", 10**6)], [m.Free("B")])), {"armed": 0}))
    n.pair(1)                                  # arms the timer on first evaluation
    n.loop.run_until(499)
    assert n.ex.held_qubits() == {QubitAddress(0, 1)}
    n.loop.run_until(500)
    assert n.ex.held_qubits() == set()
    n.pair(2)                                  # timer consumed, armed==1: nothing fires
    assert n.ex.held_qubits() == {QubitAddress(0, 2)}


def test_measure_count_then_fallback_rule() -> None:
    n = Node(m.Stage("s", (
        R("tomo", ["B"], [m.EnoughResources("B"), m.MeasureCount(2)],
          [m.Measure("B", m.MeasureBasis.X)]),
        R("rest", ["B"], [m.EnoughResources("B")], [m.Deliver("B")]))), outcomes=[1, 0])
    for i in range(1, 4):
        n.pair(i)
    outs = [e for e in n.got if isinstance(e, MeasurementOutcome)]
    assert [(o.name.timestamp_ps, o.basis, o.outcome) for o in outs] == [(1001, "X", 1),
                                                                         (1002, "X", 0)]
    assert [d.qubit.index for d in n.delivered()] == [3]


def test_measure_cycles_counter() -> None:
    n = Node(m.Stage("s", (
        R("first", ["B"], [m.EnoughResources("B"), m.MeasureCount(1, m.Counter.CYCLES)],
          [m.Deliver("B")]),
        R("rest", ["B"], [m.EnoughResources("B")], [m.Free("B")]))))
    n.pair(1)
    n.pair(2)
    assert [d.qubit.index for d in n.delivered()] == [1]


def test_variable_compare_and_increment_variable() -> None:
    n = Node(m.Stage("s", (
        R("count", ["B"], [m.EnoughResources("B"), m.VariableCompare("n", m.CompareOp.LT, 2)],
          [m.Deliver("B"), m.IncrementVariable("n", 1)]),
        R("rest", ["B"], [m.EnoughResources("B")], [m.Free("B")])), {"n": 0}))
    for i in range(1, 4):
        n.pair(i)
    assert [d.qubit.index for d in n.delivered()] == [1, 2]
    assert n.ex.installed["rs"].variables[0] == {"n": 2.0}


# -- actions --------------------------------------------------------------------------------

def swapper(outcomes) -> Node:
    return Node(m.Stage("s", (R("swap", ["A", "C"], [m.EnoughResources("A"), m.EnoughResources("C")],
                                [m.Swap("A", "C", 4)]),)), node="B", outcomes=outcomes)


def test_swap_bell_measurement_and_transfer_messages() -> None:
    n = swapper([1, 0])
    n.loop.run_until(777)
    left = n.pair(1, partner="A", fid=0.9, created=100)
    right = n.pair(2, partner="C", fid=0.8, created=50)
    assert n.ops() == [("CNOT", 1, 2), ("H", 1), ("measure", 1, "Z"), ("measure", 2, "Z"),
                       ("init", 1), ("init", 2)]
    new = PairName("B", 777)
    fid = 0.9 * 0.8 + 0.1 * 0.2 / 3
    # The new pair is as old as the right half (created at 50): 50 ps older than the left half,
    # as old as the right one; each receiver ages it from its own half's creation.
    assert n.sent == [
        ("A", SwapResult("rs", 4, 1, "B", left, 0, 1, "C", new, pytest.approx(fid), 50, 50)),
        ("C", SwapResult("rs", 4, 2, "B", right, 0, 0, "A", new, pytest.approx(fid), 50, 0)),
    ]
    assert n.ex.held_qubits() == set()


def test_two_swaps_at_one_instant_get_distinct_names() -> None:
    n = swapper([])
    for i, p in enumerate("ACAC"):
        n.pair(i + 1, partner=p)
    names = {msg.new_pair_name for _, msg in n.sent}
    assert names == {PairName("B", 0), PairName("B", 1)}


def test_swap_only_with_expected_partners_no_leapfrogging() -> None:
    n = Node(m.Stage("s", (R("swap", ["A", "C"], [m.EnoughResources("A"), m.EnoughResources("C")],
                             [m.Swap("A", "C", 4)]),
                           R("deliver-D", ["D"], [m.EnoughResources("D")], [m.Free("D")]))),
             node="B")
    n.pair(1, partner="A")
    assert n.ex.on_pair_ready(PairReady(QubitAddress(0, 2), PairName("x", 1), "D",
                                        BellState.PHI_PLUS, "l", 0, 0, 0.9)) == "rs"
    assert n.sent == []                          # a pair with D is never swapped with A's


def test_measure_random_basis_uses_rng_stream() -> None:
    n = Node(m.Stage("s", (R("m", ["B"], [m.EnoughResources("B")],
                             [m.Measure("B", m.MeasureBasis.RANDOM, "chsh")]),)))
    for i in range(1, 31):
        n.pair(i)
    outs = [e for e in n.got if isinstance(e, MeasurementOutcome)]
    assert {o.basis for o in outs} == {"X", "Y", "Z"} and {o.purpose for o in outs} == {"chsh"}
    assert [op[2] for op in n.ops() if op[0] == "measure"] == [o.basis for o in outs]


def test_qcirc_maps_slots_to_bound_qubits() -> None:
    n = Node(m.Stage("s", (R("c", ["B"], [m.EnoughResources("B", 2)],
                             [m.QCirc("B", (m.GateOp("H", (1,)), m.GateOp("CZ", (1, 0)))),
                              m.Deliver("B")]),)))
    n.pair(5, ts=1)
    n.pair(3, ts=2)
    assert n.ops() == [("H", 3), ("CZ", 3, 5)]


def test_promote_to_next_or_named_stage() -> None:
    n = Node(m.Stage("s0", (R("jump", ["B"], [m.FidelityAtLeast("B", 0.9)], [m.Promote("B", "s2")]),
                            R("step", ["B"], [m.EnoughResources("B")], [m.Promote("B")]))),
             m.Stage("s1", (R("x", ["B"], [m.EnoughResources("B")], [m.Free("B")]),)),
             m.Stage("s2", (DELIVER["B"],)))
    n.pair(1, fid=0.95)
    n.pair(2, fid=0.5)
    assert [d.qubit.index for d in n.delivered()] == [1]
    assert n.ops() == [("init", 2)]


def test_free_and_deliver_and_send_message() -> None:
    n = Node(m.Stage("s", (R("go", ["B"], [m.EnoughResources("B", 2)],
                             [m.SendMessage("B", "got two", 3), m.Deliver("B")]),)))
    a, b = n.pair(1), n.pair(2)
    assert n.sent == [("B", Notice("rs", 3, 1, "A", a, "got two"))]
    assert [d.name for d in n.delivered()] == [a, b]
    n.ex.on_message("B", Notice("rs", -1, 1, "B", None, "hello"))
    assert n.got[-1] == NoticeReceived("rs", "B", None, "hello")


def test_set_variable() -> None:
    n = Node(m.Stage("s", (R("go", ["B"], [m.EnoughResources("B")],
                             [m.SetVariable("last", 42), m.Free("B")]),), {"last": 0}))
    n.pair(1)
    assert n.ex.installed["rs"].variables[0]["last"] == 42


# -- assignment, guards, teardown --------------------------------------------------------------

def test_herald_correction_only_at_lower_address_end() -> None:
    a = Node(m.Stage("s", (DELIVER["B"],)), node="A")
    a.pair(1, state=BellState.PSI_MINUS)
    assert a.ops() == [("Y", 1)]
    z = Node(m.Stage("s", (DELIVER["B"],)), node="Z")
    z.pair(1, state=BellState.PSI_MINUS)
    assert z.ops() == []


def test_each_pair_assigned_once_and_never_reassigned() -> None:
    n = Node(m.Stage("s", (R("e", ["B"], [m.PairAgeOver("B", 10)], [m.Free("B")]),
                           R("n", ["B"], [m.SwapResultArrived("B", 1)],
                             [m.PauliCorrection("B"), m.Free("B")]))))
    n.pair(1, ts=5)
    with pytest.raises(ProtocolError, match="already held"):
        n.pair(1, ts=6)
    with pytest.raises(ProtocolError, match="already assigned"):
        n.pair(2, ts=5)


def test_pair_no_ruleset_expects_is_freed() -> None:
    n = Node(m.Stage("s", (DELIVER["B"],)))
    assert n.ex.on_pair_ready(PairReady(QubitAddress(0, 4), PairName("x", 1), "Q",
                                        BellState.PHI_PLUS, "l", 0, 0, 0.9)) is None
    assert n.ops() == [("init", 4)] and n.ex.stats["unassigned"] == 1


def test_pairs_spread_over_rulesets_that_expect_the_partner() -> None:
    n = Node(m.Stage("s", (R("w", ["B"], [m.SwapResultArrived("B", 1)],
                             [m.PauliCorrection("B"), m.Free("B")]),
                           R("e", ["B"], [m.PairAgeOver("B", 10**6)], [m.Free("B")]))))
    n.ex.install(m.RuleSet("rs2", "A", "conn2", n.rs.stages))
    ids = [n.ex.on_pair_ready(PairReady(QubitAddress(0, i), PairName("x", i), "B",
                                        BellState.PHI_PLUS, "l", i, 0, 0.9)) for i in range(4)]
    assert ids == ["rs", "rs2", "rs", "rs2"]


@pytest.mark.parametrize("msg, words", [
    (Notice("nope", -1, 1, "B", None, "x"), "'nope' is not installed"),
    (Notice("rs", -1, 1, "Q", None, "x"), "sender field says 'Q'"),
    (SwapResult("rs", 4, 1, "B", PairName("x", 1), 0, 0, "D", PairName("B", 9), 0.9, 0),
     "new partner 'D' is not one this RuleSet expects"),
])
def test_messages_refused_loudly(msg, words) -> None:
    n = Node(*corrector())
    with pytest.raises(ProtocolError, match=words) as info:
        n.ex.on_message("B", msg)
    assert info.value.peer == "B" and n.ex.stats["rejected"] == 1


def test_message_from_node_not_in_ruleset_refused() -> None:
    n = Node(*corrector())
    with pytest.raises(ProtocolError, match="has no partner 'Q'"):
        n.ex.on_message("Q", Notice("rs", -1, 1, "Q", None, "x"))


def test_duplicate_message_ignored_and_contradiction_refused() -> None:
    n = Node(*corrector())
    mine = n.pair(1)
    msg = SwapResult("rs", 4, 1, "B", PairName("x", 77), 0, 0, "C", PairName("B", 9), 0.9, 0)
    n.ex.on_message("B", msg)
    n.ex.on_message("B", msg)
    assert n.ex.stats["duplicates"] == 1
    with pytest.raises(ProtocolError, match="second SwapResult"):
        n.ex.on_message("B", SwapResult("rs", 4, 2, "B", PairName("x", 77), 1, 0, "C",
                                        PairName("B", 10), 0.9, 0))
    assert mine in n.ex.installed["rs"].pairs


def test_unmatched_message_expires_and_is_counted() -> None:
    n = Node(*corrector())
    n.ex.on_message("B", SwapResult("rs", 4, 1, "B", PairName("gone", 1), 0, 0, "C",
                                    PairName("B", 9), 0.9, 0))
    n.loop.run_until(2 * 10**9)
    assert n.ex.stats["stale_messages"] == 1 and n.ex.installed["rs"].inbox == {}


def test_teardown_frees_everything_and_refuses_later_messages() -> None:
    n = Node(*corrector())
    n.pair(1)
    n.pair(2)
    n.ops()
    freed = n.ex.teardown("rs")
    assert sorted(freed) == [QubitAddress(0, 1), QubitAddress(0, 2)]
    assert sorted(n.ops()) == [("init", 1), ("init", 2)] and n.ex.held_qubits() == set()
    with pytest.raises(ProtocolError, match="was torn down"):
        n.ex.on_message("B", Notice("rs", -1, 1, "B", None, "late"))
    n.loop.run_until(2 * 10**9)             # no timer of the torn-down RuleSet fires
    assert n.ops() == []


def test_install_refuses_wrong_owner_and_reused_id() -> None:
    n = Node(m.Stage("s", (DELIVER["B"],)))
    with pytest.raises(RuleSetError, match="is for 'Z'"):
        n.ex.install(m.RuleSet("x", "Z", "c", (m.Stage("s", (DELIVER["B"],)),)))
    with pytest.raises(RuleSetError, match="already installed"):
        n.ex.install(n.rs)


# -- bounded memory over long runs ------------------------------------------------------------
def test_pair_names_and_message_sequence_numbers_are_forgotten_after_the_horizon():
    from qnode_fw.ruleset.runtime import NAME_MEMORY_PS

    # A deliver-everything RuleSet runs for 60 s of virtual time: one pair per 10 ms, each freed
    # by the application at once. What the executor remembers stays bounded by the horizon.
    n = Node(m.Stage("s0", (DELIVER["B"],)))
    inst = n.ex.installed["rs"]
    sizes = []
    for k in range(6000):
        t = k * 10_000_000_000          # 10 ms apart
        n.loop.run_until(t)
        name = n.pair(k % 32, ts=t)
        n.ex.on_message("B", Notice("rs", 0, k + 1, "B", name, "hello"))
        sizes.append((len(n.ex._assigned_names), len(inst.seen)))
    per_horizon = NAME_MEMORY_PS // 10_000_000_000      # pairs that fit in one horizon
    assert max(a for a, _ in sizes) <= per_horizon + 1
    assert max(s for _, s in sizes) <= per_horizon + 1
    assert sizes[-1][0] >= per_horizon - 1             # still refusing recent duplicates


def test_a_stale_pair_name_is_refused_so_forgetting_never_lets_a_replay_in():
    """Stale is judged against newer names from the same origin: once bsa-B has named a pair
    NAME_MEMORY_PS after an old one, the old name (forgotten by then) is refused, as a PairReady
    and inside a swap result."""
    from qnode_fw.ruleset.runtime import NAME_MEMORY_PS

    n = Node(m.Stage("s0", (DELIVER["B"], DELIVER["C"])))
    n.pair(2, ts=NAME_MEMORY_PS + 5_000_000)          # the newest name from bsa-B
    with pytest.raises(ProtocolError, match="stale pair name"):
        n.pair(0, ts=1_000)
    fresh = n.pair(1, ts=NAME_MEMORY_PS)
    with pytest.raises(ProtocolError, match="stale pair name"):
        n.ex.on_message("B", SwapResult("rs", 10002, 1, "B", PairName("bsa-B", 1_000), 0, 0, "C",
                                        fresh, 0.9, 0))
    n.pair(3, partner="C", ts=1_000)                  # another origin: its own time base


def test_pair_names_in_a_time_base_far_from_this_nodes_clock_are_taken():
    """In a lab a station names pairs with its tagger's timebase (counting from the tagger's
    power-on), unrelated to this PC's monotonic clock: names hours behind or ahead of the node's
    loop time are neither refused as stale nor forgotten early."""
    from qnode_fw.ruleset.runtime import NAME_MEMORY_PS

    n = Node(m.Stage("s0", (DELIVER["B"],)))
    n.loop.run_until(3600 * NAME_MEMORY_PS // 10)      # the PC has been up for an hour
    behind = n.pair(0, ts=5_000)                       # the tagger was switched on just now
    with pytest.raises(ProtocolError, match="already assigned"):
        n.pair(1, ts=5_000)                            # the same name again: refused, not forgotten
    ahead = n.pair(2, ts=10**18)                       # a timebase far ahead of the PC
    assert [e.name for e in n.delivered()] == [behind, ahead]
    assert n.ex.stats["rejected"] == 0
