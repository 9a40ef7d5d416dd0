"""Static checks run before a RuleSet is installed, and across the RuleSets of one connection.

:func:`check_ruleset` (one node, run by ``RuleSetExecutor.install`` and ``qnode ruleset check``)
refuses, each with a :class:`~qnode_fw.errors.RuleSetError` naming stage/rule and field:

* unknown partners (a clause names a partner its Rule does not list, the owner itself, or a node
  outside the connection when the connection's nodes are given);
* unreachable Stages (no earlier Rule promotes into them) and cycles (a Promote that does not move
  strictly forward, or to a Stage that does not exist);
* Stages with no way out: a partner whose pairs can sit in a Stage with no Rule that promotes,
  frees, delivers, measures or consumes them; a purification tag without both its match and its
  mismatch Rule;
* actions that need more qubits than the Rule's conditions guarantee (purify 2 or 3, swap one per
  side, QCIRC slots), Pauli corrections without a swap result, gates outside the fixed set;
* Rules that could fire forever (bound pairs left where they are; no consumed event and no change
  to a compared variable); undeclared Stage variables; timers nobody arms;
* discard timers that fire before a swapping peer's timer plus the worst-case one-way latency
  (from ``RuleSet.timing``): the error names both timers.

:func:`check_connection` checks a whole connection (the Responder calls it before distributing):
no leapfrogging (two neighbours that each swap pairs held with the other), every swapper that
others wait on has a discard timer, and it returns the RuleSets with ``timing`` filled in from
the swappers' timers and the worst-case latencies, each then passing :func:`check_ruleset`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

from drivers.qnic import Gate

from ..addresses import NodeAddress
from ..errors import RuleSetError
from . import model as m

_DISPOSING = (m.Promote, m.Move, m.Free, m.Deliver, m.Measure, m.Purify)
_FORWARDING = (m.Promote, m.Move)  # actions that carry pairs to a later Stage
_VAR_CHANGING = (m.SetVariable, m.IncrementVariable)


def _fmt_ps(ps: int) -> str:
    return f"{ps} ps ({ps / 1e6:g} µs)"


def guaranteed_pairs(rule: m.Rule) -> dict[NodeAddress, int]:
    """How many pairs per partner the Rule's conditions bind whenever it fires."""
    out: dict[NodeAddress, int] = {}
    filters: set[NodeAddress] = set()
    for c in rule.conditions:
        if isinstance(c, m.EnoughResources):
            out[c.partner] = out.get(c.partner, 0) + c.count
        elif isinstance(c, m.FidelityAtLeast):
            filters.add(c.partner)
        elif isinstance(c, m.BINDING_CONDITIONS):
            out[c.partner] = out.get(c.partner, 0) + 1
    for p in filters:
        out.setdefault(p, 1)
    return out


def _action_needs(a: m.Action) -> dict[NodeAddress, int]:
    if isinstance(a, m.Purify):
        return {a.partner: a.method.pairs_needed}
    if isinstance(a, m.Swap):
        return {a.left: 1, a.right: 1} if a.left != a.right else {a.left: 2}
    if isinstance(a, m.QCirc):
        top = max((s for g in a.gates for s in g.slots), default=-1)
        return {a.partner: top + 1}
    if isinstance(a, (m.PauliCorrection, m.Measure, m.Promote, m.Move, m.Free, m.Deliver)):
        return {a.partner: 1}
    return {}


def _disposes(a: m.Action) -> set[NodeAddress]:
    if isinstance(a, m.Swap):
        return {a.left, a.right}
    if isinstance(a, _DISPOSING):
        return {a.partner}
    return set()


def _partners_named(rule: m.Rule) -> list[tuple[str, NodeAddress]]:
    out: list[tuple[str, NodeAddress]] = []
    for i, c in enumerate(rule.conditions):
        if hasattr(c, "partner"):
            out.append((f"conditions[{i}].partner", c.partner))
    for i, a in enumerate(rule.actions):
        for f in ("partner", "left", "right", "peer"):
            if hasattr(a, f):
                out.append((f"actions[{i}].{f}", getattr(a, f)))
    return out


def check_ruleset(rs: m.RuleSet, connection_nodes: Iterable[NodeAddress] | None = None) -> None:
    """Raise :class:`RuleSetError` for the first unsafe or malformed construct in ``rs``."""
    nodes = set(connection_nodes) if connection_nodes is not None else None

    def err(msg: str, stage: m.Stage | None = None, rule: m.Rule | None = None,
            field: str | None = None) -> RuleSetError:
        where = None
        if stage is not None:
            where = f"{stage.name}/{rule.name}" if rule is not None else stage.name
        return RuleSetError(msg, ruleset=rs.id, rule=where, field=field)

    if not rs.stages:
        raise err("a RuleSet needs at least one Stage", field="stages")
    names = [s.name for s in rs.stages]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise err(f"Stage name {n!r} used twice", field=f"stages[{i}].name")
    reachable = {0}
    incoming: dict[int, set[NodeAddress]] = {i: set() for i in range(len(rs.stages))}
    incoming_renamed: set[int] = set()
    for si, stage in enumerate(rs.stages):
        rule_names = [r.name for r in stage.rules]
        for ri, rule in enumerate(stage.rules):
            if rule_names.index(rule.name) != ri:
                raise err(f"rule name {rule.name!r} used twice in the Stage", stage, rule, "name")
            _check_rule(rs, si, stage, rule, nodes, err)
            renames = any(isinstance(c, m.SwapResultArrived) for c in rule.conditions)
            for ai, a in enumerate(rule.actions):
                if isinstance(a, _FORWARDING):
                    target = si + 1 if a.stage is None else (names.index(a.stage)
                                                             if a.stage in names else None)
                    if target is None:
                        raise err(f"promotes to unknown Stage {a.stage!r}", stage, rule,
                                  f"actions[{ai}].stage")
                    if target >= len(rs.stages):
                        raise err("promotes past the last Stage", stage, rule, f"actions[{ai}]")
                    if target <= si:
                        raise err(f"{a.kind}s back to Stage {rs.stages[target].name!r}: qubits "
                                  "move only forward (a cyclic RuleSet)", stage, rule,
                                  f"actions[{ai}].stage")
                    if si in reachable:
                        reachable.add(target)
                    if renames:
                        incoming_renamed.add(target)
                    else:
                        incoming[target].add(a.partner)
        if si not in reachable:
            raise err("unreachable: no earlier Rule promotes into this Stage", stage,
                      field=f"stages[{si}]")
        _check_way_out(stage, si, incoming[si], si in incoming_renamed, err)
    _check_discard_timers(rs, err)


def _check_rule(rs: m.RuleSet, si: int, stage: m.Stage, rule: m.Rule,
                nodes: set[NodeAddress] | None, err: Callable[..., RuleSetError]) -> None:
    listed = set(rule.partners)
    for field, p in _partners_named(rule):
        if p == rs.owner:
            raise err(f"partner {p!r} is this RuleSet's owner", stage, rule, field)
        if p not in listed:
            raise err(f"unknown partner {p!r} (the Rule lists {sorted(listed)})", stage, rule,
                      field)
    for i, p in enumerate(rule.partners):
        if nodes is not None and p not in nodes:
            raise err(f"unknown partner {p!r}: not a node of this connection", stage, rule,
                      f"partners[{i}]")
    if not rule.conditions:
        raise err("a Rule needs at least one condition", stage, rule, "conditions")
    have = guaranteed_pairs(rule)
    swap_bound = {c.partner for c in rule.conditions if isinstance(c, m.SwapResultArrived)}
    for ai, a in enumerate(rule.actions):
        for p, n in _action_needs(a).items():
            if have.get(p, 0) < n:
                raise err(f"{a.kind} needs {n} pair(s) with {p!r} but the conditions guarantee "
                          f"{have.get(p, 0)}", stage, rule, f"actions[{ai}]")
        if isinstance(a, m.PauliCorrection) and a.partner not in swap_bound:
            raise err(f"pauli_correction for {a.partner!r} without a swap_result condition",
                      stage, rule, f"actions[{ai}]")
        if isinstance(a, m.QCirc):
            for gi, g in enumerate(a.gates):
                try:
                    gate = Gate(g.gate)
                except ValueError:
                    raise err(f"gate {g.gate!r} is not in the fixed set "
                              f"{[x.value for x in Gate]}", stage, rule,
                              f"actions[{ai}].gates[{gi}].gate") from None
                if len(g.slots) != gate.num_qubits or len(set(g.slots)) != len(g.slots):
                    raise err(f"{gate.value} acts on {gate.num_qubits} distinct qubit(s), got "
                              f"slots {list(g.slots)}", stage, rule, f"actions[{ai}].gates[{gi}]")
        if isinstance(a, m.SetTimer) and a.delay_ps <= 0:
            raise err("timer delay must be positive", stage, rule, f"actions[{ai}].delay_ps")
        for var_field in ("variable",):
            v = getattr(a, var_field, None)
            if v is not None and v not in stage.variables:
                raise err(f"variable {v!r} is not declared in Stage {stage.name!r}", stage, rule,
                          f"actions[{ai}].variable")
    for ci, c in enumerate(rule.conditions):
        if isinstance(c, m.VariableCompare) and c.variable not in stage.variables:
            raise err(f"variable {c.variable!r} is not declared in Stage {stage.name!r}", stage,
                      rule, f"conditions[{ci}].variable")
        if isinstance(c, m.TimerExpired) and not any(
                isinstance(a, m.SetTimer) and a.timer == c.timer
                for r in stage.rules for a in r.actions):
            raise err(f"timer {c.timer!r} is never armed in this Stage", stage, rule,
                      f"conditions[{ci}].timer")
        if isinstance(c, m.EnoughResources) and c.count < 1:
            raise err("count must be at least 1", stage, rule, f"conditions[{ci}].count")
        if isinstance(c, (m.PairAgeOver,)) and c.limit_ps <= 0:
            raise err("limit must be positive", stage, rule, f"conditions[{ci}].limit_ps")
    disposed = set().union(*(_disposes(a) for a in rule.actions)) if rule.actions else set()
    for p in have:
        if p not in disposed:
            raise err(f"binds pairs with {p!r} but neither promotes, frees, delivers, measures "
                      "nor consumes them, so it would fire forever", stage, rule, "actions")
    consumes_event = bool(have) or any(isinstance(c, m.TimerExpired) for c in rule.conditions)
    if not consumes_event:
        compared = {c.variable for c in rule.conditions if isinstance(c, m.VariableCompare)}
        changed = {a.variable for a in rule.actions if isinstance(a, _VAR_CHANGING)}
        if not compared & changed:
            raise err("binds no pair and no event and changes no variable it compares, so it "
                      "would fire forever", stage, rule, "conditions")


def _check_way_out(stage: m.Stage, si: int, incoming: set[NodeAddress], renamed: bool,
                   err: Callable[..., RuleSetError]) -> None:
    exits: set[NodeAddress] = set()
    bound_here: set[NodeAddress] = set()
    for rule in stage.rules:
        bound_here |= set(guaranteed_pairs(rule))
        for a in rule.actions:
            exits |= _disposes(a)
    if not stage.rules:
        raise err("has no Rules: pairs promoted into it could never leave", stage,
                  field=f"stages[{si}].rules")
    for p in sorted(incoming | bound_here):
        if p not in exits or p not in bound_here:
            raise err(f"no way out for pairs with {p!r}: no Rule in the Stage binds and then "
                      "promotes, frees, delivers, measures or consumes them", stage,
                      field=f"stages[{si}].rules")
    for rule in stage.rules:
        for ai, a in enumerate(rule.actions):
            if isinstance(a, m.Purify):
                for parity in m.Parity:
                    if not any(isinstance(c, m.PurificationResultArrived) and c.tag == a.tag
                               and c.partner == a.partner and c.parity == parity
                               for r in stage.rules for c in r.conditions):
                        raise err(f"purification tag {a.tag} with {a.partner!r} has no Rule for "
                                  f"a {parity.value} result in this Stage, so the kept pair has "
                                  "no way out", stage, rule, f"actions[{ai}]")
    if renamed and not exits:
        raise err("no way out for swapped pairs", stage, field=f"stages[{si}].rules")


def discard_timers(rs: m.RuleSet, partner: NodeAddress, where: str) -> list[tuple[str, int]]:
    """(``stage/rule``, limit) of the discard timers (pair_age_over) for ``partner`` in the Stages
    where this node waits for ``partner``'s swap result (``where="waiting"``) or swaps pairs held
    with ``partner`` (``where="swapping"``)."""

    def relevant(stage: m.Stage) -> bool:
        for r in stage.rules:
            for c in r.conditions:
                if where == "waiting" and isinstance(c, m.SwapResultArrived) and c.partner == partner:
                    return True
            for a in r.actions:
                if where == "swapping" and isinstance(a, m.Swap) and partner in (a.left, a.right):
                    return True
        return False

    return [(f"{s.name}/{r.name}", c.limit_ps) for s in rs.stages if relevant(s) for r in s.rules
            for c in r.conditions if isinstance(c, m.PairAgeOver) and c.partner == partner]


def _check_discard_timers(rs: m.RuleSet, err: Callable[..., RuleSetError]) -> None:
    for ti, t in enumerate(rs.timing):
        for where, limit in discard_timers(rs, t.peer, "waiting"):
            needed = t.discard_after_ps + t.operation_ps + t.one_way_latency_ps
            if limit < needed:
                raise RuleSetError(
                    f"discard timer pair_age_over({t.peer}) = {_fmt_ps(limit)} on {rs.owner} "
                    f"fires before swapper {t.peer}'s discard timer {_fmt_ps(t.discard_after_ps)} "
                    f"plus its swap operation {_fmt_ps(t.operation_ps)} plus worst-case one-way "
                    f"latency {_fmt_ps(t.one_way_latency_ps)} = {_fmt_ps(needed)}: a swap notice "
                    "could arrive after the qubit was reused",
                    ruleset=rs.id, rule=where, field=f"timing[{ti}]")


def _swaps(rs: m.RuleSet) -> set[NodeAddress]:
    return {p for s in rs.stages for r in s.rules for a in r.actions if isinstance(a, m.Swap)
            for p in (a.left, a.right)}


def check_connection(rulesets: Mapping[NodeAddress, m.RuleSet],
                     one_way_latency_ps: Callable[[NodeAddress, NodeAddress], int],
                     swap_operation_ps: Callable[[NodeAddress], int]
                     ) -> dict[NodeAddress, m.RuleSet]:
    """Check one connection's RuleSets together; return them with ``timing`` filled in.

    ``one_way_latency_ps(a, b)`` is the worst-case one-way control-message latency from a to b;
    ``swap_operation_ps(n)`` how long node n's Bell-state measurement takes before its swap
    notice can leave (memories differ: microseconds on ions' fast gates, ~0.5 ms on an NV
    electron-carbon CNOT). Both are part of the discard-timer race.
    """
    nodes = set(rulesets)
    ids = {rs.id for rs in rulesets.values()}
    if len(ids) != 1:
        raise RuleSetError(f"the RuleSets of one connection must share one id, got {sorted(ids)}",
                           field="id")
    for node, rs in rulesets.items():
        if rs.owner != node:
            raise RuleSetError(f"RuleSet for {node!r} is owned by {rs.owner!r}", ruleset=rs.id,
                               field="owner")
    swapped = {n: _swaps(rs) for n, rs in rulesets.items()}
    for a in sorted(nodes):
        for b in sorted(swapped[a]):
            if b in swapped and a in swapped[b]:
                raise RuleSetError(
                    f"leapfrogging: {a} swaps pairs it holds with {b} and {b} swaps pairs it "
                    f"holds with {a}; in a chain this can end in crossed pairs instead of one "
                    "end-to-end pair", ruleset=rulesets[a].id, field="actions")
    out: dict[NodeAddress, m.RuleSet] = {}
    for x, rs in rulesets.items():
        timing: list[m.PeerTiming] = []
        for y in sorted(rs.partners):
            if y not in rulesets:
                raise RuleSetError(f"unknown partner {y!r}: not a node of this connection",
                                   ruleset=rs.id, field="partners")
            if x not in swapped[y] or not discard_timers(rs, y, "waiting"):
                continue
            theirs = discard_timers(rulesets[y], x, "swapping")
            if not theirs:
                mine = discard_timers(rs, y, "waiting")[0]
                raise RuleSetError(
                    f"{x} discards pairs with {y} after {_fmt_ps(mine[1])} (rule {mine[0]}) but "
                    f"swapper {y} has no discard timer for pairs with {x}, so its swap notice "
                    "may arrive at any time", ruleset=rs.id, rule=mine[0], field="conditions")
            timing.append(m.PeerTiming(y, max(t for _, t in theirs), one_way_latency_ps(y, x),
                                       swap_operation_ps(y)))
        filled = dataclasses.replace(rs, timing=tuple(timing))
        check_ruleset(filled, nodes)
        out[x] = filled
    return out
