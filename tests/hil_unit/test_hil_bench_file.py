"""Bench-file mistakes are reported with the file, the line and the field, before any instrument
is touched; `qnode hil` exits 2 on them."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from qnode_fw.cli.main import main as qnode
from qnode_fw.errors import ConfigError
from qnode_fw.hil.bench import load_bench

SIM = Path(__file__).resolve().parents[2] / "configs" / "benches" / "sim.yaml"

GOOD = """\
bench: {name: t, backend: sim}
instruments:
  - {name: awg, kind: awg, model: sim}
  - {name: tagger, kind: time_tagger, model: sim}
  - {name: osw, kind: optical_switch, model: sim}
  - {name: spdc, kind: pair_source, model: sim}
wiring:
  markers:
    sync: {awg: awg, tagger: tagger, input: 1, cable_m: 3}
  detectors:
    A: {tagger: tagger, input: 2}
    C: {tagger: tagger, input: 5}
  arms:
    idler: {source: spdc, role: idler, switch: osw, detectors: {1: A}}
    signal: {source: spdc, role: signal, detectors: {1: C}}
operating:
  spdc: {pump_current_ma: 45, crystal_temperature_c: 35}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_bench(path)
    return info.value


def test_the_example_loads(tmp_path):
    bench = load_bench(write(tmp_path, GOOD))
    assert bench.config.wiring.markers["sync"].delay_ps == round(3 / (0.66 * 299_792_458) * 1e12)
    assert bench.as_built == bench.config.wiring


@pytest.mark.parametrize("old, new, line, field, words", [
    ("detectors: {1: A}}", "detectors: {1: D}}", 14, "wiring.arms.idler.detectors[1]", "no detector named 'D'"),
    ("C: {tagger: tagger, input: 5}", "C: {tagger: tagger, input: 2}", 12, "wiring.detectors.C.input",
     "input 2 is already taken by detector 'A'"),
    ("{awg: awg, tagger: tagger", "{awg: osw, tagger: tagger", 9, "wiring.markers.sync.awg",
     "'osw' is a optical_switch, not a awg"),
    ("- {name: awg, kind: awg, model: sim}", "- {name: awg, kind: awg, model: keysight_33500b}", 3,
     "instruments[0].model", "a sim bench runs simulated instruments"),
    ("signal: {source: spdc, role: signal", "signal: {source: spdc, role: idler", 14,
     "wiring.arms.idler.source", "has arms ['idler', 'idler']"),
    ("  spdc: {pump_current_ma: 45, crystal_temperature_c: 35}\n", "  {}\n", 16, "operating",
     "no operating point"),
    ("cable_m: 3}", "cable_m: -3}", 9, "wiring.markers.sync.cable_m", ">= 0"),
])
def test_wiring_errors_name_file_line_and_field(tmp_path, old, new, line, field, words):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new).replace("operating:\n  {}", "operating: {}"))
    err = error_of(path)
    text = str(err)
    assert f"{path}:{line}: {field}:" in text, text
    assert words in text


def test_emulated_and_lab_backends_check_models_and_resources(tmp_path):
    emulated = GOOD.replace("backend: sim", "backend: emulated").replace("model: sim}", "model: sim, resource: emulator}")
    emulated = emulated.replace("{name: spdc, kind: pair_source, model: sim, resource: emulator}",
                                "{name: spdc, kind: pair_source, model: thorlabs_itc4001_ted4015, resource: emulator}")
    text = str(error_of(write(tmp_path, emulated)))
    assert re.search(r"bench\.yaml:6: instruments\[3\]\.model: no protocol emulator .* 'thorlabs_itc4001_ted4015'", text)
    lab = GOOD.replace("backend: sim", "backend: lab")
    assert "instruments[0].model: a lab bench drives real instruments" in str(error_of(write(tmp_path, lab)))


def test_simulation_parameters_and_identity_are_checked(tmp_path):
    text = GOOD + textwrap.dedent("""\
        simulation:
          physics:
            spdc: {pump_slope_mw_per_mA: 0.1}
          detectors:
            A: {efficency: 0.8}
        """)
    err = str(error_of(write(tmp_path, text)))
    assert "bench.yaml:20: simulation.physics.spdc.pump_slope_mw_per_mA: unknown pair_source parameter" in err
    assert "bench.yaml:22: simulation.detectors.A.efficency: unknown detector parameter" in err
    bad_identity = GOOD.replace("{name: osw, kind: optical_switch, model: sim}",
                                "{name: osw, kind: optical_switch, model: sim, identity: '(unclosed'}")
    assert "instruments[2].identity: not a regular expression" in str(error_of(write(tmp_path, bad_identity)))


def test_as_built_changes_are_checked_where_they_are_written(tmp_path):
    path = tmp_path / "miswired.yaml"
    path.write_text(f"include: [{SIM}]\nsimulation:\n  as_built:\n    arms: {{idler: {{detectors: {{1: Z}}}}}}\n")
    err = str(error_of(path))
    assert f"{path}:4: arms.idler.detectors[1]: no detector named 'Z'" in err


def test_qnode_hil_exits_2_on_a_bad_bench_or_calibration(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("input: 5", "input: 0"))
    assert qnode(["hil", str(path)]) == 2
    assert "wiring.detectors.C.input" in capsys.readouterr().err
    calibration = tmp_path / "cal.yaml"
    calibration.write_text("calibration:\n  input_delays_ps: {tagger: {1: fast}}\n")
    assert qnode(["hil", str(SIM), "--max-level", "0", "--calibration", str(calibration)]) == 2
    assert f"{calibration}:2: calibration.input_delays_ps.tagger.1" in capsys.readouterr().err
