"""Per-peer limits of the control link under hostile or faulty peers: a message held back past
the receive window is not acknowledged (so it is resent, never lost), the bytes held for one
peer's early messages stay under their bound, and a flooding peer is rate limited without
costing any other peer a message."""

from __future__ import annotations

import numpy as np

from qnode_fw.clock import VirtualClock
from qnode_fw.control import Impairments, InProcessNetwork, LinkSettings
from qnode_fw.control.envelope import Envelope, Kind
from qnode_fw.loop import EventLoop
from qnode_fw.units import MS, US


def data(src, dst, seq, payload, stream=(1, 0)) -> bytes:
    return Envelope(Kind.DATA, src, dst, stream, seq, "x", payload).encode()


def test_message_beyond_the_window_is_not_acknowledged_and_arrives_later():
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop, np.random.default_rng(1), Impairments(delay_ps=10 * US))
    settings = LinkSettings(heartbeat_ps=None, receive_window=4, retransmit_ps=1 * MS)
    a = net.link("A", ["B"], settings)
    b = net.link("B", ["A"], settings)
    got = []
    b.on_message = lambda p, t, pl: got.append(pl["i"])
    a.start(); b.start()
    # Hold back message 0 (as a reorder fault would) while 0..9 are sent: 6..9 fall beyond B's
    # window of 4 early messages.
    original = a._transmit
    a._transmit = lambda peer, d: None if b'"seq":0,' in d and loop.now_ps() < 5 * MS else original(peer, d)
    for i in range(10):
        a.send("B", "x", {"i": i})
    loop.run_until(50 * MS)
    assert got == list(range(10))
    assert a.unacked("B") == 0 and a.is_up("B")


def test_bytes_held_for_early_messages_are_bounded_per_peer():
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop)
    settings = LinkSettings(heartbeat_ps=None, max_early_bytes=64_000, max_message_bytes=20_000)
    a = net.link("A", ["B", "C"], settings)
    got = []
    a.on_message = lambda p, t, pl: got.append((p, pl.get("i")))
    a.start()
    blob = "z" * 15_000
    # B never sends seq 0 and floods 1..100 of nearly the largest size: A may hold only
    # what fits in max_early_bytes, and acknowledges only what it holds.
    for seq in range(1, 101):
        a._receive("B", data("B", "A", seq, {"blob": blob}))
    held = a._peers["B"]
    assert sum(held.rx_early_bytes.values()) <= settings.max_early_bytes
    assert len(held.rx_early) == 4
    # C is unaffected.
    a._receive("C", data("C", "A", 0, {"i": 7}))
    assert got == [("C", 7)]


def test_a_flooding_peer_is_rate_limited_and_others_still_get_through():
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop, np.random.default_rng(2), Impairments(delay_ps=10 * US))
    settings = LinkSettings(heartbeat_ps=None, rate_per_s=1000, burst=50)
    a = net.link("A", ["B", "C"], settings)
    b = net.link("B", ["A"], settings)
    got = []
    a.on_message = lambda p, t, pl: got.append((p, pl["i"]))
    a.start(); b.start()
    for seq in range(5000):       # C floods 5000 messages within a millisecond
        loop.call_at(seq * 200, a._receive, "C", data("C", "A", seq, {"i": seq}))
    for i in range(20):
        loop.call_at(i * 50_000, b.send, "A", "x", {"i": i})
    loop.run_until(200 * MS)
    from_c = [i for p, i in got if p == "C"]
    from_b = [i for p, i in got if p == "B"]
    assert from_b == list(range(20))                  # every one, in order
    assert len(from_c) <= 50 + 1000 * 1e-3 * 1 + 1    # burst + rate x 1 ms of flooding
    assert a.stats.refused >= 5000 - len(from_c) - 1
    assert any("rate limit" in str(e) and e.peer == "C" for e in a.errors)
