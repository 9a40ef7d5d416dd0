"""Clock faults: a node's oscillator steps, or starts drifting beyond what sync tolerates; and
what clock sync saw of them.

They act on a :class:`~timing.clock_sync.SimulatedClock` (``local = true + offset + drift *
true``), the node's PC clock in both testbed modes (``VirtualTestbed.clocks``,
``NodeLinks.clock``): what the node stamps emissions and clock-sync exchanges with. The truth
underneath (the event loop's clock, the testbed's shared timing reference and every node's
monotonic clock) never moves backwards. A drift change keeps the clock continuous: only the rate
changes at the fault time, so any step seen comes from ``jump_us`` alone.

:class:`DetectedClockFault` is one fault an end's clock sync reported on a link, as the run
record keeps it (``clock.fault`` events, ``faults.clock_faults`` in summary.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timing.clock_sync import ClockFault as SyncClockFault
from timing.clock_sync import SimulatedClock

from ..errors import ConfigError
from .plan import ClockFault


def check_adjustable(clock, fault: ClockFault) -> SimulatedClock:
    if not isinstance(clock, SimulatedClock):
        raise ConfigError(f"node {fault.node}'s clock is a {type(clock).__name__}, which a fault "
                          "cannot step; run the node on a SimulatedClock",
                          field=f"faults.clocks {fault.node}", expected="a simulated node clock")
    return clock


def apply_clock_fault(clock: SimulatedClock, fault: ClockFault) -> None:
    """Apply ``fault`` now (the caller schedules it at ``fault.at_s``)."""
    true_ps = clock.base.now_ps()
    if fault.drift_ppm is not None:
        # local(t) = t + offset + d * t must not step at t = now when d changes.
        clock.offset_ps += int(round((clock.drift_ppm - fault.drift_ppm) * 1e-6 * true_ps))
        clock.drift_ppm = float(fault.drift_ppm)
    clock.offset_ps += fault.jump_ps


@dataclass(frozen=True, slots=True)
class DetectedClockFault:
    """One clock fault clock sync reported at ``node`` (an end) on ``link`` towards ``station``:
    ``kind`` jump (``size`` the step of station minus node clock, us) or drift (``size`` the
    fitted drift of the station against the node, ppm), within ``uncertainty`` (same unit), beyond
    ``limit``; ``t_ps`` the loop time it was reported."""

    t_ps: int
    node: str
    link: str
    station: str
    kind: str
    size: float
    unit: str
    uncertainty: float
    limit: float

    @classmethod
    def of(cls, t_ps: int, link: str, fault: SyncClockFault) -> "DetectedClockFault":
        size, uncertainty, limit, unit = fault.scaled()
        return cls(int(t_ps), fault.node, link, fault.station, fault.kind, size, unit,
                   uncertainty, limit)

    def to_dict(self) -> dict[str, Any]:
        return {"t_ps": self.t_ps, "node": self.node, "link": self.link, "station": self.station,
                "kind": self.kind, "size": self.size, "unit": self.unit,
                "uncertainty": self.uncertainty, "limit": self.limit}
