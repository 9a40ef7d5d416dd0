"""Clock jumps and drift beyond the synchronisation's tolerance in whole testbed runs (issue 10).

Each node's PC clock (``VirtualTestbed.clocks``; ``NodeLinks.clock`` in a node process) is what
it stamps emissions and clock-sync exchanges with; the attempt grid runs on the testbed's shared
reference and ages on the loop's monotonic clock. A fault plan's ``clocks:`` steps or detunes a PC
clock mid-run, and the run must show:

* **no wrong pairs, no stuck qubits**: ``wrong_pairs`` 0, ``leaked_qubits`` 0, pairs still
  delivered, between every slice no pair held past its RuleSet's longest timer and no emission
  past its binder's expiry, every pair name bound once per end;
* **the fault detected and named**: a ``clock.fault`` event and a ``faults.clock_faults`` entry
  naming the end that saw it, the link, the kind, and the size within its stated uncertainty of
  the injected one (jump: station minus node clock steps by +J for a station jump of J, by -J
  for an end's; drift: station minus node drifts at -D/(1+D) for an end running D fast);
* **the decision**: an end that sees a jump pauses that link's attempts until its line has
  re-converged; a drift is recorded and the link runs on.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from qnode_fw.experiments import RunOptions, run_experiment
from qnode_fw.records import load_run

from processes_cli import experiment_with, run_processes_testbed
from timer_watch import assert_nothing_held_past_its_timer

ROOT = Path(__file__).resolve().parents[2]
CHAIN_TB = ROOT / "configs/testbeds/chain-3node-sim.yaml"
CHAIN_EXP = ROOT / "configs/experiments/chain3-swap.yaml"
MS_PS = 10**9
US_PS = 10**6
START_PS = 10 * MS_PS          # the control links are up and the experiment starts here


def chain_with(tmp_path: Path, name: str, clocks: list[dict]) -> Path:
    doc = yaml.safe_load(CHAIN_EXP.read_text())
    doc["testbed"] = str(CHAIN_TB)
    doc["faults"] = {"clocks": clocks}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class TimerWatch:
    """Between slices: no executor holds a pair longer than its RuleSet's longest timer (ages on
    the loop clock, which is what ``HeldPair.created_ps`` is on), no link end keeps an emission
    past its binder's expiry; the look's granularity is one slice."""

    def __init__(self) -> None:
        self.looks = 0

    def __call__(self, testbed, experiment) -> None:
        self.looks += 1
        assert_nothing_held_past_its_timer(testbed, experiment)


def run_with_clock_faults(tmp_path: Path, name: str, clocks: list[dict]):
    watch = TimerWatch()
    result = run_experiment(chain_with(tmp_path, name, clocks),
                            options=RunOptions(out_dir=tmp_path / "runs", on_slice=watch))
    s = result.summary
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0 and s.pairs_delivered > 0
    assert watch.looks > 20
    record = load_run(result.run_dir)
    # Every pair name is bound once per end: a station clock stepping back reuses none.
    bound = Counter((e["node"], e["link"], e["name"]) for e in record.events_of("link.pair"))
    assert bound and max(bound.values()) == 1
    injected = [(e["target"], e["t_ps"]) for e in record.events_of("fault.injected")]
    assert injected == sorted(((c["node"], START_PS + int(round(c["at_s"] * 1e12))) for c in clocks),
                              key=lambda x: x[1])
    assert record.summary["faults"]["clock_faults"] == result.faults["clock_faults"]
    return result, record


def detected(record, node: str, link: str, kind: str) -> list[dict]:
    """The clock.fault events ``node`` recorded on ``link``, and the same in summary.json."""
    events = [e for e in record.events_of("clock.fault")
              if (e["node"], e["link"], e["kind"]) == (node, link, kind)]
    listed = [c for c in record.summary["faults"]["clock_faults"]
              if (c["node"], c["link"], c["kind"]) == (node, link, kind)]
    assert [e["t_ps"] for e in events] == [c["t_ps"] for c in listed]
    return listed


def assert_jump_seen(record, node: str, link: str, station: str, size_us: float, at_ps: int) -> None:
    # found within one filter block or so of the jump
    (fault,) = [f for f in detected(record, node, link, "jump") if at_ps <= f["t_ps"] <= at_ps + MS_PS]
    assert fault["station"] == station and fault["unit"] == "us"
    assert abs(fault["size"] - size_us) <= fault["uncertainty"], fault
    assert abs(fault["size"]) > fault["limit"]


@pytest.mark.slow
def test_a_station_clock_jump_and_an_end_drifting_beyond_tolerance_are_detected_and_harmless(tmp_path):
    result, record = run_with_clock_faults(tmp_path, "jump-drift", [
        {"node": "bsa-AB", "at_s": 0.01, "jump_us": 50.0},
        {"node": "C", "at_s": 0.0, "drift_ppm": 300.0}])
    jump_ps = START_PS + 10 * MS_PS
    for end in ("A", "B"):
        assert_jump_seen(record, end, "A-B", "bsa-AB", +50.0, jump_ps)
    # Both ends of A-B paused that link until their lines re-converged, then attempted again.
    syncs = result.experiment.links.syncs
    for end in ("A", "B"):
        assert syncs[end].pauses == {"A-B": 1}
        assert 0 < syncs[end].paused_ps["A-B"] <= 5 * MS_PS
    # C runs 300 ppm fast: station minus C drifts at -300/(1 + 300e-6) ppm.
    true_drift = -300.0 / (1 + 300e-6)
    (drift,) = detected(record, "C", "B-C", "drift")
    assert drift["unit"] == "ppm" and drift["size"] < -drift["limit"]
    assert abs(drift["size"] - true_drift) <= drift["uncertainty"]
    est = syncs["C"].clients["B-C"].estimate()       # the window now holds only the new rate
    assert abs(est.drift_ppm - true_drift) <= max(3 * est.drift_stderr_ppm, 0.05)
    assert syncs["C"].pauses == {}                   # a drift is recorded, the link runs on
    # Nobody else saw anything: B's view of bsa-BC and A's of bsa-AB stayed within tolerance.
    assert {(c["node"], c["link"], c["kind"]) for c in result.faults["clock_faults"]} == {
        ("A", "A-B", "jump"), ("B", "A-B", "jump"), ("C", "B-C", "drift")}


@pytest.mark.slow
def test_a_station_clock_stepping_back_and_the_repeater_jumping_forward_bind_no_wrong_pair(tmp_path):
    result, record = run_with_clock_faults(tmp_path, "back-forward", [
        {"node": "bsa-BC", "at_s": 0.01, "jump_us": -50.0},
        {"node": "B", "at_s": 0.02, "jump_us": 500.0}])
    for end in ("B", "C"):
        assert_jump_seen(record, end, "B-C", "bsa-BC", -50.0, START_PS + 10 * MS_PS)
    # B's own clock jumping forward: both of its stations now read 500 us less than B.
    for link, station in (("A-B", "bsa-AB"), ("B-C", "bsa-BC")):
        assert_jump_seen(record, "B", link, station, -500.0, START_PS + 20 * MS_PS)
    # Each jump once per end that saw it, and nothing else.
    assert sorted((c["node"], c["link"], c["kind"]) for c in result.faults["clock_faults"]) == [
        ("B", "A-B", "jump"), ("B", "B-C", "jump"), ("B", "B-C", "jump"), ("C", "B-C", "jump")]
    # The stamps B took after its jump are 500 us ahead of the loop; the ages are not.
    clocks = result.testbed.clocks
    assert clocks["B"].offset_ps == 500 * US_PS and clocks["bsa-BC"].offset_ps == -50 * US_PS


@pytest.mark.slow
@pytest.mark.processes
def test_processes_mode_station_clock_jump_is_detected_by_both_ends_without_wrong_pairs(tmp_path,
                                                                                      processes_lock):
    """A node process's PC clock jumps 5 ms (processes mode tolerates steps up to 1 ms: loaded
    node processes delay single exchanges by milliseconds); both ends of the link see it in their
    clock sync, the runner's summary lists it summed over the nodes, nothing is paired wrongly."""
    exp = experiment_with(tmp_path, faults={"clocks": [{"node": "bsa-AB", "at_s": 1.5,
                                                          "jump_us": 5000.0}]})
    summary = run_processes_testbed(tmp_path, exp, 4)
    assert summary["pairs_delivered"] > 0
    record = load_run(summary["run_dir"])
    faults = record.summary["faults"]
    assert [(e["node"], e["kind"], e["target"]) for e in faults["events"] if e["kind"] == "clock"] == [
        ("bsa-AB", "clock", "bsa-AB")]
    assert {c["node"] for c in faults["clock_faults"]} <= {"A", "B", "C"}   # ends only
    for node in ("A", "B"):
        (fault,) = [c for c in faults["clock_faults"] if c["node"] == node
                    and abs(c["size"] - 5000.0) <= c["uncertainty"]]
        assert (fault["link"], fault["station"], fault["kind"]) == ("A-B", "bsa-AB", "jump")
        # The node's own record has the detection as it happened.
        events = load_run(record.root / "nodes" / node).events_of("clock.fault")
        assert ("A-B", "jump", fault["t_ps"]) in [(e["link"], e["kind"], e["t_ps"]) for e in events]
