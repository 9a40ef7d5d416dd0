"""In-process control links on the virtual clock: reliable ordered delivery under loss,
duplication and reordering; peer-down detection with its reason; refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qnode_fw.clock import VirtualClock
from qnode_fw.control import Impairments, InProcessNetwork, LinkSettings
from qnode_fw.control.envelope import SCHEMA_VERSION, Envelope, Kind, decode
from qnode_fw.errors import ProtocolError
from qnode_fw.loop import EventLoop
from qnode_fw.units import MS, US


def make(imp=Impairments(), settings=None, seed=7, nodes=("A", "B")):
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop, np.random.default_rng(seed), imp)
    links = {n: net.link(n, [p for p in nodes if p != n], settings) for n in nodes}
    return loop, net, links


@pytest.mark.parametrize("imp", [
    Impairments(delay_ps=50 * US, loss=0.3),
    Impairments(delay_ps=50 * US, duplicate=0.5),
    Impairments(delay_ps=50 * US, reorder_ps=500 * US),
    Impairments(delay_ps=50 * US, loss=0.2, duplicate=0.3, reorder_ps=300 * US),
], ids=["loss", "dup", "reorder", "all"])
def test_every_message_delivered_once_in_order(imp):
    loop, net, links = make(imp)
    got = {"A": [], "B": []}
    for n, link in links.items():
        link.on_message = lambda p, t, pl, n=n: got[n].append((p, t, pl["i"]))
        link.start()
    for i in range(300):
        links["A"].send("B", "m", {"i": i})
        links["B"].send("A", "r", {"i": i})
    loop.run_until(3_000 * MS)
    assert got["B"] == [("A", "m", i) for i in range(300)]
    assert got["A"] == [("B", "r", i) for i in range(300)]
    assert links["A"].unacked("B") == 0 and links["B"].unacked("A") == 0
    if imp.loss:
        assert links["A"].stats.retransmits > 0
    if imp.duplicate:
        assert links["B"].stats.duplicates > 0
    if imp.reorder_ps:
        assert links["B"].stats.reordered > 0


def test_heartbeats_bring_peers_up_and_a_crash_is_detected_with_its_reason():
    settings = LinkSettings(heartbeat_ps=100 * MS, missed_heartbeats=3)
    loop, net, links = make(settings=settings, nodes=("A", "B", "C"))
    seen = []
    links["A"].add_status_handler(lambda s: seen.append((s.peer, s.up, s.reason)))
    for link in links.values():
        link.start()
    loop.run_until(150 * MS)
    assert {p: s.up for p, s in links["A"].status().items()} == {"B": True, "C": True}
    net.crash("C")
    loop.run_until(1_000 * MS)
    st = links["A"].status("C")
    assert not st.up
    # last heard at ~100 ms; checks run every 100 ms; down at the first check more than 300 ms later
    assert st.reason == "no heartbeat for 400 ms (limit 300 ms)"
    assert st.since_ps == 500 * MS
    assert links["A"].is_up("B")
    assert seen == [("B", True, "heard from"), ("C", True, "heard from"),
                    ("C", False, "no heartbeat for 400 ms (limit 300 ms)")]


def test_orderly_stop_is_reported_as_peer_stopped():
    loop, net, links = make()
    for link in links.values():
        link.start()
    loop.run_until(10 * MS)
    links["B"].stop()
    loop.run_until(20 * MS)
    assert links["A"].status("B").up is False
    assert links["A"].status("B").reason == "peer stopped"


def test_unacknowledged_messages_take_the_peer_down_and_a_new_epoch_resumes_cleanly():
    settings = LinkSettings(heartbeat_ps=None, retransmit_ps=10 * MS, max_retransmits=3)
    loop, net, links = make(Impairments(delay_ps=1 * MS), settings)
    got = []
    links["B"].on_message = lambda p, t, pl: got.append(pl["i"])
    for link in links.values():
        link.start()
    links["A"].send("B", "m", {"i": 0})
    loop.run_until(10 * MS)
    net.set_path("A", "B", Impairments(delay_ps=1 * MS, loss=1.0))
    links["A"].send("B", "m", {"i": 1})
    links["A"].send("B", "m", {"i": 2})
    loop.run_until(100 * MS)
    st = links["A"].status("B")
    assert (st.up, st.reason) == (False, "3 retransmissions of 'm' (seq 1) unacknowledged")
    assert links["A"].stats.dropped_on_down == 2
    net.set_path("A", "B", Impairments(delay_ps=1 * MS))
    links["A"].send("B", "m", {"i": 3})
    loop.run_until(200 * MS)
    # 1 and 2 were given up on (and reported); 3 is not stuck behind them
    assert got == [0, 3]
    assert links["A"].status("B").up


def test_unknown_peer_is_refused_both_ways():
    loop, net, links = make()             # A and B know only each other
    a = links["A"]
    with pytest.raises(ProtocolError, match="peer Z: m: not a configured peer of A"):
        a.send("Z", "m", {})
    x = net.link("X", ["A"])              # X believes it may talk to A
    got = []
    a.on_message = lambda *args: got.append(args)
    a.start(); x.start()
    x.send("A", "m", {"i": 1})
    loop.run_until(10 * MS)
    assert got == []
    assert a.stats.refused >= 1
    assert str(a.errors[0]) == "peer X: envelope: not a configured peer of A"


def test_forged_sender_oversize_bad_version_and_rate_limit_are_refused():
    settings = LinkSettings(heartbeat_ps=None, max_message_bytes=400, rate_per_s=10, burst=3)
    loop, net, links = make(settings=settings)
    a, b = links["A"], links["B"]
    got = []
    b.on_message = lambda p, t, pl: got.append(pl)
    a.start(); b.start()
    with pytest.raises(ProtocolError, match="exceeds the limit of 400"):
        a.send("B", "big", {"x": "y" * 500})
    forged = Envelope(Kind.DATA, "C", "B", (0, 0), 0, "m", {}).encode()
    b._receive("A", forged)
    assert "claims C->B but came from A" in str(b.errors[-1])
    old = json.loads(Envelope(Kind.DATA, "A", "B", (0, 0), 0, "m", {}).encode())
    old["v"] = SCHEMA_VERSION + 1
    loop.run_until(1 * MS)  # refill tokens
    b._receive("A", json.dumps(old).encode())
    assert str(b.errors[-1]) == f"peer A: m: schema version {SCHEMA_VERSION + 1}, this node speaks {SCHEMA_VERSION}"
    loop.run_until(1_000 * MS)
    for i in range(5):  # burst of 3 tokens: two of these are over the limit
        b._receive("A", Envelope(Kind.DATA, "A", "B", (0, 0), i, "m", {"i": i}).encode())
    assert [g["i"] for g in got] == [0, 1, 2]
    assert str(b.errors[-1]) == "peer A: inbound rate limit exceeded"
    assert b.stats.refused == 4  # forged sender, schema version, two over the rate


def test_envelope_round_trip_and_malformed_input_names_the_peer():
    env = Envelope(Kind.DATA, "A", "B", (5, 2), 9, "setup.request", {"k": [1, 2]})
    assert decode(env.encode()) == env
    with pytest.raises(ProtocolError, match="peer Q: envelope: not a JSON envelope"):
        decode(b"\xff\x00", "Q")
    with pytest.raises(ProtocolError, match="peer A: m: malformed envelope"):
        decode(json.dumps({"v": SCHEMA_VERSION, "k": "data", "src": "A", "dst": "B",
                           "st": [0, 0], "seq": "x", "t": "m", "p": {}}).encode())


def test_handlers_by_message_type_and_a_message_without_handler_is_reported():
    loop, net, links = make()
    got = []
    links["B"].add_handler("x", lambda p, t, pl: got.append(t))
    for link in links.values():
        link.start()
    links["A"].send("B", "x", {})
    links["A"].send("B", "y", {})
    loop.run_until(10 * MS)
    assert got == ["x"]
    assert str(links["B"].errors[-1]) == "peer A: y: no handler for this message type"
