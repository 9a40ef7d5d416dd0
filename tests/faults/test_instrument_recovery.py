"""Instruments come back in whole runs (issue 10): under ``on_instrument_failure: continue`` a
station's time tagger or an end's AWG that stops answering for a while takes its link down only
for that while. The loop that calls it (the station's reads, the end's attempt schedule) retries
with bounded backoff (timing.recovery: 1 ms doubling to 100 ms), the outage is reported once, and
when a call works again the link heralds again at the rate of its closed form, ½·η_a·η_b per
joint attempt; the record has ``instrument.recovered`` and summary.json counts the recovery.
No pair is wrongly delivered and no qubit is left held.

The fault plan makes ``count`` calls of the instrument fail from ``at_s`` on, so with the backoff
the outage has a known length in loop time: count 4 fails the first call and the retries after
1, 2 and 4 ms; the retry after 8 more ms works, 15 ms after the first error (an attempt schedule
retries in the first slot of its grid after each backoff, a few microseconds later at most).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from qnode_fw.experiments import RunOptions, run_experiment
from qnode_fw.records import load_run
from qnode_fw.units import MS

ROOT = Path(__file__).resolve().parents[2]
CHAIN_TB = ROOT / "configs/testbeds/chain-3node-sim.yaml"
CHAIN_EXP = ROOT / "configs/experiments/chain3-swap.yaml"
FAILED_CALLS = 4
#: 1 + 2 + 4 + 8 ms of backoff between the first failed call and the one that works
OUTAGE_PS = 15 * MS
#: an attempt schedule's retries wait for the next slot of its grid (cycles of microseconds)
GRID_SLACK_PS = 100_000_000


def experiment(tmp_path: Path, node: str, instrument: str) -> Path:
    doc = yaml.safe_load(CHAIN_EXP.read_text())
    doc["testbed"] = str(CHAIN_TB)
    doc["on_instrument_failure"] = "continue"
    doc["faults"] = {"instruments": [{"node": node, "instrument": instrument, "fault": "timeout",
                                      "at_s": 0.01, "count": FAILED_CALLS}]}
    path = tmp_path / f"{node}-{instrument}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class LinkCounts:
    """Heralds and joint attempts of one link at every slice, to take the rate after a time."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.samples: list[tuple[int, int, int]] = []      # (t_ps, heralds, joint attempts)
        self.p_success = 0.0

    def __call__(self, testbed, experiment) -> None:
        run = experiment.links.links[self.link]
        self.p_success = run.success_probability
        self.samples.append((testbed.now_ps(), run.heralds(), run.joint_attempts()))

    def since(self, t_ps: int) -> tuple[int, int]:
        """Heralds and joint attempts from the first slice at or after ``t_ps`` to the end."""
        first = next(s for s in self.samples if s[0] >= t_ps)
        last = self.samples[-1]
        return last[1] - first[1], last[2] - first[2]


def run_with_outage(tmp_path: Path, node: str, instrument: str):
    counts = LinkCounts("A-B")
    result = run_experiment(experiment(tmp_path, node, instrument),
                            options=RunOptions(out_dir=tmp_path / "runs", on_slice=counts))
    return result, load_run(result.run_dir), counts


def check_outage_and_recovery(result, run, counts: LinkCounts, name: str) -> None:
    s = result.summary
    assert result.stop_reason is None and s.wrong_pairs == 0 and s.leaked_qubits == 0
    assert s.pairs_delivered > 0
    # Reported once, recovered once, after the backoff's 15 ms.
    [failure] = result.faults["instrument_failures"]
    assert failure["instrument"] == name and failure["count"] == 1
    assert failure["recoveries"] == 1 and failure["retries"] == FAILED_CALLS - 1
    assert OUTAGE_PS <= failure["downtime_us"] * 1e6 <= OUTAGE_PS + GRID_SLACK_PS
    [failed] = run.events_of("instrument.failed")
    [recovered] = run.events_of("instrument.recovered")
    assert recovered["instrument"] == name and recovered["retries"] == FAILED_CALLS - 1
    t_fail, t_back = failed["t_ps"], recovered["t_ps"]
    assert t_back - t_fail == round(failure["downtime_us"] * 1e6)
    assert run.summary["instrument_failures"][0]["recoveries"] == 1
    # The link's pairs stop during the outage (heralds already on their way aside) and come back.
    pairs = [e["t_ps"] for e in run.events_of("link.pair") if e["link"] == "A-B"]
    assert [t for t in pairs if t < t_fail]
    assert not [t for t in pairs if t_fail + 1 * MS < t < t_back]
    assert len([t for t in pairs if t > t_back]) > 0
    # After the recovery the link heralds at its closed form, within 3 sigma.
    heralds, joint = counts.since(t_back + 1 * MS)
    p = counts.p_success
    assert joint > 500
    assert abs(heralds - joint * p) <= 3 * math.sqrt(joint * p * (1 - p)), (heralds, joint, p)


@pytest.mark.slow
def test_a_station_tagger_outage_ends_and_the_link_heralds_again(tmp_path):
    result, run, counts = run_with_outage(tmp_path, "bsa-AB", "tagger")
    check_outage_and_recovery(result, run, counts, "bsa-AB/tagger")
    assert result.faults["instrument_failures"][0]["downtime_us"] == OUTAGE_PS / 1e6  # reads: loop time
    assert run.events_of("instrument.recovered")[0]["command"] == "read_stream()"


@pytest.mark.slow
def test_an_end_awg_outage_ends_and_the_link_heralds_again(tmp_path):
    result, run, counts = run_with_outage(tmp_path, "A", "awg")
    check_outage_and_recovery(result, run, counts, "A/awg")
    assert run.events_of("instrument.recovered")[0]["command"] == "trigger()"
