"""Instruments come back in processes mode (issue 10): the BSA station bsa-AB runs in its own
process and its time tagger (a World-proxy instrument) stops answering for ten calls. Under
``on_instrument_failure: continue`` the station's read loop (NodeLinks) reports the outage once,
reads again after 1, 2, 4, ... 64, 100, 100 ms (timing.recovery) and, once the tagger answers,
heralds again: A binds A-B pairs after the recovery, none while the tagger was out, the station's
record has ``instrument.recovered`` and its summary counts it, no pair is wrong and no qubit is
left held."""

from __future__ import annotations

import pytest

from qnode_fw.records import load_run
from qnode_fw.units import MS

from processes_cli import experiment_with, run_processes_testbed

FAILED_CALLS = 10
#: 1 + 2 + 4 + 8 + 16 + 32 + 64 + 100 + 100 ms between the first failed read and the one that works
OUTAGE_PS = 327 * MS
#: heralds the station sent before its tagger failed may still be on their way (decode_us 50 ms)
IN_FLIGHT_PS = 60 * MS


@pytest.mark.slow
@pytest.mark.processes
def test_a_station_process_reads_again_after_its_tagger_comes_back(tmp_path, processes_lock):
    exp = experiment_with(tmp_path, on_instrument_failure="continue", faults={"instruments": [
        {"node": "bsa-AB", "instrument": "tagger", "fault": "timeout", "at_s": 3.0,
         "count": FAILED_CALLS}]})
    summary = run_processes_testbed(tmp_path, exp, 7)
    record = load_run(summary["run_dir"])
    [failure] = record.summary["instrument_failures"]
    assert failure["instrument"] == "bsa-AB/tagger" and failure["count"] == 1
    assert failure["recoveries"] == 1 and failure["retries"] == FAILED_CALLS - 1
    station = load_run(record.root / "nodes" / "bsa-AB")
    [failed] = station.events_of("instrument.failed")
    [recovered] = station.events_of("instrument.recovered")
    assert recovered["instrument"] == "bsa-AB/tagger" and recovered["command"] == "read_stream()"
    t_fail, t_back = failed["t_ps"], recovered["t_ps"]
    # the backoff's 327 ms, and the wall-clock loop's lateness on top
    assert OUTAGE_PS <= t_back - t_fail <= OUTAGE_PS + 200 * MS
    assert recovered["downtime_us"] * 1e6 == pytest.approx(t_back - t_fail, abs=1 * MS)
    pairs = [e["t_ps"] for e in load_run(record.root / "nodes" / "A").events_of("link.pair")
             if e["link"] == "A-B"]
    assert [t for t in pairs if t < t_fail]
    assert not [t for t in pairs if t_fail + IN_FLIGHT_PS < t < t_back]
    assert [t for t in pairs if t > t_back]
