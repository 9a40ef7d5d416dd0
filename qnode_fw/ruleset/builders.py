"""RuleSets for a linear path: link-level purification, nested entanglement swapping, delivery.

This is what a Responder writes for a path ``n0 - n1 - ... - nk``:

* optional purification rounds on every link (Stages ``purify-1`` ..), each one Rule to purify,
  one to promote on a matching result, one to free on a mismatch, one discard timer;
* swapping by recursive bisection: the segment (i, j) is swapped by its middle node
  ``(i + j) // 2`` once its two halves are done, so a 5-node chain swaps at n1 and n3 (level 1)
  and then at n2 (level 2). Each node has one Stage per level it takes part in
  (``level-1`` ..): it swaps there, waits for swap results there, or passes pairs through;
* end nodes end in a ``deliver`` Stage.

Discard timers grow with the level so that every waiting node's timer exceeds the swapper's
timer plus its swap operation time plus the worst-case one-way latency (checked by
:func:`~qnode_fw.ruleset.checks.check_connection`, which also fills ``timing``). Every pair is
aged from the creation of its oldest component (swap results carry it).

Tags: purification round r on link (i, i+1) uses ``100 * r + i``; the swap of segment (i, j)
uses ``10_000 + 100 * i + j``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..addresses import NodeAddress
from . import model as m
from .checks import check_connection


@dataclass(frozen=True)
class ChainTimers:
    """Discard timers: the swapper at level ℓ discards after ``swap_base_ps + (ℓ-1) * step_ps``;
    a node waiting for that swap discards ``wait_margin_ps`` later (must exceed the worst-case
    one-way latency). Purification stages discard after ``purify_ps``."""

    swap_base_ps: int = 20_000_000      # 20 µs
    step_ps: int = 20_000_000
    wait_margin_ps: int = 10_000_000    # 10 µs
    purify_ps: int = 15_000_000

    def swapper(self, level: int) -> int:
        return self.swap_base_ps + (level - 1) * self.step_ps

    def waiter(self, level: int) -> int:
        return self.swapper(level) + self.wait_margin_ps


def _segments(i: int, j: int, out: dict[tuple[int, int], int]) -> int:
    """Fill ``out[(i, j)] = level`` for every swapped segment; return the level of (i, j)."""
    if j - i == 1:
        return 0
    mid = (i + j) // 2
    level = max(_segments(i, mid, out), _segments(mid, j, out)) + 1
    out[(i, j)] = level
    return level


def swap_tag(i: int, j: int) -> int:
    return 10_000 + 100 * i + j


def purify_tag(round_: int, i: int) -> int:
    return 100 * round_ + i


def chain_rulesets(path: Sequence[NodeAddress], *, ruleset_id: str, connection: str,
                   purification_rounds: int = 0,
                   method: m.PurificationMethod = m.PurificationMethod.SINGLE_X,
                   timers: ChainTimers = ChainTimers(),
                   one_way_latency_ps: Callable[[NodeAddress, NodeAddress], int] | None = None,
                   swap_operation_ps: Callable[[NodeAddress], int] | None = None,
                   ) -> dict[NodeAddress, m.RuleSet]:
    """One RuleSet per node of ``path``, checked together (and ``timing`` filled in).

    ``swap_operation_ps(node)``: how long that node's Bell-state measurement takes; None means
    instantaneous swaps (ideal memories), which only suits tests of the logic."""
    k = len(path) - 1
    if k < 1 or len(set(path)) != len(path):
        raise ValueError(f"a path needs two or more distinct nodes, got {list(path)}")
    segs: dict[tuple[int, int], int] = {}
    top = _segments(0, k, segs)
    out = {}
    for pos, node in enumerate(path):
        stages = _purify_stages(path, pos, purification_rounds, method, timers)
        stages += _level_stages(path, pos, segs, top, timers)
        if pos in (0, k):
            far = path[k - pos]
            stages.append(m.Stage("deliver", (
                m.Rule("deliver", (far,), (m.EnoughResources(far, 1),), (m.Deliver(far),)),)))
        out[node] = m.RuleSet(ruleset_id, node, connection, tuple(stages))
    latency = one_way_latency_ps or (lambda a, b: timers.wait_margin_ps // 2)
    return check_connection(out, latency, swap_operation_ps or (lambda node: 0))


def _neighbours(path: Sequence[NodeAddress], pos: int) -> list[tuple[int, NodeAddress]]:
    return [(q, path[q]) for q in (pos - 1, pos + 1) if 0 <= q < len(path)]


def _purify_stages(path, pos, rounds, method, timers) -> list[m.Stage]:
    stages = []
    for r in range(1, rounds + 1):
        rules = []
        for q, p in _neighbours(path, pos):
            tag = purify_tag(r, min(pos, q))
            rules += [
                m.Rule(f"purify-{p}", (p,), (m.EnoughResources(p, method.pairs_needed),),
                       (m.Purify(p, method, tag),)),
                m.Rule(f"keep-{p}", (p,), (m.PurificationResultArrived(p, tag, m.Parity.MATCH),),
                       (m.Promote(p),)),
                m.Rule(f"drop-{p}", (p,),
                       (m.PurificationResultArrived(p, tag, m.Parity.MISMATCH),), (m.Free(p),)),
                m.Rule(f"expire-{p}", (p,), (m.PairAgeOver(p, timers.purify_ps),),
                       (m.Free(p, "discard timer"),)),
            ]
        stages.append(m.Stage(f"purify-{r}", tuple(rules)))
    return stages


def _level_stages(path, pos, segs, top, timers) -> list[m.Stage]:
    """Stages level-1 .. level-L for this node, L = the last level at which it takes part."""
    own = [(i, j, lvl) for (i, j), lvl in segs.items() if (i + j) // 2 == pos]
    ends = [(i, j, lvl) for (i, j), lvl in segs.items() if pos in (i, j)]
    last = max([lvl for *_, lvl in own + ends], default=0)
    if pos in (0, len(path) - 1):
        last = top
    left, right = pos - 1, pos + 1       # current partner positions on each side
    stages = []
    for level in range(1, last + 1):
        rules: list[m.Rule] = []
        swapping = [(i, j) for i, j, lvl in own if lvl == level]
        for i, j in swapping:
            a, b = path[i], path[j]
            rules.append(m.Rule("swap", (a, b), (m.EnoughResources(a, 1), m.EnoughResources(b, 1)),
                                (m.Swap(a, b, swap_tag(i, j)),)))
            for p in (a, b):
                rules.append(m.Rule(f"expire-{p}", (p,), (m.PairAgeOver(p, timers.swapper(level)),),
                                    (m.Free(p, "discard timer"),)))
        sides = []
        if not swapping:
            if left >= 0:
                sides.append("left")
            if right < len(path):
                sides.append("right")
        for side in sides:
            cur = left if side == "left" else right
            seg = next(((i, j) for i, j, lvl in ends if lvl == level and
                        (i == pos if side == "right" else j == pos)), None)
            p = path[cur]
            if seg is not None:
                swapper = (seg[0] + seg[1]) // 2
                assert swapper == cur, "bisection: the partner on this side is the swapper"
                rules.append(m.Rule(f"correct-{p}", (p,), (m.SwapResultArrived(p, swap_tag(*seg)),),
                                    (m.PauliCorrection(p), m.Promote(p))))
                rules.append(m.Rule(f"expire-{p}", (p,), (m.PairAgeOver(p, timers.waiter(level)),),
                                    (m.Free(p, "discard timer"),)))
                if side == "left":
                    left = seg[0]
                else:
                    right = seg[1]
            else:
                rules.append(m.Rule(f"pass-{p}", (p,), (m.EnoughResources(p, 1),),
                                    (m.Promote(p),)))
        stages.append(m.Stage(f"level-{level}", tuple(rules)))
        if swapping:
            break
    return stages


def buffered_chain_rulesets(path: Sequence[NodeAddress], buffered: Mapping[NodeAddress, NodeAddress],
                            *, ruleset_id: str, connection: str,
                            timers: ChainTimers = ChainTimers(),
                            one_way_latency_ps: Callable[[NodeAddress, NodeAddress], int] | None = None,
                            swap_operation_ps: Callable[[NodeAddress], int] | None = None,
                            ) -> dict[NodeAddress, m.RuleSet]:
    """:func:`chain_rulesets` for repeaters with one communication qubit and a buffer (QRNA
    Figure 2). ``buffered`` maps such a node to the neighbour whose pairs it moves into storage
    as they arrive (its "left"); pairs with its other neighbour stay on the communication qubit
    and are swapped from there. The node gets a first Stage ``buffer``:

    * ``expire-<p>``: the discard timer of the Stage that follows, for pairs still waiting here;
    * ``store-<left>``: move the pair into a free storage qubit and on to the swap Stage;
    * ``pass-<right>``: on to the swap Stage as it is.

    The node's link scheduler must try ``left`` first and ``right`` only once a left pair is
    stored (:class:`timing.switched.SwitchPolicy` ``priority``, order ``(left, right)``).
    Purification needs two pairs per side at once, which such a node cannot hold: not offered.
    """
    out = chain_rulesets(path, ruleset_id=ruleset_id, connection=connection, timers=timers,
                         one_way_latency_ps=one_way_latency_ps, swap_operation_ps=swap_operation_ps)
    for node, left in buffered.items():
        if node not in out:
            raise ValueError(f"{node!r} is not on the path {list(path)}")
        pos = list(path).index(node)
        partners = [p for _, p in _neighbours(path, pos)]
        if pos in (0, len(path) - 1) or left not in partners:
            raise ValueError(f"{node!r} must be a repeater on the path and {left!r} its neighbour")
        rs = out[node]
        limits = {c.partner: c.limit_ps for r in rs.stages[0].rules for c in r.conditions
                  if isinstance(c, m.PairAgeOver)}
        rules = [m.Rule(f"expire-{p}", (p,), (m.PairAgeOver(p, limits.get(p, timers.swapper(1))),),
                        (m.Free(p, "discard timer"),)) for p in partners]
        for p in partners:
            act = m.Move(p) if p == left else m.Promote(p)
            rules.append(m.Rule(f"{'store' if p == left else 'pass'}-{p}", (p,),
                                (m.EnoughResources(p, 1),), (act,)))
        out[node] = replace(rs, stages=(m.Stage("buffer", tuple(rules)),) + rs.stages, timing=())
    latency = one_way_latency_ps or (lambda a, b: timers.wait_margin_ps // 2)
    return check_connection(out, latency, swap_operation_ps or (lambda node: 0))
