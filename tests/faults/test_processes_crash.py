"""A node process that crashes and restarts mid-run, in processes mode (issue 10): the runner
kills ``qnode run`` with SIGKILL at the planned time and starts it again with the same command
line; the experiment's ``on_peer_failure`` says what the survivors do.

* ``continue``: the survivors name the dead peer (missed heartbeats), close the connection
  through it (its qubits freed at once, not held past any timer), run on, see it come back under a
  new boot id, and the initiator sets the connection up again: pairs are delivered before the
  crash and after the restart, none wrongly paired, no qubit left held, exit 0. The same for the
  chain's ends, which host the application: the restarted end runs a fresh application half.
* ``stop``: a peer that dies ends every survivor, each naming it.

Oracle: the World's cross-check of which qubit each delivered half shares its state with (wrong
pairs), each node's count of qubits still held when it stops (leaked qubits), and the times the
runner and the nodes recorded.

Processes-mode runs bind the fixed ports of ``configs/``: the ``processes_lock`` fixture (conftest.py) holds
``/tmp/qnode-processes.lock`` for each run, so no two such runs on this machine overlap.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qnode_fw.config import load_testbed
from qnode_fw.records import load_run
from qnode_fw.testbed.node_experiment import read_halves
from qnode_fw.testbed.processes import ProcessesTestbed, ProcessSettings

from processes_cli import EXPERIMENT, TESTBED, experiment_with

pytestmark = pytest.mark.processes

SURVIVORS = ("A", "bsa-AB", "bsa-BC", "C")
#: A peer silent for 10 heartbeats (1 s) is down: short enough to see it go down before it comes
#: back within a test's budget, long enough for a loaded machine's pauses.
SETTINGS = ProcessSettings(missed_heartbeats=10)


def matched_after(run_dir: Path, t_ps: int) -> set[tuple[str, int]]:
    """Names of the pairs both ends logged a half of, delivered after ``t_ps``."""
    a, c = read_halves(run_dir, "A"), read_halves(run_dir, "C")
    names = [{(str(r["origin"]), int(r["name_ps"])) for r in h if r["t_ps"] > t_ps} for h in (a, c)]
    return names[0] & names[1]


def run_until_pairs_after_restart(tmp_path: Path, exp: Path, end: str, pairs: int = 4,
                                  budget_s: float = 40.0):
    """Run until ``end`` has logged ``pairs`` halves after the planned restart (or the budget is
    spent): as short as the machine allows, and still enough on a loaded one, where a process
    takes seconds to start."""
    tb = ProcessesTestbed(load_testbed(TESTBED), out_dir=tmp_path / "runs", experiment=exp,
                          settings=SETTINGS)
    try:
        tb.start()
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline and not tb.ended_unplanned():
            tb.run_for(0.5)
            restarted = by_kind(tb.injected, "restart")
            if restarted:
                halves = read_halves(tb.record.root, end)     # flushed at every status tick
                if (halves["t_ps"] > restarted[0]["t_ps"]).sum() >= pairs:
                    break
    finally:
        result = tb.stop()
    return tb, result


def by_kind(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind]


def down_then_back(events: list[dict], survivor: str, peer: str) -> tuple[dict, dict]:
    """What ``survivor`` saw of ``peer``: it first went down, and at last came back as a new
    process (a later boot id). Between, a message the dead process sent before it died can
    arrive late and show it up again under its old boot for a moment: the control link cannot
    tell that from a network that came back, and the role names it as such ("same boot")."""
    seen = [e for e in events if e["node"] == survivor and e["target"] == peer]
    assert len(seen) >= 2 and len(seen) % 2 == 0, (survivor, seen)
    assert [e["kind"] for e in seen] == ["peer-down", "peer-back"] * (len(seen) // 2), (survivor, seen)
    down, back = seen[0], seen[-1]
    assert back["detail"].startswith("heard from (new boot") and back["boot"] > down["boot"], seen
    return down, back


def test_on_peer_failure_is_validated_naming_file_line_and_field(tmp_path):
    from qnode_fw.config.experiment import load_experiment
    from qnode_fw.errors import ConfigError

    path = experiment_with(tmp_path, on_peer_failure="sometimes")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert (info.value.file, info.value.field) == (str(path), "on_peer_failure")
    assert "on_peer_failure:" in path.read_text().splitlines()[info.value.line - 1]
    assert load_experiment(experiment_with(tmp_path, on_peer_failure="continue")).config.on_peer_failure \
        == "continue"
    assert load_experiment(EXPERIMENT).config.on_peer_failure == "stop"      # the default


@pytest.mark.slow
def test_a_repeater_crashes_and_restarts_and_the_chain_delivers_again_without_wrong_or_held_pairs(
        tmp_path, processes_lock):
    exp = experiment_with(tmp_path, on_peer_failure="continue",
                     faults={"nodes": [{"node": "B", "crash_at_s": 2.0, "restart_after_s": 1.6}]})
    tb, result = run_until_pairs_after_restart(tmp_path, exp, "A")
    s = result.summary
    assert result.ok, result.failures
    assert s["wrong_pairs"] == 0 and s["leaked_qubits"] == 0
    # Every node, B's second process included, ended by the runner's SIGTERM.
    assert all(o.returncode == 0 and o.shutdown == "SIGTERM" for o in result.nodes.values())
    faults = s["faults"]
    crash, = by_kind(faults["events"], "crash")
    restart, = by_kind(faults["events"], "restart")
    assert crash["target"] == restart["target"] == "B" and crash["node"] == restart["node"] == "runner"
    assert 1.5 <= (restart["t_ps"] - crash["t_ps"]) / 1e12 <= 2.0
    assert faults["counts"]["crash"] == faults["counts"]["restart"] == 1
    # Each survivor named B as down (missed heartbeats: B was away longer than 1 s), then back.
    for survivor in SURVIVORS:
        down, back = down_then_back(faults["events"], survivor, "B")
        assert down["detail"] not in ("peer restarted", "peer stopped")   # seen while B was dead
        assert crash["t_ps"] < down["t_ps"] < restart["t_ps"] < back["t_ps"]
    assert faults["counts"]["peer-down"] == faults["counts"]["peer-back"] >= len(SURVIVORS)
    # The ends closed the connection through B as soon as they knew B was down - its qubits
    # freed then, not held until B came back - and the initiator set up a new one afterwards.
    record = load_run(result.run_dir)
    a_conn = record.nodes["A"].events_of("connection")
    closed = [e for e in a_conn if not e["established"] and e["reason"] == "peer down"]
    assert closed and closed[0]["detail"].startswith("B: ")
    a_down = next(e for e in faults["events"] if e["node"] == "A" and e["kind"] == "peer-down")
    assert closed[0]["t_ps"] <= a_down["t_ps"] < restart["t_ps"]
    assert [e["established"] for e in a_conn].count(True) == 2
    # Pairs both before the crash and after the restart, each matched at both ends.
    halves = read_halves(result.run_dir, "A")
    assert (halves["t_ps"] < crash["t_ps"]).sum() >= 3
    assert (halves["t_ps"] > restart["t_ps"]).sum() >= 3
    assert s["pairs_delivered"] >= 6
    assert len(matched_after(result.run_dir, restart["t_ps"])) >= 3
    # The killed process's record reads up to its last flush; the new process has its own.
    first, again = record.nodes["B"], record.nodes["B.restart1"]
    assert first.summary["status"] == "running" and first.events_of("role.started")
    assert not first.events_of("role.finished")
    assert again.summary["status"] == "stopped" and again.events_of("role.finished")
    assert [e["kind"] for e in record.events_of("fault.injected")] == ["crash", "restart"]
    assert record.summary["world"]["restarts"] == ["B"]


@pytest.mark.slow
def test_a_chain_end_that_hosts_the_application_crashes_and_restarts_with_a_fresh_application(
        tmp_path, processes_lock):
    exp = experiment_with(tmp_path, on_peer_failure="continue",
                     faults={"nodes": [{"node": "C", "crash_at_s": 2.0, "restart_after_s": 0.3}]})
    tb, result = run_until_pairs_after_restart(tmp_path, exp, "C")
    s = result.summary
    assert result.ok, result.failures
    assert s["wrong_pairs"] == 0 and s["leaked_qubits"] == 0
    restart, = by_kind(s["faults"]["events"], "restart")
    # Every survivor saw C go (missed heartbeats, or its new boot id if it was back first) and
    # come back.
    for survivor in ("A", "B", "bsa-BC"):
        down, back = down_then_back(s["faults"]["events"], survivor, "C")
        assert down["t_ps"] < back["t_ps"] and back["t_ps"] > restart["t_ps"]
    # The responder's second process accepted a new connection and delivered halves that match
    # the initiator's; the first process's halves read back from its record too.
    record = load_run(result.run_dir)
    accepted = [e for e in record.nodes["C.restart1"].events_of("connection") if e["established"]]
    assert accepted
    halves_c = read_halves(result.run_dir, "C")
    assert len(halves_c) == len(record.nodes["C"].arrays.get("halves", [])) + len(
        record.nodes["C.restart1"].arrays.get("halves", []))
    assert len(matched_after(result.run_dir, restart["t_ps"])) >= 3
    assert s["pairs_delivered"] >= 6


@pytest.mark.slow
def test_under_on_peer_failure_stop_a_killed_node_ends_every_survivor_naming_it(tmp_path, processes_lock):
    exp = experiment_with(tmp_path, duration_s=6.0, on_peer_failure="stop")
    tb = ProcessesTestbed(load_testbed(TESTBED), out_dir=tmp_path / "runs", experiment=exp,
                          settings=SETTINGS)
    try:
        tb.start()
        tb.run_for(1.5)
        tb.kill("B")
    finally:
        # The survivors stop by themselves; stop() waits for them before anything else.
        result = tb.stop()
    assert "node B was killed by SIGKILL" in result.failures
    for survivor in SURVIVORS:
        outcome = result.nodes[survivor]
        assert outcome.returncode == 1
        assert outcome.shutdown.startswith("peer B down: no heartbeat for "), outcome.shutdown
    assert result.summary["wrong_pairs"] == 0
