"""The attempt schedule of one link: attempt ``k`` starts at ``start_ps + k * period_ps``.

Both end nodes and the station derive attempt ids from time alone, never from counting, so a
node that paused, missed a trigger or joined late still agrees with the others on which attempt is
which. Times are in the link's common time base (the station clock that clock sync tracks); a
``to_loop_time`` map turns them into the local event loop's time.

Every attempt disturbs stored qubits (emission resets the communication qubit, the optical pulse
dephases nearby memories), so the schedule only runs while a :class:`DemandCounter` is positive:
RuleSets that need pairs raise it, and release it when they have enough. A ``gate`` can veto a
single attempt (no free communication qubit, optical switch pointing at the other link).

A trigger that raises an :class:`~qnode_fw.errors.InstrumentError` (the AWG stopped answering)
does not end the schedule: the first error of the outage goes on to the failure policy, and the
schedule tries again after a bounded backoff (:class:`~timing.recovery.InstrumentRetry`) until
the trigger works, then attempts in every slot again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from drivers.awg import AWG
from qnode_fw.errors import ConfigError
from qnode_fw.loop import EventLoop, TimerHandle

from .recovery import InstrumentRetry

AttemptListener = Callable[[int, int], None]


class AttemptTrigger(ABC):
    """What starts one attempt's emission in hardware (or simulation)."""

    @abstractmethod
    def fire(self, attempt_id: int, t_ps: int) -> None: ...


class CallbackTrigger(AttemptTrigger):
    """Trigger through a callable ``fn(attempt_id, t_ps)`` (simulated AWG, QNIC emit)."""

    def __init__(self, fn: Callable[[int, int], None]) -> None:
        self.fn = fn

    def fire(self, attempt_id: int, t_ps: int) -> None:
        self.fn(attempt_id, t_ps)


class AwgMarkerTrigger(AttemptTrigger):
    """Bus-trigger one burst of the AWG's attempt waveform; its marker output drives the emission
    hardware and the time tagger's sync channel (one marker edge per attempt)."""

    def __init__(self, awg: AWG, channel: int, waveform: str | None = None) -> None:
        self.awg = awg
        self.channel = channel
        if waveform is not None:
            awg.select_waveform(channel, waveform)
        awg.configure_burst(channel, 1, trigger_source="BUS")
        self.fired = 0

    def fire(self, attempt_id: int, t_ps: int) -> None:
        self.awg.trigger()
        self.fired += 1


class DemandCounter:
    """How many pairs RuleSets on this link still want; the schedule runs while it is > 0."""

    def __init__(self) -> None:
        self.value = 0
        self._listeners: list[Callable[[int], None]] = []

    def on_change(self, fn: Callable[[int], None]) -> None:
        self._listeners.append(fn)

    def add(self, n: int = 1) -> None:
        if n < 0:
            raise ValueError("use release() to lower demand")
        self._set(self.value + n)

    def release(self, n: int = 1) -> None:
        self._set(max(0, self.value - n))

    def _set(self, value: int) -> None:
        old, self.value = self.value, value
        if (old > 0) != (value > 0):
            for fn in list(self._listeners):
                fn(value)


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    start_ps: int
    period_ps: int
    window_ps: int

    def __post_init__(self) -> None:
        if self.period_ps <= 0:
            raise ConfigError(f"attempt period must be positive, got {self.period_ps} ps",
                              field="period_ps")
        if not 0 < self.window_ps <= self.period_ps:
            raise ConfigError(f"attempt window {self.window_ps} ps must be in (0, period "
                              f"{self.period_ps} ps]", field="window_ps")

    def attempt_time(self, attempt_id: int) -> int:
        return self.start_ps + attempt_id * self.period_ps

    def first_attempt_at_or_after(self, t_ps: int) -> int:
        if t_ps <= self.start_ps:
            return 0
        return -(-(t_ps - self.start_ps) // self.period_ps)

    def attempt_of(self, t_ps: int) -> int:
        """Attempt whose period contains ``t_ps`` (nearest start for a sync tag near it)."""
        return (t_ps - self.start_ps + self.period_ps // 2) // self.period_ps


class AttemptSchedule:
    """Fires attempts on the event loop while demand lasts."""

    def __init__(self, loop: EventLoop, link_name: str, config: ScheduleConfig,
                 trigger: AttemptTrigger, demand: DemandCounter, *,
                 gate: Callable[[int], bool] | None = None,
                 to_loop_time: Callable[[int], int] | None = None,
                 from_loop_time: Callable[[int], int] | None = None) -> None:
        self.loop = loop
        self.link_name = link_name
        self.config = config
        self.trigger = trigger
        self.demand = demand
        self.gate = gate
        self._to_loop = to_loop_time or (lambda t: t)
        self._from_loop = from_loop_time or (lambda t: t)
        self._listeners: list[AttemptListener] = []
        self._timer: TimerHandle | None = None
        self._next_id = 0
        self.fired = 0
        self.vetoed = 0
        #: the trigger's instrument: retried with backoff through an outage
        self.retry = InstrumentRetry(loop, f"attempt schedule of {link_name}")
        demand.on_change(self._demand_changed)
        if demand.value > 0:
            self._resume()

    def on_attempt(self, fn: AttemptListener) -> None:
        """``fn(attempt_id, t_ps)`` runs for every attempt, before the trigger fires."""
        self._listeners.append(fn)

    @property
    def running(self) -> bool:
        return self._timer is not None

    def _demand_changed(self, value: int) -> None:
        if value > 0:
            self._resume()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _resume(self) -> None:
        if self._timer is not None:
            return
        now = self._from_loop(self.loop.now_ps())
        self._next_id = max(self._next_id, self.config.first_attempt_at_or_after(now))
        self._arm()

    def _arm(self) -> None:
        t = self.config.attempt_time(self._next_id)
        self._timer = self.loop.call_at(self._to_loop(t), self._fire, self._next_id, t)

    def _fire(self, attempt_id: int, t_ps: int) -> None:
        self._next_id = attempt_id + 1
        if self.demand.value <= 0:
            self._timer = None
            return
        if self.gate is not None and not self.gate(attempt_id):
            self.vetoed += 1
            self._arm()
            return
        try:
            for fn in list(self._listeners):
                fn(attempt_id, t_ps)
            self.retry.call(self.trigger.fire, attempt_id, t_ps)
            if not self.retry.down:
                self.fired += 1
        finally:
            if self.retry.down:
                # the trigger's instrument is out: try again after the backoff, in the grid
                later = self._from_loop(self.loop.now_ps() + self.retry.delay_ps)
                self._next_id = max(self._next_id, self.config.first_attempt_at_or_after(later))
            self._arm()
