"""Clock faults: a node's oscillator steps, or starts drifting beyond what sync tolerates.

They act on a :class:`~timing.clock_sync.SimulatedClock` (``local = true + offset + drift *
true``), the node clock the timing layer reads in both testbed modes; the truth underneath (the
event loop's clock) never moves backwards. A drift change keeps the clock continuous: only the
rate changes at the fault time, so any step seen comes from ``jump_us`` alone.
"""

from __future__ import annotations

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
