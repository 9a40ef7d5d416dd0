"""Install-time static checks: each unsafe construct is refused with an error naming stage/rule
and field; the chain builder's RuleSets pass; the connection check catches leapfrogging and
discard timers shorter than the swapper's timer plus the one-way latency."""

from __future__ import annotations

import dataclasses

import pytest

from qnode_fw.errors import RuleSetError
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.builders import ChainTimers, chain_rulesets
from qnode_fw.ruleset.checks import check_connection, check_ruleset


def rs_of(*stages: m.Stage, owner: str = "A", timing=()) -> m.RuleSet:
    return m.RuleSet("rs", owner, "conn", tuple(stages), tuple(timing))


def rule(name, partners, conditions, actions) -> m.Rule:
    return m.Rule(name, tuple(partners), tuple(conditions), tuple(actions))


DELIVER_B = rule("deliver", ["B"], [m.EnoughResources("B")], [m.Deliver("B")])


def refused(rs: m.RuleSet, nodes=None) -> RuleSetError:
    with pytest.raises(RuleSetError) as info:
        check_ruleset(rs, nodes)
    return info.value


def test_minimal_ruleset_passes() -> None:
    check_ruleset(rs_of(m.Stage("s0", (DELIVER_B,))), {"A", "B"})


def test_unknown_partner_not_listed_by_rule() -> None:
    e = refused(rs_of(m.Stage("s0", (rule("r", ["B"], [m.EnoughResources("C")],
                                            [m.Deliver("C")]),))))
    assert (e.rule, e.field) == ("s0/r", "conditions[0].partner")
    assert "unknown partner 'C'" in e.message


def test_unknown_partner_outside_connection() -> None:
    e = refused(rs_of(m.Stage("s0", (DELIVER_B,))), nodes={"A", "C"})
    assert (e.rule, e.field) == ("s0/deliver", "partners[0]")


def test_partner_is_owner() -> None:
    e = refused(rs_of(m.Stage("s0", (rule("r", ["A"], [m.EnoughResources("A")],
                                            [m.Deliver("A")]),))))
    assert "owner" in e.message


def test_unreachable_stage() -> None:
    e = refused(rs_of(m.Stage("s0", (DELIVER_B,)), m.Stage("orphan", (DELIVER_B,))))
    assert e.rule == "orphan" and "unreachable" in e.message


def test_stage_with_no_way_out_for_promoted_partner() -> None:
    stuck = m.Stage("s1", (rule("t", ["B"], [m.TimerExpired("t")], [m.SetTimer("t", 5)]),))
    e = refused(rs_of(m.Stage("s0", (rule("p", ["B"], [m.EnoughResources("B")],
                                          [m.Promote("B")]),)), stuck))
    assert e.rule == "s1" and "no way out for pairs with 'B'" in e.message


def test_empty_final_stage_has_no_way_out() -> None:
    e = refused(rs_of(m.Stage("s0", (rule("p", ["B"], [m.EnoughResources("B")],
                                          [m.Promote("B")]),)), m.Stage("s1", ())))
    assert e.rule == "s1" and "no Rules" in e.message


def test_purification_without_mismatch_rule_has_no_way_out() -> None:
    st = m.Stage("s0", (
        rule("pur", ["B"], [m.EnoughResources("B", 2)],
             [m.Purify("B", m.PurificationMethod.SINGLE_X, 7)]),
        rule("keep", ["B"], [m.PurificationResultArrived("B", 7)], [m.Deliver("B")]),
    ))
    e = refused(rs_of(st))
    assert e.rule == "s0/pur" and "mismatch" in e.message


@pytest.mark.parametrize("cond, act, words", [
    ([m.EnoughResources("B", 1)], [m.Purify("B", m.PurificationMethod.SINGLE_Z, 1)],
     "purify needs 2 pair(s) with 'B' but the conditions guarantee 1"),
    ([m.EnoughResources("B", 2)], [m.Purify("B", m.PurificationMethod.DOUBLE_X, 1)],
     "purify needs 3"),
    ([m.EnoughResources("B", 1)], [m.Swap("B", "C", 1)], "swap needs 1 pair(s) with 'C'"),
    ([m.EnoughResources("B", 1)],
     [m.QCirc("B", (m.GateOp("CNOT", (0, 1)),)), m.Free("B")], "qcirc needs 2"),
    ([m.TimerExpired("t")], [m.Deliver("B"), m.SetTimer("t", 1)], "deliver needs 1"),
])
def test_actions_needing_more_qubits_than_guaranteed(cond, act, words) -> None:
    e = refused(rs_of(m.Stage("s0", (rule("r", ["B", "C"], cond, act),))))
    assert words in e.message and e.rule == "s0/r"


def test_pauli_correction_needs_swap_result() -> None:
    e = refused(rs_of(m.Stage("s0", (rule("r", ["B"], [m.EnoughResources("B")],
                                          [m.PauliCorrection("B"), m.Deliver("B")]),))))
    assert "without a swap_result" in e.message


def test_gate_outside_fixed_set_and_wrong_arity() -> None:
    e = refused(rs_of(m.Stage("s0", (rule("r", ["B"], [m.EnoughResources("B", 2)],
                                          [m.QCirc("B", (m.GateOp("T", (0,)),)), m.Free("B")]),))))
    assert e.field == "actions[0].gates[0].gate"
    e = refused(rs_of(m.Stage("s0", (rule("r", ["B"], [m.EnoughResources("B", 2)],
                                          [m.QCirc("B", (m.GateOp("CNOT", (0, 0)),)),
                                           m.Free("B")]),))))
    assert "distinct" in e.message


def test_rule_that_would_fire_forever() -> None:
    e = refused(rs_of(m.Stage("s0", (DELIVER_B, rule("spin", ["B"], [m.EnoughResources("B")],
                                                     [m.SendMessage("B", "hi")])))))
    assert e.rule == "s0/spin" and "fire forever" in e.message
    st = m.Stage("s0", (DELIVER_B, rule("v", [], [m.VariableCompare("x", m.CompareOp.LT, 3)],
                                         [m.SetVariable("y", 1)])), {"x": 0, "y": 0})
    assert "fire forever" in refused(rs_of(st)).message


def test_counting_rule_that_changes_its_variable_is_fine() -> None:
    st = m.Stage("s0", (DELIVER_B, rule("v", [], [m.VariableCompare("x", m.CompareOp.LT, 3)],
                                         [m.IncrementVariable("x")])), {"x": 0})
    check_ruleset(rs_of(st))


def test_undeclared_variable_and_unarmed_timer() -> None:
    st = m.Stage("s0", (DELIVER_B, rule("v", [], [m.VariableCompare("x", m.CompareOp.LT, 3)],
                                         [m.IncrementVariable("x")])))
    assert "not declared in Stage 's0'" in refused(rs_of(st)).message
    st = m.Stage("s0", (DELIVER_B, rule("t", ["B"], [m.TimerExpired("t"), m.EnoughResources("B")],
                                         [m.Free("B")])))
    assert "never armed" in refused(rs_of(st)).message


def test_backward_promote_is_a_cycle_and_unknown_stage_is_refused() -> None:
    s0 = m.Stage("s0", (rule("p", ["B"], [m.EnoughResources("B")], [m.Promote("B")]),))
    s1 = m.Stage("s1", (rule("back", ["B"], [m.EnoughResources("B")], [m.Promote("B", "s0")]),))
    e = refused(rs_of(s0, s1))
    assert "cyclic" in e.message and e.rule == "s1/back"
    s1 = m.Stage("s1", (rule("x", ["B"], [m.EnoughResources("B")], [m.Promote("B", "nope")]),))
    assert "unknown Stage 'nope'" in refused(rs_of(s0, s1)).message
    s1 = m.Stage("s1", (rule("x", ["B"], [m.EnoughResources("B")], [m.Promote("B")]),))
    assert "past the last Stage" in refused(rs_of(s0, s1)).message


def test_discard_timer_too_short_names_both_timers() -> None:
    rs = chain_rulesets(["A", "B", "C"], ruleset_id="r", connection="c")["A"]
    short = dataclasses.replace(rs, timing=(m.PeerTiming("B", 28_000_000, 5_000_000),))
    e = refused(short)
    assert e.rule == "level-1/expire-B" and e.field == "timing[0]"
    assert "pair_age_over(B) = 30000000 ps" in e.message
    assert "swapper B's discard timer 28000000 ps" in e.message
    assert "one-way latency 5000000 ps" in e.message


def test_chain_builder_with_too_little_margin_is_refused_at_connection_check() -> None:
    with pytest.raises(RuleSetError, match="fires before swapper B's discard timer"):
        chain_rulesets(["A", "B", "C"], ruleset_id="r", connection="c",
                       timers=ChainTimers(wait_margin_ps=1_000_000),
                       one_way_latency_ps=lambda a, b: 2_000_000)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8])
def test_chain_rulesets_pass_every_check(n: int) -> None:
    path = [f"n{i}" for i in range(n)]
    sets = chain_rulesets(path, ruleset_id="r", connection="c", purification_rounds=1)
    for rs in sets.values():
        check_ruleset(rs, path)


def test_leapfrogging_is_refused() -> None:
    sets = chain_rulesets(["A", "B", "C", "D"], ruleset_id="r", connection="c")
    # Make C also swap the B-C level-1 pairs with D: B and C would both swap pairs they share.
    c = sets["C"]
    bad = m.Stage("level-1", (
        rule("swap", ["B", "D"], [m.EnoughResources("B"), m.EnoughResources("D")],
             [m.Swap("B", "D", 1)]),))
    sets["C"] = dataclasses.replace(c, stages=(bad,))
    sets["B"] = dataclasses.replace(sets["B"], stages=(m.Stage("level-1", (
        rule("swap", ["A", "C"], [m.EnoughResources("A"), m.EnoughResources("C")],
             [m.Swap("A", "C", 2)]),)),))
    with pytest.raises(RuleSetError, match="leapfrogging: B swaps pairs it holds with C and C"):
        check_connection(sets, lambda a, b: 0, lambda n: 0)


def test_connection_needs_one_id_and_swapper_timer() -> None:
    sets = chain_rulesets(["A", "B", "C"], ruleset_id="r", connection="c")
    with pytest.raises(RuleSetError, match="share one id"):
        check_connection({**sets, "C": dataclasses.replace(sets["C"], id="other")}, lambda a, b: 0,
                         lambda n: 0)
    b = sets["B"]
    no_timer = m.Stage("level-1", (rule("swap", ["A", "C"], [m.EnoughResources("A"),
                                                             m.EnoughResources("C")],
                                        [m.Swap("A", "C", 10002)]),))
    with pytest.raises(RuleSetError, match="swapper B has no discard timer"):
        check_connection({**sets, "B": dataclasses.replace(b, stages=(no_timer,))},
                         lambda a, b: 0, lambda n: 0)


def test_discard_timer_check_counts_the_swappers_bell_measurement_time():
    # Waiters discard 10 us after the swapper: enough for a 4 us message, not for a 507 us
    # NV-centre Bell measurement before the notice can leave.
    timers = ChainTimers(swap_base_ps=20_000_000, step_ps=20_000_000, wait_margin_ps=10_000_000)
    ok = chain_rulesets(["A", "B", "C"], ruleset_id="r", connection="c", timers=timers,
                        one_way_latency_ps=lambda a, b: 4_000_000, swap_operation_ps=lambda n: 0)
    assert {t.operation_ps for rs in ok.values() for t in rs.timing} == {0}
    with pytest.raises(RuleSetError, match=r"plus its swap operation 507000000 ps \(507 µs\)"):
        chain_rulesets(["A", "B", "C"], ruleset_id="r", connection="c", timers=timers,
                       one_way_latency_ps=lambda a, b: 4_000_000,
                       swap_operation_ps=lambda n: 507_000_000)
