"""Clock synchronisation between a node and its BSA or EPPS station over the herald link.

Two-way time transfer as in PTP (IEEE 1588): the node sends a request stamped ``t1`` on its own
clock; the station stamps its arrival ``t2`` and its reply ``t3`` on the station clock; the node
stamps the reply's arrival ``t4``. Then, for a symmetric path,

    offset = ((t2 - t1) - (t4 - t3)) / 2      (station clock minus node clock)
    delay  = ((t4 - t1) - (t3 - t2)) / 2      (one-way)

A path asymmetry ``a = d_forward - d_back`` biases the offset by ``a / 2``; no two-way method can
see it, so it must be calibrated (``asymmetry_ps``, for example from the fibre lengths) and the
part that is not calibrated is stated in the uncertainty (``asymmetry_bound_ps``).

Filtering: queueing only ever adds delay, so in each block of exchanges the one with the smallest
round trip is the least disturbed (min-delay selection). A least-squares line through the selected
offsets over a sliding window gives the offset now and the drift rate (its slope), and the
regression's prediction error gives the statistical part of the uncertainty.

Faults the filter must not average over (:class:`SyncTolerance`): a filtered offset further than
``max_step_ps`` from the line's prediction, and further than that exchange's own one-way delay
(the most an asymmetric path, fibre or queueing, can move one exchange's offset) plus the
prediction's uncertainty (once the line holds ``min_drift_samples``), is a clock
*jump* (a step of either clock); the window restarts from that sample so the estimate follows the
new offset at once instead of bending the line. A fitted drift beyond ``max_drift_ppm`` by more
than three standard errors of the fit, and by more than the delay over the fitted span (once the
window holds ``min_drift_samples``) is *drift
beyond tolerance*. The two margins keep a loaded host, whose event loops delay single exchanges
by milliseconds, from reporting its queueing as clock faults. Both are reported as :class:`ClockFault` (logged, kept in
``ClockSyncClient.faults`` and passed to ``on_fault`` handlers), naming the node and station.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qnode_fw.addresses import NodeAddress
from qnode_fw.clock import Clock
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop, TimerHandle
from qnode_fw.units import US

from .frames import Frame, FrameType
from .herald_link import HeraldEndpoint

log = logging.getLogger(__name__)


class SimulatedClock(Clock):
    """A free-running local oscillator seen against the true (simulation) time of ``base``.

    ``local = base + offset_ps + drift_ppm * 1e-6 * (base - epoch)``; it is the truth a sync
    test checks against (:meth:`offset_at`).
    """

    def __init__(self, base: Clock, offset_ps: int = 0, drift_ppm: float = 0.0) -> None:
        self.base = base
        self.offset_ps = int(offset_ps)
        self.drift_ppm = float(drift_ppm)

    @property
    def is_virtual(self) -> bool:
        return self.base.is_virtual

    def local_at(self, true_ps: int) -> int:
        return int(true_ps + self.offset_ps + round(self.drift_ppm * 1e-6 * true_ps))

    def now_ps(self) -> int:
        return self.local_at(self.base.now_ps())

    def offset_at(self, true_ps: int) -> int:
        return self.local_at(true_ps) - true_ps


@dataclass(frozen=True, slots=True)
class Exchange:
    """One completed request/reply: t1, t4 on the node clock; t2, t3 on the station clock."""

    t1: int
    t2: int
    t3: int
    t4: int

    @property
    def offset_ps(self) -> float:
        return ((self.t2 - self.t1) - (self.t4 - self.t3)) / 2

    @property
    def delay_ps(self) -> float:
        return ((self.t4 - self.t1) - (self.t3 - self.t2)) / 2


@dataclass(frozen=True, slots=True)
class SyncEstimate:
    """Station clock minus node clock at node time ``at_ps``, with drift and uncertainty."""

    at_ps: int
    offset_ps: float
    drift_ppm: float
    delay_ps: float
    uncertainty_ps: float  # 3 standard deviations plus half the uncalibrated asymmetry bound
    samples: int
    drift_stderr_ppm: float = 0.0   # standard error of the fitted drift
    span_ps: float = 0.0            # node-clock time the fitted exchanges span

    def station_time(self, node_ps: int) -> float:
        """Convert a node-clock time to the station clock."""
        return node_ps + self.offset_ps + self.drift_ppm * 1e-6 * (node_ps - self.at_ps)

    def node_time(self, station_ps: int) -> float:
        """Convert a station-clock time to the node clock (inverse of :meth:`station_time`)."""
        rate = 1 + self.drift_ppm * 1e-6
        return (station_ps - self.offset_ps + self.drift_ppm * 1e-6 * self.at_ps) / rate


@dataclass(frozen=True, slots=True)
class SyncTolerance:
    """What the timing layer tolerates: a larger step or drift is a fault, not noise."""

    max_step_ps: float
    max_drift_ppm: float = math.inf
    #: Filtered samples the line needs before its drift, or a step away from it, is judged.
    min_drift_samples: int = 8


@dataclass(frozen=True, slots=True)
class ClockFault:
    """A clock fault seen by sync: ``kind`` is ``jump`` (``value`` the step, ps, station minus
    node) or ``drift`` (``value`` the fitted drift, ppm); ``limit`` the tolerance it broke;
    ``uncertainty`` how far ``value`` may be from the truth (same unit): for a step the exchange's
    one-way delay (the most path asymmetry can move it) plus the line's prediction uncertainty,
    for a drift the larger of three standard errors of the fit and its delay resolution."""

    kind: str
    node: NodeAddress
    station: NodeAddress
    at_ps: int
    value: float
    limit: float
    uncertainty: float = 0.0

    def scaled(self) -> tuple[float, float, float, str]:
        """``(value, uncertainty, limit, unit)`` in the units a person reads: us for a jump,
        ppm for a drift."""
        scale, unit = (US, "us") if self.kind == "jump" else (1.0, "ppm")
        return self.value / scale, self.uncertainty / scale, self.limit / scale, unit

    def __str__(self) -> str:
        unit = "ps" if self.kind == "jump" else "ppm"
        what = "clock jump" if self.kind == "jump" else "clock drift"
        return (f"{what} between {self.node} and {self.station}: {self.value:+.6g} {unit} "
                f"(tolerance {self.limit:g} {unit}) at {self.at_ps} ps")


class TwoWayEstimator:
    """Min-delay selection per block, then a least-squares offset/drift line over a window.

    With ``tolerance``, :meth:`add` returns the step (ps) when a filtered sample lands further
    than ``max_step_ps`` from the line, after restarting the window from that sample.
    """

    def __init__(self, *, block: int = 8, window: int = 32, asymmetry_ps: int = 0,
                 asymmetry_bound_ps: float = 0.0, resolution_ps: float = 1.0,
                 tolerance: SyncTolerance | None = None) -> None:
        if block < 1 or window < 2:
            raise ValueError("block must be >= 1 and window >= 2")
        self.block = block
        self.asymmetry_ps = asymmetry_ps
        self.asymmetry_bound_ps = float(asymmetry_bound_ps)
        self.resolution_ps = float(resolution_ps)
        self.tolerance = tolerance
        self._current: list[Exchange] = []
        self._selected: deque[Exchange] = deque(maxlen=window)
        #: The noise margin (ps) the last step returned by :meth:`add` was judged against: how
        #: far the measured step may be from the true one.
        self.last_step_noise_ps = 0.0
        #: Did the last :meth:`add` complete a block (add a filtered sample, moving the line)?
        self.sampled = False

    def add(self, ex: Exchange) -> float | None:
        self._current.append(ex)
        self.sampled = len(self._current) >= self.block
        if not self.sampled:
            return None
        best = min(self._current, key=lambda e: e.delay_ps)
        self._current = []
        step = None
        # A line through fewer samples predicts too poorly to call anything a step from it.
        if self.tolerance is not None and self.samples >= max(2, self.tolerance.min_drift_samples):
            predicted = self.estimate((best.t1 + best.t4) // 2)
            residual = best.offset_ps - self.asymmetry_ps / 2 - predicted.offset_ps
            # Within the exchange's one-way delay plus the line's own uncertainty a residual may
            # be path asymmetry or an imprecise line, not a step.
            noise = best.delay_ps + predicted.uncertainty_ps
            if abs(residual) > max(self.tolerance.max_step_ps, noise):
                step = residual
                self.last_step_noise_ps = noise
                self._selected.clear()  # the old line describes a clock that is gone
        self._selected.append(best)
        return step

    @property
    def samples(self) -> int:
        return len(self._selected)

    @property
    def ready(self) -> bool:
        return len(self._selected) >= 2

    def estimate(self, at_ps: int) -> SyncEstimate:
        if not self.ready:
            raise RuntimeError("clock sync has fewer than two filtered exchanges")
        sel = list(self._selected)
        # Midpoint of the exchange on the node clock is where the measured offset applies.
        x = np.array([(e.t1 + e.t4) / 2 for e in sel], dtype=np.float64)
        # The calibrated asymmetry (forward minus back) biased each raw offset by +a/2.
        y = np.array([e.offset_ps - self.asymmetry_ps / 2 for e in sel], dtype=np.float64)
        x0 = x.mean()
        dx = x - x0
        sxx = float(dx @ dx)
        slope = float(dx @ (y - y.mean()) / sxx) if sxx > 0 else 0.0
        intercept = float(y.mean())
        n = len(sel)
        resid = y - (intercept + slope * dx)
        dof = max(n - 2, 1)
        s2 = float(resid @ resid) / dof + self.resolution_ps ** 2 / 12
        se_pred = math.sqrt(s2 * (1 / n + ((at_ps - x0) ** 2 / sxx if sxx > 0 else 0.0)))
        se_slope = math.sqrt(s2 / sxx) if sxx > 0 else math.inf
        offset = intercept + slope * (at_ps - x0)
        # The slope is d(station - node)/d(node); as a rate ratio it is the drift of the station
        # relative to the node, in ppm.
        return SyncEstimate(
            at_ps=int(at_ps),
            offset_ps=offset,
            drift_ppm=slope * 1e6,
            delay_ps=float(np.mean([e.delay_ps for e in sel])),
            uncertainty_ps=3 * se_pred + self.asymmetry_bound_ps / 2,
            samples=n,
            drift_stderr_ppm=se_slope * 1e6,
            span_ps=float(x.max() - x.min()),
        )

    @staticmethod
    def drift_resolution_ppm(est: "SyncEstimate") -> float:
        """The smallest drift the fit can tell from delay noise: each offset can be wrong by up to
        half its round-trip delay (the two-way transfer bound), so two ends of the span can differ
        by a whole delay that is not drift. A fit over a short span on a loaded PC cannot see
        100 ppm, whatever its residuals say."""
        return est.delay_ps / est.span_ps * 1e6 if est.span_ps > 0 else math.inf


class ClockSyncResponder:
    """Station side: answers sync requests, stamping arrival (t2) and departure (t3)."""

    def __init__(self, endpoint: HeraldEndpoint, clock: Clock) -> None:
        self.endpoint = endpoint
        self.clock = clock
        endpoint.subscribe(FrameType.SYNC_REQUEST, self._on_request)

    def _on_request(self, peer: NodeAddress, frame: Frame) -> None:
        t2 = self.clock.now_ps()
        # The node keeps t1 itself and matches the reply by the exchange id (attempt-id field).
        self.endpoint.send(peer, FrameType.SYNC_REPLY, frame.attempt_id,
                           timestamp_ps=self.clock.now_ps(), aux_ps=t2)


class ClockSyncClient:
    """Node side: a request every ``interval_ps``; feeds completed exchanges to an estimator."""

    def __init__(self, loop: EventLoop, endpoint: HeraldEndpoint, station: NodeAddress,
                 clock: Clock, *, interval_ps: int, estimator: TwoWayEstimator | None = None,
                 max_outstanding: int = 64) -> None:
        self.loop = loop
        self.endpoint = endpoint
        self.station = station
        self.clock = clock
        self.interval_ps = int(interval_ps)
        self.estimator = estimator or TwoWayEstimator()
        self.exchanges = 0
        self.faults: list[ClockFault] = []      # the latest 100
        self.on_fault: list[Callable[[ClockFault], None]] = []
        self._drift_bad = False
        self._next_id = 1
        self._pending: dict[int, int] = {}
        self._max_outstanding = max_outstanding
        self._timer: TimerHandle | None = None
        endpoint.subscribe(FrameType.SYNC_REPLY, self._on_reply)

    def start(self) -> None:
        self._timer = self.loop.call_later(0, self._tick)

    def reset(self, estimator: TwoWayEstimator) -> None:
        """Forget everything learned of the station's clock (the node's process started again):
        a fresh estimator, no exchange outstanding, no drift fault standing."""
        self.estimator = estimator
        self._pending.clear()
        self._drift_bad = False

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def request(self) -> None:
        if len(self._pending) >= self._max_outstanding:
            # Replies that never came (lost frames) must not pile up forever.
            self._pending.pop(min(self._pending))
        xid = self._next_id
        self._next_id += 1
        t1 = self.clock.now_ps()
        self._pending[xid] = t1
        self.endpoint.send(self.station, FrameType.SYNC_REQUEST, xid, timestamp_ps=t1)

    def _tick(self) -> None:
        self.request()
        self._timer = self.loop.call_later(self.interval_ps, self._tick)

    def _on_reply(self, peer: NodeAddress, frame: Frame) -> None:
        t4 = self.clock.now_ps()
        if peer != self.station:
            return
        t1 = self._pending.pop(frame.attempt_id, None)
        if t1 is None:
            return
        step = self.estimator.add(Exchange(t1, frame.aux_ps, frame.timestamp_ps, t4))
        self.exchanges += 1
        tol = self.estimator.tolerance
        if tol is None:
            return
        if step is not None:
            self._report(ClockFault("jump", self.endpoint.node, self.station, t4, step,
                                    tol.max_step_ps, self.estimator.last_step_noise_ps))
        # The line (and so its drift) moves only when a block adds a filtered sample.
        if (self.estimator.sampled and self.estimator.samples >= max(2, tol.min_drift_samples)
                and math.isfinite(tol.max_drift_ppm)):
            est = self.estimator.estimate(t4)
            drift = est.drift_ppm
            noise = max(3 * est.drift_stderr_ppm, self.estimator.drift_resolution_ppm(est))
            bad = abs(drift) - noise > tol.max_drift_ppm
            if bad and not self._drift_bad:   # once per excursion, not once per exchange
                self._report(ClockFault("drift", self.endpoint.node, self.station, t4, drift,
                                        tol.max_drift_ppm, noise))
            self._drift_bad = bad

    def _report(self, fault: ClockFault) -> None:
        self.faults.append(fault)
        del self.faults[:-100]
        event(log, logging.WARNING, f"clock-{fault.kind}", node=fault.node, station=fault.station,
              value=round(fault.value, 3), limit=fault.limit, at_ps=fault.at_ps)
        for handler in list(self.on_fault):
            handler(fault)

    def estimate(self) -> SyncEstimate:
        return self.estimator.estimate(self.clock.now_ps())
