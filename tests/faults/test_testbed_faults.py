"""The guarantees of issue 10 on whole testbed runs, faults injected by ``qnode testbed --fault``
and the experiment YAML's ``faults:``.

* **No wrong pairs / no stuck qubits** under 5 % loss and 1 % duplication of every control and
  herald message (the issue's command line), and across a repeater and a BSA station that crash
  and restart mid-run: the simulator's cross-check finds every delivered pair entangled with the
  half its name and partner say, no qubit is held past its timer at any point of the run, and
  none is left held at the end.
* **Dead parts are named**: an instrument that stops answering is reported by ``node/name`` and
  the run stops or goes on as ``on_instrument_failure`` says.
* **Records survive**: ``qnode testbed`` killed with SIGKILL mid-run leaves a record readable up
  to its last flush, fault events included.

The injected rates are checked against their binomial expectation (3 sigma).
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from qnode_fw.cli.main import main
from qnode_fw.errors import ConfigError
from qnode_fw.experiments import SUMMARY_FIELDS, RunOptions, run_experiment
from qnode_fw.records import load_run

from processes_cli import EXPERIMENT as EXPERIMENT_PROCESSES, run_processes_testbed
from timer_watch import assert_nothing_held_past_its_timer

ROOT = Path(__file__).resolve().parents[2]
CHAIN_TB = ROOT / "configs/testbeds/chain-3node-sim.yaml"
CHAIN_EXP = ROOT / "configs/experiments/chain3-swap.yaml"
MS_PS = 10**9


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def chain_experiment(tmp_path: Path, name: str, **extra) -> Path:
    """chain3-swap.yaml with ``extra`` top-level keys (faults:, on_instrument_failure:, ...)."""
    doc = yaml.safe_load(CHAIN_EXP.read_text())
    doc["testbed"] = str(CHAIN_TB)
    doc.update(extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def within_3_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 3 * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.slow
def test_the_issue_fault_run_reports_no_wrong_pair_no_leaked_qubit_and_still_delivers(tmp_path):
    code, out = cli("testbed", str(CHAIN_TB), "--experiment", str(CHAIN_EXP),
                    "--fault", "drop=0.05,dup=0.01", "--json", "--out", str(tmp_path))
    assert code == 0
    summary = json.loads(out)
    assert list(summary) == list(SUMMARY_FIELDS)
    assert summary["wrong_pairs"] == 0 and summary["leaked_qubits"] == 0
    assert summary["pairs_delivered"] > 0
    run = load_run(summary["run_dir"])
    faults = run.summary["faults"]
    assert faults["plan"] == {"control": {"drop": 0.05, "dup": 0.01},
                              "herald": {"drop": 0.05, "dup": 0.01}}
    # The config written before the run holds the plan it applied (--fault over the YAML).
    assert run.config["experiment"]["faults"]["control"]["drop"] == 0.05
    assert run.events_of("faults.applied")
    for plane in ("control", "herald"):
        st = faults[plane]
        assert st["messages"] > 0, plane
        assert within_3_sigma(st["dropped"], st["messages"], 0.05), (plane, st)
        assert within_3_sigma(st["duplicated"], st["messages"] - st["dropped"], 0.01), (plane, st)
    assert faults["herald"]["messages"] > 1000          # every herald of the run went through
    # Clock sync runs over the same herald links: lost and duplicated sync frames are no clock fault.
    assert faults["clock_faults"] == []


class TimerWatch:
    """Between slices of a run: no executor holds a pair longer than its RuleSet's longest
    timer, no link end keeps an emission past its binder's expiry (plus one slice, the
    granularity of the look)."""

    def __init__(self, crash_node: str, crash_ps: int) -> None:
        self.crash_node = crash_node
        self.crash_ps = crash_ps
        self.looks = 0
        self.looked_after_crash = False

    def __call__(self, testbed, experiment) -> None:
        self.looks += 1
        assert_nothing_held_past_its_timer(testbed, experiment)
        if testbed.crashed and self.crash_node in testbed.crashed:
            crashed = testbed.nodes[self.crash_node]
            # Dead: nothing installed, nothing held, nothing waiting for a herald.
            assert not crashed.executor.installed and not crashed.executor.held_qubits()
            assert not any(end.binder._pending for run in experiment.links.links.values()
                           for a, end in run.ends.items() if a == self.crash_node)
            self.looked_after_crash = True


@pytest.mark.slow
def test_a_repeater_and_a_station_crash_and_restart_mid_run_without_wrong_or_stuck_pairs(tmp_path):
    plan = {"nodes": [{"node": "bsa-BC", "crash_at_s": 0.005, "restart_after_s": 0.005},
                      {"node": "B", "crash_at_s": 0.02, "restart_after_s": 0.01}]}
    path = chain_experiment(tmp_path, "crash", faults=plan)
    start_ps = 10 * MS_PS              # the control links are up and the experiment starts here
    watch = TimerWatch("B", start_ps + 20 * MS_PS)
    result = run_experiment(path, options=RunOptions(out_dir=tmp_path, on_slice=watch))
    s = result.summary
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0 and s.pairs_delivered > 0
    assert watch.looks > 20 and watch.looked_after_crash
    events = [(e["kind"], e["target"], e["t_ps"]) for e in result.faults["events"]]
    assert events == [("crash", "bsa-BC", start_ps + 5 * MS_PS), ("restart", "bsa-BC", start_ps + 10 * MS_PS),
                      ("crash", "B", start_ps + 20 * MS_PS), ("restart", "B", start_ps + 30 * MS_PS)]
    run = load_run(result.run_dir)
    closed = [e for e in run.events_of("connection") if not e["established"]]
    # The ends learn of B's restart from its first message under a new boot id and close the
    # connection through it; the initiator then sets a new one up and pairs flow again. None is
    # delivered while B is down (from just after its crash until the new connection is up).
    first = closed[0]
    assert first["reason"] == "peer down" and first["detail"] == "B: peer restarted"
    assert first["t_ps"] > start_ps + 30 * MS_PS
    requested = run.events_of("chain.requested")
    assert len(requested) == 2 and requested[1]["t_ps"] >= first["t_ps"]
    assert requested[1]["connection"] != requested[0]["connection"]
    established = [e["t_ps"] for e in run.events_of("connection")
                   if e["established"] and e["connection"] == requested[1]["connection"]]
    assert established
    delivered = [e["t_ps"] for e in run.events_of("pair.e2e")]
    before = [t for t in delivered if t < start_ps + 20 * MS_PS + 2 * MS_PS]
    after = [t for t in delivered if t >= start_ps + 20 * MS_PS + 2 * MS_PS]
    assert len(before) > 10 and len(after) > 10, (len(before), len(after))
    assert min(after) > min(established)
    assert [e["target"] for e in run.events_of("fault.injected")] == ["bsa-BC", "bsa-BC", "B", "B"]


@pytest.mark.parametrize(("faults", "field"), [
    ({"clocks": [{"node": "D", "jump_us": 50}]}, "faults.clocks[0].node"),
    ({"nodes": [{"node": "D", "crash_at_s": 0.001}]}, "faults.nodes[0].node"),
    ({"instruments": [{"node": "X", "instrument": "awg", "fault": "timeout"}]},
     "faults.instruments[0].node"),
])
def test_what_the_virtual_runner_cannot_inject_is_refused_before_the_run(tmp_path, faults, field):
    path = chain_experiment(tmp_path, "refused", faults=faults)
    with pytest.raises(ConfigError) as info:
        run_experiment(path, options=RunOptions(out_dir=tmp_path / "runs"))
    assert (info.value.file, info.value.field) == (str(path), field)
    assert not (tmp_path / "runs").exists()


def dead_tagger(tmp_path: Path, policy: str) -> Path:
    return chain_experiment(tmp_path, f"dead-{policy}", on_instrument_failure=policy, faults={
        "instruments": [{"node": "bsa-AB", "instrument": "tagger", "fault": "timeout",
                         "at_s": 0.005, "count": 1000}]})


@pytest.mark.slow
def test_a_dead_instrument_is_named_and_stops_the_run_or_not_as_the_policy_says(tmp_path):
    # stop: the run ends at the failure, drained and closed; exit 1.
    code, out = cli("testbed", str(CHAIN_TB), "--experiment", str(dead_tagger(tmp_path, "stop")),
                    "--duration", "0.03", "--json", "--out", str(tmp_path / "stop"))
    assert code == 1
    stopped = json.loads(out)
    assert stopped["wrong_pairs"] == 0 and stopped["leaked_qubits"] == 0
    run = load_run(stopped["run_dir"])
    assert run.summary["status"] == "stopped"
    assert run.summary["stop_reason"].startswith("instrument bsa-AB/tagger failed: ")
    [failure] = run.summary["instrument_failures"]
    assert failure["instrument"] == "bsa-AB/tagger" and failure["command"] == "read_stream()"
    assert [e["instrument"] for e in run.events_of("instrument.failed")] == ["bsa-AB/tagger"]
    assert stopped["sim_time_s"] < 0.02                # 5 ms in, plus the drain
    # continue: named the same way, and the run goes on to its duration (without that station).
    result = run_experiment(dead_tagger(tmp_path, "continue"),
                            options=RunOptions(duration_s=0.03, out_dir=tmp_path / "continue"))
    assert result.stop_reason is None and result.summary.sim_time_s >= 0.03
    assert [f["instrument"] for f in result.faults["instrument_failures"]] == ["bsa-AB/tagger"]
    assert result.summary.wrong_pairs == 0 and result.summary.leaked_qubits == 0
    assert load_run(result.run_dir).summary["status"] == "complete"
    heralds = result.results.details["links"]["A-B"]["heralds"]
    assert heralds < result.results.details["links"]["B-C"]["heralds"]


@pytest.mark.slow
def test_a_fault_run_killed_with_sigkill_leaves_a_record_readable_to_the_last_flush(tmp_path):
    path = chain_experiment(tmp_path, "killed", duration_s=5.0, faults={
        "control": {"drop": 0.05}, "nodes": [{"node": "bsa-BC", "crash_at_s": 0.002,
                                              "restart_after_s": 0.002}]})
    proc = subprocess.Popen([sys.executable, "-m", "qnode_fw.cli.main", "testbed", str(CHAIN_TB),
                             "--experiment", str(path), "--fault", "herald.dup=0.01",
                             "--out", str(tmp_path / "runs"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    run_dir = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            dirs = list((tmp_path / "runs").glob("*-chain3-swap"))
            if not dirs:
                continue
            run_dir = dirs[0]
            events = (run_dir / "events.jsonl").read_text() if (run_dir / "events.jsonl").exists() else ""
            if events.count('"fault.injected"') >= 2 and '"pair.e2e"' in events:
                break
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    data = load_run(run_dir)
    assert data.summary["status"] == "running" and data.torn_lines <= 1
    assert [e["kind"] for e in data.events_of("fault.injected")][:2] == ["crash", "restart"]
    assert data.events_of("pair.e2e")
    plan = data.config["experiment"]["faults"]
    assert plan["control"]["drop"] == 0.05 and plan["herald"]["dup"] == 0.01


@pytest.mark.parametrize("policy", [None, "stop"])
def test_processes_mode_refuses_a_node_crash_unless_the_survivors_run_on(tmp_path, policy):
    from qnode_fw.config import load_testbed
    from qnode_fw.testbed.processes import ProcessesTestbed

    doc = yaml.safe_load((ROOT / "configs/experiments/chain3-swap-processes.yaml").read_text())
    doc["testbed"] = str(ROOT / "configs/testbeds/chain-3node-processes.yaml")
    doc["faults"] = {"nodes": [{"node": "B", "crash_at_s": 1.0}]}
    if policy is not None:
        doc["on_peer_failure"] = policy
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        ProcessesTestbed(load_testbed(ROOT / "configs/testbeds/chain-3node-processes.yaml"),
                         out_dir=tmp_path / "runs", experiment=path, fault="drop=0.1")
    assert info.value.field == "on_peer_failure" and info.value.file == str(path)
    key = "on_peer_failure:" if policy else "nodes:"
    lines = path.read_text().splitlines()
    assert info.value.line is not None and key in lines[info.value.line - 1]
    assert not (tmp_path / "runs").exists()


def test_fault_on_a_plain_testbed_run_is_refused_naming_the_option(capsys):
    assert main(["testbed", str(CHAIN_TB), "--fault", "drop=0.1"]) == 2
    assert "--fault" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.processes
def test_processes_mode_fault_run_has_no_wrong_pair_and_no_leaked_qubit(tmp_path, processes_lock):
    summary = run_processes_testbed(tmp_path, EXPERIMENT_PROCESSES, 4,
                                    "--fault", "drop=0.05,dup=0.01,reorder=0.01", timeout_s=240)
    assert summary["pairs_delivered"] > 0
    record = load_run(summary["run_dir"])
    faults = record.summary["faults"]
    assert sorted(faults["nodes"]) == ["A", "B", "C", "bsa-AB", "bsa-BC"]
    for plane in ("control", "herald"):
        st = faults[plane]
        assert st["messages"] > 100, plane
        assert within_3_sigma(st["dropped"], st["messages"], 0.05), (plane, st)
    # Each node process logged its own share being applied.
    for address in ("A", "B", "bsa-AB"):
        assert load_run(record.root / "nodes" / address).events_of("faults.applied")
