"""Every check of every bench, one test each, in the plan's order (level by level)."""

from __future__ import annotations

import pytest

from qnode_fw.hil.session import LISTED, PASSED, SKIPPED

pytestmark = pytest.mark.hil


def test_check(bench_check, bench_run):
    index, check_id = bench_check
    run = bench_run(index)
    result = run.run(run.check(check_id))
    for command in result.commands:
        print(command)
    if result.status == SKIPPED:
        pytest.skip(result.message)
    figures = "; ".join(f"{f.name}={f.value}{f.unit}" for f in result.figures)
    assert result.status in (PASSED, LISTED), f"{check_id}: {result.message} [{figures}]"


@pytest.mark.dry_run_only
def test_dry_run_reached_no_instrument(bench_index, bench_run):
    """After every check of a dry run, the emulators (an emulated bench) received nothing."""
    run = bench_run(index=bench_index)
    for check in run.plan:
        if check.id not in run.results:
            run.run(check)
    traffic = run.rig.traffic()
    if traffic is None:
        pytest.skip(f"bench {run.bench.name} ({run.bench.backend}) has no emulators to ask")
    assert all(text.startswith("0 ") for text in traffic.values()), traffic
