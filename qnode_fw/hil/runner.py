"""One run of a bench: its plan, its rig and its session. ``qnode hil`` runs every check in order;
the pytest suite in ``hil/`` runs them one test at a time through the same object.

::

    with BenchRun(load_bench("configs/benches/sim.yaml"), max_level=Level.OUTPUTS) as run:
        report = run.run_all()
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from qnode_fw.config.node import CalibrationConfig, CalibrationFile
from qnode_fw.config.source import load_document
from qnode_fw.config.validate import parse_model

from .bench import LoadedBench
from .checks import build_plan
from .emulated import EmulatedRig
from .levels import Level
from .report import BenchReport
from .rig import DryRunRig, LabRig, Rig, SimRig
from .session import SKIPPED, Check, CheckResult, Session


def make_rig(bench: LoadedBench) -> Rig:
    return {"lab": LabRig, "sim": SimRig, "emulated": EmulatedRig}[bench.backend](bench)


def load_calibration(path: str | Path) -> CalibrationConfig:
    """A calibration YAML (as ``qnode hil`` writes it); errors name file, line and field."""
    return parse_model(CalibrationFile, load_document(path)).calibration


class BenchRun:
    def __init__(self, bench: LoadedBench, *, max_level: int = Level.EMITS, dry_run: bool = False,
                 calibration: str | Path | None = None, rig: Rig | None = None) -> None:
        self.bench = bench
        self.plan: list[Check] = build_plan(bench)
        self.max_level = Level(max_level)
        self.dry_run = dry_run
        if calibration is not None:
            self.calibration: CalibrationConfig | None = load_calibration(calibration)
            self.calibration_source = str(calibration)
        else:
            self.calibration = None
            self.calibration_source = ("the bench file's calibration section" if bench.config.calibration
                                       else "none (input delays 0, nominal crystal temperatures)")
        #: The bench's own rig (an emulated bench's emulators live here, in a dry run too).
        self.bench_rig = rig or make_rig(bench)
        self.rig = DryRunRig(bench, self.bench_rig, self._record) if dry_run else self.bench_rig
        self.session: Session | None = None
        self.results: dict[str, CheckResult] = {}
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def _record(self, text: str) -> None:
        if self.session is not None:
            self.session.record_command(text)

    def __enter__(self) -> "BenchRun":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.rig.start()
        self.session = Session(self.bench, self.rig, calibration=self.calibration, dry_run=self.dry_run)

    def close(self) -> None:
        try:
            if self.session is not None:
                self.session.close()
        finally:
            self.rig.close()

    def check(self, check_id: str) -> Check:
        return next(c for c in self.plan if c.id == check_id)

    def run(self, check: Check) -> CheckResult:
        if check.level > self.max_level:
            result = CheckResult(check.id, check.level, check.title, SKIPPED,
                                 f"level {int(check.level)} ({check.level.meaning}) is above --max-level "
                                 f"{int(self.max_level)}")
        else:
            result = self.session.run(check)
        self.results[check.id] = result
        return result

    def run_all(self) -> BenchReport:
        for check in self.plan:
            self.run(check)
        return self.report()

    def report(self) -> BenchReport:
        results = [self.results[c.id] for c in self.plan if c.id in self.results]
        written_by = f"qnode hil {self.bench.path} ({self.bench.name}, {self.started})"
        return BenchReport(self.bench.name, str(self.bench.path), self.bench.backend, int(self.max_level),
                           self.dry_run, self.started, self.calibration_source, results,
                           self.session.calibration_out(written_by), self.rig.traffic())
