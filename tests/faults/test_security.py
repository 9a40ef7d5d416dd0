"""Security properties of issue 10 that need no testbed runner: replayed swap results are
refused, replayed control envelopes are never delivered twice, and no remote message can raise
an instrument's safety limits (no message type touches them; payloads that try are refused)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drivers.limits import SafetyLimits
from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.connection.qos import QoS, Reason
from qnode_fw.control import Impairments, InProcessNetwork, LinkSettings
from qnode_fw.errors import ProtocolError
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset.builders import chain_rulesets
from qnode_fw.ruleset.bus import InProcessBus
from qnode_fw.ruleset.executor import RuleSetExecutor
from qnode_fw.ruleset.messages import message_from_wire
from qnode_fw.units import MS, US
from sim_backend.chain_testbed import chain
from test_properties import Oracle, OracleQNIC


def swapped_chain():
    """A-B-C: one pair per link, B swaps; returns the executors, bus and B's SwapResult to A."""
    loop = EventLoop(VirtualClock())
    rng = np.random.default_rng(0)
    bus = InProcessBus(loop, rng)
    path = ["A", "B", "C"]
    sets = chain_rulesets(path, ruleset_id="c1", connection="c1")
    oracle, exs, got = Oracle(), {}, []
    for n in path:
        ex = RuleSetExecutor(n, loop, [OracleQNIC(n, oracle, rng)], send=None,
                             deliver=lambda e, n=n: got.append((n, e)))
        ex._send = bus.attach(n, ex.on_message)
        ex.install(sets[n], path)
        exs[n] = ex
    for i, (x, y) in enumerate((("A", "B"), ("B", "C"))):
        name = PairName(f"bsa{i}", 1000 + i)
        oracle.link((x, i), (y, 10 + i))
        exs[x].on_pair_ready(PairReady(QubitAddress(0, i), name, y, BellState.PHI_PLUS, "l", 0, 1000, 0.95))
        exs[y].on_pair_ready(PairReady(QubitAddress(0, 10 + i), name, x, BellState.PHI_PLUS, "l", 0, 1000, 0.95))
    loop.run_until(10**9)
    (wire,) = [w for _, src, dst, w in bus.log if w["type"] == "SwapResult" and dst == "A"]
    return exs, got, wire


def test_a_replayed_swap_result_is_refused_and_changes_nothing():
    exs, got, wire = swapped_chain()
    a = exs["A"]
    delivered = [e for n, e in got if n == "A"]
    assert len(delivered) == 1 and delivered[0].partner == "C"
    before = dict(a.stats)
    # The same message again (a duplicate in transit): counted, ignored.
    a.on_message("B", message_from_wire(dict(wire)))
    assert a.stats["duplicates"] == before["duplicates"] + 1
    # Replayed under a fresh sequence number: refused, naming the peer and the pair.
    with pytest.raises(ProtocolError, match=r"replayed SwapResult: pair .*B.* already assigned") as info:
        a.on_message("B", message_from_wire({**wire, "seq": wire["seq"] + 100}))
    assert info.value.peer == "B" and info.value.msg_type == "SwapResult"
    assert a.stats["rejected"] == before["rejected"] + 1
    assert [e for n, e in got if n == "A"] == delivered and a.held_qubits() == set()


def test_a_replayed_control_envelope_is_delivered_once():
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop, np.random.default_rng(0), Impairments(delay_ps=10 * US))
    settings = LinkSettings(heartbeat_ps=None)
    a, b = net.link("A", ["B"], settings), net.link("B", ["A"], settings, boot=5)
    captured, got = [], []
    original = b._transmit
    b._transmit = lambda peer, data: (captured.append(data), original(peer, data))
    a.on_message = lambda p, t, pl: got.append(pl)
    a.start(); b.start()
    b.send("A", "swap", {"n": 1})
    loop.run_until(1 * MS)
    for data in captured * 3:                   # replayed, again and again
        a._receive("B", data)
    b.stop(say_bye=False)
    b2 = net.link("B", ["A"], settings, boot=6)   # B restarts; old-boot traffic is stale
    b2.start()
    b2.send("A", "swap", {"n": 2})
    loop.run_until(2 * MS)
    for data in captured:
        a._receive("B", data)
    loop.run_until(3 * MS)
    assert got == [{"n": 1}, {"n": 2}]


def test_no_control_message_can_change_instrument_limits():
    tb = chain(3)
    handled = set().union(*(set(s.link._handlers) for s in tb.nodes.values()))
    # Every message type a node acts on; none of them reaches a driver.
    assert handled == {"cs.request", "cs.rules", "cs.confirm", "cs.close", "rs.msg"}
    limits = SafetyLimits({"pump_current_ma": (0, 60)})
    assert [n for n in dir(limits) if not n.startswith("_")] == ["check", "ranges"]
    with pytest.raises(TypeError):
        limits.ranges["pump_current_ma"] = (0, 1000)   # read-only: fixed at construction
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.ranges["pump_current_ma"].high = 1000


@pytest.mark.parametrize("where", ["top", "stage", "rule", "action"])
def test_a_ruleset_payload_carrying_limits_is_refused_at_install(where):
    tb = chain(3)
    a, c = tb.nodes["A"], tb.nodes["C"]
    evil = {"pump_current_ma": [0, 1000]}
    # C is the Responder: it writes every RuleSet. A compromised C adds limits to A's.
    original = c.link.send

    def tamper(peer, msg_type, payload):
        if msg_type == "cs.rules":
            rs = payload["rulesets"]["A"]
            target = {"top": rs, "stage": rs["stages"][0], "rule": rs["stages"][0]["rules"][0],
                      "action": rs["stages"][0]["rules"][0]["actions"][0]}[where]
            target["limits"] = evil
        return original(peer, msg_type, payload)

    c.link.send = tamper
    conn = a.manager.request("C", QoS(50, 0.8, count=1))
    tb.run(20)
    out = a.manager.outcomes[conn]
    assert not out.established and out.reason is Reason.RULESET_REFUSED and out.node == "A"
    assert "unknown" in out.detail and "limits" in out.detail
    assert a.executor.installed == {}


def test_a_ruleset_message_carrying_limits_is_refused():
    exs, _, wire = swapped_chain()
    with pytest.raises(ProtocolError, match=r"unknown field\(s\) \['limits'\]"):
        message_from_wire({**wire, "limits": {"amplitude_vpp": [0, 100]}})
