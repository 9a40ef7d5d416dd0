"""CurveZMQ with the ZAP allowlist, real sockets on loopback: only configured nodes holding
their own keys get a message (or a RuleSet installation request) through, on the control link
and on a herald link sharing the node's context."""

from __future__ import annotations

import subprocess
import sys

import pytest
import zmq

from control_testutil import run_for
from qnode_fw.control import (CurveIdentity, NodeAuthenticator, ZmqControlLink, load_allowlist,
                              load_identity)
from qnode_fw.control.envelope import Envelope, Kind
from qnode_fw.errors import ProtocolError

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")


class Node:
    """One node 'process': its own context, authenticator and control link."""

    def __init__(self, name, loop, ident, allow, peers, peer_keys):
        self.ctx = zmq.Context()
        self.auth = NodeAuthenticator(self.ctx, allow)
        self.auth.start()
        self.link = ZmqControlLink(name, loop, bind="tcp://127.0.0.1:0", peers=peers,
                                   context=self.ctx, identity=ident, peer_keys=peer_keys)
        self.got = []
        self.link.on_message = lambda p, t, pl: self.got.append((p, t, pl))
        self.link.start()

    def close(self):
        self.link.stop()
        self.auth.stop()
        self.ctx.term()


@pytest.fixture
def keys():
    return {n: CurveIdentity.generate() for n in ("A", "B", "C")}


@pytest.fixture
def pair(wall_loop, keys):
    allow = {n: k.public for n, k in keys.items()}
    a = Node("A", wall_loop, keys["A"], allow, {"B": None, "C": None}, {})
    b = Node("B", wall_loop, keys["B"], allow, {"A": a.link.address}, {"A": keys["A"].public})
    yield a, b
    b.close(); a.close()


class Intruder:
    """A foreign process: a bare CURVE DEALER speaking well-formed control envelopes."""

    def __init__(self, name, ident, server, server_key):
        self.ctx = zmq.Context()
        self.name = name
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.routing_id = name.encode()
        self.sock.curve_serverkey = server_key
        self.sock.curve_publickey = ident.public
        self.sock.curve_secretkey = ident.secret
        self.sock.connect(server)

    def send(self, msg_type, payload, seq=0):
        env = Envelope(Kind.DATA, self.name, "A", (1, 0), seq, msg_type, payload)
        self.sock.send(env.encode())

    def replies(self):
        out = []
        while self.sock.poll(0):
            out.append(self.sock.recv())
        return out

    def close(self):
        self.sock.close(0)
        self.ctx.term()


def test_configured_nodes_with_their_keys_talk(wall_loop, pair):
    a, b = pair
    b.link.send("A", "ruleset.install", {"id": "c1"})
    run_for(wall_loop, 2000, until=lambda: a.got and b.link.unacked("A") == 0)
    assert a.got == [("B", "ruleset.install", {"id": "c1"})]
    a.link.send("B", "ruleset.ack", {"id": "c1"})
    run_for(wall_loop, 2000, until=lambda: b.got)
    assert b.got == [("A", "ruleset.ack", {"id": "c1"})]


@pytest.mark.parametrize("who", ["unlisted", "wrong-key-for-B", "C-posing-as-B"])
def test_unauthenticated_or_wrongly_keyed_process_cannot_inject(wall_loop, pair, keys, who):
    a, b = pair
    if who == "unlisted":
        name, ident = "X", CurveIdentity.generate()
    elif who == "wrong-key-for-B":
        name, ident = "B", CurveIdentity.generate()
    else:                       # C's real, allowlisted key, but speaking as B
        name, ident = "B", keys["C"]
    evil = Intruder(name, ident, a.link.address, keys["A"].public)
    try:
        for seq in range(3):
            evil.send("ruleset.install", {"id": "evil"}, seq)
        run_for(wall_loop, 600, until=lambda: a.got)
        assert a.got == []
        if who == "C-posing-as-B":
            assert ("peer C: ruleset.install: envelope claims B->A but came from C to A"
                    in [str(e) for e in a.link.errors])
        else:
            assert a.auth.denied and a.auth.denied[-1] == ("control", ident.public)
        # the real B still gets through afterwards
        b.link.send("A", "ping", {})
        run_for(wall_loop, 2000, until=lambda: a.got)
        assert a.got == [("B", "ping", {})]
        if who != "C-posing-as-B":
            assert evil.replies() == []   # not even an ack or heartbeat comes back
    finally:
        evil.close()


def test_a_client_pinning_the_wrong_server_key_reaches_nothing(wall_loop, pair, keys):
    a, b = pair
    c = Intruder("C", keys["C"], a.link.address, CurveIdentity.generate().public)
    try:
        c.send("ping", {})
        run_for(wall_loop, 500)
        assert a.got == [] and c.replies() == [] and a.auth.denied == []
    finally:
        c.close()


def test_curve_link_refuses_to_start_without_a_zap_handler(wall_loop, keys):
    ctx = zmq.Context()
    try:
        link = ZmqControlLink("A", wall_loop, bind="tcp://127.0.0.1:0", peers={"B": None},
                              context=ctx, identity=keys["A"])
        with pytest.raises(ProtocolError, match="needs a ZAP authenticator"):
            link.start()
        with pytest.raises(ProtocolError, match="no CurveZMQ public key configured for B"):
            ZmqControlLink("A", wall_loop, bind="tcp://127.0.0.1:0", peers={"B": "tcp://x:1"},
                           context=ctx, identity=keys["A"])
    finally:
        ctx.term()


def test_herald_link_on_the_same_context_admits_only_allowlisted_keys(keys):
    from timing.frames import FrameType
    from timing.herald_link import CurveKeys, ZmqHeraldEndpoint
    ctx = zmq.Context()
    auth = NodeAuthenticator(ctx, {n: k.public for n, k in keys.items()})
    auth.start()
    other = zmq.Context()
    s = keys["B"]
    bsa = ZmqHeraldEndpoint("B", "A-B", bind="tcp://127.0.0.1:0", context=ctx,
                            curve=CurveKeys(s.public, s.secret))
    good = ZmqHeraldEndpoint("A", "A-B", connect={"B": bsa.address}, context=other,
                             curve=CurveKeys(keys["A"].public, keys["A"].secret,
                                             peer_public={"B": s.public}))
    rogue_id = CurveIdentity.generate()
    rogue = ZmqHeraldEndpoint("A", "A-B", connect={"B": bsa.address}, context=other,
                              curve=CurveKeys(rogue_id.public, rogue_id.secret,
                                              peer_public={"B": s.public}))
    got = []
    bsa.subscribe(FrameType.SYNC_REQUEST, lambda peer, f: got.append((peer, f.timestamp_ps)))
    try:
        import time
        deadline = time.monotonic() + 2
        sent = set()
        while time.monotonic() < deadline and not got:
            for ep, ts in ((good, 5), (rogue, 6)):
                if ts not in sent:
                    ep.send("B", FrameType.SYNC_REQUEST, 1, ts)
                    sent.add(ts)
            bsa.poll(20)
        bsa.poll(200)
        assert got == [("A", 5)]
        assert ("herald", rogue_id.public) in auth.denied
    finally:
        for ep in (good, rogue, bsa):
            ep.close()
        auth.stop()
        ctx.term(); other.term()


def test_keys_generate_cli_writes_loadable_keypairs(tmp_path):
    out = subprocess.run([sys.executable, "-m", "qnode_fw.cli.main", "keys", "generate",
                          str(tmp_path), "--nodes", "A,B"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ident = load_identity(tmp_path / "A.key_secret")
    allow = load_allowlist(tmp_path, ["A", "B"])
    assert allow["A"] == ident.public and allow["B"] != ident.public
    assert zmq.utils.z85.decode(ident.secret) and len(ident.secret) == 40
    assert (tmp_path / "A.key_secret").stat().st_mode & 0o077 == 0
    again = subprocess.run([sys.executable, "-m", "qnode_fw.cli.main", "keys", "generate",
                            str(tmp_path), "--nodes", "A"], capture_output=True, text=True)
    assert again.returncode == 0 and "kept existing" in again.stdout
    assert load_identity(tmp_path / "A.key_secret") == ident
    bad = subprocess.run([sys.executable, "-m", "qnode_fw.cli.main", "keys", "generate",
                          str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "--nodes or --testbed" in bad.stderr


def test_herald_sender_is_the_node_its_key_belongs_to_not_the_name_it_claims(keys):
    """An allowlisted node (C) that connects to a herald station calling itself A is C: its
    frames carry C as the sender, and the station's frames for A still reach A, not C."""
    import time

    from timing.frames import FrameType
    from timing.herald_link import CurveKeys, ZmqHeraldEndpoint
    ctx = zmq.Context()
    auth = NodeAuthenticator(ctx, {n: k.public for n, k in keys.items()})
    auth.start()
    other = zmq.Context()
    s = keys["B"]
    station = ZmqHeraldEndpoint("B", "A-B", bind="tcp://127.0.0.1:0", context=ctx,
                                curve=CurveKeys(s.public, s.secret))
    ends = {}
    for real, claims in (("A", "A"), ("C", "A")):
        ends[real] = ZmqHeraldEndpoint(claims, "A-B", connect={"B": station.address},
                                       context=other,
                                       curve=CurveKeys(keys[real].public, keys[real].secret,
                                                       peer_public={"B": s.public}))
    got, back = [], {"A": [], "C": []}
    station.subscribe(FrameType.SYNC_REQUEST, lambda peer, f: got.append((peer, f.timestamp_ps)))
    for real, ep in ends.items():
        ep.subscribe(FrameType.SYNC_REPLY, lambda peer, f, real=real: back[real].append(f.attempt_id))
    try:
        deadline = time.monotonic() + 3
        ends["A"].send("B", FrameType.SYNC_REQUEST, 1, 5)
        ends["C"].send("B", FrameType.SYNC_REQUEST, 1, 6)
        while time.monotonic() < deadline and len(got) < 2:
            station.poll(20)
        assert sorted(got) == [("A", 5), ("C", 6)]
        station.send("A", FrameType.SYNC_REPLY, 77, 0)
        while time.monotonic() < deadline and not back["A"]:
            for ep in ends.values():
                ep.poll(20)
        for ep in ends.values():
            ep.poll(100)
        assert back == {"A": [77], "C": []}
    finally:
        for ep in (*ends.values(), station):
            ep.close()
        auth.stop()
        ctx.term(); other.term()
