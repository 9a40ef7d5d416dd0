"""Fuzzing the control-message decoders: the envelope, the RuleSet messages and the connection
setup messages, and the receive path of a control link. Whatever a peer sends, the only failure
is a ProtocolError naming the peer; a link never raises into its loop and its error log stays
bounded."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from fuzz_inputs import dumps, fuzz, json_values, mutate
from qnode_fw.clock import VirtualClock
from qnode_fw.control import InProcessNetwork, LinkSettings
from qnode_fw.control.envelope import Envelope, decode
from qnode_fw.errors import ProtocolError
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset.messages import message_from_wire

VALID_ENVELOPE = {"v": 1, "k": "data", "src": "B", "dst": "A", "st": [1, 0], "seq": 0,
                  "t": "rs.msg", "p": {}}
VALID_SWAP = {"type": "SwapResult", "v": 1, "ruleset_id": "c1", "tag": 1, "seq": 3, "sender": "B",
              "pair_name": ["bsa0", 10], "frame": [0, 1], "new_partner": "C",
              "new_pair_name": ["B", 99], "fidelity_estimate": 0.9, "created_ps": 5}
VALID_PURIFY = {"type": "PurificationResult", "v": 1, "ruleset_id": "c1", "tag": 2, "seq": 4,
                "sender": "B", "pair_name": ["bsa0", 10], "sacrificed": [["bsa0", 11]],
                "method": "single_x", "result": [1]}


def only_protocol_error(fn, *args):
    try:
        return fn(*args)
    except ProtocolError:
        return None


@fuzz(200)
@given(data=st.binary(max_size=300) | json_values.map(dumps)
       | mutate(VALID_ENVELOPE).map(dumps))
def test_envelope_decoder(data):
    env = only_protocol_error(decode, data, "B")
    if env is not None:
        assert isinstance(env, Envelope) and isinstance(env.payload, dict)
        assert decode(env.encode(), "B") == env   # what is accepted re-encodes to itself


def test_envelope_decoder_survives_deep_nesting():
    # A 1 MiB message is within the size limit and can nest 500 000 levels deep.
    for depth in (10_000, 500_000):
        body = b'{"v":1,"k":"data","src":"B","dst":"A","st":[1,0],"seq":0,"t":"x","p":' + \
            b'{"a":' * depth + b'1' + b'}' * depth + b'}'
        try:
            env = decode(body, "B")
        except ProtocolError as exc:
            assert exc.peer == "B" and "nested too deeply" in str(exc)
        else:
            assert depth < 100_000 and env.msg_type == "x"


@fuzz(200)
@given(wire=json_values | mutate(VALID_SWAP) | mutate(VALID_PURIFY))
def test_ruleset_message_decoder(wire):
    msg = only_protocol_error(message_from_wire, wire)
    if msg is not None:
        assert message_from_wire(json.loads(json.dumps(msg.to_wire()))) == msg


@fuzz(40)
@given(inputs=st.lists(st.binary(max_size=120) | mutate(VALID_ENVELOPE).map(dumps), max_size=30))
def test_control_link_receive_path_never_raises(inputs):
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop)
    got = []
    a = net.link("A", ["B"], LinkSettings(heartbeat_ps=None))
    a.on_message = lambda p, t, pl: got.append((p, t))
    a.start()
    for data in inputs:
        a._receive("B", data)        # as the transport hands over what B's socket delivered
    assert a.stats.refused + a.stats.acks_in + a.stats.heartbeats_in + a.stats.delivered \
        + a.stats.duplicates + a.stats.reordered <= len(inputs) + a.stats.delivered
    assert len(a.errors) <= 100 and len(a._peers["B"].rx_early) <= a.settings.receive_window
