"""Herald link over real UDP sockets on loopback: frames both ways between a station and two end
nodes, senders named by their listed address, strangers and malformed datagrams counted and
dropped with the source named, forged frames refused by the keyed MAC, dispatch from the event
loop, and typed errors for bad addresses and unknown peers."""

from __future__ import annotations

import socket
import time

import pytest

from qnode_fw.clock import WallClock
from qnode_fw.errors import ConfigError, ProtocolError
from qnode_fw.loop import EventLoop
from timing.frames import Frame, FrameCodec, FrameType, Outcome, link_id_for
from timing.herald_udp import UdpHeraldEndpoint

KEY = bytes(range(32))


def collect(endpoint, frame_type=FrameType.HERALD):
    got = []
    endpoint.subscribe(frame_type, lambda peer, f: got.append((peer, f)))
    return got


def pump(endpoints, until, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not until() and time.monotonic() < deadline:
        for ep in endpoints:
            ep.poll(10)


def link(codec=None):
    bsa = UdpHeraldEndpoint("bsa", "A-B", codec=codec)
    ends = {n: UdpHeraldEndpoint(n, "A-B", peers={"bsa": bsa.address}, codec=codec) for n in "AB"}
    for n, ep in ends.items():
        bsa.add_peer(n, ep.address)
    return bsa, ends


def test_station_and_two_end_nodes_exchange_frames():
    bsa, ends = link()
    try:
        requests = collect(bsa, FrameType.SYNC_REQUEST)
        got = {n: collect(ep) for n, ep in ends.items()}
        ends["A"].send("bsa", FrameType.SYNC_REQUEST, 1, 11)
        ends["B"].send("bsa", FrameType.SYNC_REQUEST, 1, 22)
        pump([bsa], lambda: len(requests) == 2)
        assert sorted((p, f.timestamp_ps) for p, f in requests) == [("A", 11), ("B", 22)]
        for k in range(5):
            for n in "AB":
                bsa.send(n, FrameType.HERALD, k, 1000 + k, Outcome.PSI_PLUS)
        pump(ends.values(), lambda: all(len(g) == 5 for g in got.values()))
        for g in got.values():
            assert [(p, f.attempt_id, f.seq, f.outcome) for p, f in g] == \
                [("bsa", k, k + 1, Outcome.PSI_PLUS) for k in range(5)]
        assert bsa.stats.sent == 10 and bsa.stats.received == 2
    finally:
        for ep in (bsa, *ends.values()):
            ep.close()


def test_strangers_and_malformed_datagrams_are_dropped_with_the_source_named():
    bsa, ends = link()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        got = collect(ends["A"])
        stranger.bind(("127.0.0.1", 0))
        # a well-formed herald, but from an address A does not list
        frame = Frame(FrameType.HERALD, link_id_for("A-B"), 1, 7, 100, Outcome.PSI_PLUS)
        stranger.sendto(FrameCodec().encode(frame), ends["A"].address)
        pump([ends["A"]], lambda: ends["A"].stats.unknown_peer == 1)
        assert ends["A"].last_error.peer == f"127.0.0.1:{stranger.getsockname()[1]}"
        # from the listed station, a short and an oversized datagram: malformed, station named
        bsa._transmit("A", b"short")
        bsa._transmit("A", bytes(200))
        pump([ends["A"]], lambda: ends["A"].stats.malformed == 2)
        assert ends["A"].last_error.peer == "bsa" and "expected 56" in str(ends["A"].last_error)
        assert got == [] and ends["A"].stats.received == 0
    finally:
        stranger.close()
        for ep in (bsa, *ends.values()):
            ep.close()


def test_keyed_mac_refuses_frames_forged_from_a_listed_address():
    bsa, ends = link(FrameCodec(KEY))
    forger = UdpHeraldEndpoint("bsa", "A-B", peers={"A": ends["A"].address},
                               codec=FrameCodec(bytes(32)))  # right name, wrong key
    try:
        ends["A"].add_peer("bsa", forger.address)  # even where the forged address is listed
        got = collect(ends["A"])
        forger.send("A", FrameType.HERALD, 3, 1, Outcome.PSI_MINUS)
        pump([ends["A"]], lambda: ends["A"].stats.malformed == 1)
        assert got == [] and "MAC check failed" in str(ends["A"].last_error)
        ends["A"].add_peer("bsa", bsa.address)
        bsa.send("A", FrameType.HERALD, 4, 2, Outcome.PSI_PLUS)
        pump([ends["A"]], lambda: len(got) == 1)
        assert [(p, f.attempt_id) for p, f in got] == [("bsa", 4)]
    finally:
        for ep in (bsa, forger, *ends.values()):
            ep.close()


def test_frames_are_dispatched_from_the_event_loop():
    loop = EventLoop(WallClock())
    bsa, ends = link()
    try:
        for ep in (bsa, *ends.values()):
            ep.attach(loop)
        got = collect(ends["B"])
        bsa.subscribe(FrameType.SYNC_REQUEST,
                      lambda peer, f: bsa.send(peer, FrameType.HERALD, f.attempt_id, 0,
                                               Outcome.PSI_MINUS))
        ends["B"].send("bsa", FrameType.SYNC_REQUEST, 99, 0)
        deadline = loop.now_ps() + 5 * 10**12
        while not got and loop.now_ps() < deadline:
            loop.run_once(until_ps=loop.now_ps() + 10**10)
        assert [(p, f.attempt_id, f.outcome) for p, f in got] == [("bsa", 99, Outcome.PSI_MINUS)]
    finally:
        for ep in (bsa, *ends.values()):
            ep.close()
        loop.close()


def test_bad_addresses_and_unknown_peers_are_typed_errors():
    with pytest.raises(ConfigError, match="cannot bind") as err:
        UdpHeraldEndpoint("A", "A-B", bind=("192.0.2.1", 0))  # TEST-NET-1: on no interface here
    assert err.value.field == "A-B.A.bind"
    a = UdpHeraldEndpoint("A", "A-B")
    b = UdpHeraldEndpoint("B", "A-B")
    try:
        with pytest.raises(ConfigError) as err:
            a.add_peer("bsa", ("127.0.0.1", "not-a-port"))
        assert err.value.field == "A-B.A.peers.bsa"
        a.add_peer("bsa", b.address)
        with pytest.raises(ConfigError, match="share the address"):
            a.add_peer("C", b.address)
        with pytest.raises(ProtocolError, match="herald peer C has no address") as perr:
            a.send("C", FrameType.HERALD, 1, 1, Outcome.PSI_PLUS)
        assert perr.value.peer == "C" and a.stats.unknown_peer == 1
    finally:
        a.close()
        b.close()
        a.close()  # twice is fine
