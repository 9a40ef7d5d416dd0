"""A bench session: the opened instruments, the calibration in force, what this run measured, and
running one check at a time into a :class:`CheckResult`.

Checks report through a :class:`CheckContext`: figures (value, unit, the configured value and the
limit they are judged against), failures (a check goes on after one, so a report names every
problem it saw) and skips with their reason.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from drivers.instrument import Instrument
from qnode_fw.config.node import CalibrationConfig
from qnode_fw.errors import QnodeError

from .bench import LoadedBench
from .levels import Level
from .rig import Rig

PASSED, FAILED, SKIPPED, LISTED = "passed", "failed", "skipped", "listed"


@dataclass
class Figure:
    name: str
    value: float | int | str
    unit: str = ""
    #: What the bench file (or the calibration in force) says the value should be.
    configured: float | int | str | None = None
    #: The pass condition, in words (``<= 50 ps``, ``within 2000 ps``).
    limit: str | None = None


@dataclass
class CheckResult:
    id: str
    level: Level
    title: str
    status: str
    message: str = ""
    figures: list[Figure] = field(default_factory=list)
    duration_s: float = 0.0
    commands: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != FAILED


class CheckSkipped(Exception):
    """A check cannot run on this bench; the message says why."""


class CheckContext:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.failures: list[str] = []
        self.notes: list[str] = []

    def figure(self, name: str, value, unit: str = "", *, configured=None, limit: str | None = None) -> None:
        if isinstance(value, float):
            value = round(value, 3)
        if isinstance(configured, float):
            configured = round(configured, 3)
        self.figures.append(Figure(name, value, unit, configured, limit))

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    @staticmethod
    def skip(reason: str):
        raise CheckSkipped(reason)


@dataclass(frozen=True)
class Check:
    id: str  # "trigger_delay:sync"
    level: Level
    title: str
    run: Callable[["Session", CheckContext], None]


@dataclass
class Measured:
    """What this run measured that the next run should use (written as calibration YAML)."""

    input_delays_ps: dict[str, dict[int, int]] = field(default_factory=dict)
    crystal_temperature_c: dict[str, float] = field(default_factory=dict)
    #: Coincidence peak delay (idler detector minus signal reference), by (source, detector), ps.
    coincidence_delay_ps: dict[tuple[str, str], float] = field(default_factory=dict)


class Session:
    def __init__(self, bench: LoadedBench, rig: Rig, *, calibration: CalibrationConfig | None = None,
                 dry_run: bool = False) -> None:
        self.bench = bench
        self.config = bench.config
        self.rig = rig
        self.dry_run = dry_run
        #: The calibration in force: ``--calibration`` or the bench file's own (``include:``).
        self.calibration = calibration or bench.config.calibration or CalibrationConfig()
        self.measured = Measured()
        self._instruments: dict[str, Instrument] = {}
        self._applied: dict[str, dict[int, int]] = {}
        self._current: list[str] | None = None

    # -- instruments ---------------------------------------------------------------------------
    def instrument(self, name: str) -> Instrument:
        """``name`` opened with the bench file's limits (opened on first use)."""
        if name not in self._instruments:
            inst = self.config.instrument(name)
            self._instruments[name] = self.rig.open(inst, inst.limits)
        return self._instruments[name]

    def reopen(self, name: str, limits: dict[str, tuple[float, float]]) -> Instrument:
        """Close ``name`` and open it again enforcing ``limits`` (no driver changes its limits once
        open); the next :meth:`instrument` goes back to the bench file's."""
        self.release(name)
        inst = self.config.instrument(name)
        self._instruments[name] = self.rig.open(inst, limits)
        return self._instruments[name]

    def release(self, name: str) -> None:
        device = self._instruments.pop(name, None)
        self._applied.pop(name, None)  # a reopened tagger may have forgotten its input delays
        if device is not None:
            device.close()

    def close(self) -> None:
        for name in list(self._instruments):
            try:
                self.release(name)
            except QnodeError:
                pass  # a bench that lost an instrument still closes the others

    # -- calibration ---------------------------------------------------------------------------
    def wired_inputs(self, tagger: str) -> list[int]:
        wiring = self.config.wiring
        return sorted({c.input for c in [*wiring.markers.values(), *wiring.detectors.values()] if c.tagger == tagger})

    def input_delays(self, tagger: str) -> dict[int, int]:
        """The input delays in force on ``tagger``'s wired inputs: the calibration's, 0 where it
        has none. Set on the tagger the first time they are needed (a level-1 setting)."""
        if tagger not in self._applied:
            device = self.instrument(tagger)
            known = self.calibration.input_delays_ps.get(tagger, {})
            applied = {ch: int(known.get(ch, 0)) for ch in self.wired_inputs(tagger)}
            for ch, delay in applied.items():
                device.set_input_delay_ps(ch, delay)
            self._applied[tagger] = applied
        return self._applied[tagger]

    def crystal_temperature_c(self, source: str) -> float:
        """Where the crystal runs: measured this run, else calibrated, else the nominal value."""
        if source in self.measured.crystal_temperature_c:
            return self.measured.crystal_temperature_c[source]
        if source in self.calibration.crystal_temperature_c:
            return self.calibration.crystal_temperature_c[source]
        return self.config.operating[source].crystal_temperature_c

    def calibration_out(self, written_by: str) -> CalibrationConfig:
        """The calibration in force with this run's measurements over it."""
        delays = {t: dict(chs) for t, chs in self.calibration.input_delays_ps.items()}
        for tagger, chs in self.measured.input_delays_ps.items():
            delays.setdefault(tagger, {}).update(chs)
        crystal = {**self.calibration.crystal_temperature_c, **self.measured.crystal_temperature_c}
        return CalibrationConfig(written_by=written_by, input_delays_ps=delays, crystal_temperature_c=crystal)

    # -- running -------------------------------------------------------------------------------
    def record_command(self, text: str) -> None:
        """Dry run: a call a check would have sent."""
        if self._current is not None:
            self._current.append(text)

    def run(self, check: Check) -> CheckResult:
        ctx = CheckContext()
        commands: list[str] = []
        self._current = commands
        started = time.perf_counter()
        status, message = PASSED, ""
        try:
            check.run(self, ctx)
            self.rig.wait(int(self.config.checks.guard_ms * 1e9))
        except CheckSkipped as exc:
            status, message = SKIPPED, str(exc)
        except QnodeError as exc:
            ctx.fail(str(exc))
        except AssertionError as exc:
            ctx.fail(describe_assertion(exc))
        finally:
            self._current = None
        if status == PASSED and ctx.failures:
            status, message = FAILED, "; ".join(ctx.failures)
        elif status == PASSED:
            message = "; ".join(ctx.notes)
        figures = ctx.figures
        if self.dry_run:  # the stand-ins' answers are no measurement of the bench
            figures = []
            if status != SKIPPED:
                status, message = LISTED, f"{len(commands)} calls listed, nothing sent"
        return CheckResult(check.id, check.level, check.title, status, message, figures,
                           time.perf_counter() - started, commands)


def describe_assertion(exc: BaseException) -> str:
    """An assertion's own message, or the source line that failed (plain ``assert`` outside
    pytest carries no message)."""
    text = str(exc).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}: {frames[-1].line}" if frames else ""
    return f"assertion failed at {where}" + (f": {text}" if text else "")

