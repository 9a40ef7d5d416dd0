"""A periodic, instrument-driven loop that survives an instrument outage: it retries with bounded
exponential backoff and resumes when the instrument answers again.

The loops of the link layer (a station's tagger reads, an end's attempt schedule bus-triggering
its AWG, a midpoint source's pump, a transceiver's switch) each call one instrument over and over.
Before, an :class:`~qnode_fw.errors.InstrumentError` escaping such a call also ended the loop: the
timer that should have run the next call was never armed, so under ``on_instrument_failure:
continue`` the part stayed dead for the rest of the run even after the instrument worked again.

:class:`InstrumentRetry` is one loop's view of its instrument's health:

* the **first** error of an outage is re-raised, after the loop has armed its retry timer, so it
  reaches the event loop's failure policy (``InstrumentFailures``) exactly as before: ``stop`` ends
  the run naming ``node/instrument``, ``continue`` records it; later errors of the same outage
  are counted here (:attr:`retries`) and not reported again;
* while the instrument is down the loop calls it every :attr:`delay_ps` (:class:`RetryBackoff`:
  1 ms, doubling, at most 100 ms, in loop time) instead of at its own cadence;
* the first call that succeeds ends the outage: a :class:`Recovery` (instrument resource,
  downtime, retries) goes to every listener; the failure policy registers itself as one when it
  sees the first error (the error carries its retry as ``retrying``), so the run record gets an
  ``instrument.recovered`` event and summary.json counts the recoveries.

Why these bounds: the first retry after 1 ms catches the usual short outage (a dropped USB
transfer, a reply lost to a busy instrument) within about one herald read of the link; doubling
keeps a dead instrument from being hammered at the loop's own MHz-to-kHz cadence; the 100 ms cap
means an instrument that comes back is in use again at most 100 ms later, which is short against
the minutes a testbed run lasts, while 10 calls a second at most leave its transport and the logs
alone. Times are loop time, so a virtual run's retries are as deterministic as its attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from qnode_fw.errors import InstrumentError
from qnode_fw.logs import event
from qnode_fw.units import MS

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """Wait ``first_ps`` before the first retry, twice as long before each further one, never
    more than ``max_ps`` (see the module docstring for why 1 ms and 100 ms)."""

    first_ps: int = 1 * MS
    max_ps: int = 100 * MS

    def __post_init__(self) -> None:
        if not 0 < self.first_ps <= self.max_ps:
            raise ValueError(f"backoff needs 0 < first ({self.first_ps} ps) <= max ({self.max_ps} ps)")

    def delay_ps(self, retries: int) -> int:
        """Wait before the next call after ``retries`` failed retries (0: after the first error)."""
        return min(self.max_ps, self.first_ps << min(retries, 62))


@dataclass(frozen=True, slots=True)
class Recovery:
    """One outage of one instrument, over."""

    part: str                  # the loop: "station bsa-AB link A-B", "schedule A-B at A", ...
    resource: str              # the instrument's resource, as its errors name it
    command: str | None        # the call that failed first
    error: str                 # the first error
    down_ps: int               # loop time of the first error
    downtime_ps: int           # from the first error to the call that worked
    retries: int               # calls that failed after the first


class InstrumentRetry:
    """One loop's instrument health (module docstring). ``part`` names the loop in the log."""

    def __init__(self, loop: Any, part: str, backoff: RetryBackoff | None = None) -> None:
        self.loop = loop
        self.part = part
        self.backoff = backoff or RetryBackoff()
        self.listeners: list[Callable[[Recovery], None]] = []
        #: outages over (calls that worked again after an error)
        self.recoveries = 0
        #: failed calls after the first of each outage, over the whole run
        self.total_retries = 0
        self.retries = 0
        self._error: InstrumentError | None = None
        self._down_ps = 0

    @property
    def down(self) -> bool:
        """The last call failed: call again after :attr:`delay_ps`, not at the loop's cadence."""
        return self._error is not None

    @property
    def delay_ps(self) -> int:
        """How long to wait before the next call while :attr:`down`."""
        return self.backoff.delay_ps(self.retries)

    def failed(self, exc: InstrumentError) -> bool:
        """A call failed; True when it is the first error of an outage (the caller re-raises it
        for the failure policy once it has armed its next call)."""
        if self._error is None:
            self._error = exc
            self._down_ps = self.loop.now_ps()
            self.retries = 0
            exc.retrying = self          # type: ignore[attr-defined]  (the policy listens here)
            return True
        self.retries += 1
        self.total_retries += 1
        return False

    def succeeded(self) -> None:
        """A call worked: end the outage, if there was one."""
        if self._error is None:
            return
        exc, self._error = self._error, None
        now = self.loop.now_ps()
        recovery = Recovery(self.part, exc.resource, exc.command, str(exc), self._down_ps,
                            now - self._down_ps, self.retries)
        self.recoveries += 1
        event(log, logging.INFO, "instrument.answering", part=self.part, resource=exc.resource,
              downtime_us=recovery.downtime_ps / 1e6, retries=recovery.retries)
        for fn in list(self.listeners):
            fn(recovery)

    def call(self, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)``: its result when it works, None when it fails again during an outage;
        the outage's first error is raised (call this inside ``try``/``finally`` that arms the
        loop's next call, so the loop lives on while the error reaches the failure policy)."""
        try:
            result = fn(*args)
        except InstrumentError as exc:
            if self.failed(exc):
                raise
            return None
        self.succeeded()
        return result


__all__ = ["InstrumentRetry", "Recovery", "RetryBackoff"]
