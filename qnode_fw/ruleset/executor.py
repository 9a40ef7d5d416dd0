"""The RuleSet executor of one node: installed RuleSets, the qubits bound to them, and the
event → condition → action cycle.

Inputs (all on the node's :class:`~qnode_fw.loop.EventLoop` thread):

* :meth:`RuleSetExecutor.on_pair_ready` – the timing layer's :class:`~qnode_fw.events.PairReady`.
  The pair is assigned to exactly one installed RuleSet whose Stage 0 expects that partner (the
  one holding fewest pairs when several do, or the one named), once; a qubit or pair name is never
  assigned twice. A pair no RuleSet expects is freed at once.
* :meth:`RuleSetExecutor.on_message` – a RuleSet message from the control link. Messages for an
  unknown or torn-down RuleSet, from a node the RuleSet does not name, naming an unexpected new
  partner, contradicting an earlier message, or replaying a SwapResult whose new pair name was
  already assigned here raise :class:`~qnode_fw.errors.ProtocolError` (never dropped
  silently). Duplicates (same sender and sequence number) are counted and ignored.
  Messages wait in an inbox, keyed by pair name, until the pair they name is ready for them or
  the RuleSet's longest discard timer has passed.
* timers: discard timers, stage timeouts and Stage timers wake the executor on the loop.

After every input the RuleSet's Stages are evaluated in order; in each Stage the first Rule whose
conditions bind fires, and evaluation repeats until no Rule fires (qubits only move forward, so
one pass over the Stages suffices). Quantum operations go through the QNIC interface; outgoing
messages go through the injected ``send(peer, message)`` once the operations' durations have
passed; the application gets :class:`PairDelivered`, :class:`MeasurementOutcome` and
:class:`NoticeReceived` through the injected ``deliver(event)``.

Herald correction: a pair heralded in a Bell state other than Φ+ is corrected to Φ+ by the end
whose node address sorts first (the other end does nothing), so every RuleSet starts from Φ+.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from drivers.qnic import QNIC, Basis, Gate, QubitRole

from ..addresses import NodeAddress, PairName, QubitAddress
from ..bell import BellState, correction_to_phi_plus
from ..errors import ProtocolError, RuleSetError
from ..events import PairReady
from ..loop import EventLoop
from . import circuits
from . import model as m
from .checks import check_ruleset
from .messages import Notice, PurificationResult, RuleSetMessage, SwapResult
from .runtime import (NAME_MEMORY_PS, Binding, HeldPair, InstalledRuleSet, PairNameWindow,
                      PendingPurification)

log = logging.getLogger(__name__)

#: Upper bound on Rule firings caused by one input; the static checks make it unreachable for
#: installed RuleSets, so hitting it means a bug, reported rather than spinning.
MAX_FIRINGS_PER_EVENT = 10_000


@dataclass(frozen=True)
class PairDelivered:
    ruleset_id: str
    connection: str
    qubit: QubitAddress
    name: PairName
    partner: NodeAddress
    fidelity_estimate: float
    created_ps: int
    delivered_ps: int


@dataclass(frozen=True)
class MeasurementOutcome:
    ruleset_id: str
    connection: str
    name: PairName
    partner: NodeAddress
    basis: str
    outcome: int
    purpose: str
    measured_ps: int


@dataclass(frozen=True)
class NoticeReceived:
    ruleset_id: str
    sender: NodeAddress
    pair_name: PairName | None
    text: str


DeliveryEvent = PairDelivered | MeasurementOutcome | NoticeReceived


class RuleSetExecutor:
    def __init__(self, node: NodeAddress, loop: EventLoop, qnics: Iterable[QNIC],
                 send: Callable[[NodeAddress, RuleSetMessage], None],
                 deliver: Callable[[DeliveryEvent], None],
                 rng: np.random.Generator | None = None,
                 held_elsewhere: Callable[[], set[QubitAddress]] | None = None) -> None:
        self.node = node
        #: qubits the node uses outside the executor (delivered to the application, waiting for
        #: a herald): a move never picks one of them as its storage qubit
        self.held_elsewhere = held_elsewhere or (lambda: set())
        self.loop = loop
        self.qnics = {q.qnic_address: q for q in qnics}
        self._send = send
        self._deliver = deliver
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.installed: dict[str, InstalledRuleSet] = {}
        self.torn_down: set[str] = set()
        self._held: dict[QubitAddress, str] = {}
        #: qubit -> when the local operations a Rule started on it end (a move, a swap, ...): the
        #: link layer must not take a communication qubit for an attempt before then
        self.busy_until_ps: dict[QubitAddress, int] = {}
        self._assigned_names = PairNameWindow(NAME_MEMORY_PS)
        self._last_name_ps = -1
        self.stats = dict.fromkeys((
            "pair_ready", "unassigned", "messages_in", "messages_out", "duplicates", "rejected",
            "stale_messages", "firings", "delivered", "measured", "freed"), 0)

    # -- installation -----------------------------------------------------------------------
    def install(self, rs: m.RuleSet, connection_nodes: Iterable[NodeAddress] | None = None) -> None:
        """Check ``rs`` statically and install it; :class:`RuleSetError` if unsafe."""
        if rs.owner != self.node:
            raise RuleSetError(f"RuleSet is for {rs.owner!r}, this node is {self.node!r}",
                               ruleset=rs.id, field="owner")
        if rs.id in self.installed or rs.id in self.torn_down:
            raise RuleSetError("a RuleSet with this id was already installed on this node",
                               ruleset=rs.id, field="id")
        check_ruleset(rs, connection_nodes)
        moves = [(s.name, r.name) for s in rs.stages for r in s.rules
                 for a in r.actions if isinstance(a, m.Move)]
        if moves and not any(self._storage_qubits(q) for q in self.qnics.values()):
            raise RuleSetError("moves pairs into storage, but no QNIC of this node has a storage "
                               "qubit", ruleset=rs.id, rule="/".join(moves[0]), field="actions")
        self.installed[rs.id] = InstalledRuleSet(rs)

    def teardown(self, ruleset_id: str) -> list[QubitAddress]:
        """End the connection here: free every qubit it holds, cancel its timers, drop its
        inbox. Later messages for it are refused. Returns the qubits freed."""
        inst = self.installed.pop(ruleset_id, None)
        if inst is None:
            raise RuleSetError("no such RuleSet installed", ruleset=ruleset_id)
        self.torn_down.add(ruleset_id)
        freed = []
        for pair in list(inst.pairs.values()):
            freed.append(pair.qubit)
            self._release(inst, pair)
            self.qnics[pair.qubit.qnic].init(pair.qubit.index)
            self.stats["freed"] += 1
        for h in list(inst.timer_handles.values()) + list(inst.inbox_expiry.values()):
            h.cancel()
        inst.inbox.clear()
        return freed

    def held_qubits(self) -> set[QubitAddress]:
        return set(self._held)

    def free_at_ps(self, qubit: QubitAddress) -> int:
        """When the local operations on ``qubit`` end (0 if none ran)."""
        return self.busy_until_ps.get(qubit, 0)

    def pairs_with(self, partner: NodeAddress) -> int:
        """How many pairs with ``partner`` this node holds, over every installed RuleSet."""
        return sum(1 for inst in self.installed.values() for p in inst.pairs.values()
                   if p.partner == partner)

    def _refuse_stale(self, name: PairName, peer: NodeAddress, msg_type: str) -> None:
        # A name is judged against newer names from its own origin (its clock, not ours): more
        # than NAME_MEMORY_PS older is refused outright, and names are forgotten only once that
        # old, so a replay cannot slip in after its name was forgotten (PairNameWindow).
        if self._assigned_names.is_stale(name):
            self.stats["rejected"] += 1
            raise ProtocolError(f"stale pair name {name}: older than {NAME_MEMORY_PS // 10**12} s",
                                peer=peer, msg_type=msg_type)

    # -- inputs -----------------------------------------------------------------------------
    def on_pair_ready(self, ev: PairReady, ruleset_id: str | None = None) -> str | None:
        """Assign a heralded pair to a RuleSet (returns its id, or None if none expects it)."""
        self.stats["pair_ready"] += 1
        if ev.qubit in self._held:
            raise ProtocolError(f"qubit {ev.qubit} is already held by RuleSet "
                                f"{self._held[ev.qubit]}", peer=ev.partner, msg_type="PairReady")
        if ev.name in self._assigned_names:
            raise ProtocolError(f"pair {ev.name} was already assigned", peer=ev.partner,
                                msg_type="PairReady")
        self._refuse_stale(ev.name, ev.partner, "PairReady")
        candidates = [i for i in self.installed.values() if ev.partner in i.entry_partners
                      and (ruleset_id is None or i.rs.id == ruleset_id)]
        if not candidates:
            self.stats["unassigned"] += 1
            self.qnics[ev.qubit.qnic].init(ev.qubit.index)
            return None
        inst = min(candidates, key=lambda i: len(i.pairs))
        self._assigned_names.add(ev.name)
        self._held[ev.qubit] = inst.rs.id
        if ev.bell_state is not BellState.PHI_PLUS and self.node < ev.partner:
            fix = correction_to_phi_plus(ev.bell_state)
            self.qnics[ev.qubit.qnic].gate(Gate(fix), ev.qubit.index)
        now = self.loop.now_ps()
        # Aged on the loop's monotonic clock: created_ps is on the node's PC clock, which a clock
        # fault may have stepped since, and a pair aged on it could outlive its cutoff.
        born = ev.created_mono_ps if ev.created_mono_ps is not None else ev.created_ps
        pair = HeldPair(ev.qubit, ev.name, ev.partner, ev.fidelity_estimate, born, 0, now)
        inst.pairs[ev.name] = pair
        self._arm_wakeups(inst, pair)
        self._evaluate(inst)
        return inst.rs.id

    def on_message(self, peer: NodeAddress, msg: RuleSetMessage) -> None:
        self.stats["messages_in"] += 1
        inst = self.installed.get(msg.ruleset_id)
        try:
            if inst is None:
                why = "was torn down" if msg.ruleset_id in self.torn_down else "is not installed"
                raise ProtocolError(f"RuleSet {msg.ruleset_id!r} {why} on {self.node}",
                                    peer=peer, msg_type=msg.type)
            if msg.sender != peer:
                raise ProtocolError(f"sender field says {msg.sender!r}", peer=peer,
                                    msg_type=msg.type)
            if peer not in inst.rs.partners:
                raise ProtocolError(f"RuleSet {msg.ruleset_id!r} on {self.node} has no partner "
                                    f"{peer!r}", peer=peer, msg_type=msg.type)
            if isinstance(msg, SwapResult) and (msg.new_partner not in inst.rs.partners
                                                or msg.new_partner == self.node):
                raise ProtocolError(f"new partner {msg.new_partner!r} is not one this RuleSet "
                                    "expects (leapfrogging guard)", peer=peer, msg_type=msg.type)
            if msg.pair_name is not None:
                self._refuse_stale(msg.pair_name, peer, msg.type)
            if isinstance(msg, SwapResult):
                self._refuse_stale(msg.new_pair_name, peer, msg.type)
        except ProtocolError:
            self.stats["rejected"] += 1
            raise
        if (peer, msg.seq) in inst.seen:
            self.stats["duplicates"] += 1
            return
        if isinstance(msg, SwapResult) and msg.new_pair_name in self._assigned_names:
            # A swapper names each new pair <itself, a timestamp it never reuses>, so a result
            # for a name already given out here is a replay, whatever its sequence number says.
            self.stats["rejected"] += 1
            raise ProtocolError(f"replayed SwapResult: pair {msg.new_pair_name} was already "
                                f"assigned on {self.node}", peer=peer, msg_type=msg.type)
        inst.seen.add((peer, msg.seq), self.loop.now_ps())
        if isinstance(msg, Notice):
            self._deliver(NoticeReceived(msg.ruleset_id, peer, msg.pair_name, msg.text))
            return
        key = (peer, msg.tag, msg.pair_name)
        if key in inst.inbox:
            self.stats["rejected"] += 1
            raise ProtocolError(f"second {msg.type} for pair {msg.pair_name} with tag {msg.tag}",
                                peer=peer, msg_type=msg.type)
        inst.inbox[key] = msg
        ttl = max(inst.max_age_ps, 1_000_000)
        inst.inbox_expiry[key] = self.loop.call_later(ttl, self._expire_message, inst.rs.id, key)
        self._evaluate(inst)

    # -- evaluation -------------------------------------------------------------------------
    def _evaluate(self, inst: InstalledRuleSet) -> None:
        firings = 0
        again = True
        while again:
            # One pass suffices (pairs only move forward), except for a move that found no free
            # storage qubit: a later Stage may free one, so pass once more after any firing.
            again = False
            waiting_for_storage = False
            firings_before = firings
            for si, stage in enumerate(inst.rs.stages):
                fired = True
                while fired:
                    fired = False
                    for rule in stage.rules:
                        binding = inst.match(si, rule, self.loop.now_ps())
                        if binding is None:
                            continue
                        if not self._storage_for_moves(inst, rule, binding):
                            waiting_for_storage = True
                            continue
                        self._fire(inst, si, rule, binding)
                        firings += 1
                        if firings > MAX_FIRINGS_PER_EVENT:
                            raise RuleSetError(f"more than {MAX_FIRINGS_PER_EVENT} firings for "
                                               "one event", ruleset=inst.rs.id,
                                               rule=f"{stage.name}/{rule.name}")
                        fired = True
                        break
            again = waiting_for_storage and firings > firings_before

    def _fire(self, inst: InstalledRuleSet, si: int, rule: m.Rule, b: Binding) -> None:
        self.stats["firings"] += 1
        now = self.loop.now_ps()
        inst.counters[si][m.Counter.CYCLES] += 1
        for key in b.messages:
            inst.inbox.pop(key, None)
            h = inst.inbox_expiry.pop(key, None)
            if h is not None:
                h.cancel()
        for t in b.timers:
            inst.fired_timers[si].discard(t)
        for old, msg in b.swap_results.items():
            pair = inst.pairs.pop(old)
            if msg.new_pair_name in inst.pairs or msg.new_pair_name in self._assigned_names:
                inst.pairs[old] = pair
                raise ProtocolError(f"new pair name {msg.new_pair_name} already in use",
                                    peer=msg.sender, msg_type=msg.type)
            self._assigned_names.add(msg.new_pair_name)
            pair.name, pair.partner = msg.new_pair_name, msg.new_partner
            pair.fidelity = msg.fidelity_estimate
            # The new pair is as old as its oldest component: older_ps before this half's own
            # creation, a duration the swapper measured on its one clock (no node reads another's).
            pair.created_ps = (pair.created_ps - msg.older_ps if msg.older_ps is not None
                               else msg.created_ps)
            inst.pairs[pair.name] = pair
            self._arm_wakeups(inst, pair)
        for name, (msg, agree) in b.purification_results.items():
            pair = inst.pairs[name]
            pending, pair.pending = pair.pending, None
            if agree and pending is not None:
                pair.fidelity = circuits.purified_fidelity(
                    pending.method, pair.fidelity, list(pending.sacrificed_fidelity))
        outgoing: list[tuple[NodeAddress, RuleSetMessage]] = []
        busy_ps = 0
        touched = {p.qubit for p in b.all_pairs()}
        for a in rule.actions:
            busy_ps += self._act(inst, si, a, b, now, outgoing)
        if busy_ps:
            # every qubit the Rule worked on (moves included: pairs now sit on their destinations)
            touched |= {p.qubit for p in b.all_pairs()}
            for q in touched:
                self.busy_until_ps[q] = max(self.busy_until_ps.get(q, 0), now + busy_ps)
        for peer, msg in outgoing:
            self.stats["messages_out"] += 1
            if busy_ps:
                self.loop.call_later(busy_ps, self._send, peer, msg)
            else:
                self._send(peer, msg)

    def _live(self, inst: InstalledRuleSet, b: Binding, partner: NodeAddress) -> list[HeldPair]:
        return [p for p in b.pairs.get(partner, []) if inst.pairs.get(p.name) is p]

    def _act(self, inst: InstalledRuleSet, si: int, a: m.Action, b: Binding, now: int,
             outgoing: list) -> int:
        """Run one action; returns the QNIC time it takes."""
        rs = inst.rs
        if isinstance(a, m.Purify):
            pairs = self._live(inst, b, a.partner)[:a.method.pairs_needed]
            kept, sac = pairs[0], pairs[1:]
            qnic = self._one_qnic([p.qubit for p in pairs], rs, a)
            bits, dur = circuits.purify(qnic, a.method, kept.qubit.index,
                                        [p.qubit.index for p in sac], self.node < a.partner)
            kept.pending = PendingPurification(a.tag, a.method, tuple(p.name for p in sac),
                                               tuple(p.fidelity for p in sac), bits)
            for p in sac:
                self._free(inst, p)
            outgoing.append((a.partner, PurificationResult(
                rs.id, a.tag, inst.next_seq(), self.node, kept.name, kept.pending.sacrificed,
                a.method.value, bits)))
            return dur
        if isinstance(a, m.Swap):
            left, right = self._live(inst, b, a.left)[0], self._live(inst, b, a.right)[0]
            qnic = self._one_qnic([left.qubit, right.qubit], rs, a)
            fx, fz = circuits.bell_measure(qnic, left.qubit.index, right.qubit.index)
            ts = max(now, self._last_name_ps + 1)
            self._last_name_ps = ts
            new = PairName(self.node, ts)
            fid = circuits.werner_swap(left.fidelity, right.fidelity)
            created = min(left.created_ps, right.created_ps)
            outgoing.append((a.left, SwapResult(rs.id, a.tag, inst.next_seq(), self.node,
                                                left.name, fx, fz, a.right, new, fid, created,
                                                left.created_ps - created)))
            outgoing.append((a.right, SwapResult(rs.id, a.tag, inst.next_seq(), self.node,
                                                 right.name, 0, 0, a.left, new, fid, created,
                                                 right.created_ps - created)))
            for p in (left, right):
                self._free(inst, p)
            return circuits.bsm_duration_ps(qnic)
        if isinstance(a, m.PauliCorrection):
            dur = 0
            for p in self._live(inst, b, a.partner):
                msg = next((s for s in b.swap_results.values() if s.new_pair_name == p.name), None)
                if msg is None:
                    continue
                qnic = self.qnics[p.qubit.qnic]
                if msg.frame_z:
                    qnic.gate(Gate.Z, p.qubit.index)
                    dur += qnic.duration_ps("Z")
                if msg.frame_x:
                    qnic.gate(Gate.X, p.qubit.index)
                    dur += qnic.duration_ps("X")
            return dur
        if isinstance(a, m.Measure):
            dur = 0
            for p in self._live(inst, b, a.partner):
                basis = a.basis.value if a.basis is not m.MeasureBasis.RANDOM else \
                    ("X", "Y", "Z")[int(self.rng.integers(3))]
                qnic = self.qnics[p.qubit.qnic]
                outcome = qnic.measure(p.qubit.index, Basis(basis))
                dur += qnic.duration_ps("measure")
                inst.counters[si][m.Counter.MEASUREMENTS] += 1
                self.stats["measured"] += 1
                self._deliver(MeasurementOutcome(rs.id, rs.connection, p.name, p.partner, basis,
                                                 outcome, a.purpose, now))
                self._free(inst, p)
            return dur
        if isinstance(a, m.QCirc):
            pairs = self._live(inst, b, a.partner)
            qnic = self._one_qnic([p.qubit for p in pairs], rs, a)
            dur = 0
            for g in a.gates:
                qnic.gate(Gate(g.gate), *(pairs[s].qubit.index for s in g.slots))
                dur += qnic.duration_ps(g.gate)
            return dur
        if isinstance(a, m.Promote):
            target = si + 1 if a.stage is None else rs.stage_index(a.stage)
            for p in self._live(inst, b, a.partner):
                p.stage, p.entered_stage_ps = target, now
                self._arm_wakeups(inst, p)
            return 0
        if isinstance(a, m.Move):
            target = si + 1 if a.stage is None else rs.stage_index(a.stage)
            dur = 0
            for p in self._live(inst, b, a.partner):
                qnic = self.qnics[p.qubit.qnic]
                dest = QubitAddress(p.qubit.qnic, self._free_storage(qnic)[0])
                qnic.move(p.qubit.index, dest.index)
                dur += qnic.duration_ps("move")
                del self._held[p.qubit]
                self._held[dest] = rs.id
                p.qubit = dest
                p.stage, p.entered_stage_ps = target, now
                self._arm_wakeups(inst, p)
            return dur
        if isinstance(a, m.Free):
            for p in self._live(inst, b, a.partner):
                self._free(inst, p)
            return 0
        if isinstance(a, m.Deliver):
            for p in self._live(inst, b, a.partner):
                self._release(inst, p)
                self.stats["delivered"] += 1
                self._deliver(PairDelivered(rs.id, rs.connection, p.qubit, p.name, p.partner,
                                            p.fidelity, p.created_ps, now))
            return 0
        if isinstance(a, m.SendMessage):
            first = next(iter(b.all_pairs()), None)
            outgoing.append((a.peer, Notice(rs.id, a.tag, inst.next_seq(), self.node,
                                            first.name if first else None, a.text)))
            return 0
        if isinstance(a, m.SetVariable):
            inst.variables[si][a.variable] = a.value
            return 0
        if isinstance(a, m.IncrementVariable):
            inst.variables[si][a.variable] = inst.variables[si].get(a.variable, 0.0) + a.by
            return 0
        if isinstance(a, m.SetTimer):
            old = inst.timer_handles.pop((si, a.timer), None)
            if old is not None:
                old.cancel()
            inst.fired_timers[si].discard(a.timer)
            inst.timer_handles[(si, a.timer)] = self.loop.call_later(
                a.delay_ps, self._timer_fired, rs.id, si, a.timer)
            return 0
        raise RuleSetError(f"unknown action {a!r}", ruleset=rs.id)  # unreachable after checks

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _storage_qubits(qnic: QNIC) -> list[int]:
        return [i for i in range(qnic.num_qubits) if qnic.role(i) is QubitRole.STORAGE]

    def _free_storage(self, qnic: QNIC) -> list[int]:
        now = self.loop.now_ps()
        elsewhere = self.held_elsewhere()
        out = []
        for i in self._storage_qubits(qnic):
            q = QubitAddress(qnic.qnic_address, i)
            if q not in self._held and q not in elsewhere and self.free_at_ps(q) <= now:
                out.append(i)
        return out

    def _storage_for_moves(self, inst: InstalledRuleSet, rule: m.Rule, b: Binding) -> bool:
        """Enough free storage qubits, per QNIC, for every pair the Rule's moves would carry."""
        need: dict[int, int] = {}
        for a in rule.actions:
            if isinstance(a, m.Move):
                for p in b.pairs.get(a.partner, []):
                    need[p.qubit.qnic] = need.get(p.qubit.qnic, 0) + 1
        return all(len(self._free_storage(self.qnics[q])) >= n for q, n in need.items())

    def _one_qnic(self, qubits: list[QubitAddress], rs: m.RuleSet, a: m.Action) -> QNIC:
        qnic_ids = {q.qnic for q in qubits}
        if len(qnic_ids) != 1:
            raise RuleSetError(f"{a.kind} needs its qubits on one QNIC, got "
                               f"{[str(q) for q in qubits]}", ruleset=rs.id)
        return self.qnics[qnic_ids.pop()]

    def _free(self, inst: InstalledRuleSet, pair: HeldPair) -> None:
        self._release(inst, pair)
        self.qnics[pair.qubit.qnic].init(pair.qubit.index)
        self.stats["freed"] += 1

    def _release(self, inst: InstalledRuleSet, pair: HeldPair) -> None:
        for h in pair.wakeups:
            h.cancel()
        pair.wakeups.clear()
        inst.pairs.pop(pair.name, None)
        self._held.pop(pair.qubit, None)

    def _arm_wakeups(self, inst: InstalledRuleSet, pair: HeldPair) -> None:
        """Wake the executor when an age or stage-timeout condition on this pair can turn true."""
        for h in pair.wakeups:
            h.cancel()
        pair.wakeups.clear()
        for r in inst.rs.stages[pair.stage].rules:
            for c in r.conditions:
                if isinstance(c, m.PairAgeOver) and c.partner == pair.partner:
                    when = pair.created_ps + c.limit_ps + 1
                elif isinstance(c, m.StageTimeout) and c.partner == pair.partner:
                    when = pair.entered_stage_ps + c.after_ps + 1
                else:
                    continue
                pair.wakeups.append(self.loop.call_at(max(when, self.loop.now_ps()),
                                                      self._wake, inst.rs.id))

    def _wake(self, ruleset_id: str) -> None:
        inst = self.installed.get(ruleset_id)
        if inst is not None:
            self._evaluate(inst)

    def _timer_fired(self, ruleset_id: str, si: int, timer: str) -> None:
        inst = self.installed.get(ruleset_id)
        if inst is None:
            return
        inst.timer_handles.pop((si, timer), None)
        inst.fired_timers[si].add(timer)
        self._evaluate(inst)

    def _expire_message(self, ruleset_id: str, key: tuple) -> None:
        inst = self.installed.get(ruleset_id)
        if inst is None:
            return
        inst.inbox_expiry.pop(key, None)
        if inst.inbox.pop(key, None) is not None:
            self.stats["stale_messages"] += 1
            log.info("%s: dropped stale message %s for RuleSet %s", self.node, key, ruleset_id)
