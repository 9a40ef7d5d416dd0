"""Link calibration end to end: the temperature scan finds the crystal's phase-matching peak
(within 3σ of the simulated source's), and the detector-delay calibration finds a detector whose
cable puts its clicks outside the herald window (the link heralds at ¼·η_a·η_b instead of
½·η_a·η_b: every Bell-state pattern with that detector fails), writes the input delays that put
every detector back where the window expects it, and the link heralds at ½·η_a·η_b again when the
station's node file includes the written calibration."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from exp_helpers import CONFIGS, REPO, run, transmission, within_binomial, write_experiment
from qnode_fw.config import load_any
from qnode_fw.records import load_run

T0, FWHM = 36.3, 2.0          # the simulated source in configs/nodes/epps2/epps.yaml
WINDOW_PS = 5000              # attempts.window_ns of configs/nodes/chain3 (default 5 ns)
SKEW_PS = 4000                # tests/experiments/configs/chain3-skewed.yaml, channel 3
COLLECTION, DET = 0.5, 0.9
PHYSICS = {"collection_efficiency": COLLECTION,
           "detector": {"efficiency": DET, "dark_count_rate_hz": 0.0, "jitter_fwhm_ps": 0.0}}


def test_temperature_scan_finds_the_phase_matching_peak(tmp_path):
    cal = tmp_path / "calibration-epps.yaml"
    params = {"temperature_scan": {
        "station": "epps", "source": "source", "analyser": 1, "pump_current_ma": 35.0,
        "ends": [{"node": "alice", "analysers": [0.0, 45.0, "circular"]},
                 {"node": "bob", "analysers": [22.5, 67.5, 0.0, 45.0, "circular"]}],
        "from_c": 33.3, "to_c": 39.3, "step_c": 0.5, "settle_s": 0.025, "dwell_s": 0.03},
        "write_to": {"epps": str(cal)}}
    exp = write_experiment(tmp_path, "scan", "link_calibration", CONFIGS / "epps-fast-oven.yaml",
                           2.0, params, seed=3)
    result = run(exp, tmp_path / "runs")
    scan = result.results.details["temperature_scan"]
    peak, width = scan["peak_c"], scan["fwhm_c"]
    assert abs(peak["value"] - T0) <= 3 * peak["stderr"], peak
    assert abs(width["value"] - FWHM) <= 3 * width["stderr"], width
    assert peak["stderr"] < 0.05
    # The calibration file: what `qnode validate` accepts, with the fitted peak in it.
    kind, loaded = load_any(cal)
    assert kind == "calibration"
    assert loaded.calibration.crystal_temperature_c["source"] == pytest.approx(peak["value"], abs=1e-4)
    assert (result.run_dir / "calibration" / "epps.yaml").read_text() == cal.read_text()
    data = load_run(result.run_dir)
    assert data.arrays["temperature_scan"].size == 13


def _delay_run(directory: Path, testbed: Path, name: str, write_to: Path | None = None):
    params = {"delay_calibration": {"link": ["A", "B"], "physics": PHYSICS}}
    if write_to is not None:
        params["write_to"] = {"bsa-AB": str(write_to)}
    exp = write_experiment(directory, name, "link_calibration", testbed, 0.012, params, seed=8)
    return run(exp, directory / "runs").results.details["delay_calibration"]


def _p_aligned() -> float:
    eta = COLLECTION * transmission(1.0) * DET
    return 0.5 * eta * eta


@pytest.mark.slow
def test_delay_calibration_puts_a_late_detector_back_into_the_herald_window(tmp_path):
    cal = tmp_path / "calibration-bsa-AB.yaml"
    before = _delay_run(tmp_path, CONFIGS / "chain3-skewed.yaml", "delays-before", cal)
    # Where each detector's clicks sit after the marker: one window, channel 3 its cable later.
    # Tagger jitter (8 ps rms on both tags) is the spread; timestamps are whole ps.
    for ch, pk in before["peaks"].items():
        want = WINDOW_PS + (SKEW_PS if int(ch) == 3 else 0)
        assert abs(pk["offset_ps"] - want) <= 3 * pk["stderr_ps"] + 1, (ch, pk)
    # Channel 3 outside the window: the two patterns it is in ({2,3} psi+, {3,4} psi-) fail.
    assert within_binomial(before["heralds"], before["joint_attempts"], _p_aligned() / 2), before
    assert before["new_delays_ps"][3] == pytest.approx(0, abs=3)
    for ch in (2, 4, 5):
        assert abs(before["new_delays_ps"][ch]) <= 3
    # The station's node file includes the calibration; the testbed runs with it.
    node = yaml.safe_load((REPO / "configs/nodes/chain3/bsa-AB.yaml").read_text())
    node["instruments"] = [{"name": "tagger", "kind": "time_tagger", "model": "sim",
                            "options": {"input_delays_ps": {3: SKEW_PS}}}]
    (tmp_path / "bsa-AB.yaml").write_text(yaml.safe_dump({"include": [cal.name], **node}))
    tb = yaml.safe_load((CONFIGS / "chain3-skewed.yaml").read_text())
    chain3 = REPO / "configs/nodes/chain3"
    tb["nodes"] = [{"file": str(chain3 / "A.yaml")}, {"file": "bsa-AB.yaml"},
                   {"file": str(chain3 / "B.yaml")}, {"file": str(chain3 / "bsa-BC.yaml")},
                   {"file": str(chain3 / "C.yaml")}]
    (tmp_path / "testbed.yaml").write_text(yaml.safe_dump(tb))
    assert load_any(tmp_path / "testbed.yaml")[0] == "testbed"
    after = _delay_run(tmp_path, tmp_path / "testbed.yaml", "delays-after")
    assert after["delays_in_force_ps"][3] == before["new_delays_ps"][3]
    for ch, pk in after["peaks"].items():
        assert abs(pk["offset_ps"] - WINDOW_PS) <= 3 * pk["stderr_ps"] + 1, (ch, pk)
    assert within_binomial(after["heralds"], after["joint_attempts"], _p_aligned()), after
    assert math.isclose(after["success_probability_aligned"], _p_aligned(), rel_tol=1e-9)
