"""Herald links: in-process delivery times, loss/duplication/reorder accounting, and the ZeroMQ
link over real loopback sockets (plain and CurveZMQ), with malformed frames rejected by peer."""

import time

import numpy as np
import pytest
import zmq

from qnode_fw.clock import VirtualClock
from qnode_fw.loop import EventLoop
from qnode_fw.units import fibre_delay_ps
from timing.frames import Frame, FrameCodec, FrameType, Outcome
from timing.herald_link import CurveKeys, InProcessHeraldLink, LinkImpairments, ZmqHeraldEndpoint


def collect(endpoint, ftype=FrameType.HERALD):
    got = []
    endpoint.subscribe(ftype, lambda peer, f: got.append((peer, f, endpoint_time(endpoint))))
    return got


def endpoint_time(endpoint):
    link = getattr(endpoint, "_link", None)
    return link.loop.now_ps() if link is not None else None


def test_in_process_frames_arrive_after_the_fibre_delay_each_way():
    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, "A-B")
    link.set_delay("bsa", "A", fibre_delay_ps(1.0), reverse_delay_ps=fibre_delay_ps(1.2))
    bsa, a = link.endpoint("bsa"), link.endpoint("A")
    got_a = collect(a)
    got_bsa = collect(bsa, FrameType.SYNC_REQUEST)
    loop.call_at(1_000, bsa.send, "A", FrameType.HERALD, 7, 900, Outcome.PSI_MINUS)
    loop.call_at(2_000, a.send, "bsa", FrameType.SYNC_REQUEST, 1, 2_000)
    loop.run_until_idle()
    (peer, frame, t), = got_a
    assert (peer, frame.attempt_id, frame.timestamp_ps, frame.outcome, frame.seq) == (
        "bsa", 7, 900, Outcome.PSI_MINUS, 1)
    assert t == 1_000 + 4_897_000
    assert got_bsa[0][2] == 2_000 + 5_876_400


def test_in_process_impairments_are_counted_exactly():
    loop = EventLoop(VirtualClock())
    rng = np.random.default_rng(3)
    link = InProcessHeraldLink(loop, "L", rng=rng, impairments=LinkImpairments(
        loss=0.2, duplicate=0.3, reorder_jitter_ps=50_000))
    link.set_delay("s", "e", 10_000)
    s, e = link.endpoint("s"), link.endpoint("e")
    got = collect(e)
    for k in range(500):
        loop.call_at(k * 10_000, s.send, "e", FrameType.HERALD, k, k, Outcome.PSI_PLUS)
    loop.run_until_idle()
    seqs = [f.seq for _, f, _ in got]
    assert len(seqs) == len(set(seqs))          # no duplicate passed
    assert seqs != sorted(seqs)                 # the jitter did reorder
    st = e.stats
    assert st.received == len(set(seqs)) and st.duplicates > 0 and st.reordered > 0
    assert e.window("s").highest == max(seqs)
    # Every frame sent is accounted for: received, or lost (gone from the window or still a gap).
    missing_now = sum(1 for q in range(1, max(seqs) + 1) if q not in set(seqs))
    assert missing_now + st.received == max(seqs)


def test_wrong_link_and_garbage_are_dropped_with_the_peer_named():
    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, "A-B")
    link.set_delay("bsa", "A", 1)
    a = link.endpoint("A")
    other = InProcessHeraldLink(loop, "C-D").endpoint("bsa")
    got = collect(a)
    a.deliver("bsa", b"\x01" * 10)
    assert a.stats.malformed == 1 and a.last_error.peer == "bsa"
    other_frame = other.codec.encode(Frame(FrameType.HERALD, other.link_id, 1, 1, 1))
    a.deliver("bsa", other_frame)
    assert a.stats.wrong_link == 1 and "A-B" in str(a.last_error) and got == []


def _pump(endpoints, until, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        for ep in endpoints:
            ep.poll(10)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.term()


def test_zmq_station_and_two_end_nodes_on_loopback(ctx):
    bsa = ZmqHeraldEndpoint("bsa", "A-B", bind="tcp://127.0.0.1:0", context=ctx)
    a = ZmqHeraldEndpoint("A", "A-B", connect={"bsa": bsa.address}, context=ctx)
    b = ZmqHeraldEndpoint("B", "A-B", connect={"bsa": bsa.address}, context=ctx)
    try:
        got_a, got_b, got_bsa = collect(a), collect(b), collect(bsa, FrameType.SYNC_REQUEST)
        # The ROUTER learns each end's routing id from its first frame.
        a.send("bsa", FrameType.SYNC_REQUEST, 1, 11)
        b.send("bsa", FrameType.SYNC_REQUEST, 1, 22)
        _pump([bsa], lambda: len(got_bsa) == 2)
        assert sorted((p, f.timestamp_ps) for p, f, _ in got_bsa) == [("A", 11), ("B", 22)]
        for k in range(5):
            for end in ("A", "B"):
                bsa.send(end, FrameType.HERALD, k, 1000 + k, Outcome.PSI_PLUS)
        _pump([a, b], lambda: len(got_a) == 5 and len(got_b) == 5)
        for got in (got_a, got_b):
            assert [(p, f.attempt_id, f.seq) for p, f, _ in got] == [("bsa", k, k + 1) for k in range(5)]
        # A raw socket claiming to be A sends garbage: rejected, counted, peer named.
        rogue = ctx.socket(zmq.DEALER)
        rogue.linger = 0
        rogue.routing_id = b"X"
        rogue.connect(bsa.address)
        rogue.send(b"not a frame")
        _pump([bsa], lambda: bsa.stats.malformed == 1)
        assert bsa.last_error.peer == "X" and "expected 56" in str(bsa.last_error)
        rogue.close()
    finally:
        for ep in (a, b, bsa):
            ep.close()


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")
def test_zmq_curve_keys_encrypt_and_a_wrong_server_key_gets_nothing_through(ctx):
    s_pub, s_sec = zmq.curve_keypair()
    c_pub, c_sec = zmq.curve_keypair()
    codec = FrameCodec(bytes(range(32)))
    with pytest.raises(Exception, match="needs a ZAP authenticator"):
        ZmqHeraldEndpoint("bsa", "A-B", bind="tcp://127.0.0.1:0", context=ctx,
                          curve=CurveKeys(s_pub, s_sec), codec=codec)
    from qnode_fw.control.auth import NodeAuthenticator
    auth = NodeAuthenticator(ctx, {"A": c_pub})   # the allowlist: A's key is node A
    auth.start()
    bsa = ZmqHeraldEndpoint("bsa", "A-B", bind="tcp://127.0.0.1:0", context=ctx,
                            curve=CurveKeys(s_pub, s_sec), codec=codec)
    a = ZmqHeraldEndpoint("A", "A-B", connect={"bsa": bsa.address}, context=ctx, codec=codec,
                          curve=CurveKeys(c_pub, c_sec, peer_public={"bsa": s_pub}))
    wrong_pub, _ = zmq.curve_keypair()
    m = ZmqHeraldEndpoint("M", "A-B", connect={"bsa": bsa.address}, context=ctx, codec=codec,
                          curve=CurveKeys(c_pub, c_sec, peer_public={"bsa": wrong_pub}))
    try:
        got = collect(bsa, FrameType.SYNC_REQUEST)
        a.send("bsa", FrameType.SYNC_REQUEST, 1, 5)
        m.send("bsa", FrameType.SYNC_REQUEST, 1, 6)
        _pump([bsa], lambda: len(got) == 2, timeout_s=1.0)
        assert [(p, f.timestamp_ps) for p, f, _ in got] == [("A", 5)]
        with pytest.raises(Exception, match="no CurveZMQ public key"):
            a.connect("C", "tcp://127.0.0.1:1")
    finally:
        for ep in (a, m, bsa):
            ep.close()
        auth.stop()


def test_zmq_endpoint_dispatches_from_the_event_loop(ctx):
    from qnode_fw.clock import WallClock

    loop = EventLoop(WallClock())
    bsa = ZmqHeraldEndpoint("bsa", "L", bind="tcp://127.0.0.1:0", context=ctx)
    a = ZmqHeraldEndpoint("A", "L", connect={"bsa": bsa.address}, context=ctx)
    bsa.attach(loop)
    a.attach(loop)
    try:
        got = collect(a)
        bsa.subscribe(FrameType.SYNC_REQUEST,
                      lambda peer, f: bsa.send(peer, FrameType.HERALD, f.attempt_id, 0,
                                               Outcome.PSI_MINUS))
        a.send("bsa", FrameType.SYNC_REQUEST, 99, 0)
        deadline = loop.now_ps() + 5 * 10**12
        while not got and loop.now_ps() < deadline:
            loop.run_once(until_ps=loop.now_ps() + 10**10)
        assert [(p, f.attempt_id, f.outcome) for p, f, _ in got] == [("bsa", 99, Outcome.PSI_MINUS)]
    finally:
        a.close()
        bsa.close()
        loop.close()
