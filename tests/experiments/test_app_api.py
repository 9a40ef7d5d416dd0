"""The application API's contract on a started virtual testbed: a request that cannot be routed
is refused at once with its reason, misuse raises a typed error naming what was wrong, and a
photonic MEAS node without its measurement service cannot request pairs."""

from __future__ import annotations

import pytest

from exp_helpers import REPO
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.app import ConnectionEvent, DeliveredPair, NodeApi, SocketState
from qnode_fw.bell import BellState
from qnode_fw.config import load_testbed
from qnode_fw.errors import QnodeError
from qnode_fw.testbed.virtual import VirtualTestbed
from qnode_fw.units import MS


@pytest.fixture
def chain():
    tb = VirtualTestbed(load_testbed(REPO / "configs/testbeds/chain-3node-sim.yaml"), seed=1)
    tb.start()
    tb.run_for(300 * MS)
    assert tb.all_peers_up()
    yield tb
    tb.stop()


def test_an_unroutable_request_is_refused_at_once_with_its_reason(chain):
    api = NodeApi(chain.nodes["A"])
    sock = api.open("Z")
    conn = sock.request(count=3, min_fidelity=0.9)
    ev = sock.receive()
    assert isinstance(ev, ConnectionEvent) and ev.connection == conn and not ev.established
    assert ev.reason == "no route" and ev.stated_by == "A"
    assert sock.state is SocketState.CLOSED
    assert sock.close_reason == "no route at A: no usable route from A to Z"
    with pytest.raises(QnodeError, match="is closed; open a new socket"):
        sock.request(count=1)


def test_misuse_raises_typed_errors(chain):
    api = NodeApi(chain.nodes["A"])
    with pytest.raises(QnodeError, match="cannot open a socket to itself"):
        api.open("A")
    sock = api.open("C")
    with pytest.raises(QnodeError, match="exactly one of count and duration_s"):
        sock.request(count=2, duration_s=1.0)
    pair = DeliveredPair(PairName("B", 5), "C", QubitAddress(0, 1), BellState.PHI_PLUS, 0.9, 5, 1, "x")
    with pytest.raises(QnodeError, match=r"pair <B,5> is not held by this socket \(A->C\)"):
        sock.release(pair)
    assert api.held_qubits() == set()


def test_a_meas_node_without_its_photonic_service_cannot_request():
    tb = VirtualTestbed(load_testbed(REPO / "configs/testbeds/epps-2meas-sim.yaml"), seed=1)
    tb.start()
    try:
        api = NodeApi(tb.nodes["alice"])
        with pytest.raises(QnodeError, match="alice has neither QNICs .* nor a photonic"):
            api.open("bob").request(duration_s=0.1)
    finally:
        tb.stop()
