"""Two-pass setup, delivery, admission, failure and teardown on simulated chains and meshes:
real control links (in-process), real RuleSet executors, SimQNICs over the exact registry."""

from __future__ import annotations

import pytest

from conn_harness import LinkSpec, SimTestbed, chain
from qnode_fw.connection import MuxPolicy, QoS, Reason, jain_index
from qnode_fw.routing import werner_swap
from qnode_fw.units import MS


def werner_chain(f: float, links: int) -> float:
    out = f
    for _ in range(links - 1):
        out = werner_swap(out, f)
    return out


@pytest.mark.parametrize("n", [2, 3, 5])
def test_setup_and_delivery_across_chains(n):
    tb = chain(n, rate=2000.0, fidelity=0.97)
    tb.start_links()
    last = chr(ord("A") + n - 1)
    cid = tb.nodes["A"].manager.request(last, QoS(5, 0.8, count=10))
    tb.run(40)
    # established everywhere: every node installed its RuleSet and the confirm pass reached the end
    for s in tb.nodes.values():
        assert s.manager.connections[cid].ruleset is not None
    for s in tb.nodes.values():
        assert [o.established for o in s.manager.history if o.conn_id == cid][0] is True
    tb.run(1500)
    assert tb.nodes["A"].manager.outcomes[cid].reason is Reason.COMPLETED
    assert tb.nodes[last].manager.outcomes[cid].detail == "10 pairs delivered"
    fids = tb.fidelities[cid]
    assert len(fids) >= 10
    # Werner closed form along the chain; memories (T2 = 1 s) lose a little while pairs wait
    expected = werner_chain(0.97, n - 1)
    assert all(expected - 0.01 < f <= expected + 1e-9 for f in fids), (expected, fids)
    assert tb.held_anywhere() == {}


def test_route_by_seconds_per_pair_differs_from_hop_count_and_delivery_follows_it():
    # A-B-D: two fast but noisy hops; A-C-E-D: three slower clean hops.
    tb = SimTestbed({("A", "B"): LinkSpec(5000, 0.80), ("B", "D"): LinkSpec(5000, 0.80),
                  ("A", "C"): LinkSpec(1500, 0.97), ("C", "E"): LinkSpec(1500, 0.97),
                  ("E", "D"): LinkSpec(1500, 0.97)}, index_fidelity=0.9)
    route = tb.nodes["A"].manager.routes.route("D")
    assert route.path == ("A", "C", "E", "D")
    assert min(len(p) for p in (("A", "B", "D"),)) - 1 < route.hops  # fewer hops exist
    tb.start_links()
    cid = tb.nodes["A"].manager.request("D", QoS(5, 0.85, count=5))
    tb.run(1500)
    assert tb.nodes["A"].manager.outcomes[cid].reason is Reason.COMPLETED
    assert cid not in tb.nodes["B"].manager.connections
    assert tb.nodes["B"].executor.stats["pair_ready"] == tb.nodes["B"].executor.stats["unassigned"]
    assert {e.partner for e in tb.nodes["A"].delivered} == {"D"}
    # the C-E link goes down: A now routes over B
    tb.nodes["A"].manager.routes.link_down("C", "E")
    assert tb.nodes["A"].manager.routes.route("D").path == ("A", "B", "D")


def test_admission_rejections_state_their_reasons():
    tb = SimTestbed({("A", "B"): LinkSpec(1000, 0.9), ("B", "C"): LinkSpec(1000, 0.9),
                  ("X", "Y"): LinkSpec(1000, 0.9)}, qubits=2)
    m = tb.nodes["A"].manager
    far = m.request("Y", QoS(1, 0.8, count=1))
    fid = m.request("C", QoS(1, 0.999, count=1))
    rate = m.request("C", QoS(1e6, 0.8, count=1))
    tb.run(20)
    assert m.outcomes[far].reason is Reason.NO_ROUTE
    assert m.outcomes[far].detail == "no usable route from A to Y"
    o = m.outcomes[fid]
    assert (o.reason, o.node) == (Reason.UNREACHABLE_FIDELITY, "C")
    assert o.detail.startswith("target 0.999; best estimate 0.9")
    o = m.outcomes[rate]
    assert (o.reason, o.node) == (Reason.INSUFFICIENT_RESOURCES, "C")
    assert "1e+06 requested" in o.detail
    # B (2 qubits) cannot host a purifying connection (needs 4)
    pur = m.request("C", QoS(1, 0.85, count=1))   # needs one round of purification per link
    tb.run(20)
    o = m.outcomes[pur]
    assert (o.reason, o.detail) == (Reason.INSUFFICIENT_RESOURCES, "B has 2 free qubit(s), needs 4")
    assert tb.held_anywhere() == {}


def test_a_peer_dying_during_setup_fails_cleanly_naming_it():
    tb = chain(4, rate=2000.0)
    tb.start_links()
    cid = tb.nodes["A"].manager.request("D", QoS(5, 0.8, count=1000))
    tb.run(0.05)            # the request is on its way; nothing is active yet
    tb.net.crash("C")
    tb.run(300)
    o = tb.nodes["A"].manager.outcomes[cid]
    assert not o.established and o.reason is Reason.PEER_DOWN
    assert o.detail.startswith("C: ")
    for n in ("A", "B", "D"):
        assert tb.nodes[n].manager.connections[cid].state == "closed"
    live = {n: v for n, v in tb.held_anywhere().items() if not n.startswith("C")}
    assert live == {}


def test_setup_times_out_when_the_reply_never_comes():
    tb = chain(3, timeout_ps=50 * MS)
    # C's control link stays up (heartbeats, acks) but its manager never answers the request
    tb.nodes["C"].link.add_handler("cs.request", lambda peer, t, body: None)
    cid = tb.nodes["A"].manager.request("C", QoS(5, 0.8, count=1))
    tb.run(60)
    o = tb.nodes["A"].manager.outcomes[cid]
    assert (o.reason, o.detail) == (Reason.TIMEOUT, "not active after 50 ms")
    assert tb.nodes["B"].manager.connections[cid].state == "closed"


@pytest.mark.parametrize("policy", [MuxPolicy.BUFFER, MuxPolicy.STATISTICAL])
def test_two_connections_through_one_repeater_share_it_fairly(policy):
    tb = SimTestbed({("A", "R"): LinkSpec(2000, 0.97), ("R", "C"): LinkSpec(2000, 0.97),
                  ("D", "R"): LinkSpec(2000, 0.97), ("R", "E"): LinkSpec(2000, 0.97)},
                 qubits=4, policy=policy)
    tb.start_links()
    c1 = tb.nodes["A"].manager.request("C", QoS(2, 0.8, duration_ps=600 * MS))
    c2 = tb.nodes["D"].manager.request("E", QoS(2, 0.8, duration_ps=600 * MS))
    tb.run(700)
    n1, n2 = len(tb.fidelities.get(c1, [])), len(tb.fidelities.get(c2, []))
    assert n1 > 20 and n2 > 20
    fairness = jain_index([n1, n2])
    print(f"{policy.value}: delivered {n1} and {n2} pairs in 600 ms, Jain index {fairness:.3f}")
    assert fairness > 0.95
    for cid in (c1, c2):
        assert tb.nodes["R"].manager.connections[cid].state == "closed"
    assert tb.held_anywhere() == {}


def test_teardown_on_demand_leaves_no_qubit_held():
    tb = chain(3, rate=3000.0)
    tb.start_links()
    cid = tb.nodes["A"].manager.request("C", QoS(5, 0.8, count=10**6))
    tb.run(30)
    assert tb.nodes["B"].executor.held_qubits() or tb.nodes["A"].executor.held_qubits()
    tb.nodes["A"].manager.teardown(cid)
    tb.run(5)
    assert tb.held_anywhere() == {}
    o = tb.nodes["C"].manager.outcomes[cid]
    assert (o.reason, o.detail, o.node) == (Reason.TORN_DOWN, "on demand", "A")
