"""Whole bench runs through `qnode hil` and BenchRun: the sim bench's figures against closed forms,
the calibration a run writes (accepted by `qnode validate`'s loader, used by the next run), wiring
mistakes named by instrument and channel, levels, and dry runs that send nothing."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from qnode_fw.cli.main import main as qnode
from qnode_fw.config import load_any
from qnode_fw.hil.bench import load_bench
from qnode_fw.hil.runner import BenchRun
from qnode_fw.hil.session import FAILED, LISTED, PASSED, SKIPPED

BENCHES = Path(__file__).resolve().parents[2] / "configs" / "benches"
SIM, EMULATED, LAB = BENCHES / "sim.yaml", BENCHES / "emulated.yaml", BENCHES / "lab-example.yaml"
C_M_PER_S = 299_792_458.0
FIBRE_PS_PER_M = 4897.0


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The sim bench at every level, uncalibrated, with its report."""
    directory = tmp_path_factory.mktemp("hil") / "first"
    assert qnode(["hil", str(SIM), "--report", str(directory)]) == 0
    report = json.loads((directory / "report.json").read_text())
    return directory, {c["id"]: c for c in report["checks"]}, report


def figure(check: dict, name: str) -> float:
    return next(f["value"] for f in check["figures"] if f["name"] == name)


def test_every_check_passes_and_runtime_is_reported(first_run):
    _, checks, report = first_run
    assert report["passed"] and report["counts"]["passed"] == len(checks) == 15
    assert set(report["runtime_s_by_level"]) == {"0", "1", "2", "3"}


def test_trigger_delay_and_jitter_match_cable_latency_and_tagger(first_run):
    _, checks, _ = first_run
    physics = yaml.safe_load(SIM.read_text())["simulation"]["physics"]
    check = checks["trigger_delay:sync"]
    cycles = figure(check, "edges")
    cable_ps = 3.0 / (0.66 * C_M_PER_S) * 1e12  # 3 m of coax, velocity factor 0.66
    jitter = physics["tagger"]["jitter_rms_ps"]
    # mean of 100 edges with Gaussian jitter; 1 ps for the integer ps of the modelled cable
    assert abs(figure(check, "delay") - (cable_ps + physics["awg"]["trigger_latency_ps"])) <= \
        3 * jitter / math.sqrt(cycles) + 1
    assert abs(figure(check, "jitter_rms") - jitter) <= 3 * jitter / math.sqrt(2 * (cycles - 1)) + 0.3
    assert figure(check, "calibrated_input_delay") == -physics["awg"]["trigger_latency_ps"]


def _singles_hz(efficiency: float, dark_hz: float, fibre_m: float, switch_db: float, temperature_c: float) -> float:
    """Closed form: pair rate x arm transmission x efficiency plus darks, through a
    non-paralysable 20 ns dead time (DetectorParams' default)."""
    spdc = yaml.safe_load(SIM.read_text())["simulation"]["physics"]["spdc"]
    power_mw = 0.1 * (45.0 - 25.0)  # SpdcParams' default slope and threshold, the operating current
    matching = np.sinc(0.885893 * (temperature_c - spdc["phase_matching_temperature_c"]) /
                       spdc["phase_matching_fwhm_c"]) ** 2
    transmission = 10 ** (-(0.2 * fibre_m / 1000 + switch_db) / 10)
    rate = spdc["pair_rate_per_mw_hz"] * power_mw * matching * transmission * efficiency + dark_hz
    return rate / (1 + rate * 20e-9)


@pytest.mark.parametrize("check_id, name, efficiency, dark, fibre_m, switch_db", [
    ("pump_on_off:spdc", "A_on", 0.8, 150, 5.4, 1.0),
    ("pump_on_off:spdc", "C_on", 0.9, 200, 2.0, 0.0),
    ("switch_routing:osw", "out2_B", 0.85, 100, 5.4, 1.0),
    ("pump_on_off:spdc", "C_off", 0.0, 200, 2.0, 0.0),
])
def test_count_rates_match_the_closed_form(first_run, check_id, name, efficiency, dark, fibre_m, switch_db):
    # The crystal settles to within 0.02 C of the nominal 35.0 C: < 0.4 % of rate, far inside 3 sigma.
    _, checks, _ = first_run
    seconds = 0.010  # checks.light.count_ms
    expected = _singles_hz(efficiency, dark, fibre_m, switch_db, 35.0)
    measured = figure(checks[check_id], name)
    assert abs(measured - expected) <= 3 * math.sqrt(max(expected * seconds, 1)) / seconds + 1 / seconds


def test_coincidence_peak_sits_at_the_as_built_fibre_difference(first_run):
    _, checks, _ = first_run
    check = checks["coincidence_delay:spdc"]
    # as built: idler 5.4 m, signal 2.0 m; the timing spread of a pair: two SNSPDs (15 ps FWHM)
    # and two tagger inputs (8 ps RMS)
    sigma = math.sqrt(2 * ((15 / 2.3548) ** 2 + 8.0 ** 2))
    for detector in ("A", "B"):
        n = figure(check, f"{detector}_coincidences")
        assert abs(figure(check, f"{detector}_delay") - (5.4 - 2.0) * FIBRE_PS_PER_M) <= 3 * sigma / math.sqrt(n) + 1


def test_temperature_scan_finds_the_phase_matching_temperature(first_run):
    _, checks, _ = first_run
    check = checks["temperature_scan:spdc"]
    # 3 sigma of counting, plus the oven's lag behind each setpoint (< 0.02 C) and the
    # parabola-vs-sinc^2 model bias (< 0.01 C, see test_peak_of_a_phase_matching_curve)
    assert abs(figure(check, "peak_temperature") - 35.2) <= 3 * figure(check, "peak_temperature_error") + 0.03


def test_calibration_is_valid_yaml_and_the_next_run_uses_it(first_run, tmp_path):
    directory, checks, _ = first_run
    calibration = directory / "calibration.yaml"
    kind, loaded = load_any(calibration)  # what `qnode validate` runs
    assert kind == "calibration"
    delays = loaded.calibration.input_delays_ps["tagger"]
    assert delays[1] == figure(checks["trigger_delay:sync"], "calibrated_input_delay")
    assert delays[2] == figure(checks["coincidence_delay:spdc"], "A_calibrated_input_delay")
    assert loaded.calibration.crystal_temperature_c["spdc"] == \
        figure(checks["temperature_scan:spdc"], "peak_temperature")
    # Next run: through a bench file that includes the calibration, as a node file would.
    bench = tmp_path / "bench.yaml"
    bench.write_text(f"include: [{SIM}, {calibration}]\n")
    with BenchRun(load_bench(bench), max_level=2) as run:
        report = run.run_all()
    assert report.passed and report.calibration_source == "the bench file's calibration section"
    second = {r.id: r for r in report.results}
    in_force = {f.name: f.value for f in second["input_delays:tagger"].figures}
    assert in_force["input_delay_ch1"] == delays[1] and in_force["input_delay_ch2"] == delays[2]
    trigger = {f.name: f.value for f in second["trigger_delay:sync"].figures}
    cable_ps = round(3.0 / (0.66 * C_M_PER_S) * 1e12)
    first_residual = figure(checks["trigger_delay:sync"], "delay") - cable_ps
    assert abs(first_residual) > 1000  # the AWG's latency, uncalibrated
    assert abs(trigger["delay"] - cable_ps) <= 3 * 8.0 / math.sqrt(100) + 1  # calibrated: the cable alone


def test_a_detector_on_the_wrong_tagger_channel_is_named(tmp_path, capsys):
    bench = tmp_path / "miswired.yaml"  # the bench file says detector A is on channel 2; it is on 3
    bench.write_text(f"include: [{SIM}]\nsimulation:\n  as_built:\n    detectors: {{A: {{input: 3}}}}\n")
    assert qnode(["hil", str(bench), "--max-level", "3"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAILED\s+switch_routing:osw", out)
    assert re.search(r"switch osw input 1 -> output 1: detector A should light tagger 'tagger' channel 2 but it "
                     r"counted \d+ Hz .*; light arrived on tagger 'tagger' channel 3 \([\d.e+]+ Hz\) instead: "
                     rf"check detector A's cable, or wiring.detectors.A.input at {re.escape(str(SIM))}:\d+", out)
    assert re.search(r"PASSED\s+trigger_delay:sync", out)


def test_a_marker_cable_on_the_wrong_channel_is_named(tmp_path):
    bench = tmp_path / "miswired.yaml"
    bench.write_text(f"include: [{SIM}]\nsimulation:\n  as_built:\n    markers: {{sync: {{input: 3}}}}\n")
    with BenchRun(load_bench(bench)) as run:
        result = run.run(run.check("trigger_delay:sync"))
    assert result.status == FAILED
    assert "AWG awg channel 1 marker 1 played 100 edges; tagger 'tagger' channel 1 recorded 0" in result.message
    assert "the burst arrived on tagger 'tagger' channel 3 (100 edges) instead" in result.message


def test_an_instrument_that_is_not_the_bench_files_model_is_named(tmp_path):
    text = EMULATED.read_text().replace("model: polatis, resource: emulator",
                                        "model: polatis, resource: emulator, identity: '^DiCon'")
    bench = tmp_path / "emulated.yaml"
    bench.write_text(text)
    with BenchRun(load_bench(bench), max_level=0) as run:
        report = run.run_all()
    result = {r.id: r for r in report.results}["identify:osw"]
    assert result.status == FAILED
    assert re.search(r"instrument osw at 'emulator' identifies as 'Polatis,Series 6000,[^']*', not as the polatis "
                     r"the bench file names at .*emulated.yaml:\d+ \(expected /\^DiCon/\)", result.message)


def test_level_0_only_reads(capsys):
    with BenchRun(load_bench(EMULATED), max_level=0) as run:
        report = run.run_all()
        received = {name: emu.log.received() for name, emu in run.rig.emulators.items()}
    statuses = {r.id: r.status for r in report.results}
    assert all(s == PASSED for i, s in statuses.items() if i.startswith("identify:"))
    assert all(s == SKIPPED for i, s in statuses.items() if not i.startswith("identify:"))
    assert all(received.values()), received  # the logs saw the identification
    assert all(m.rstrip().endswith(b"?") for messages in received.values() for m in messages), received


def test_a_dry_run_lists_every_call_and_the_emulators_receive_nothing():
    with BenchRun(load_bench(EMULATED), dry_run=True) as run:
        report = run.run_all()
        emulators = run.bench_rig.emulators
        received = {name: (emu.log.received(), emu.connections) for name, emu in emulators.items()}
    assert all(r.status == LISTED for r in report.results)
    assert received == {name: ([], 0) for name in ("awg", "osw", "spdc")}
    assert report.traffic == {"awg": "0 bytes received", "osw": "0 bytes received",
                              "spdc": "0 bytes received", "tagger": "0 vendor-module calls"}
    calls = {r.id: r.commands for r in report.results}
    assert "osw.connect(1, 2)" in calls["switch_routing:osw"]
    assert "spdc.pump_on()" in calls["pump_on_off:spdc"] and calls["pump_on_off:spdc"][-2] == "spdc.pump_off()"
    assert any(c.startswith("awg.upload_waveform(1, 'hilawg', <1000 float64 values>, 250000000.0") for c in
               calls["trigger_delay:sync"])
    refused = [c for c in calls["conformance:spdc"] if "refused before sending" in c]
    assert refused and refused[0].startswith("spdc.set_pump_current_ma(61.0)")


def test_a_dry_run_of_a_lab_bench_opens_nothing(capsys):
    # The lab example's resources (/dev/ttyUSB0, 192.168.10.21, a tagger serial) are not here:
    # opening any of them would fail the run.
    assert qnode(["hil", str(LAB), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN: nothing is sent" in out
    assert "> connect osw (dicon_mems_1xn at '/dev/ttyUSB0')" in out
    assert re.search(r"SKIPPED awg_readback:awg .*\n.*no waveform read-back", out)
    assert "> awg.trigger()" in out and "> spdc.pump_on()" in out


@pytest.mark.parametrize("model", ["dicon_mems_1xn", "agiltron_1xn"])
def test_serial_switch_emulators_carry_the_routing_physics(tmp_path, model):
    bench = tmp_path / "emulated.yaml"
    bench.write_text(EMULATED.read_text().replace("model: polatis", f"model: {model}"))
    with BenchRun(load_bench(bench)) as run:
        results = [run.run(run.check(c)) for c in ("identify:osw", "conformance:osw", "switch_routing:osw")]
        log = run.rig.emulators["osw"].log.received()
    assert [r.status for r in results] == [PASSED] * 3, [r.message for r in results]
    matrix = {f.name: f.value for f in results[2].figures}
    assert matrix["out1_A"] > 5000 > matrix["out1_B"] and matrix["out2_B"] > 5000 > matrix["out2_A"]
    assert log  # the routes went over the emulated serial line
