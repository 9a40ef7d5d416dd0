"""A transceiver behind an optical switch: one set of communication qubits serving several links.

The QRNA paper's minimal repeater (Figure 2) has one transceiver qubit, one buffer qubit and a
two-port optical switch in front; it can try only left or right in a given cycle. The
:class:`SwitchedTransceiver` decides, at every attempt opportunity of the link the switch points
at, whether to attempt there or to move the switch to another link:

* ``priority`` (QRNA Figure 2): serve the first link in ``order`` that still wants a pair. With
  ``order = (left, right)`` the repeater attempts left until it holds a left pair (its RuleSet
  moves it into the buffer), then attempts right, then swaps and starts over.
* ``round_robin``: serve the links that want pairs in turn, ``dwell_attempts`` attempts each.

What a link "wants" comes from ``wants(link)`` (the RuleSets' demand: no pair held with that
neighbour yet). Two rules protect the photons:

* the switch is never commanded while a photon of the current attempt is in flight, i.e. within
  ``in_flight_ps`` of the last emission or arming (until its detection window has closed);
* after a command no attempt is made on the new route before the switch's ``switching_time_ps``
  has passed, so no photon meets a moving switch.

A switch command that raises an :class:`~qnode_fw.errors.InstrumentError` leaves the switch where
it was: the transceiver goes on attempting on that route, reports the outage's first error to the
failure policy and commands the switch again only after a bounded backoff
(:class:`~timing.recovery.InstrumentRetry`), until it answers.

Every attempt window and every command is logged (:attr:`windows`, :attr:`commands`) so a test can
check the switch's own command log against them. Call :meth:`reevaluate` whenever what the links
want may have changed (after a pair is ready or the executor acted); it also runs at every tick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from drivers.optical_switch import OpticalSwitch
from qnode_fw.errors import ConfigError
from qnode_fw.loop import EventLoop, TimerHandle

from .link_end import LinkEndRuntime
from .recovery import InstrumentRetry


class SwitchPolicyKind(str, Enum):
    PRIORITY = "priority"
    ROUND_ROBIN = "round_robin"


@dataclass(frozen=True)
class SwitchPolicy:
    """How the transceiver shares its time between links (``order``: link names)."""

    order: tuple[str, ...]
    kind: SwitchPolicyKind = SwitchPolicyKind.PRIORITY
    dwell_attempts: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", SwitchPolicyKind(self.kind))
        if len(set(self.order)) != len(self.order) or len(self.order) < 2:
            raise ConfigError(f"a switched transceiver serves two or more distinct links, got "
                              f"{list(self.order)}", field="switch_policy.order")
        if self.dwell_attempts < 1:
            raise ConfigError("dwell must be at least one attempt", field="switch_policy.dwell_attempts")


@dataclass(frozen=True, slots=True)
class SwitchedRoute:
    """Link ``end`` is reached through switch output ``output_port``."""

    end: LinkEndRuntime
    output_port: int


@dataclass(frozen=True, slots=True)
class AttemptWindow:
    link: str
    attempt_id: int
    start_ps: int   # emission or arming
    end_ps: int     # the photon's detection window has closed


class SwitchedTransceiver:
    def __init__(self, loop: EventLoop, switch: OpticalSwitch, input_port: int,
                 routes: dict[str, SwitchedRoute], switching_time_ps: int, policy: SwitchPolicy,
                 wants: Callable[[str], bool]) -> None:
        missing = [name for name in policy.order if name not in routes]
        if missing or set(routes) != set(policy.order):
            raise ConfigError(f"switch policy order {list(policy.order)} must name exactly the "
                              f"routed links {sorted(routes)}", field="switch_policy.order")
        if switching_time_ps < 0:
            raise ConfigError("switching time cannot be negative", field="switching_time_ps")
        self.loop = loop
        self.switch = switch
        self.input_port = input_port
        self.routes = routes
        self.switching_time_ps = int(switching_time_ps)
        self.policy = policy
        self.wants = wants
        self.active: str | None = None
        self.settled_at_ps = 0
        self.busy_until_ps = 0  # the last attempt's photon is in flight until then
        self.windows: list[AttemptWindow] = []
        self.commands: list[tuple[int, str]] = []
        self._dwell = 0
        self._rr_next = 0
        self._timer: TimerHandle | None = None
        self._deferred: TimerHandle | None = None
        self._running = False
        #: the switch's health: commands retry with backoff through an outage
        self.retry = InstrumentRetry(loop, f"switch of the transceiver at input {input_port}")
        self._retry_at_ps = 0

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self.reevaluate()
        if self.active is None:
            self._command(self.policy.order[0])
        self._arm()

    def stop(self) -> None:
        self._running = False
        for h in (self._timer, self._deferred):
            if h is not None:
                h.cancel()
        self._timer = self._deferred = None

    def reevaluate(self) -> None:
        """Move the switch now if the policy wants another link and no photon is in flight."""
        if not self._running:
            return
        target = self._choose()
        if target is None or target == self.active:
            return
        now = self.loop.now_ps()
        if now < self.busy_until_ps:
            if self._deferred is None:
                self._deferred = self.loop.call_at(self.busy_until_ps, self._deferred_reevaluate)
            return
        if self.retry.down and now < self._retry_at_ps:
            return                  # the switch is out: command it again after the backoff
        if self._command(target):
            self._arm()

    def _deferred_reevaluate(self) -> None:
        self._deferred = None
        self.reevaluate()

    def _choose(self) -> str | None:
        wanting = [name for name in self.policy.order if self.wants(name)]
        if not wanting:
            return None
        if self.policy.kind is SwitchPolicyKind.PRIORITY:
            return wanting[0]
        if self.active in wanting and self._dwell < self.policy.dwell_attempts:
            return self.active
        # round robin: the next wanting link after the active one
        order = list(self.policy.order)
        start = order.index(self.active) + 1 if self.active in order else 0
        for i in range(len(order)):
            name = order[(start + i) % len(order)]
            if name in wanting:
                return name
        return None

    def _command(self, link: str) -> bool:
        """Point the switch at ``link``; False when the switch did not answer (it stays put)."""
        now = self.loop.now_ps()
        try:
            self.retry.call(self.switch.connect, self.input_port, self.routes[link].output_port)
        finally:
            if self.retry.down:
                self._retry_at_ps = now + self.retry.delay_ps
        if self.retry.down:
            return False
        self.commands.append((now, link))
        if link != self.active:
            self.settled_at_ps = now + self.switching_time_ps
        self.active = link
        self._dwell = 0
        return True

    # -- attempts ---------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        end = self.routes[self.active].end
        earliest = max(self.loop.now_ps() + 1, self.settled_at_ps)
        k = end.attempt_at_or_after(earliest)
        self._timer = self.loop.call_at(end.action_time_ps(k), self._tick, self.active, k)

    def _tick(self, link: str, attempt_id: int) -> None:
        self._timer = None
        if not self._running:
            return
        try:
            self.reevaluate()
            if self.active != link:
                return  # reevaluate switched and re-armed on the new link
            end = self.routes[link].end
            now = self.loop.now_ps()
            if self.wants(link) and now >= self.settled_at_ps and end.can_attempt():
                end.attempt(attempt_id)
                self.busy_until_ps = max(self.busy_until_ps, now + end.in_flight_ps)
                self.windows.append(AttemptWindow(link, attempt_id, now, now + end.in_flight_ps))
                self._dwell += 1
                if self.policy.kind is SwitchPolicyKind.ROUND_ROBIN:
                    self.reevaluate()
        finally:
            # an instrument error on the way (reported to the failure policy) ends no transceiver
            if self._timer is None and self._running and self.active is not None:
                self._arm()


def check_switch_log(commands: Sequence[tuple[int, int, int]], windows: Sequence[AttemptWindow],
                     ports: dict[str, int], input_port: int, switching_time_ps: int) -> list[str]:
    """Problems found by comparing an optical switch's command log ``(time, input, output)`` with
    the attempt windows: a command inside a window, or an attempt on a route that was not set or
    not settled. An empty list means the schedule kept its promises."""
    problems = []
    mine = sorted((t, out) for t, inp, out in commands if inp == input_port)
    # a command that changes the route starts a switching time (the first one included)
    changes = [t for i, (t, out) in enumerate(mine) if i == 0 or out != mine[i - 1][1]]
    for w in windows:
        inside = [t for t, _ in mine if w.start_ps <= t < w.end_ps]
        if inside:
            problems.append(f"switch commanded at {inside} ps while attempt {w.attempt_id} on "
                            f"{w.link} was in flight [{w.start_ps}, {w.end_ps}) ps")
        before = [(t, out) for t, out in mine if t <= w.start_ps]
        if not before:
            problems.append(f"attempt {w.attempt_id} on {w.link} at {w.start_ps} ps before any route")
            continue
        t, out = before[-1]
        if out != ports[w.link]:
            problems.append(f"attempt {w.attempt_id} on {w.link} at {w.start_ps} ps but the switch "
                            f"routes to output {out}")
        last_change = max(tc for tc in changes if tc <= w.start_ps)
        if w.start_ps < last_change + switching_time_ps:
            problems.append(f"attempt {w.attempt_id} on {w.link} at {w.start_ps} ps, "
                            f"{w.start_ps - last_change} ps after the switch moved (needs "
                            f"{switching_time_ps} ps)")
    return problems
