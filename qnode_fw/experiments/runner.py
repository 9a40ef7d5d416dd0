"""Running one experiment on a testbed in one process on the virtual clock (``qnode testbed
TESTBED --experiment EXP``).

:func:`run_experiment` loads both files, starts every node of the testbed
(:class:`~qnode_fw.testbed.virtual.VirtualTestbed`), waits until the control links are up, lets
the experiment set itself up and then advances simulated time in slices until the experiment is
done or its time is up (twice its duration plus a second, as a safety net). Between slices it
flushes the run record (so a killed run leaves a record up to the last slice), writes a
``status: running`` summary, and calls the progress and metrics hooks. The summary has exactly
the fields of :class:`~.base.Summary`.

Faults (:mod:`qnode_fw.faults`): the experiment's ``faults:`` with ``--fault`` over it are applied
once the experiment is set up; what was injected goes into the record as it happens and into
summary.json under ``faults``. An instrument error escaping into the loop is named and handled as
the experiment's ``on_instrument_failure`` says (``stop``: the run is drained, closed and ends
with ``status: stopped``; ``continue``: it runs on); summary.json lists ``instrument_failures``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..config.experiment import LoadedExperiment, load_experiment
from ..config.testbed import LoadedTestbed, load_testbed
from ..errors import ConfigError
from ..logs import event
from ..faults.apply import apply_fault_plan
from ..faults.runners import (FaultLog, InstrumentFailures, check_plan_for_runner,
                              instrument_names, run_fault_plan, virtual_fault_targets)
from ..records import RunRecord
from ..units import MS, S
from .base import Experiment, Results, RunContext, StatusRow, Summary, experiment_class

log = logging.getLogger(__name__)

#: Simulated time allowed for the control links to come up before the experiment starts.
STARTUP_LIMIT_PS = 2 * S


@dataclass
class RunOptions:
    seed: int | None = None
    duration_s: float | None = None
    out_dir: Path | None = None
    #: ``fn(fraction, wall_s, rows)`` between slices (the live view).
    on_progress: Callable[[float, float, list[StatusRow]], None] | None = None
    #: ``fn(testbed, experiment)`` between slices (the Prometheus exporter).
    on_slice: Callable[[Any, Experiment], None] | None = None
    argv: list[str] | None = None
    #: ``--fault`` (``drop=0.05,dup=0.01``): message faults over the experiment's ``faults:``.
    fault: str | None = None


@dataclass
class RunResult:
    summary: Summary
    results: Results
    run_dir: Path | None
    testbed: Any
    experiment: Experiment
    #: The summary's ``faults`` section (plan, counts, event log, instrument failures) or None.
    faults: dict[str, Any] | None = None
    #: Why the run ended early (a failed instrument under ``on_instrument_failure: stop``).
    stop_reason: str | None = None


def resolve_testbed(loaded: LoadedExperiment, testbed_path: str | Path | None) -> LoadedTestbed:
    path = Path(testbed_path) if testbed_path is not None else loaded.testbed_path()
    if path is None:
        raise ConfigError("no testbed given: name one on the command line or in the experiment's "
                          "testbed: field", file=str(loaded.document.file), field="testbed",
                          expected="a testbed YAML path")
    return load_testbed(path)


def resolved_configuration(tb: LoadedTestbed, exp: LoadedExperiment, seed: int, duration_s: float,
                           argv: list[str] | None, plan: Any = None) -> dict[str, Any]:
    exp_dump = exp.config.model_dump(mode="json")
    exp_dump["params"] = exp.params.model_dump(mode="json")
    # The plan the run applies: the experiment's faults: with --fault over it.
    exp_dump["faults"] = plan.model_dump(mode="json") if plan is not None else None
    return {
        "run": {"qnode_fw": __version__, "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "seed": seed, "duration_s": duration_s, "mode": "virtual",
                "experiment_file": str(exp.document.file), "testbed_file": str(tb.document.file),
                "argv": argv if argv is not None else sys.argv},
        "experiment": exp_dump,
        "testbed": tb.config.model_dump(mode="json"),
    }


def run_experiment(experiment_path: str | Path, testbed_path: str | Path | None = None,
                   options: RunOptions | None = None) -> RunResult:
    from ..testbed.virtual import VirtualTestbed

    options = options or RunOptions()
    loaded = load_experiment(experiment_path)
    tb_loaded = resolve_testbed(loaded, testbed_path)
    seed = options.seed if options.seed is not None else (
        loaded.config.seed if loaded.config.seed is not None else tb_loaded.config.seed)
    duration_s = options.duration_s if options.duration_s is not None else loaded.config.duration_s
    if duration_s <= 0:
        raise ConfigError(f"duration must be positive, got {duration_s}", field="--duration",
                          expected="simulated seconds > 0")
    duration_ps = int(round(duration_s * S))
    plan = run_fault_plan(loaded.config.faults, options.fault)
    if plan is not None:
        check_plan_for_runner(plan, str(loaded.document.file), tb_loaded.config.addresses,
                              processes=False)
    record = None
    if options.out_dir is not None:
        record = RunRecord.create(options.out_dir, loaded.config.name)
        record.write_config(resolved_configuration(tb_loaded, loaded, seed, duration_s, options.argv,
                                                   plan))
    wall0 = time.monotonic()
    testbed = VirtualTestbed(tb_loaded, seed=seed)
    ctx = RunContext(testbed, loaded, loaded.params, seed, duration_ps, record)
    cls = experiment_class(loaded.config.kind)
    experiment: Experiment | None = None
    fault_log: FaultLog | None = None
    try:
        testbed.start()
        failures = InstrumentFailures(
            loaded.config.on_instrument_failure, instrument_names(testbed.nodes), testbed.now_ps,
            on_failure=lambda f: ctx.log("instrument.failed", f.instrument.split("/")[0],
                                         **{k: v for k, v in f.to_dict().items() if k != "t_ps"}),
            on_recovery=lambda f: ctx.log("instrument.recovered", f["instrument"].split("/")[0], **f))
        failures.guard_run_until(testbed.loop)
        _wait_for_control_links(testbed)
        experiment = cls(ctx)
        experiment.setup()
        ctx.log("experiment.started", None, kind=loaded.config.kind, seed=seed, duration_s=duration_s)
        start_ps = testbed.now_ps()
        if plan is not None:
            applied = apply_fault_plan(plan, virtual_fault_targets(plan, testbed, experiment,
                                                                   testbed.streams, start_ps))
            fault_log = FaultLog(plan, applied, record, failures)
            ctx.log("faults.applied", None, plan=plan.model_dump(mode="json", exclude_defaults=True))
        # Kinds that run for the duration stop there; kinds with their own schedule stop when
        # done, with twice the duration and a second as a safety net.
        end_ps = start_ps + (duration_ps if cls.ends_at_duration else 2 * duration_ps + 1 * S)
        while not experiment.done() and testbed.now_ps() < end_ps and failures.stop_reason is None:
            testbed.loop.run_until(min(testbed.now_ps() + experiment.slice_ps, end_ps))
            if fault_log is not None:
                fault_log.flush()
            _between_slices(testbed, experiment, ctx, options, start_ps, duration_ps, wall0, record)
        if failures.stop_reason is not None:
            ctx.log("experiment.stopping", None, reason=failures.stop_reason)
        results = experiment.finish()
        sim_s = (testbed.now_ps() - start_ps) / S
        ctx.log("experiment.finished", None, sim_time_s=sim_s)
        summary = Summary(loaded.config.name, results.pairs_delivered, results.rate_hz,
                          results.fidelity, results.fidelity_stderr, results.chsh_s,
                          results.chsh_s_stderr, results.wrong_pairs, results.leaked_qubits,
                          sim_s, time.monotonic() - wall0, testbed.loop.events_processed,
                          str(record.root) if record is not None else None)
        faults = fault_log.summary() if fault_log is not None else None
        extra: dict[str, Any] = {"instrument_failures": failures.to_list()}
        if faults is not None:
            extra["faults"] = faults
        if failures.stop_reason is not None:
            extra["stop_reason"] = failures.stop_reason
        if record is not None:
            record.write_summary({**summary.to_dict(),
                                  "status": "stopped" if failures.stop_reason else "complete",
                                  "kind": loaded.config.kind, "seed": seed, **extra,
                                  "details": results.details})
    except BaseException as exc:
        if record is not None:
            if fault_log is not None:
                fault_log.flush()
            record.write_summary({"experiment": loaded.config.name, "kind": loaded.config.kind,
                                  "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                  "sim_time_s": testbed.now_ps() / S,
                                  "wall_time_s": time.monotonic() - wall0,
                                  "events": testbed.loop.events_processed,
                                  "run_dir": str(record.root)})
            record.close()
        _stop(testbed)
        raise
    if record is not None:
        record.close()
    _stop(testbed)
    event(log, logging.INFO, "experiment.summary", **{k: v for k, v in summary.to_dict().items()})
    return RunResult(summary, results, record.root if record is not None else None, testbed, experiment,
                     faults, failures.stop_reason)


def _wait_for_control_links(testbed) -> None:
    step = 10 * MS
    while not testbed.all_peers_up():
        if testbed.now_ps() >= STARTUP_LIMIT_PS:
            down = {a: [p for p, (up, r) in st.peers.items() if not up]
                    for a, st in testbed.status().items()}
            raise ConfigError(f"control links not up after {STARTUP_LIMIT_PS / S:g} s: "
                              + "; ".join(f"{a} misses {', '.join(p)}" for a, p in down.items() if p),
                              field="testbed")
        testbed.run_for(step)


def _between_slices(testbed, experiment: Experiment, ctx: RunContext, options: RunOptions,
                    start_ps: int, duration_ps: int, wall0: float, record: RunRecord | None) -> None:
    frac_time = min(1.0, (testbed.now_ps() - start_ps) / duration_ps) if duration_ps else 1.0
    frac, rows = experiment.progress()
    fraction = frac_time if experiment.ends_at_duration else frac
    if record is not None:
        record.flush()
        record.write_summary({"experiment": ctx.experiment.config.name, "status": "running",
                              "progress": round(fraction, 4),
                              "sim_time_s": (testbed.now_ps() - start_ps) / S,
                              "wall_time_s": time.monotonic() - wall0,
                              "events": testbed.loop.events_processed,
                              "run_dir": str(record.root),
                              "nodes": [r.__dict__ for r in rows]})
    if options.on_progress is not None:
        options.on_progress(fraction, time.monotonic() - wall0, rows)
    if options.on_slice is not None:
        options.on_slice(testbed, experiment)


def _stop(testbed) -> None:
    if testbed.started:
        testbed.stop()
