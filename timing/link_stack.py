"""One quantum link's timing stack at each of its nodes, assembled from the timing layer's parts.

An end node runs an :class:`EndLinkStack` per link: the attempt schedule; a pool of the link's
free communication qubits (an attempt is vetoed when none is free); the trigger that starts each
emission; and the :class:`~timing.binding.PairBinder` listening on the link's herald endpoint.
A heralding station runs a :class:`StationLinkStack`: it reads its time tagger on a timer and
feeds the batches to a :class:`~timing.station.HeraldStation`, which sends the heralds.

One attempt at an end node, in order:

1. the schedule fires attempt ``k`` (time ``t_k`` in the link's common time base);
2. the stack takes a free communication qubit, records it with the binder for ``k`` and arms it;
3. the trigger fires: either the stack's own trigger, which calls ``QNIC.emit`` at once, or a
   hardware trigger (an AWG marker, :class:`~timing.schedule.AwgMarkerTrigger`) whose edge starts
   the emission; in simulation the edge comes back through :meth:`EndLinkStack.emission_edge`;
4. the station's herald for ``k`` binds the qubit and raises ``PairReady``; the runtime owns the
   qubit from then on and gives it back with :meth:`EndLinkStack.release`. Failed or lost
   attempts come back to the pool when the binder's entry expires.

Nothing here reads configuration files: the node runtime builds these objects from its YAML, the
tests from literals. Both take the same typed arguments.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from drivers.qnic import QNIC
from drivers.time_tagger import TagBatch, TimeTagger
from qnode_fw.addresses import NodeAddress, QubitAddress
from qnode_fw.clock import Clock
from qnode_fw.errors import ConfigError
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop, TimerHandle

from .binding import PairBinder
from .clock_sync import ClockSyncClient
from .detection import DetectorConfig, HeraldArrays, HeraldDetector
from .frames import link_id_for
from .herald_link import HeraldEndpoint
from .schedule import AttemptSchedule, AttemptTrigger, DemandCounter, ScheduleConfig
from .station import HeraldStation


@dataclass(frozen=True, slots=True)
class EndLinkParams:
    """What an end node needs to know about one of its links.

    ``herald_origin`` is the node whose heralds bind pairs (the BSA station). ``expiry_ps`` is how
    long an emitted qubit waits for its herald before it is released: at least the photon's flight
    to the station, the station's read and detection delay and the herald's flight back.
    ``communication_qubits`` are the QNIC indices this link may emit from.
    """

    link_name: str
    node: NodeAddress
    partner: NodeAddress
    herald_origin: NodeAddress
    communication_qubits: tuple[int, ...]
    expiry_ps: int
    fidelity_estimate: float = 0.0
    applies_correction: bool | None = None

    def __post_init__(self) -> None:
        if not self.communication_qubits:
            raise ConfigError(f"link {self.link_name} at {self.node} has no communication qubit",
                              field="communication_qubits", expected="at least one qubit index")
        if len(set(self.communication_qubits)) != len(self.communication_qubits):
            raise ConfigError(f"link {self.link_name} at {self.node} lists a communication "
                              f"qubit twice: {list(self.communication_qubits)}",
                              field="communication_qubits")
        if self.expiry_ps <= 0:
            raise ConfigError(f"attempt expiry must be positive, got {self.expiry_ps} ps",
                              field="expiry_ps")


class QubitPool:
    """The communication qubits of one link that are free to emit, oldest-freed first."""

    def __init__(self, qnic_address: int, indices: Iterable[int]) -> None:
        self.qnic_address = int(qnic_address)
        self.indices = tuple(int(i) for i in indices)
        self._free: deque[int] = deque(self.indices)
        self._free_set = set(self.indices)

    def __len__(self) -> int:
        return len(self._free)

    def acquire(self) -> QubitAddress | None:
        if not self._free:
            return None
        index = self._free.popleft()
        self._free_set.discard(index)
        return QubitAddress(self.qnic_address, index)

    def release(self, qubit: QubitAddress) -> None:
        if qubit.qnic != self.qnic_address or qubit.index not in self.indices:
            raise ValueError(f"qubit {qubit} does not belong to this link's pool "
                             f"(QNIC {self.qnic_address}, qubits {list(self.indices)})")
        if qubit.index in self._free_set:
            raise ValueError(f"qubit {qubit} released twice")
        self._free.append(qubit.index)
        self._free_set.add(qubit.index)


@dataclass(slots=True)
class EmissionStats:
    armed: int = 0          # attempts that got a qubit and were triggered
    emitted: int = 0        # emissions started through QNIC.emit by this stack
    unarmed_edges: int = 0  # trigger edges for an attempt with no armed qubit (nothing emitted)


class _EmitNow(AttemptTrigger):
    """Software trigger: the QNIC driver emits the armed qubit as soon as the attempt fires."""

    def __init__(self, stack: "EndLinkStack") -> None:
        self.stack = stack

    def fire(self, attempt_id: int, t_ps: int) -> None:
        self.stack._emit(attempt_id)


class EndLinkStack:
    """Schedule, qubit pool, trigger and binder of one link at one end node.

    ``loop``/``clock``: the node's event loop and clock (binder expiry, herald arrival times).
    ``attempt_loop``: the loop whose timers fire attempts, ``loop`` unless given; a simulation
    that runs its hardware on a virtual time line under a wall-clock node passes that virtual
    loop. ``trigger``: how an attempt starts in hardware; ``None`` emits through ``qnic.emit``
    when the attempt fires. With a hardware trigger the emission starts on the trigger's edge;
    a simulation reports that edge to :meth:`emission_edge`. ``to_loop_time``/``from_loop_time``
    map the link's time base to the attempt loop's (clock sync), identity unless given.
    ``sync_interval_ps`` starts a clock-sync client towards the herald origin.
    """

    def __init__(self, loop: EventLoop, params: EndLinkParams, schedule: ScheduleConfig,
                 endpoint: HeraldEndpoint, qnic: QNIC, *,
                 on_pair_ready: Callable[[PairReady], None],
                 trigger: AttemptTrigger | None = None, demand: DemandCounter | None = None,
                 clock: Clock | None = None, attempt_loop: EventLoop | None = None,
                 to_loop_time: Callable[[int], int] | None = None,
                 from_loop_time: Callable[[int], int] | None = None,
                 sync_interval_ps: int | None = None) -> None:
        self.loop = loop
        self.params = params
        self.qnic = qnic
        self.endpoint = endpoint
        self.clock = clock or loop.clock
        self.on_pair_ready = on_pair_ready
        self.pool = QubitPool(qnic.qnic_address, params.communication_qubits)
        self.demand = demand or DemandCounter()
        self.stats = EmissionStats()
        self._armed: dict[int, int] = {}  # attempt id -> qubit index, until its emission starts
        self.binder = PairBinder(
            params.node, params.link_name, link_id_for(params.link_name), params.partner,
            params.herald_origin, self.clock, on_pair_ready=self._pair_ready,
            release=self._released, expiry_ps=params.expiry_ps,
            fidelity_estimate=params.fidelity_estimate,
            applies_correction=params.applies_correction, loop=loop)
        self.binder.attach(endpoint)
        self.hardware_trigger = trigger
        self.schedule = AttemptSchedule(
            attempt_loop or loop, params.link_name, schedule,
            trigger if trigger is not None else _EmitNow(self), self.demand,
            gate=self._has_free_qubit, to_loop_time=to_loop_time, from_loop_time=from_loop_time)
        self._from_loop = from_loop_time or (lambda t: t)
        self.schedule.on_attempt(self._arm)
        self.sync: ClockSyncClient | None = None
        if sync_interval_ps is not None:
            self.sync = ClockSyncClient(loop, endpoint, params.herald_origin, self.clock,
                                        interval_ps=sync_interval_ps)
            self.sync.start()

    # -- attempts ---------------------------------------------------------------------------
    def _has_free_qubit(self, attempt_id: int) -> bool:
        return len(self.pool) > 0

    def _arm(self, attempt_id: int, t_ps: int) -> None:
        qubit = self.pool.acquire()
        if qubit is None:  # the gate ran just before: cannot happen unless a listener took it
            return
        # The binder keeps emission times on this node's clock (expiry, PairReady.created_ps);
        # ``t_ps`` is on the link's time base, which only clock sync relates to it.
        self.binder.record_emission(attempt_id, qubit)
        self._armed[attempt_id] = qubit.index
        self.stats.armed += 1

    def _emit(self, attempt_id: int) -> None:
        index = self._armed.pop(attempt_id, None)
        if index is None:
            self.stats.unarmed_edges += 1
            return
        self.qnic.emit(index, attempt_id)
        self.stats.emitted += 1

    def emission_edge(self, t_ps: int) -> None:
        """A hardware trigger edge at ``t_ps`` (attempt loop time) starts the emission of the
        attempt whose slot contains it (ids from time, as the schedule's)."""
        self._emit(self.schedule.config.attempt_of(self._from_loop(t_ps)))

    # -- pairs ------------------------------------------------------------------------------
    def _pair_ready(self, ready: PairReady) -> None:
        self.on_pair_ready(ready)

    def _released(self, qubit: QubitAddress) -> None:
        # An expired attempt whose trigger never came still sits in the armed map.
        for attempt, index in list(self._armed.items()):
            if index == qubit.index:
                del self._armed[attempt]
        self.pool.release(qubit)

    def release(self, qubit: QubitAddress) -> None:
        """The runtime is done with a qubit it got in a PairReady: it may emit again."""
        self.pool.release(qubit)

    def close(self) -> None:
        if self.sync is not None:
            self.sync.stop()
        self.demand.release(self.demand.value)


class StationLinkStack:
    """A heralding station's side of one link: read the tagger every ``read_interval_ps`` and
    herald to ``ends``.

    ``clock`` is the station's time base, which its time tagger's timestamps are on.
    ``completion_lag_ps`` is how far behind the clock a tag can still turn up in a later read
    (0 when every tag before the read time is in the read, as with the simulated tagger whose
    photons land after their emission); it lets the detector close a window at the read instead
    of waiting for the next tag.
    """

    def __init__(self, loop: EventLoop, endpoint: HeraldEndpoint, detector: DetectorConfig,
                 ends: Sequence[NodeAddress], tagger: TimeTagger, clock: Clock, *,
                 read_interval_ps: int, completion_lag_ps: int = 0,
                 send_failures: bool = False) -> None:
        if read_interval_ps <= 0:
            raise ConfigError(f"tagger read interval must be positive, got {read_interval_ps} ps",
                              field="read_interval_ps")
        if completion_lag_ps < 0:
            raise ConfigError("completion lag cannot be negative", field="completion_lag_ps")
        self.loop = loop
        self.tagger = tagger
        self.clock = clock
        self.read_interval_ps = int(read_interval_ps)
        self.completion_lag_ps = int(completion_lag_ps)
        self.station = HeraldStation(endpoint, HeraldDetector(detector), ends, clock,
                                     send_failures=send_failures)
        cmap = detector.channels
        self.channels = [cmap.sync, *cmap.detectors]
        self.tags_read = 0
        self._timer: TimerHandle | None = None

    @property
    def detector(self) -> HeraldDetector:
        return self.station.detector

    def start(self) -> None:
        self.detector.warm_up()
        self.tagger.start_stream(self.channels)
        self._timer = self.loop.call_later(self.read_interval_ps, self._tick)

    def stop(self) -> HeraldArrays:
        """Stop reading; heralds of windows still open are decided and sent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        last = self.read()
        tail = self.station.flush()
        self.tagger.stop_stream()
        return HeraldArrays.concat([last, tail])

    def read(self) -> HeraldArrays:
        """One tagger read: detect and send the heralds it completes."""
        batch: TagBatch = self.tagger.read_stream()
        self.tags_read += len(batch)
        complete = self.clock.now_ps() - self.completion_lag_ps - 1
        return self.station.ingest(batch, complete_until_ps=complete)

    def _tick(self) -> None:
        self.read()
        self._timer = self.loop.call_later(self.read_interval_ps, self._tick)


def marker_edge_listener(stack: EndLinkStack, awg_name: str, channel: int,
                         marker: int = 1) -> Callable[[str, int, int, int], None]:
    """A listener for the simulated World's marker edges (``World.marker_listeners``) that starts
    ``stack``'s emission on each rising edge of one AWG marker: the simulated cable from the AWG
    marker output to the emitter's trigger input."""

    def on_edge(awg: str, ch: int, mk: int, t_ps: int) -> None:
        if awg == awg_name and ch == channel and mk == marker:
            stack.emission_edge(t_ps)

    return on_edge
