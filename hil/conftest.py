"""The HIL suite's options and fixtures.

    pytest hil --bench BENCH.yaml [--bench OTHER.yaml] [--max-level N] [--dry-run] [--bench-report DIR]

Without ``--bench`` the suite runs the two CI benches, configs/benches/sim.yaml (the simulated
backend) and configs/benches/emulated.yaml (real drivers against the protocol emulators). Each
check of each bench's plan is one test, marked ``hil`` and ``level0``..``level3``; a check above
``--max-level`` is skipped with that reason. All checks of one bench share one
:class:`~qnode_fw.hil.runner.BenchRun` (instruments stay open, calibration carries from check to
check); ``--bench-report DIR`` writes each bench's report and calibration YAML to DIR/<bench name>.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qnode_fw.errors import ConfigError
from qnode_fw.hil.bench import load_bench
from qnode_fw.hil.checks import build_plan
from qnode_fw.hil.levels import Level
from qnode_fw.hil.report import write_report
from qnode_fw.hil.runner import BenchRun

REPO = Path(__file__).resolve().parents[1]
CI_BENCHES = [REPO / "configs" / "benches" / "sim.yaml", REPO / "configs" / "benches" / "emulated.yaml"]


def pytest_addoption(parser) -> None:
    group = parser.getgroup("hil", "hardware-in-the-loop benches")
    group.addoption("--bench", action="append", default=[], metavar="BENCH.yaml",
                    help="bench file to run (repeatable); default: the CI benches sim.yaml and emulated.yaml")
    group.addoption("--max-level", type=int, default=int(Level.EMITS), choices=[int(l) for l in Level],
                    help="run checks up to this level: 0 read only, 1 settings, 2 switching and outputs, "
                         "3 emits light, heats or moves (default 3)")
    group.addoption("--dry-run", action="store_true", help="list the calls each check would make; send nothing")
    group.addoption("--bench-report", metavar="DIR", help="write each bench's report and calibration here")


def _benches(config) -> list:
    if not hasattr(config, "_hil_benches"):
        paths = config.getoption("--bench") or CI_BENCHES
        try:
            config._hil_benches = [load_bench(p) for p in paths]
        except ConfigError as exc:
            raise pytest.UsageError(f"bad bench file:\n{exc}") from None
        config._hil_runs = {}
    return config._hil_benches


def pytest_generate_tests(metafunc) -> None:
    benches = _benches(metafunc.config)
    if "bench_check" in metafunc.fixturenames:
        params = [pytest.param((i, check.id), id=f"{bench.name}:{check.id}",
                               marks=[getattr(pytest.mark, check.level.marker)])
                  for i, bench in enumerate(benches) for check in build_plan(bench)]
        metafunc.parametrize("bench_check", params)
    if "bench_index" in metafunc.fixturenames:
        metafunc.parametrize("bench_index", range(len(benches)), ids=[b.name for b in benches])


def pytest_collection_modifyitems(config, items) -> None:
    if config.getoption("--dry-run"):
        return
    dry_only = [item for item in items if item.get_closest_marker("dry_run_only")]
    if dry_only:
        config.hook.pytest_deselected(items=dry_only)
        items[:] = [item for item in items if item not in dry_only]


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "dry_run_only: runs only with --dry-run")


@pytest.fixture(scope="session")
def bench_run(request):
    """``bench_run(i)``: the started BenchRun of bench ``i`` (one per bench and session)."""
    config = request.config
    benches, runs = _benches(config), config._hil_runs

    def get(index: int) -> BenchRun:
        if index not in runs:
            run = BenchRun(benches[index], max_level=config.getoption("--max-level"),
                           dry_run=config.getoption("--dry-run"))
            run.start()
            runs[index] = run
        return runs[index]

    yield get
    directory = config.getoption("--bench-report")
    for run in runs.values():
        try:
            report = run.report()
            config._hil_reports = [*getattr(config, "_hil_reports", []), report]
            if directory:
                write_report(report, Path(directory) / run.bench.name)
        finally:
            run.close()


def pytest_terminal_summary(terminalreporter, config) -> None:
    reports = getattr(config, "_hil_reports", [])
    if reports and (config.getoption("--dry-run") or config.getoption("--bench")):
        terminalreporter.section("HIL bench reports")
        for report in reports:
            terminalreporter.write_line(report.render_text())
