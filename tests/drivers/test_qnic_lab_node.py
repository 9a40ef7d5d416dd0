"""A node whose QNIC is a lab binding (``qnics[].instrument`` naming a ``lab_binding`` qnic
instrument) checks its node file against the binding when it starts: ``qnics[].qubits`` and
``communication_qubits`` must be what the binding file binds, else a ConfigError names the node
file, line and field. The instruments are the real drivers on their emulators (Keysight 33500
emulator over TCP, the fake Swabian module), as in test_qnic_lab_binding.py."""

from __future__ import annotations

import pytest

from qnic_lab_rig import EXAMPLE_BINDING
from qnode_fw.clock import VirtualClock
from qnode_fw.config.testbed import load_node
from qnode_fw.control.inprocess import InProcessNetwork
from qnode_fw.errors import ConfigError
from qnode_fw.loop import EventLoop
from qnode_fw.node import Node, NodeEnvironment
from qnode_fw.rng import RandomStreams
from sim_backend.emulators.awg import Keysight33500Emulator

QNIC_LINE = "  - {address: 0, qubits: QUBITS, COMM instrument: qnic0}\n"


def node_file(tmp_path, emulator, qubits: int, comm: str) -> str:
    path = tmp_path / "L.yaml"
    path.write_text(
        "address: L\nrole: COMP\ncontrol: {endpoint: \"tcp://127.0.0.1:56999\"}\n"
        "instruments:\n"
        f"  - {{name: awg0, kind: awg, model: keysight_33500b, resource: \"{emulator.visa_socket_resource}\","
        " options: {timeout_s: 0.5}}\n"
        "  - {name: tagger0, kind: time_tagger, model: swabian, resource: \"\","
        " options: {module: sim_backend.emulators.fake_timetagger}}\n"
        f"  - {{name: qnic0, kind: qnic, model: lab_binding, resource: \"{EXAMPLE_BINDING}\"}}\n"
        "qnics:\n" + QNIC_LINE.replace("QUBITS", str(qubits)).replace("COMM", comm))
    return str(path)


def start_node(path: str) -> Node:
    config, document = load_node(path)
    loop = EventLoop(VirtualClock())
    env = NodeEnvironment(loop, InProcessNetwork(loop).link("L", []), RandomStreams(1),
                          document=document)
    node = Node(config, env)
    node.start()
    return node


@pytest.fixture
def emulator():
    emu = Keysight33500Emulator().start()
    yield emu
    emu.stop()


def test_a_node_whose_qnic_matches_its_binding_starts(tmp_path, emulator):
    node = start_node(node_file(tmp_path, emulator, 2, "communication_qubits: [0],"))
    try:
        assert node.qnics[0].num_qubits == 2 and "rulesets" in node.stack.running
    finally:
        node.stop()
    assert node.instruments == {}            # the failed-start path is not the only one that closes


@pytest.mark.parametrize("qubits, comm, field, words", [
    (3, "communication_qubits: [0],", "qnics[0].qubits",
     "3 qubits, but the QNIC instrument qnic0"),
    (2, "communication_qubits: [0, 1],", "qnics[0].communication_qubits",
     "[0, 1] are communication qubits, but the QNIC instrument qnic0"),
    (2, "", "qnics[0].communication_qubits",
     "all qubits (no communication_qubits given) are communication qubits"),
])
def test_a_node_file_that_disagrees_with_the_binding_is_refused_at_start(tmp_path, emulator, qubits,
                                                                        comm, field, words):
    path = node_file(tmp_path, emulator, qubits, comm)
    with pytest.raises(ConfigError) as info:
        start_node(path)
    err = info.value
    assert err.file == path and err.field == field
    assert err.line == len(open(path).read().splitlines())      # the qnics entry, last line
    assert words in err.message and str(EXAMPLE_BINDING) in err.message
    assert "binds [0]" in err.message or "has 2" in err.message


def test_a_virtual_testbed_names_the_node_file_and_line_of_a_binding_mismatch(tmp_path, emulator):
    """The same check when the node is one of a testbed's, run by the virtual runner: the error
    points into the node file the testbed names, not at a bare field path."""
    from qnode_fw.config.testbed import load_testbed
    from qnode_fw.testbed.virtual import VirtualTestbed

    path = node_file(tmp_path, emulator, 3, "communication_qubits: [0],")
    testbed = tmp_path / "tb.yaml"
    testbed.write_text("name: one-lab-node\nseed: 1\nnodes:\n  - file: L.yaml\n")
    tb = VirtualTestbed(load_testbed(testbed))
    with pytest.raises(ConfigError) as info:
        tb.start()
    err = info.value
    assert err.file == path and err.field == "qnics[0].qubits"
    assert err.line == len(open(path).read().splitlines())
