"""Binding heralds to physical qubits at an end node, and the pair-ready event.

When the schedule fires attempt ``k`` the node records which communication qubit emitted
(:meth:`PairBinder.record_emission`). A herald for attempt ``k`` from the link's heralding node
then binds exactly that qubit: the pair is named ``<heralding node, herald timestamp>``, its
partner is the other end of the link, and the Pauli correction comes from the reported Bell state.

Everything is keyed by attempt id and checked against the sender, never matched by arrival order:
a lost herald leaves its entry to expire (the qubit is released, never held forever), a duplicate
finds its entry already consumed, a reordered herald still finds its own attempt, and a herald
from anyone but the heralding node, or for another link, binds nothing. A herald whose pair name
this end has bound before binds nothing either (the station never reuses a name, see
:class:`~timing.link_end.BsaStationRuntime`; this end refuses one rather than hold two pairs
under one name). The binder remembers the latest :data:`PAIRS_KEPT` pairs it bound: a node binds
pairs for as long as it runs, and a herald repeats a name only within its sequence window.

Two clocks: emission stamps (``created_ps`` of the pair) are on the node's PC clock, which
clock sync steers and a fault may step; expiry, and the ``created_mono_ps`` that the RuleSet
executor ages pairs by, are on the loop's monotonic clock.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from qnode_fw.addresses import NodeAddress, PairName, QubitAddress
from qnode_fw.bell import BellState, correction_to_phi_plus
from qnode_fw.clock import Clock
from qnode_fw.events import PairReady
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop, TimerHandle

from .frames import Frame, FrameType, Outcome
from .herald_link import HeraldEndpoint

log = logging.getLogger(__name__)


#: Pairs a binder remembers (:attr:`PairBinder.pairs`): the latest, seconds of pairs at a testbed's
#: rates, far more than a herald can lag behind; keeping every one, a node grows with every pair
#: for as long as it runs.
PAIRS_KEPT = 256


class PairRecord(NamedTuple):
    """What a node remembers about a heralded pair it holds (a named tuple: one is built per
    herald on the latency path, and a frozen dataclass pays a ``setattr`` per field)."""

    name: PairName
    qubit: QubitAddress
    partner: NodeAddress
    bell_state: BellState
    correction: str   # Pauli this node applies to reach Φ+ ("I" on the end that does not correct)
    attempt_id: int
    created_ps: int   # emission time on this node's clock
    heralded_ps: int  # when the herald arrived here


@dataclass(slots=True)
class BinderStats:
    bound: int = 0
    failed: int = 0
    expired: int = 0
    unknown_attempt: int = 0
    wrong_sender: int = 0
    wrong_link: int = 0
    repeated_name: int = 0


@dataclass(slots=True)
class _Emission:
    qubit: QubitAddress
    t_ps: int           # emission time on the node clock (goes into the pair's record)
    deadline_ps: int    # expiry on the monotonic clock (the loop's, when there is a loop)
    mono_ps: int        # emission time on the monotonic clock


class PairBinder:
    """One end node's attempt -> qubit map for one link.

    ``herald_origin`` is the node whose heralds count (the BSA station; the partner itself for
    the at-source scheme). ``applies_correction`` says whether this end applies the Pauli
    correction (exactly one end of a link does; by convention the one whose name sorts first).
    ``release`` is called with a qubit that will not be bound (failed attempt or expiry) so the
    QNIC registry can free it.
    """

    def __init__(self, node: NodeAddress, link_name: str, link_id: int, partner: NodeAddress,
                 herald_origin: NodeAddress, clock: Clock, *,
                 on_pair_ready: Callable[[PairReady], None],
                 release: Callable[[QubitAddress], None] | None = None,
                 expiry_ps: int, fidelity_estimate: float = 0.0,
                 applies_correction: bool | None = None, loop: EventLoop | None = None) -> None:
        if expiry_ps <= 0:
            raise ValueError("attempt expiry must be positive")
        self.node = node
        self.link_name = link_name
        self.link_id = link_id
        self.partner = partner
        self.herald_origin = herald_origin
        self.clock = clock
        self.on_pair_ready = on_pair_ready
        self.release = release or (lambda q: None)
        self.expiry_ps = int(expiry_ps)
        self.fidelity_estimate = fidelity_estimate
        self.applies_correction = (node < partner) if applies_correction is None else applies_correction
        self.stats = BinderStats()
        self.pairs: dict[PairName, PairRecord] = {}
        # Insertion order is emission order, so expiry pops from the front.
        self._pending: OrderedDict[int, _Emission] = OrderedDict()
        self._by_qubit: dict[QubitAddress, int] = {}
        # With a loop, expiry runs on its own timer; without one, on every emission and herald.
        self._loop = loop
        self._expiry_timer: TimerHandle | None = None

    def attach(self, endpoint: HeraldEndpoint) -> None:
        endpoint.subscribe(FrameType.HERALD, self.on_herald)

    @property
    def pending(self) -> dict[int, QubitAddress]:
        return {k: e.qubit for k, e in self._pending.items()}

    def record_emission(self, attempt_id: int, qubit: QubitAddress, t_ps: int | None = None) -> None:
        """Qubit ``qubit`` emitted for attempt ``attempt_id`` (call before the herald can arrive)."""
        self.expire()
        if attempt_id in self._pending:
            raise ValueError(f"attempt {attempt_id} on {self.link_name} already has qubit "
                             f"{self._pending[attempt_id].qubit}")
        other = self._by_qubit.get(qubit)
        if other is not None:
            raise ValueError(f"qubit {qubit} is still waiting for attempt {other}'s herald")
        now = self.clock.now_ps()
        t = now if t_ps is None else t_ps
        # Expiry is timed on the loop's clock: the node clock is steered by clock sync and may
        # step (a clock fault), which must neither hold a qubit longer nor free it early.
        mono = self._mono_ps() + t - now
        self._pending[attempt_id] = _Emission(qubit, t, mono + self.expiry_ps, mono)
        self._by_qubit[qubit] = attempt_id
        self._arm_expiry()

    def _arm_expiry(self) -> None:
        if self._loop is None or self._expiry_timer is not None or not self._pending:
            return
        oldest = next(iter(self._pending.values()))
        # The binder's clock and the loop's may differ (simulated node clocks): wait the
        # remaining time, not until an absolute time on the wrong clock.
        remaining = max(0, oldest.deadline_ps - self._mono_ps())
        self._expiry_timer = self._loop.call_later(remaining, self._on_expiry_timer)

    def _mono_ps(self) -> int:
        return self._loop.now_ps() if self._loop is not None else self.clock.now_ps()

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        self.expire()
        self._arm_expiry()

    def expire(self) -> int:
        """Release every emission older than the expiry; returns how many."""
        now = self._mono_ps()
        n = 0
        while self._pending:
            attempt, em = next(iter(self._pending.items()))
            if now < em.deadline_ps:
                break
            del self._pending[attempt]
            del self._by_qubit[em.qubit]
            self.stats.expired += 1
            n += 1
            self.release(em.qubit)
        return n

    def on_herald(self, peer: NodeAddress, frame: Frame) -> PairReady | None:
        if frame.link_id != self.link_id:
            self.stats.wrong_link += 1
            return None
        if peer != self.herald_origin:
            self.stats.wrong_sender += 1
            event(log, logging.WARNING, "herald-wrong-sender", link=self.link_name, peer=peer,
                  expected=self.herald_origin, attempt=frame.attempt_id)
            return None
        self.expire()
        em = self._pending.pop(frame.attempt_id, None)
        if em is None:
            # Expired, duplicated after binding, or never emitted here: bind nothing.
            self.stats.unknown_attempt += 1
            return None
        del self._by_qubit[em.qubit]
        state = frame.outcome.bell_state
        if frame.outcome is Outcome.SUCCESS:
            state = BellState.PHI_PLUS  # schemes whose herald carries no Bell-state information
        if state is None:
            self.stats.failed += 1
            self.release(em.qubit)
            return None
        name = PairName(self.herald_origin, frame.timestamp_ps)
        if name in self.pairs:
            # Two pairs under one name would let a message for one act on the other.
            self.stats.repeated_name += 1
            event(log, logging.WARNING, "herald-repeated-name", link=self.link_name, pair=str(name),
                  attempt=frame.attempt_id)
            self.release(em.qubit)
            return None
        record = PairRecord(name, em.qubit, self.partner, state,
                            correction_to_phi_plus(state) if self.applies_correction else "I",
                            frame.attempt_id, em.t_ps, self.clock.now_ps())
        self.pairs[name] = record
        if len(self.pairs) > PAIRS_KEPT:
            del self.pairs[next(iter(self.pairs))]      # the oldest (insertion order)
        self.stats.bound += 1
        ready = PairReady(em.qubit, name, self.partner, state, self.link_name, frame.attempt_id,
                          em.t_ps, self.fidelity_estimate, em.mono_ps)
        self.on_pair_ready(ready)
        return ready
