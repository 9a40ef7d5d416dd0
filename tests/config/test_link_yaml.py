"""Link schemes, herald timing, simulated photonics and the switched transceiver in the node YAML.

Each bad case writes a small testbed with one mistake and asserts the file, the line (found by
a marker in the text) and the dotted field of the error, plus a word of its message. The good
cases load the shipped testbeds of every scheme and check what the runtime derives from them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qnode_fw.config import load_testbed
from qnode_fw.config.checks import link_station
from qnode_fw.config.node import MemoryConfig
from qnode_fw.errors import ConfigError, ConfigErrors

REPO = Path(__file__).resolve().parents[2]

EMITTER = """\
address: A
role: COMP
control: {endpoint: "tcp://127.0.0.1:57101"}
qnics:
  - {address: 0, kind: emitter, qubits: 2}
instruments:
  - {name: awg, kind: awg, model: sim}
links:
  - neighbour: B
    scheme: at_source
    fibre_km: 10.0
    qnic: 0
    attempts: {period_ns: 25000, window_ns: 2, herald_delay_ns: 1300, guard_ns: 600}
    sim: {collection_efficiency: 0.8}
"""

RECEIVER = """\
address: B
role: COMP
control: {endpoint: "tcp://127.0.0.1:57102"}
qnics:
  - {address: 0, kind: receiver, qubits: 2}
instruments:
  - {name: herald, kind: time_tagger, model: sim}
links:
  - neighbour: A
    scheme: at_source
    fibre_km: 10.0
    qnic: 0
    attempts: {period_ns: 25000, window_ns: 2, herald_delay_ns: 1300, guard_ns: 600}
    sim: {transfer_efficiency: 0.7}
"""

TWO_NODES = """\
name: pair
nodes:
  - file: A.yaml
  - file: B.yaml
"""

REPEATER = """\
address: R
role: REP1
control: {endpoint: "tcp://127.0.0.1:57110"}
qnics:
  - {address: 0, kind: emitter, qubits: 2, communication_qubits: [0]}
instruments:
  - {name: sw, kind: optical_switch, model: sim, options: {num_outputs: 2, switching_time_ps: 23000000}}
transceiver: {switch: sw, policy: priority, order: [A, C]}
links:
  - {neighbour: A, fibre_km: 2.0, station: bsa-AR, qnic: 0, switch: {instrument: sw, input: 1, output: 1}}
  - {neighbour: C, fibre_km: 2.0, station: bsa-RC, qnic: 0, switch: {instrument: sw, input: 1, output: 2}}
"""

END = """\
address: {me}
role: COMP
control: {{endpoint: "tcp://127.0.0.1:{port}"}}
qnics:
  - {{address: 0, kind: emitter, qubits: 4}}
instruments:
  - {{name: awg, kind: awg, model: sim}}
links:
  - {{neighbour: R, fibre_km: 2.0, station: {station}, qnic: 0}}
"""

BSA = """\
address: {me}
role: BSA
control: {{endpoint: "tcp://127.0.0.1:{port}"}}
instruments:
  - {{name: tagger, kind: time_tagger, model: sim}}
"""

CHAIN = """\
name: chain
nodes:
  - file: A.yaml
  - file: bsa-AR.yaml
  - file: R.yaml
  - file: bsa-RC.yaml
  - file: C.yaml
"""


def write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).write_text(textwrap.dedent(text))
    return tmp / "testbed.yaml"


def pair(tmp: Path, a: str = EMITTER, b: str = RECEIVER) -> Path:
    return write(tmp, {"A.yaml": a, "B.yaml": b, "testbed.yaml": TWO_NODES})


def chain(tmp: Path, repeater: str = REPEATER) -> Path:
    return write(tmp, {"A.yaml": END.format(me="A", port=57111, station="bsa-AR"),
                       "C.yaml": END.format(me="C", port=57112, station="bsa-RC"),
                       "bsa-AR.yaml": BSA.format(me="bsa-AR", port=57113),
                       "bsa-RC.yaml": BSA.format(me="bsa-RC", port=57114),
                       "R.yaml": repeater, "testbed.yaml": CHAIN})


def errors_of(path: Path) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        load_testbed(path)
    exc = info.value
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


def the_error(path: Path, field: str) -> ConfigError:
    errors = errors_of(path)
    matching = [e for e in errors if e.field == field]
    assert matching, f"no error for field {field!r} in {[str(e) for e in errors]}"
    return matching[0]


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if marker in line)


# -- the shipped testbeds ---------------------------------------------------------------------


def test_shipped_testbeds_of_every_scheme_load_with_their_stations_and_buffer():
    at = load_testbed(REPO / "configs/testbeds/at-source-2node-sim.yaml").config
    a = at.node("A")
    assert link_station(at, a, a.link_to("B")) == "B"           # B's QNIC is the receiver
    mid = load_testbed(REPO / "configs/testbeds/midpoint-2node-sim.yaml").config
    assert link_station(mid, mid.node("A"), mid.node("A").link_to("B")) == "epps"
    assert mid.node("A").link_to("B").sim.mean_pairs_per_attempt == 0.3
    minimal = load_testbed(REPO / "configs/testbeds/chain-3node-minimal-sim.yaml").config
    b = minimal.node("B")
    assert b.transceiver.order == ["A", "C"] and b.buffered_neighbour() == "A"
    assert [l.switch.output for l in b.links] == [1, 2]
    assert b.link_to("A").attempts.herald_delay_ns == 1300
    # a plain repeater buffers nothing
    plain = load_testbed(REPO / "configs/testbeds/chain-3node-sim.yaml").config
    assert plain.node("B").buffered_neighbour() is None


def test_an_explicit_at_source_station_is_accepted_when_it_is_an_end(tmp_path):
    path = pair(tmp_path, EMITTER.replace("    qnic: 0\n", "    qnic: 0\n    station: B\n"),
                RECEIVER.replace("    qnic: 0\n", "    qnic: 0\n    station: B\n"))
    tb = load_testbed(path).config
    assert link_station(tb, tb.node("A"), tb.node("A").link_to("B")) == "B"


def test_memory_durations_merge_over_the_simulators_defaults():
    params = MemoryConfig(move_error=0.05, durations_us={"move": 31, "two_qubit_gate": 6}).as_params()
    assert params["move_error"] == 0.05
    assert params["durations_ps"]["move"] == 31_000_000
    assert params["durations_ps"]["two_qubit_gate"] == 6_000_000
    assert params["durations_ps"]["measure"] == 3_700_000      # the NV default kept


# -- at_source stations and QNIC kinds ----------------------------------------------------------


def test_at_source_without_a_receiving_qnic_cannot_tell_which_end_receives(tmp_path):
    path = pair(tmp_path, b=RECEIVER.replace("kind: receiver", "kind: emitter"))
    e = the_error(path, "links[0].station")
    assert e.file == str(tmp_path / "A.yaml") and e.line == line_of(EMITTER, "neighbour: B")
    assert "cannot tell which end receives" in e.message


def test_at_source_station_must_be_one_of_its_ends(tmp_path):
    path = pair(tmp_path, EMITTER.replace("    qnic: 0\n", "    qnic: 0\n    station: X\n"),
                RECEIVER.replace("    qnic: 0\n", "    qnic: 0\n    station: X\n"))
    e = the_error(path, "links[0].station")
    assert e.line == line_of(EMITTER.replace("    qnic: 0\n", "    qnic: 0\n    station: X\n"), "station: X")
    assert "receiving end" in e.message


def test_an_emitting_end_needs_an_emitter_qnic(tmp_path):
    # the station is explicit, so the kinds are checked against it
    path = pair(tmp_path, EMITTER.replace("kind: emitter", "kind: passive_receiver")
                .replace("    qnic: 0\n", "    qnic: 0\n    station: B\n"),
                RECEIVER.replace("    qnic: 0\n", "    qnic: 0\n    station: B\n"))
    e = the_error(path, "links[0].qnic")
    assert e.file == str(tmp_path / "A.yaml")
    assert "emits" in e.message and "passive_receiver" in e.message


def test_a_receiving_end_behind_a_switch_is_refused(tmp_path):
    receiver = RECEIVER.replace(
        "instruments:\n", "instruments:\n  - {name: sw, kind: optical_switch, model: sim}\n").replace(
        "    qnic: 0\n", "    qnic: 0\n    switch: {instrument: sw, output: 1}\n")
    e = the_error(pair(tmp_path, b=receiver), "links[0].switch")
    assert e.file == str(tmp_path / "B.yaml") and e.line == line_of(receiver, "switch: {instrument")
    assert "not modelled" in e.message


def test_a_receiving_end_needs_its_herald_tagger(tmp_path):
    receiver = RECEIVER.replace("  - {name: herald, kind: time_tagger, model: sim}\n",
                                "  - {name: t1, kind: time_tagger, model: sim}\n"
                                "  - {name: t2, kind: time_tagger, model: sim}\n")
    e = the_error(pair(tmp_path, b=receiver), "links[0].herald_tagger")
    assert e.file == str(tmp_path / "B.yaml")
    assert "t1" in e.message and e.expected.startswith("herald_tagger")
    named = receiver.replace("    qnic: 0\n", "    qnic: 0\n    herald_tagger: t2\n")
    assert load_testbed(pair(tmp_path, b=named)).config.node("B").link_to("A").herald_tagger == "t2"


def test_a_herald_tagger_must_be_a_time_tagger(tmp_path):
    receiver = RECEIVER.replace("    qnic: 0\n", "    qnic: 0\n    herald_tagger: nothing\n")
    e = the_error(pair(tmp_path, b=receiver), "links[0].herald_tagger")
    assert e.line == line_of(receiver, "herald_tagger: nothing")


# -- herald timing and the two ends' agreement --------------------------------------------------


def test_a_guard_shorter_than_the_window_is_refused(tmp_path):
    emitter = EMITTER.replace("guard_ns: 600", "guard_ns: 1")
    e = the_error(pair(tmp_path, a=emitter), "links[0].attempts.guard_ns")
    assert (e.file, e.line) == (str(tmp_path / "A.yaml"), line_of(emitter, "attempts:"))
    assert "shorter than the detection window" in e.message


def test_a_herald_delay_within_the_window_is_refused(tmp_path):
    emitter = EMITTER.replace("herald_delay_ns: 1300", "herald_delay_ns: 0.5")
    e = the_error(pair(tmp_path, a=emitter), "links[0].attempts.herald_delay_ns")
    assert "half the window" in e.message


def test_the_ends_must_agree_on_herald_timing_and_photonics(tmp_path):
    receiver = RECEIVER.replace("herald_delay_ns: 1300", "herald_delay_ns: 2000").replace(
        "sim: {transfer_efficiency: 0.7}", "sim: {transfer_efficiency: 0.7, collection_efficiency: 0.5}")
    errors = errors_of(pair(tmp_path, b=receiver))
    fields = {e.field: e for e in errors}
    assert "links[0].attempts.herald_delay_ns" in fields
    e = fields["links[0].sim.collection_efficiency"]
    assert e.file == str(tmp_path / "A.yaml") and "0.8 here but 0.5 at B" in e.message
    # a field written at one end only is the link's
    ok = load_testbed(pair(tmp_path)).config
    assert ok.node("A").link_to("B").sim.transfer_efficiency is None


def test_an_unknown_sim_key_is_an_error(tmp_path):
    emitter = EMITTER.replace("sim: {collection_efficiency: 0.8}", "sim: {colection_efficiency: 0.8}")
    e = the_error(pair(tmp_path, a=emitter), "links[0].sim.colection_efficiency")
    assert "unknown key" in e.message


def test_a_negative_duration_is_an_error(tmp_path):
    emitter = EMITTER.replace("qubits: 2}", "qubits: 2, memory: {durations_us: {move: -1}}}")
    e = the_error(pair(tmp_path, a=emitter), "qnics[0].memory.durations_us")
    assert "must be >= 0" in e.message


# -- the switched transceiver -----------------------------------------------------------------


def test_the_minimal_repeater_chain_loads(tmp_path):
    tb = load_testbed(chain(tmp_path)).config
    assert tb.node("R").buffered_neighbour() == "A"


def test_a_transceiver_needs_a_declared_switch(tmp_path):
    repeater = REPEATER.replace("transceiver: {switch: sw,", "transceiver: {switch: nope,")
    e = the_error(chain(tmp_path, repeater), "transceiver.switch")
    assert e.file == str(tmp_path / "R.yaml") and e.line == line_of(repeater, "transceiver:")


def test_every_link_of_the_order_names_its_port(tmp_path):
    repeater = REPEATER.replace(", switch: {instrument: sw, input: 1, output: 2}}", "}")
    e = the_error(chain(tmp_path, repeater), "links[1].switch")
    assert e.line == line_of(repeater, "neighbour: C")
    assert "names no port" in e.message


def test_the_order_names_the_nodes_links(tmp_path):
    repeater = REPEATER.replace("order: [A, C]", "order: [A, Z]")
    errors = errors_of(chain(tmp_path, repeater))
    assert any(e.field == "transceiver.order[1]" and "no link to 'Z'" in e.message for e in errors)


def test_two_links_on_one_output_are_refused(tmp_path):
    repeater = REPEATER.replace("input: 1, output: 2", "input: 1, output: 1")
    e = the_error(chain(tmp_path, repeater), "links[1].switch.output")
    assert "also serves the link to A" in e.message


def test_an_output_beyond_the_switch_is_refused(tmp_path):
    repeater = REPEATER.replace("input: 1, output: 2", "input: 1, output: 3")
    e = the_error(chain(tmp_path, repeater), "links[1].switch.output")
    assert "beyond the 2 outputs" in e.message and e.expected == "a port in 1..2"


def test_a_buffered_transceiver_needs_a_storage_qubit(tmp_path):
    repeater = REPEATER.replace("qubits: 2, communication_qubits: [0]", "qubits: 1, communication_qubits: [0]")
    e = the_error(chain(tmp_path, repeater), "transceiver.order")
    assert "no storage qubit" in e.message


def test_a_real_switch_needs_its_switching_time(tmp_path):
    repeater = REPEATER.replace(
        "  - {name: sw, kind: optical_switch, model: sim, options: {num_outputs: 2, switching_time_ps: 23000000}}",
        '  - {name: sw, kind: optical_switch, model: dicon_mems_1xn, resource: /dev/ttyUSB0, options: {channels: 2}}')
    e = the_error(chain(tmp_path, repeater), "transceiver.switching_time_us")
    assert "real instrument" in e.message
    assert load_testbed(chain(tmp_path, repeater.replace(
        "order: [A, C]}", "order: [A, C], switching_time_us: 25}"))).config.node("R").transceiver


def test_a_switching_time_below_the_simulated_switchs_is_refused(tmp_path):
    repeater = REPEATER.replace("order: [A, C]}", "order: [A, C], switching_time_us: 5}")
    e = the_error(chain(tmp_path, repeater), "transceiver.switching_time_us")
    assert "moving switch" in e.message


def test_links_sharing_a_switch_input_need_a_transceiver(tmp_path):
    repeater = REPEATER.replace("transceiver: {switch: sw, policy: priority, order: [A, C]}\n", "")
    e = the_error(chain(tmp_path, repeater), "links[1].switch")
    assert "no transceiver: block" in e.message
