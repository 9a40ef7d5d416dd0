"""The state of one installed RuleSet on one node, and how a Rule's conditions bind to it.

Pairs are keyed by their name (:class:`~qnode_fw.addresses.PairName`); messages wait in an inbox
keyed by (sender, tag, pair name). A Rule binds the pairs with the smallest names that satisfy
it, so both ends of a link pick the same pairs whatever order heralds and messages arrive in,
and a message can only ever act on the pair it names.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..addresses import NodeAddress, PairName, QubitAddress
from ..loop import TimerHandle
from . import model as m
from .messages import PurificationResult, SwapResult


@dataclass
class PendingPurification:
    """This node purified with this kept pair and is waiting for the partner's result."""

    tag: int
    method: m.PurificationMethod
    sacrificed: tuple[PairName, ...]
    sacrificed_fidelity: tuple[float, ...]
    result: tuple[int, ...]


@dataclass
class HeldPair:
    """A pair a RuleSet holds. ``created_ps`` and ``entered_stage_ps`` are on the executor's
    monotonic loop clock (never a PC clock that sync steers and a fault may step), so ages and
    stage timeouts are durations that a clock fault cannot stretch."""

    qubit: QubitAddress
    name: PairName
    partner: NodeAddress
    fidelity: float
    created_ps: int
    stage: int
    entered_stage_ps: int
    pending: PendingPurification | None = None
    wakeups: list[TimerHandle] = field(default_factory=list)


@dataclass
class Binding:
    """What a Rule bound: pairs per condition partner, and the messages/timers it consumes."""

    pairs: dict[NodeAddress, list[HeldPair]] = field(default_factory=dict)
    swap_results: dict[PairName, SwapResult] = field(default_factory=dict)
    purification_results: dict[PairName, tuple[PurificationResult, bool]] = field(
        default_factory=dict)
    timers: list[str] = field(default_factory=list)
    messages: list[tuple] = field(default_factory=list)  # inbox keys to remove

    def add(self, partner: NodeAddress, pair: HeldPair) -> None:
        self.pairs.setdefault(partner, []).append(pair)

    def all_pairs(self) -> list[HeldPair]:
        return [p for ps in self.pairs.values() for p in ps]


_OPS = {m.CompareOp.LT: operator.lt, m.CompareOp.LE: operator.le, m.CompareOp.EQ: operator.eq,
        m.CompareOp.NE: operator.ne, m.CompareOp.GE: operator.ge, m.CompareOp.GT: operator.gt}


def results_agree(mine: PendingPurification, msg: PurificationResult) -> bool:
    """Agree only if both purified the same pairs the same way and saw the same bits."""
    return (msg.tag == mine.tag and msg.method == mine.method.value
            and msg.sacrificed == mine.sacrificed and msg.result == mine.result)


class RecentKeys:
    """Keys remembered for a bounded time, for duplicate and replay refusal on a node that runs
    for days: a key is forgotten ``horizon_ps`` after it was added. The executor refuses anything
    whose pair name is older than the horizon, so forgetting never lets a replay through."""

    def __init__(self, horizon_ps: int) -> None:
        self.horizon_ps = horizon_ps
        self._added: OrderedDict[Hashable, int] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._added

    def __len__(self) -> int:
        return len(self._added)

    def add(self, key: Hashable, now_ps: int) -> None:
        self.prune(now_ps)
        self._added[key] = now_ps
        self._added.move_to_end(key)

    def prune(self, now_ps: int) -> None:
        cutoff = now_ps - self.horizon_ps
        while self._added:
            key, added = next(iter(self._added.items()))
            if added >= cutoff:
                break
            del self._added[key]


class PairNameWindow:
    """Pair names remembered per origin, in the origin's own time base, for duplicate and replay
    refusal on a node that runs for days.

    A name is ``<origin, timestamp>`` and every origin stamps its names with one clock of its
    own: a BSA station with its tagger's timebase, a swapper with its clock. Those clocks are not
    this node's (in a lab a tagger counts from its power-on, the PC from its boot), so a name's
    age can only be judged against newer names *from the same origin*. A name more than
    ``horizon_ps`` older than the newest seen from its origin is stale; a name is forgotten only
    once it is stale, so forgetting never lets a replay in. Origins come from accepted pairs
    only (a node's configured stations and peers), so the map of origins stays small."""

    def __init__(self, horizon_ps: int) -> None:
        self.horizon_ps = horizon_ps
        self._newest: dict[str, int] = {}
        self._names: dict[str, OrderedDict[int, None]] = {}

    def __contains__(self, name: PairName) -> bool:
        names = self._names.get(name.origin)
        return names is not None and name.timestamp_ps in names

    def __len__(self) -> int:
        return sum(len(v) for v in self._names.values())

    def is_stale(self, name: PairName) -> bool:
        newest = self._newest.get(name.origin)
        return newest is not None and name.timestamp_ps < newest - self.horizon_ps

    def add(self, name: PairName) -> None:
        origin, ts = name.origin, name.timestamp_ps
        names = self._names.setdefault(origin, OrderedDict())
        names[ts] = None
        if ts >= self._newest.get(origin, ts):
            self._newest[origin] = ts
        else:
            names.move_to_end(ts, last=False)   # arrived late: among the oldest, pruned first
        cutoff = self._newest[origin] - self.horizon_ps
        # Names of one origin arrive nearly in time order; an out-of-order one sits at the front.
        while names:
            oldest = next(iter(names))
            if oldest >= cutoff:
                break
            del names[oldest]


#: How long names and message sequence numbers are remembered, and the age beyond which a pair
#: name is refused as stale. Heralds and swap notices arrive microseconds to milliseconds after
#: the timestamp in their name; 10 s is three orders of magnitude of slack.
NAME_MEMORY_PS = 10_000_000_000_000


class InstalledRuleSet:
    """Runtime state of one RuleSet: held pairs, Stage variables, counters, timers, inbox."""

    def __init__(self, rs: m.RuleSet) -> None:
        self.rs = rs
        self.pairs: dict[PairName, HeldPair] = {}
        self.variables = [dict(s.variables) for s in rs.stages]
        self.counters = [{m.Counter.MEASUREMENTS: 0, m.Counter.CYCLES: 0} for _ in rs.stages]
        self.fired_timers: list[set[str]] = [set() for _ in rs.stages]
        self.timer_handles: dict[tuple[int, str], TimerHandle] = {}
        self.inbox: dict[tuple, object] = {}
        self.inbox_expiry: dict[tuple, TimerHandle] = {}
        self.seq = 0
        self.seen = RecentKeys(NAME_MEMORY_PS)     # (sender, seq) of messages already taken
        # Partners a pair may enter Stage 0 with (link-level neighbours).
        self.entry_partners = {c.partner for r in rs.stages[0].rules for c in r.conditions
                               if isinstance(c, m.BINDING_CONDITIONS)}
        self.max_age_ps = max((c.limit_ps for s in rs.stages for r in s.rules
                               for c in r.conditions if isinstance(c, m.PairAgeOver)), default=0)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def in_stage(self, stage: int, partner: NodeAddress) -> list[HeldPair]:
        return sorted((p for p in self.pairs.values() if p.stage == stage and p.partner == partner),
                      key=lambda p: p.name)

    # -- matching ---------------------------------------------------------------------------
    def match(self, si: int, rule: m.Rule, now: int) -> Binding | None:
        """Bind ``rule`` in Stage ``si`` or return None. Pure: changes nothing."""
        b = Binding()
        used: set[PairName] = set()
        variables = self.variables[si]
        for c in rule.conditions:
            if isinstance(c, m.VariableCompare):
                if not _OPS[c.op](variables.get(c.variable, 0.0), c.value):
                    return None
            elif isinstance(c, m.MeasureCount):
                if self.counters[si][c.counter] >= c.limit:
                    return None
            elif isinstance(c, m.TimerExpired):
                if c.timer not in self.fired_timers[si]:
                    return None
                b.timers.append(c.timer)
        # Message-bound conditions first, then timers, then plain resources, then filters.
        order = sorted(rule.conditions, key=lambda c: _PRIORITY.get(type(c), 9))
        for c in order:
            if isinstance(c, m.SwapResultArrived):
                pair = self._first(si, c.partner, used, lambda p: p.pending is None and (
                    (c.partner, c.tag, p.name) in self.inbox))
                if pair is None:
                    return None
                key = (c.partner, c.tag, pair.name)
                b.swap_results[pair.name] = self.inbox[key]  # type: ignore[assignment]
                b.messages.append(key)
            elif isinstance(c, m.PurificationResultArrived):
                want = c.parity is m.Parity.MATCH

                def ok(p: HeldPair, c=c, want=want) -> bool:
                    if p.pending is None or p.pending.tag != c.tag:
                        return False
                    msg = self.inbox.get((c.partner, c.tag, p.name))
                    return msg is not None and results_agree(p.pending, msg) == want

                pair = self._first(si, c.partner, used, ok)
                if pair is None:
                    return None
                key = (c.partner, c.tag, pair.name)
                b.purification_results[pair.name] = (self.inbox[key], want)  # type: ignore
                b.messages.append(key)
            elif isinstance(c, m.PairAgeOver):
                pair = self._first(si, c.partner, used, lambda p: now - p.created_ps > c.limit_ps)
                if pair is None:
                    return None
            elif isinstance(c, m.StageTimeout):
                pair = self._first(si, c.partner, used,
                                   lambda p: now - p.entered_stage_ps > c.after_ps)
                if pair is None:
                    return None
            elif isinstance(c, m.EnoughResources):
                free = [p for p in self.in_stage(si, c.partner) if p.name not in used
                        and p.pending is None and p.fidelity >= c.min_fidelity]
                if len(free) < c.count:
                    return None
                for p in free[:c.count]:
                    used.add(p.name)
                    b.add(c.partner, p)
                continue
            elif isinstance(c, m.FidelityAtLeast):
                if c.partner in b.pairs:
                    if any(p.fidelity < c.value for p in b.pairs[c.partner]):
                        return None
                    continue
                pair = self._first(si, c.partner, used,
                                   lambda p: p.pending is None and p.fidelity >= c.value)
                if pair is None:
                    return None
            else:
                continue
            used.add(pair.name)
            b.add(c.partner, pair)
        return b

    def _first(self, si: int, partner: NodeAddress, used: set[PairName], pred) -> HeldPair | None:
        for p in self.in_stage(si, partner):
            if p.name not in used and pred(p):
                return p
        return None


_PRIORITY = {m.SwapResultArrived: 0, m.PurificationResultArrived: 0, m.PairAgeOver: 1,
             m.StageTimeout: 1, m.EnoughResources: 2, m.FidelityAtLeast: 3}
