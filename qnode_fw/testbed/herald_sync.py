"""Clock sync over the herald links of one node process (``qnode run``: the lab and processes mode).

:mod:`timing.clock_sync` has the two-way time transfer (:class:`~timing.clock_sync.
ClockSyncClient` at an end node, :class:`~timing.clock_sync.ClockSyncResponder` at its station);
this module runs it wherever a node process runs its herald links
(:class:`~qnode_fw.testbed.node_links.NodeLinks`):

* an **end node** runs one client per link towards the link's BSA station, on the node loop's
  clock (the PC's ``CLOCK_MONOTONIC``, or the World server's testbed clock in processes mode);
* a **station** answers every end of every link it serves, and first sends each end one frame
  of its own: the ends bind the herald link's ROUTER and the station connects to them, so an
  end can address the station only once the station's connection has spoken (with CurveZMQ the
  ROUTER learns the station's routing id from that frame). That frame is a ``SYNC_REPLY`` to
  exchange 0, which no client ever asks for, so a client ignores it; a client sends its first
  request once it has heard the station.

The virtual testbed runs the same sync over its in-process herald links
(:class:`~qnode_fw.experiments.memory_links.MemoryLinks`, :data:`VIRTUAL_SYNC_SETTINGS`).

The clock each node stamps with is its PC clock (a :class:`~timing.clock_sync.SimulatedClock`
in both testbed modes, which a fault plan's ``clocks:`` steps or detunes). The attempt schedules
do not use it: the attempt grid (AWG triggers, slot numbers) runs on the testbed's shared timing
reference (a lab distributes a 10 MHz/PPS or White Rabbit reference to the AWGs and taggers; in
processes mode the World's testbed clock, in virtual mode the loop's), and ages and timers run on
the node's monotonic event-loop clock. What a PC clock fault can still spoil is what is stamped
with it, so an end that sees a clock **jump** on a link pauses that link's attempts until the
estimator has re-converged on the new offset (``min_drift_samples`` filtered samples on the
restarted line, when it can judge faults again): :meth:`HeraldClockSync.paused`. A **drift**
beyond tolerance is recorded and the link runs on (the line follows the new rate as its window
turns over; pausing would stop the link for as long as the oscillator stays detuned). Every
fault is logged (``clock.fault``) and handed to ``on_fault`` handlers (the fault log of a run).

Each end's estimate (offset = station clock - node clock, its uncertainty, drift, one-way delay,
exchanges, clock faults) is in the node's status (``qnode run`` status lines and ``--json``:
``clock_sync``) and in its metrics (``qnode_clock_sync_*``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from timing.clock_sync import (ClockFault, ClockSyncClient, ClockSyncResponder, SyncTolerance,
                               TwoWayEstimator)
from timing.frames import Frame, FrameType

from ..addresses import NodeAddress
from ..clock import Clock
from ..logs import event
from ..loop import EventLoop
from ..units import MS, US

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeraldSyncSettings:
    #: One request every 10 ms: 100 frames/s each way, next to the link's heralds.
    interval_ps: int = 10 * MS
    #: Min-delay selection over 8 exchanges (one filtered sample per 80 ms), a drift line over
    #: the last 32 samples (2.6 s).
    block: int = 8
    window: int = 32
    #: A filtered offset further than this from the line is a clock jump (the window restarts).
    #: Queueing on a loaded PC delays single frames by milliseconds; min-delay selection keeps
    #: the filtered samples within the fastest exchange of each block, far below this.
    max_step_ps: int = 1 * MS
    #: Free-running PC crystals are within about ±50 ppm of each other; more is a fault.
    max_drift_ppm: float = 100.0


#: Clock sync in a virtual testbed run, which lasts 0.06-0.5 s of simulated time. A request every
#: 100 us and min-delay selection over 4 give a filtered sample every 0.4 ms; the line judges
#: steps once it holds 8 samples (3.2 ms after start), so a jump is found within one block
#: (< 0.5 ms) of happening and an end pauses for the 3.2 ms the restarted line needs. The herald
#: paths have no queueing (fibre delay only, unless a fault plan delays frames, which the
#: exchange's own delay in the step margin absorbs), so a step of 10 us is beyond noise. A drift
#: is judged against the fit's delay resolution (one-way delay / span): with 5-8 us of fibre a
#: 300 ppm drift shows after ~25 ms of span, so the window (128 samples, 51 ms) must hold that
#: much. The cost: two 40-byte frames per end every 100 us, next to a link's heralds.
VIRTUAL_SYNC_SETTINGS = HeraldSyncSettings(interval_ps=100 * US, block=4, window=128,
                                           max_step_ps=10 * US, max_drift_ppm=100.0)


@dataclass(frozen=True)
class LinkSyncStatus:
    """One end's view of its station's clock on one link (times in µs; None until estimated)."""

    link: str
    station: NodeAddress
    exchanges: int
    offset_us: float | None = None
    uncertainty_us: float | None = None
    drift_ppm: float | None = None
    delay_us: float | None = None
    samples: int = 0
    faults: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"station": self.station, "exchanges": self.exchanges, "offset_us": self.offset_us,
                "uncertainty_us": self.uncertainty_us, "drift_ppm": self.drift_ppm,
                "delay_us": self.delay_us, "samples": self.samples, "faults": list(self.faults)}


class _EndClient(ClockSyncClient):
    """A client that asks only once the station has spoken on the herald link (see the module
    docstring: before that the end's ROUTER may have no route to it)."""

    def request(self) -> None:
        if self.endpoint.window(self.station).highest == 0:
            return
        super().request()


class _CountingResponder(ClockSyncResponder):
    def __init__(self, endpoint, clock, alive: Callable[[], bool]) -> None:
        super().__init__(endpoint, clock)
        self.answered = 0
        self.alive = alive

    def _on_request(self, peer: NodeAddress, frame: Frame) -> None:
        if not self.alive():
            return                  # a crashed station's process answers nothing
        self.answered += 1
        super()._on_request(peer, frame)


class HeraldClockSync:
    """The clock sync of one node over its herald links (module docstring)."""

    def __init__(self, node: NodeAddress, loop: EventLoop,
                 settings: HeraldSyncSettings = HeraldSyncSettings(), *,
                 clock: Clock | None = None) -> None:
        self.node = node
        self.loop = loop
        self.settings = settings
        #: The clock this node stamps exchanges with (default: its loop's).
        self.clock = clock if clock is not None else loop.clock
        self.clients: dict[str, _EndClient] = {}
        self.responders: dict[str, _CountingResponder] = {}
        self._hellos: dict[str, tuple[Any, tuple[NodeAddress, ...]]] = {}
        self.started = False
        #: ``fn(link, fault)`` for every clock fault an end sees (the run's fault log).
        self.on_fault: list[Callable[[str, ClockFault], None]] = []
        #: link -> loop time its attempts were paused at (a jump; until the line re-converged)
        self._paused: dict[str, int] = {}
        #: per link: pauses and the loop time spent paused (closed pauses)
        self.pauses: dict[str, int] = {}
        self.paused_ps: dict[str, int] = {}
        #: False while the node's process is dead (virtual testbed crash): nothing sent or answered
        self.alive = True

    def add_end(self, link: str, endpoint: Any, station: NodeAddress) -> None:
        """This node ends ``link``; ``endpoint`` is its herald endpoint, ``station`` the BSA."""
        s = self.settings
        client = self.clients[link] = _EndClient(self.loop, endpoint, station, self.clock,
                                                 interval_ps=s.interval_ps, estimator=self._estimator())
        client.on_fault.append(lambda fault, link=link: self._fault(link, fault))

    def add_station(self, link: str, endpoint: Any, ends: tuple[NodeAddress, ...]) -> None:
        """This node is the station of ``link``; it answers ``ends`` on ``endpoint``."""
        self.responders[link] = _CountingResponder(endpoint, self.clock, lambda: self.alive)
        self._hellos[link] = (endpoint, tuple(ends))

    def start(self) -> None:
        now = self.clock.now_ps()
        for endpoint, ends in self._hellos.values():
            for end in ends:
                endpoint.send(end, FrameType.SYNC_REPLY, 0, timestamp_ps=now, aux_ps=now)
        for client in self.clients.values():
            client.start()
        self.started = True

    def stop(self) -> None:
        for client in self.clients.values():
            client.stop()
        self.started = False

    def _estimator(self) -> TwoWayEstimator:
        s = self.settings
        return TwoWayEstimator(block=s.block, window=s.window,
                               tolerance=SyncTolerance(s.max_step_ps, s.max_drift_ppm))

    def halt(self) -> None:
        """The node's process died (a virtual-testbed crash): no requests, no answers."""
        self.stop()
        self.alive = False
        self._paused.clear()

    def resume(self) -> None:
        """The node's process started again: it knows nothing of any station's clock."""
        self.alive = True
        for client in self.clients.values():
            client.reset(self._estimator())
        self.start()

    # -- clock faults --------------------------------------------------------------------------------
    def _fault(self, link: str, fault: ClockFault) -> None:
        pause = fault.kind == "jump"
        if pause and link not in self._paused:
            self._paused[link] = self.loop.now_ps()
            self.pauses[link] = self.pauses.get(link, 0) + 1
        size, uncertainty, _limit, unit = fault.scaled()
        event(log, logging.WARNING, "clock.fault", node=self.node, link=link, station=fault.station,
              kind=fault.kind, size=round(size, 6), unit=unit, uncertainty=round(uncertainty, 6),
              paused=pause)
        for handler in list(self.on_fault):
            handler(link, fault)

    def paused(self, link: str) -> bool:
        """Are this end's attempts on ``link`` paused (a clock jump the line has not re-converged
        from)? Checked by the link's attempt gate, so the pause ends at the first slot after the
        restarted line holds ``min_drift_samples`` filtered samples."""
        since = self._paused.get(link)
        if since is None:
            return False
        est = self.clients[link].estimator
        need = est.tolerance.min_drift_samples if est.tolerance is not None else 2
        if est.samples < max(2, need):
            return True
        del self._paused[link]
        self.paused_ps[link] = self.paused_ps.get(link, 0) + self.loop.now_ps() - since
        event(log, logging.INFO, "clock.resumed", node=self.node, link=link,
              paused_us=round((self.loop.now_ps() - since) / US, 3))
        return False

    # -- what it knows ------------------------------------------------------------------------------
    def status(self) -> dict[str, LinkSyncStatus]:
        """Per link this node ends: the latest estimate of the station's clock."""
        out: dict[str, LinkSyncStatus] = {}
        for link, c in self.clients.items():
            faults = [str(f) for f in c.faults[-5:]]
            if not c.estimator.ready:
                out[link] = LinkSyncStatus(link, c.station, c.exchanges, samples=c.estimator.samples,
                                           faults=faults)
                continue
            e = c.estimate()
            out[link] = LinkSyncStatus(link, c.station, c.exchanges, e.offset_ps / US,
                                       e.uncertainty_ps / US, e.drift_ppm, e.delay_ps / US,
                                       e.samples, faults)
        return out

    def faults(self) -> list[ClockFault]:
        return [f for c in self.clients.values() for f in c.faults]

    def answered(self) -> dict[str, int]:
        """Per link this node is the station of: sync requests answered."""
        return {link: r.answered for link, r in self.responders.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"links": {link: st.to_dict() for link, st in self.status().items()},
                "answered": self.answered()}


def sync_lines(sync: HeraldClockSync) -> list[str]:
    """The status lines of a node's clock sync, for people."""
    lines = []
    for link, st in sync.status().items():
        if st.offset_us is None:
            lines.append(f"  clock sync {link} to {st.station}: {st.exchanges} exchanges, "
                         f"no estimate yet")
            continue
        lines.append(f"  clock sync {link} to {st.station}: offset {st.offset_us:+.3f} us "
                     f"+- {st.uncertainty_us:.3f} us, drift {st.drift_ppm:+.3f} ppm, one-way "
                     f"{st.delay_us:.1f} us, {st.samples} samples of {st.exchanges} exchanges"
                     + (f", {len(st.faults)} clock fault(s)" if st.faults else ""))
    for link, n in sync.answered().items():
        lines.append(f"  clock sync {link}: answered {n} requests as the station")
    return lines


def clock_sync_of(lab: Any) -> HeraldClockSync | None:
    """The clock sync of a :class:`~qnode_fw.testbed.lab.LabNode` (its experiment role's herald
    links), or None when it runs none."""
    links = getattr(getattr(lab, "role", None), "links", None)
    return getattr(links, "sync", None)


__all__ = ["VIRTUAL_SYNC_SETTINGS", "HeraldClockSync", "HeraldSyncSettings", "LinkSyncStatus",
           "clock_sync_of", "sync_lines"]
