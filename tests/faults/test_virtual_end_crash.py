"""A repeater-chain end that crashes and restarts in the virtual testbed (issue 10, "a node that
crashes and restarts", in both modes).

The application runs in the runner's process beside the node, so the experiment makes it die
with the node and start again with it (``RepeaterChain.follow_crashes``): the crashed end forgets
its socket and every half it held, the other end gives back the halves whose partner was there,
and after the restart the initiator asks for a new connection once the old one is closed at every
node. The checks: no wrong pair and no leaked qubit, pairs delivered before the crash and after
the restart (none while the end is down), nothing held past its timer between any two slices,
and the dead end holding nothing while it is down. An experiment whose application cannot follow
a crash is still refused, naming the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qnode_fw.errors import ConfigError
from qnode_fw.experiments import RunOptions, run_experiment
from qnode_fw.records import load_run

from timer_watch import assert_nothing_held_past_its_timer

ROOT = Path(__file__).resolve().parents[2]
CHAIN_TB = ROOT / "configs/testbeds/chain-3node-sim.yaml"
CHAIN_EXP = ROOT / "configs/experiments/chain3-swap.yaml"
MS_PS = 10**9
START_PS = 10 * MS_PS              # the control links are up and the experiment starts here
CRASH_PS = START_PS + 20 * MS_PS
RESTART_PS = CRASH_PS + 5 * MS_PS


def experiment_file(tmp_path: Path, doc_path: Path, testbed: Path, name: str, faults: dict) -> Path:
    doc = yaml.safe_load(doc_path.read_text())
    doc["testbed"] = str(testbed)
    doc["faults"] = faults
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class DownWatch:
    """Between slices: nothing held past its timer anywhere; while ``end`` is down, it holds
    nothing (no RuleSet, no pair in its executor, no half at its application, none waiting for a
    partner, no emission waiting for a herald)."""

    def __init__(self, end: str) -> None:
        self.end = end
        self.looks = 0
        self.looks_while_down = 0

    def __call__(self, testbed, experiment) -> None:
        self.looks += 1
        assert_nothing_held_past_its_timer(testbed, experiment)
        if self.end not in testbed.crashed:
            return
        node = testbed.nodes[self.end]
        assert not node.executor.installed and not node.executor.held_qubits()
        assert not experiment.apis[self.end].held_qubits()
        assert not any(half.node == self.end for half in experiment.waiting.values())
        assert not any(end.binder._pending for run in experiment.links.links.values()
                       for a, end in run.ends.items() if a == self.end)
        self.looks_while_down += 1


@pytest.mark.slow
@pytest.mark.parametrize(("end", "other"), [("A", "C"), ("C", "A")])
def test_a_chain_end_crashes_and_restarts_and_the_chain_delivers_again_without_wrong_or_held_pairs(
        tmp_path, end, other):
    path = experiment_file(tmp_path, CHAIN_EXP, CHAIN_TB, f"crash-{end}", {
        "nodes": [{"node": end, "crash_at_s": 0.02, "restart_after_s": 0.005}]})
    watch = DownWatch(end)
    result = run_experiment(path, options=RunOptions(out_dir=tmp_path, on_slice=watch))
    s = result.summary
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0
    assert watch.looks > 20 and watch.looks_while_down >= 3
    assert [(e["kind"], e["target"], e["t_ps"]) for e in result.faults["events"]] == [
        ("crash", end, CRASH_PS), ("restart", end, RESTART_PS)]
    run = load_run(result.run_dir)
    delivered = [e["t_ps"] for e in run.events_of("pair.e2e")]
    before = [t for t in delivered if t < CRASH_PS]
    after = [t for t in delivered if t > RESTART_PS]
    assert len(before) > 10 and len(after) > 10
    assert len(before) + len(after) == len(delivered) == s.pairs_delivered   # none while down
    # The initiator asked again only once the old connection was closed at the surviving end
    # (which learnt of the restart from the restarted node's first message under a new boot).
    first, again = run.events_of("chain.requested")
    assert first["t_ps"] == START_PS and again["connection"] != first["connection"]
    old_closed = [e for e in run.events_of("connection")
                  if e["connection"] == first["connection"] and not e["established"]]
    assert [e["node"] for e in old_closed] == [other]
    assert old_closed[0]["detail"] == f"{end}: peer restarted"
    assert RESTART_PS < old_closed[0]["t_ps"] <= again["t_ps"] < min(after)
    details = result.results.details
    assert details["connections"] == [first["connection"], again["connection"]]
    # The other end gave back what it held for the dead end; the dead end's own halves were
    # forgotten, not counted as delivered, measured or leaked.
    [crashed] = run.events_of("chain.end_crashed")
    given_up = [e for e in run.events_of("pair.unmatched") if e["node"] == other]
    assert details["unmatched_halves"] == len(run.events_of("pair.unmatched"))
    assert all(e["t_ps"] >= CRASH_PS for e in given_up)
    assert details["halves_lost_to_crashes"] == crashed["halves_lost"]
    sacrificed = sum(details["tomography_pairs"].values())
    assert 0 < sacrificed < s.pairs_delivered


def test_an_application_that_cannot_follow_a_crash_is_refused_naming_the_field(tmp_path):
    # The SPDC distribution's photonic applications run beside the MEAS nodes and cannot die
    # with them; a chain end's can (above).
    path = experiment_file(tmp_path, ROOT / "configs/experiments/spdc-chsh.yaml",
                           ROOT / "configs/testbeds/epps-2meas-sim.yaml", "crash-alice",
                           {"nodes": [{"node": "alice", "crash_at_s": 0.001}]})
    with pytest.raises(ConfigError) as info:
        run_experiment(path, options=RunOptions(duration_s=0.002, out_dir=tmp_path / "runs"))
    assert info.value.field == "faults.nodes[0].node"
    assert "spdc_distribution" in info.value.message and "application" in info.value.message
