"""What the whole-run fault tests check between slices of a virtual run: no executor holds a pair
longer than its RuleSet's longest timer (ages on the loop clock, which ``HeldPair.created_ps`` is
on), and no link end keeps an emission past its binder's expiry, each plus one slice (the
granularity of the look)."""

from __future__ import annotations

from qnode_fw.ruleset import model as rs_model


def longest_timer_ps(ruleset: rs_model.RuleSet) -> int:
    return max(c.limit_ps if isinstance(c, rs_model.PairAgeOver) else c.after_ps
               for s in ruleset.stages for r in s.rules for c in r.conditions
               if isinstance(c, (rs_model.PairAgeOver, rs_model.StageTimeout)))


def assert_nothing_held_past_its_timer(testbed, experiment) -> None:
    now = testbed.now_ps()
    slack = experiment.slice_ps
    for address, node in testbed.nodes.items():
        ex = node.executor
        if ex is None:
            continue
        for inst in ex.installed.values():
            limit = longest_timer_ps(inst.rs)
            for pair in inst.pairs.values():
                assert now - pair.created_ps <= limit + slack, (address, pair, limit)
    for run in experiment.links.links.values():
        for address, end in run.ends.items():
            for emission in end.binder._pending.values():
                assert emission.deadline_ps >= now - slack, (address, run.name, emission)
