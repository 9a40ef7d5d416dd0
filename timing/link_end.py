"""One link as its nodes run it, for any of the three schemes (:mod:`timing.schemes`).

* :class:`LinkEndRuntime` – an end node's side: for attempt ``k`` it takes a free communication
  qubit, emits or arms it at ``t_k + action_offset``, records it in a
  :class:`~timing.binding.PairBinder`, and turns outcomes into ``PairReady`` (or frees the qubit).
  A receiving end also reads its transducer's herald detector and sends its outcome on the herald
  link; a ``midpoint_source`` end joins its own outcome with its partner's before binding.
* :class:`BsaStationRuntime` – the ``both_endpoints`` station: reads the BSA tagger every slot and
  sends each attempt's outcome to both ends.
* :class:`EppsStationRuntime` – the ``midpoint_source`` station: pumps its source in every slot
  while demand lasts (it heralds nothing).

An ``at_source`` link has no station runtime: its receiving end is the station.
Attempts are driven either by an :class:`~timing.schedule.AttemptSchedule` per end
(:meth:`LinkEndRuntime.start_schedule`) or, for a transceiver behind an optical switch, by
:class:`~timing.switched.SwitchedTransceiver`, which calls :meth:`LinkEndRuntime.attempt`.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from drivers.qnic import QNIC
from drivers.time_tagger import TimeTagger
from qnode_fw.addresses import QubitAddress
from qnode_fw.clock import Clock
from qnode_fw.errors import InstrumentError
from qnode_fw.events import PairReady
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop

from .binding import PairBinder
from .comm_qubits import CommQubitPool
from .frames import Frame, FrameType, Outcome, link_id_for
from .heralders import TaggerHeralder
from .herald_link import HeraldEndpoint
from .schedule import AttemptSchedule, AttemptTrigger, CallbackTrigger, DemandCounter
from .schemes import EndRole, LinkScheme, LinkSchemeParams

log = logging.getLogger(__name__)

#: Attempts an end keeps in :attr:`LinkEndRuntime.attempts`, heralds a station keeps in
#: :attr:`BsaStationRuntime.sent`: the latest ones (far more attempts than fit in a herald's round
#: trip, so a herald still finds its attempt); counters hold the run's totals, since a link makes
#: an attempt every few microseconds for as long as the node runs. Small, so that a node reaches
#: its steady memory within the first minute (the soak run measures the growth after that).
HISTORY_SIZE = 1024


class LinkEndRuntime:
    """End ``index`` of link ``params`` on this node."""

    def __init__(self, loop: EventLoop, params: LinkSchemeParams, index: int, qnic: QNIC,
                 pool: CommQubitPool, endpoint: HeraldEndpoint, *,
                 on_pair_ready: Callable[[PairReady], None],
                 tagger: TimeTagger | None = None, qubits: tuple[int, ...] | None = None,
                 fidelity_estimate: float = 0.0, expiry_ps: int | None = None,
                 clock: Clock | None = None, full_attempt_history: bool = False) -> None:
        self.loop = loop
        self.params = params
        self.index = index
        self.node = params.nodes[index]
        self.partner = params.partner(index)
        self.role = params.role(index)
        self.qnic = qnic
        self.pool = pool
        self.endpoint = endpoint
        self.on_pair_ready = on_pair_ready
        self.qubits = None if qubits is None else pool.check(qubits, f"link {params.name}")
        self.action_offset_ps = params.action_offset_ps(index)
        self.in_flight_ps = params.in_flight_ps(index)
        self.link_id = link_id_for(params.name)
        # ``clock``: the node's PC clock, which emission stamps are taken on (default: the loop's);
        # the attempt grid stays on the loop, the testbed's shared timing reference.
        self.binder = PairBinder(self.node, params.name, self.link_id, self.partner,
                                 params.herald_origin(index), clock or loop.clock,
                                 on_pair_ready=self._ready, release=self._released,
                                 expiry_ps=expiry_ps or params.binder_expiry_ps(index),
                                 fidelity_estimate=fidelity_estimate, loop=loop)
        #: (attempt id, loop time of the emission or arming, qubit index) of the latest
        #: HISTORY_SIZE attempts (every one with ``full_attempt_history``, for a test that reads
        #: a whole run); :attr:`attempt_count` counts them all, and ``attempt_listeners`` hear
        #: each attempt id as it is made
        self.attempts: list[tuple[int, int, int]] | deque[tuple[int, int, int]] = (
            [] if full_attempt_history else deque(maxlen=HISTORY_SIZE))
        self.attempt_count = 0
        self.attempt_listeners: list[Callable[[int], None]] = []
        self.heralder: TaggerHeralder | None = None
        self._joined: dict[int, list[Outcome | None]] = {}
        if params.heralds_locally(index):
            if tagger is None:
                raise ValueError(f"{self.node} absorbs on link {params.name} and needs the tagger "
                                 "of its transducer's herald detector")
            self.heralder = TaggerHeralder(loop, tagger, params, index, self._local_outcome,
                                           every_slot=False, success_as=Outcome.SUCCESS)
        if params.scheme is LinkScheme.MIDPOINT_SOURCE:
            endpoint.subscribe(FrameType.HERALD, self._partner_frame)
        elif not params.heralds_locally(index):
            self.binder.attach(endpoint)  # heralds come from the BSA / the receiving end
        self.wrong_sender = 0

    # -- attempts ---------------------------------------------------------------------------
    def action_time_ps(self, attempt_id: int) -> int:
        return self.params.slot_time_ps(attempt_id) + self.action_offset_ps

    def attempt_at_or_after(self, t_ps: int) -> int:
        """The first attempt whose action time is at or after ``t_ps``."""
        cfg = self.params
        return max(0, -(-(t_ps - self.action_offset_ps - cfg.start_ps) // cfg.period_ps))

    def can_attempt(self) -> bool:
        return bool(self.pool.free(self.qubits))

    def attempt(self, attempt_id: int) -> int:
        """Emit or arm a free communication qubit for ``attempt_id`` now; returns its index."""
        q = self.pool.take(self.qubits)
        try:
            if self.role is EndRole.EMIT:
                self.qnic.emit(q, attempt_id)
            else:
                self.qnic.absorb(q, attempt_id)
        except InstrumentError:
            self.pool.untake(q)       # the QNIC failed: no attempt, the qubit is free again
            raise
        now = self.loop.now_ps()
        self.binder.record_emission(attempt_id, QubitAddress(self.pool.address, q))
        if self.heralder is not None:
            self.heralder.expect(attempt_id)
        self.attempts.append((attempt_id, now, q))
        self.attempt_count += 1
        for fn in self.attempt_listeners:
            fn(attempt_id)
        return q

    def start_schedule(self, demand: DemandCounter,
                       gate: Callable[[int], bool] | None = None) -> AttemptSchedule:
        """Drive this end with its own schedule: an attempt in every slot with demand, a free
        communication qubit and (if given) ``gate``'s consent."""
        offset = self.action_offset_ps
        trigger: AttemptTrigger = CallbackTrigger(lambda k, t: self.attempt(k))
        return AttemptSchedule(self.loop, self.params.name, self.params.schedule_config(), trigger,
                               demand, gate=lambda k: self.can_attempt() and (gate is None or gate(k)),
                               to_loop_time=lambda t: t + offset, from_loop_time=lambda t: t - offset)

    # -- outcomes ---------------------------------------------------------------------------
    def _ready(self, ready: PairReady) -> None:
        self.pool.bound(ready.qubit.index)
        self.on_pair_ready(ready)

    def _released(self, qubit: QubitAddress) -> None:
        self.pool.release(qubit.index)

    def _local_outcome(self, attempt_id: int, outcome: Outcome, t_ps: int) -> None:
        """This end's transducer reported attempt ``attempt_id``."""
        p = self.params
        if p.scheme is LinkScheme.AT_SOURCE:
            frame = None
            if outcome is not Outcome.FAILURE or p.send_failures:
                frame = self.endpoint.send(self.partner, FrameType.HERALD, attempt_id, t_ps, outcome)
            self.binder.on_herald(self.node, frame or self._frame(attempt_id, t_ps, outcome))
            return
        # midpoint source: tell the partner, then bind once both outcomes are known
        slot = p.slot_time_ps(attempt_id)
        if outcome is not Outcome.FAILURE or p.send_failures:
            self.endpoint.send(self.partner, FrameType.HERALD, attempt_id, slot, outcome)
        self._join(attempt_id, 0, outcome)

    def _partner_frame(self, peer: str, frame: Frame) -> None:
        if frame.link_id != self.link_id:
            return
        if peer != self.partner:
            self.wrong_sender += 1
            event(log, logging.WARNING, "herald-wrong-sender", link=self.params.name, peer=peer,
                  expected=self.partner, attempt=frame.attempt_id)
            return
        self._join(frame.attempt_id, 1, frame.outcome)

    def _join(self, attempt_id: int, who: int, outcome: Outcome) -> None:
        # Both ends keep their qubit until both outcomes are known, so they stay in step: an end
        # that freed its qubit on its own failure would arm alone in the partner's next slot.
        # Without failure frames a failure is never heard, so it ends the attempt at once.
        entry = self._joined.setdefault(attempt_id, [None, None])
        entry[who] = outcome
        silent_failure = outcome is Outcome.FAILURE and not self.params.send_failures
        if silent_failure or (entry[0] is not None and entry[1] is not None):
            del self._joined[attempt_id]
            both = Outcome.SUCCESS if entry == [Outcome.SUCCESS, Outcome.SUCCESS] else Outcome.FAILURE
            slot = self.params.slot_time_ps(attempt_id)
            self.binder.on_herald(self.params.station, self._frame(attempt_id, slot, both))
        # an outcome for an attempt nobody here is waiting on any more is dropped with its entry
        horizon = attempt_id - 4 * self.params.slots_per_attempt(self.index) - 4
        for k in [k for k in self._joined if k < horizon]:
            del self._joined[k]

    def _frame(self, attempt_id: int, t_ps: int, outcome: Outcome) -> Frame:
        """The herald this end derives itself (its own transducer, or both ends' outcomes)."""
        return Frame(FrameType.HERALD, self.link_id, 1, attempt_id, t_ps, outcome)


class BsaStationRuntime:
    """The BSA station of a ``both_endpoints`` link: every slot, read the BSA tagger and send each
    attempt's outcome (Ψ±, or FAILURE with ``send_failures``) to both ends."""

    def __init__(self, loop: EventLoop, params: LinkSchemeParams, tagger: TimeTagger,
                 endpoint: HeraldEndpoint) -> None:
        if params.scheme is not LinkScheme.BOTH_ENDPOINTS:
            raise ValueError(f"link {params.name} is {params.scheme.value}, not both_endpoints")
        self.params = params
        self.endpoint = endpoint
        self.heralder = TaggerHeralder(loop, tagger, params, None, self._outcome, every_slot=True)
        #: (attempt id, outcome, herald time) of the latest HISTORY_SIZE frames sent; the totals
        #: are :attr:`heralds_sent` (Ψ±) and :attr:`failures_sent`
        self.sent: deque[tuple[int, Outcome, int]] = deque(maxlen=HISTORY_SIZE)
        self.heralds_sent = 0
        self.failures_sent = 0
        self._last_herald_ps = -(1 << 62)

    def start(self) -> None:
        self.heralder.start()

    def stop(self) -> None:
        self.heralder.stop()

    def _outcome(self, attempt_id: int, outcome: Outcome, t_ps: int) -> None:
        if outcome is Outcome.FAILURE and not self.params.send_failures:
            return
        if outcome.bell_state is not None:
            # A herald names its pair <station, herald time>: never twice, even if the tagger's
            # timebase restarted (a reconnect), or two heralds carried one time.
            t_ps = max(int(t_ps), self._last_herald_ps + 1)
            self._last_herald_ps = t_ps
        for node in self.params.nodes:
            self.endpoint.send(node, FrameType.HERALD, attempt_id, t_ps, outcome)
        self.sent.append((attempt_id, outcome, t_ps))
        if outcome.bell_state is not None:
            self.heralds_sent += 1
        else:
            self.failures_sent += 1

    @property
    def last_herald_ps(self) -> int | None:
        """Time of the latest Ψ± herald sent (None before the first)."""
        return self._last_herald_ps if self.heralds_sent else None


class EppsStationRuntime:
    """The EPPS station of a ``midpoint_source`` link: pump the source once per slot while
    ``demand`` lasts; ``pump(attempt_id)`` triggers the source (an AWG burst in the lab)."""

    def __init__(self, loop: EventLoop, params: LinkSchemeParams, pump: Callable[[int], None],
                 demand: DemandCounter) -> None:
        if params.scheme is not LinkScheme.MIDPOINT_SOURCE:
            raise ValueError(f"link {params.name} is {params.scheme.value}, not midpoint_source")
        self.schedule = AttemptSchedule(loop, params.name, params.schedule_config(),
                                        CallbackTrigger(lambda k, t: pump(k)), demand)
