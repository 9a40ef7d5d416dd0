"""QRNA recursion: network N = X1-X2-X3 presented to the outer layer as one virtual link X1~X3
between its border routers, on the simulated testbed of the other connection tests (in-process
control links on the virtual clock, real RuleSet executors, SimQNICs over one exact registry).

Outer path A - X1 ~ X3 - B: the outer setup stops at X1, which sets up an inner connection
X1-X2-X3 (X3 its Responder) and only then goes on; the inner connection's delivered pairs are the
outer RuleSets' pairs on the virtual link.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conn_harness import BORDER_CHAIN_INNER as INNER
from conn_harness import LinkSpec, SimTestbed, border_chain
from qnode_fw.connection import QoS, Reason
from qnode_fw.connection.virtual_link import VirtualLink
from qnode_fw.events import PairReady
from qnode_fw.routing import RouteTable, werner_swap
from qnode_fw.routing.cost import bbpssw
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.serialise import from_dict
from qnode_fw.units import MS, S

T2_PS = 100 * S          # long memories: the closed form below then bounds the delivered pairs tightly
INDEX_F = 0.8


def recursive_testbed(inner: LinkSpec = LinkSpec(3000, 0.98), outer: LinkSpec = LinkSpec(2000, 0.96),
                      promise: float = 0.9, extra: dict | None = None) -> SimTestbed:
    return border_chain(inner, outer, promise, extra, memory_t2_ps=T2_PS, index_fidelity=INDEX_F)


def advertised(tb: SimTestbed, promise: float = 0.9) -> VirtualLink:
    vl = tb.advertise(["X1", "X2", "X3"], promise)
    assert isinstance(vl, VirtualLink), vl
    return vl


def outer_routes(tb: SimTestbed, node: str, vl: VirtualLink) -> RouteTable:
    """The outer layer's view: its physical links and the virtual link, never N's inside."""
    return tb.outer_routes(node, INNER, vl)


def record_sends(tb: SimTestbed) -> list[tuple[str, str, str, dict, int]]:
    """Every control message any node sends, as (sender, addressee, type, body, when); the real
    send still runs."""
    sent = []
    for name, stack in tb.nodes.items():
        real = stack.link.send

        def spy(peer, msg_type, body, real=real, name=name):
            sent.append((name, peer, msg_type, body, tb.loop.now_ps()))
            return real(peer, msg_type, body)

        stack.link.send = spy
    return sent


def memory_slack(tb: SimTestbed, qubits: int) -> float:
    """How far below the Werner closed form memories can take a delivered pair, read from the
    RuleSets installed now: per qubit that held a component at most a dephasing of t / 2 T2 and
    an amplitude damping of t / T1 (T1 = 3600 s), t = the longest discard timer plus the 5 ms an
    application waits for the other half."""
    longest_ps = max(i.max_age_ps for s in tb.nodes.values() for i in s.executor.installed.values())
    hold_s = (longest_ps + 5 * MS) / S
    return qubits * (hold_s / (2 * T2_PS / S) + hold_s / 3600)


def all_qubits_ground(tb: SimTestbed) -> bool:
    ground = np.diag([1.0, 0.0]).astype(complex)
    return all(np.allclose(tb.registry.density_matrix([s.qnic.key(i)]), ground, atol=1e-9)
               for s in tb.nodes.values() for i in range(s.qnic.num_qubits))


def test_outer_qdijkstra_takes_the_virtual_link_when_better_and_avoids_it_when_worse():
    detour = {("A", "Y"): LinkSpec(1200, 0.96), ("Y", "B"): LinkSpec(1200, 0.96)}
    good = recursive_testbed(extra=detour)
    vl = advertised(good)
    # the inner planner's promise: no purification needed for 0.9; two Werner links swapped
    assert vl.rounds == 0
    assert vl.rate == pytest.approx(3000 / 1.5)
    assert werner_swap(0.98, 0.98) - 1e-3 < vl.fidelity <= werner_swap(0.98, 0.98)
    assert outer_routes(good, "A", vl).route("B").path == ("A", "X1", "X3", "B")

    # a slow, noisy network: 0.9 needs a round of purification inside N, which halves the rate
    # and more; its virtual link now costs more than the detour
    slow = recursive_testbed(inner=LinkSpec(900, 0.93), extra=detour)
    vl_slow = advertised(slow)
    p, f1 = bbpssw(0.93)
    assert vl_slow.rounds == 1
    assert vl_slow.rate == pytest.approx(900 * p / 2 / 1.5)
    assert vl_slow.cost(INDEX_F) > vl.cost(INDEX_F)
    routes = outer_routes(slow, "A", vl_slow)
    assert routes.route("B").path == ("A", "Y", "B")

    # and delivery follows the route: nothing is set up inside N
    slow.nodes["A"].manager.routes = routes
    slow.start_links()
    cid = slow.nodes["A"].manager.request("B", QoS(5, 0.8, count=5))
    slow.run(200)
    assert slow.nodes["A"].manager.outcomes[cid].reason is Reason.COMPLETED
    assert all(not slow.nodes[n].manager.connections for n in ("X1", "X2", "X3"))


def test_pairs_cross_the_virtual_link_at_the_closed_form_fidelity_and_all_is_freed_after():
    tb = recursive_testbed()
    vl = advertised(tb)
    tb.nodes["A"].manager.routes = outer_routes(tb, "A", vl)
    sent = record_sends(tb)
    ready: dict[str, list[PairReady]] = {"X1": [], "X3": []}
    for n in ready:
        real = tb.nodes[n].executor.on_pair_ready

        def spy(ev, ruleset_id=None, real=real, n=n):
            ready[n].append((ev, ruleset_id))
            return real(ev, ruleset_id)

        tb.nodes[n].executor.on_pair_ready = spy
    tb.start_links()
    cid = tb.nodes["A"].manager.request("B", QoS(5, 0.8, count=20))
    tb.run(20)

    # the outer connection is active on A, X1, X3, B only; N carries it as an inner connection
    assert tb.nodes["A"].manager.connections[cid].path == ("A", "X1", "X3", "B")
    for n in ("A", "X1", "X3", "B"):
        assert tb.nodes[n].manager.connections[cid].state == "active"
    assert cid not in tb.nodes["X2"].manager.connections
    inner = tb.nodes["X1"].border.inner_of(cid)
    assert tb.nodes["X3"].border.inner_of(cid) == inner
    for n in ("X1", "X2", "X3"):
        c = tb.nodes[n].manager.connections[inner]
        assert (c.path, c.state) == (("X1", "X2", "X3"), "active")

    # X1 reported the virtual link with the inner plan's figures and N's fewest free qubits
    req, forwarded_ps = next((b, at) for s, p, t, b, at in sent
                             if t == "cs.request" and b["conn"] == cid and s == "X1")
    # ... and only once the inner connection was active
    assert forwarded_ps >= tb.nodes["X1"].manager.connections[inner].active_ps
    x1 = req["hops"][-1]
    plan = tb.nodes["X1"].manager.connections[inner].plan
    assert x1["node"] == "X1"
    assert (x1["link"]["rate"], x1["link"]["fidelity"]) == (plan.rate, plan.fidelity)
    pool = tb.nodes["X1"].pool          # when X1 reported, only the inner connection held qubits
    # the virtual link's pairs sit on the inner connection's qubit: the outer connection
    # reserves only its A side, so X1 holds two qubits, as a repeater of a flat chain would
    assert (len(pool.partition(inner)), len(pool.partition(cid))) == (1, 1)
    free_then = len(pool.qubits) - len(pool.partition(inner))
    assert x1["free_qubits"] == min(free_then, tb.nodes["X1"].border.virtual_link(cid).free_qubits)

    # the border routers rewrote the outer discard timers for the virtual link (and nothing
    # else) by the inner connection's longest one, identical at both ends of the inner chain
    def limits(rs, partner):
        return [c.limit_ps for s in rs.stages for r in s.rules for c in r.conditions
                if isinstance(c, m.PairAgeOver) and c.partner == partner]

    def installed(node, rs_id):
        return tb.nodes[node].executor.installed[rs_id].rs

    inner_max = max(limits(installed("X1", inner), "X2"))
    assert inner_max == max(limits(installed("X3", inner), "X2")) > 0
    written = next(b for s, p, t, b, _ in sent if t == "cs.rules" and b["conn"] == cid)["rulesets"]
    for node, far in (("X1", "X3"), ("X3", "X1")):
        mine, wire = installed(node, cid), from_dict(written[node])
        for partner in wire.partners:
            shift = inner_max if partner == far else 0
            assert limits(mine, partner) == [t + shift for t in limits(wire, partner)]
        assert [t.discard_after_ps for t in mine.timing if t.peer == far] == \
               [t.discard_after_ps + inner_max for t in wire.timing if t.peer == far]
    assert limits(installed("X1", cid), "X3")       # X1 waits for X3's swap with a discard timer
    slack = memory_slack(tb, 8)         # four links, two qubits each

    tb.run(500)
    assert tb.nodes["A"].manager.outcomes[cid].reason is Reason.COMPLETED
    fids = tb.fidelities[cid]
    assert len(fids) >= 20
    # Werner closed form: the inner swap at X2 makes the virtual link's pairs, the outer swaps at
    # X3 and X1 join them to the outer links; memories take at most ``slack`` off.
    virtual = werner_swap(0.98, 0.98)
    expected = werner_swap(werner_swap(0.96, virtual), 0.96)
    print(f"virtual link F {virtual:.5f}; e2e closed form {expected:.5f}, slack {slack:.2g}, "
          f"delivered {min(fids):.5f}..{max(fids):.5f} ({len(fids)} pairs)")
    assert all(expected - slack < f <= expected + 1e-9 for f in fids), (expected, slack, fids)

    # the virtual link's pairs: the inner deliveries, renamed alike at both border routers by
    # the inner Responder (X3) and the inner connection
    far = {"X1": "X3", "X3": "X1"}
    names = {n: {ev.name for ev, rid in ready[n] if rid == cid and ev.partner == far[n]}
             for n in ready}
    assert names["X1"] and all(nm.origin == f"X3/{inner}" for nm in names["X1"] | names["X3"])
    assert len(names["X1"] & names["X3"]) >= 20

    # the outer layer's messages never name a node inside N
    outer_msgs = [(s, p, t, b) for s, p, t, b, _ in sent if cid in json.dumps(b)
                  and b.get("conn") != inner]
    assert {t for _, _, t, _ in outer_msgs} >= {"cs.request", "cs.rules", "cs.confirm", "rs.msg"}
    for s, p, t, b in outer_msgs:
        assert "X2" not in (s, p) and "X2" not in json.dumps(b), (s, p, t, b)

    # completion closed the inner connection too, and every qubit is free and back in |0>
    tb.run(20)
    for n in ("X1", "X2", "X3"):
        assert tb.nodes[n].manager.connections[inner].state == "closed"
    o = tb.nodes["X2"].manager.outcomes[inner]
    assert (o.reason, o.detail) == (Reason.COMPLETED, f"outer connection {cid} closed: completed")
    assert tb.held_anywhere() == {}
    assert all_qubits_ground(tb)


def test_tearing_the_outer_connection_down_tears_the_inner_one_down():
    tb = recursive_testbed()
    tb.nodes["A"].manager.routes = outer_routes(tb, "A", advertised(tb))
    tb.start_links()
    cid = tb.nodes["A"].manager.request("B", QoS(5, 0.8, count=10**6))
    tb.run(30)
    inner = tb.nodes["X1"].border.inner_of(cid)
    assert tb.nodes["X2"].manager.connections[inner].state == "active"
    assert tb.nodes["X2"].executor.stats["pair_ready"] > 0
    tb.nodes["A"].manager.teardown(cid)
    tb.run(10)
    o = tb.nodes["X2"].manager.outcomes[inner]
    assert (o.reason, o.detail) == (Reason.TORN_DOWN, f"outer connection {cid} closed: torn down")
    assert tb.held_anywhere() == {}
    assert all_qubits_ground(tb)


@pytest.mark.parametrize("cause", ["resources", "fidelity"])
def test_a_refusal_inside_the_network_is_an_outer_refusal_naming_the_virtual_link(cause):
    tb = recursive_testbed(promise=0.999 if cause == "fidelity" else 0.9)
    tb.nodes["A"].manager.routes = outer_routes(tb, "A", advertised(tb))
    if cause == "resources":
        # after the advertisement, X2 is left one qubit; a repeater needs two
        tb.nodes["X2"].pool.qubits = tb.nodes["X2"].pool.qubits[:1]
    sent = record_sends(tb)
    tb.start_links()
    cid = tb.nodes["A"].manager.request("B", QoS(5, 0.8, count=5))
    tb.run(30)
    o = tb.nodes["A"].manager.outcomes[cid]
    reason = Reason.INSUFFICIENT_RESOURCES if cause == "resources" else Reason.UNREACHABLE_FIDELITY
    assert (o.established, o.reason, o.node) == (False, reason, "X1")
    assert o.detail == f"virtual link X1~X3: {reason.value} inside its network"
    # inside N the refusal names its own node; none of that reaches the outer layer
    inner = next(c for c in tb.nodes["X1"].manager.connections if c != cid)
    inner_o = tb.nodes["X1"].manager.outcomes[inner]
    assert (inner_o.reason, inner_o.node) == (reason, "X3")
    if cause == "resources":
        assert inner_o.detail == "X2 has 1 free qubit(s), needs 2"
    for s, p, t, b, _ in sent:
        if b.get("conn") == cid:
            assert "X2" not in json.dumps(b), (s, p, t, b)
    assert cid not in tb.nodes["B"].manager.connections     # the far side never heard of it
    assert tb.held_anywhere() == {}


def test_a_dead_peer_inside_the_network_closes_the_outer_connection_with_a_reason():
    tb = recursive_testbed()
    tb.nodes["A"].manager.routes = outer_routes(tb, "A", advertised(tb))
    tb.start_links()
    cid = tb.nodes["A"].manager.request("B", QoS(5, 0.8, count=10**6))
    tb.run(30)
    assert tb.nodes["A"].manager.connections[cid].state == "active"
    inner = tb.nodes["X1"].border.inner_of(cid)
    tb.crash("X2")
    tb.run(100)
    o = tb.nodes["A"].manager.outcomes[cid]
    assert (o.established, o.reason) == (False, Reason.PEER_DOWN)
    assert o.node in ("X1", "X3")
    assert o.detail == "virtual link X1~X3: peer down inside its network"
    # the border routers saw X2 go; the outer ends only the virtual link
    assert tb.nodes["X1"].manager.outcomes[inner].detail.startswith("X2: ")
    for n in ("A", "X1", "X3", "B"):
        assert tb.nodes[n].manager.connections[cid].state == "closed"
    live = {n: v for n, v in tb.held_anywhere().items() if not n.startswith("X2")}
    assert live == {}


@pytest.mark.parametrize("ends", [("A", "X3"), ("X1", "B")])
def test_a_connection_may_start_or_end_at_a_border_router(ends):
    tb = recursive_testbed()
    start, end = ends
    tb.nodes[start].manager.routes = outer_routes(tb, start, advertised(tb))
    tb.start_links()
    cid = tb.nodes[start].manager.request(end, QoS(5, 0.8, count=40))
    tb.run(10)                          # set up, still delivering
    slack = memory_slack(tb, 6)         # three links, two qubits each
    tb.run(290)
    assert tb.nodes[start].manager.outcomes[cid].reason is Reason.COMPLETED
    assert tb.nodes[start].manager.connections[cid].path == \
        {"A": ("A", "X1", "X3"), "X1": ("X1", "X3", "B")}[start]
    # the end at the border router gets the end-to-end pairs; the inner ones went to the outer
    # RuleSet, never to an application
    assert len(tb.fidelities[cid]) >= 40 and list(tb.fidelities) == [cid]
    expected = werner_swap(0.96, werner_swap(0.98, 0.98))
    assert all(expected - slack < f <= expected + 1e-9 for f in tb.fidelities[cid])
    tb.run(20)
    assert tb.held_anywhere() == {}
    assert all_qubits_ground(tb)
