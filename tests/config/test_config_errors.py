"""Bad configuration: every kind of mistake is reported with the file, the line and the field.

Each case writes a small testbed (a valid one with one thing broken) into a temporary folder and
asserts the exact file, line and dotted field path of the error, plus a word of its message.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qnode_fw.cli.main import main as qnode
from qnode_fw.config import load_experiment, load_node, load_testbed
from qnode_fw.errors import ConfigError, ConfigErrors

NODE_A = """\
address: A
role: COMP
control: {endpoint: "tcp://127.0.0.1:57001"}
qnics:
  - {address: 0, kind: emitter, qubits: 4}
instruments:
  - {name: awg, kind: awg, model: sim}
links:
  - neighbour: B
    fibre_km: 2.0
    station: bsa
    qnic: 0
"""

NODE_B = """\
address: B
role: COMP
control: {endpoint: "tcp://127.0.0.1:57002"}
qnics:
  - {address: 0, kind: emitter, qubits: 4}
links:
  - {neighbour: A, fibre_km: 2.0, station: bsa, qnic: 0}
"""

BSA = """\
address: bsa
role: BSA
control: {endpoint: "tcp://127.0.0.1:57003"}
instruments:
  - {name: tagger, kind: time_tagger, model: sim}
"""

TESTBED = """\
name: pair
seed: 3
nodes:
  - file: A.yaml
  - file: B.yaml
  - file: bsa.yaml
"""


def write_testbed(tmp: Path, **files: str) -> Path:
    contents = {"A.yaml": NODE_A, "B.yaml": NODE_B, "bsa.yaml": BSA, "testbed.yaml": TESTBED}
    contents.update({k.replace("_", "."): v for k, v in files.items()})
    for name, text in contents.items():
        (tmp / name).write_text(textwrap.dedent(text))
    return tmp / "testbed.yaml"


def errors_of(fn, path: Path) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        fn(path)
    exc = info.value
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


def the_error(errors: list[ConfigError], field: str | None) -> ConfigError:
    matching = [e for e in errors if e.field == field]
    assert matching, f"no error for field {field!r} in {[str(e) for e in errors]}"
    return matching[0]


def test_valid_testbed_loads(tmp_path):
    tb = load_testbed(write_testbed(tmp_path))
    assert tb.config.addresses == ["A", "B", "bsa"]
    assert tb.config.quantum_links() == [("A", "B")]


def test_yaml_syntax_error(tmp_path):
    path = write_testbed(tmp_path, A_yaml=NODE_A.replace("qubits: 4}", "qubits: 4"))
    (e,) = errors_of(load_testbed, path)
    assert e.file == str(tmp_path / "A.yaml")
    assert e.line in (5, 6)           # the scanner reports where the flow mapping breaks
    assert "YAML syntax error" in e.message


def test_wrong_type(tmp_path):
    path = write_testbed(tmp_path, A_yaml=NODE_A.replace("qubits: 4", "qubits: four"))
    e = the_error(errors_of(load_testbed, path), "qnics[0].qubits")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 5)
    assert e.expected == "an integer"


def test_missing_field(tmp_path):
    path = write_testbed(tmp_path, B_yaml=NODE_B.replace("role: COMP\n", ""))
    e = the_error(errors_of(load_testbed, path), "role")
    assert e.file == str(tmp_path / "B.yaml")
    assert e.line == 1                # the mapping that lacks it
    assert "missing" in e.message


def test_unknown_key(tmp_path):
    path = write_testbed(tmp_path, A_yaml=NODE_A.replace("    qnic: 0\n", "    qnic: 0\n    fiber_km: 2\n"))
    e = the_error(errors_of(load_testbed, path), "links[0].fiber_km")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 13)
    assert "unknown key 'fiber_km'" in e.message


def test_duplicate_node_address(tmp_path):
    path = write_testbed(tmp_path, bsa_yaml=BSA.replace("address: bsa", "address: A"))
    e = the_error(errors_of(load_testbed, path), "address")
    assert (e.file, e.line) == (str(tmp_path / "bsa.yaml"), 1)
    assert "duplicate node address 'A'" in e.message


def test_link_to_unknown_node(tmp_path):
    path = write_testbed(tmp_path, B_yaml=NODE_B + "  - {neighbour: Z, fibre_km: 1, station: bsa, qnic: 0}\n")
    e = the_error(errors_of(load_testbed, path), "links[1].neighbour")
    assert (e.file, e.line) == (str(tmp_path / "B.yaml"), 8)
    assert "unknown node 'Z'" in e.message


def test_asymmetric_link(tmp_path):
    path = write_testbed(tmp_path, B_yaml=NODE_B.replace("fibre_km: 2.0", "fibre_km: 2.5"))
    e = the_error(errors_of(load_testbed, path), "links[0].fibre_km")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 10)
    assert "asymmetric link A-B" in e.message and "2.5" in e.message


def test_missing_link_back(tmp_path):
    path = write_testbed(tmp_path, B_yaml=NODE_B.split("links:")[0])
    e = the_error(errors_of(load_testbed, path), "links[0].neighbour")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 9)
    assert "no link back" in e.message


def test_negative_fibre_length(tmp_path):
    path = write_testbed(tmp_path, A_yaml=NODE_A.replace("fibre_km: 2.0", "fibre_km: -2.0"))
    e = the_error(errors_of(load_testbed, path), "links[0].fibre_km")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 10)
    assert e.expected == "a value >= 0.0"


def test_malformed_visa_resource(tmp_path):
    bad = NODE_A.replace("{name: awg, kind: awg, model: sim}",
                         '{name: awg, kind: awg, model: keysight_33500b, resource: "TCPIP0:10.0.0.5:INSTR"}')
    path = write_testbed(tmp_path, A_yaml=bad)
    e = the_error(errors_of(load_testbed, path), "instruments[0].resource")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 7)
    assert "malformed visa resource" in e.message and "TCPIP::host::INSTR" in e.expected


def test_qnic_index_out_of_range(tmp_path):
    bad = NODE_A.replace("qubits: 4}", "qubits: 4, communication_qubits: [0, 4]}")
    path = write_testbed(tmp_path, A_yaml=bad)
    e = the_error(errors_of(load_testbed, path), "qnics[0].communication_qubits[1]")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 5)
    assert "out of range" in e.message and e.expected == "an index in 0..3"


def test_qnic_referenced_but_not_declared(tmp_path):
    path = write_testbed(tmp_path, A_yaml=NODE_A.replace("    qnic: 0\n", "    qnic: 3\n"))
    e = the_error(errors_of(load_testbed, path), "links[0].qnic")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), 12)
    assert "QNIC 3 is referenced but not declared" in e.message


def test_missing_included_file(tmp_path):
    path = write_testbed(tmp_path, A_yaml="include: [calibration/A-cal.yaml]\n" + NODE_A)
    (e,) = errors_of(load_testbed, path)
    assert (e.file, e.line, e.field) == (str(tmp_path / "A.yaml"), 1, "include[0]")
    assert "calibration/A-cal.yaml not found" in e.message


def test_missing_node_file(tmp_path):
    path = write_testbed(tmp_path, testbed_yaml=TESTBED.replace("B.yaml", "nodes/B.yaml"))
    (e,) = errors_of(load_testbed, path)
    assert (e.file, e.line, e.field) == (str(path), 5, "nodes[1].file")


def test_duplicate_key_in_one_mapping(tmp_path):
    path = write_testbed(tmp_path, B_yaml=NODE_B.replace("role: COMP\n", "role: COMP\nrole: REP1\n"))
    (e,) = errors_of(load_testbed, path)
    assert (e.file, e.line, e.field) == (str(tmp_path / "B.yaml"), 3, "role")


def test_station_with_wrong_role(tmp_path):
    path = write_testbed(tmp_path, bsa_yaml=BSA.replace("role: BSA", "role: EPPS"))
    errors = errors_of(load_testbed, path)
    e = the_error(errors, "links[0].station")
    assert e.file == str(tmp_path / "A.yaml") and "role EPPS" in e.message


def test_reused_control_endpoint(tmp_path):
    path = write_testbed(tmp_path, B_yaml=NODE_B.replace("57002", "57001"))
    e = the_error(errors_of(load_testbed, path), "control.endpoint")
    assert (e.file, e.line) == (str(tmp_path / "B.yaml"), 3)
    assert "already used by node A" in e.message


def test_all_errors_of_a_file_are_reported_together(tmp_path):
    bad = NODE_A.replace("qubits: 4", "qubits: -1").replace("fibre_km: 2.0", "fibre_km: -1")
    errors = errors_of(load_testbed, write_testbed(tmp_path, A_yaml=bad))
    assert {e.field for e in errors} >= {"qnics[0].qubits", "links[0].fibre_km"}


def test_include_merges_under_the_node_and_keeps_origins(tmp_path):
    (tmp_path / "cal.yaml").write_text("calibration:\n  written_by: run-1\n"
                                       "  input_delays_ps: {nosuch: {1: 5}}\n")
    path = write_testbed(tmp_path, A_yaml="include: [cal.yaml]\n" + NODE_A)
    e = the_error(errors_of(load_testbed, path), "calibration.input_delays_ps.nosuch")
    assert (e.file, e.line) == (str(tmp_path / "cal.yaml"), 3)


def test_node_file_alone(tmp_path):
    (tmp_path / "A.yaml").write_text(NODE_A.replace("role: COMP", "role: HUB"))
    with pytest.raises(ConfigError) as info:
        load_node(tmp_path / "A.yaml")
    assert str(info.value).startswith(f"{tmp_path / 'A.yaml'}:2: role:")


def test_experiment_kind_and_params_are_checked(tmp_path):
    (tmp_path / "exp.yaml").write_text("name: x\nkind: no_such_kind\nduration_s: 1\n")
    (e,) = errors_of(load_experiment, tmp_path / "exp.yaml")
    assert (e.line, e.field) == (2, "kind")
    (tmp_path / "exp.yaml").write_text("name: x\nkind: k\nduration_s: -1\n")
    e = the_error(errors_of(load_experiment, tmp_path / "exp.yaml"), "duration_s")
    assert e.line == 3


def test_qnode_validate_exit_codes(tmp_path, capsys):
    good = write_testbed(tmp_path)
    assert qnode(["validate", str(good)]) == 0
    assert "valid testbed" in capsys.readouterr().out
    (tmp_path / "B.yaml").write_text(NODE_B.replace("fibre_km: 2.0", "fibre_km: -3"))
    assert qnode(["validate", str(good)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'B.yaml'}:7: links[0].fibre_km:" in err
