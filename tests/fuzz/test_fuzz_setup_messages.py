"""Fuzzing the connection-setup messages (cs.request, cs.rules, cs.confirm, cs.close) and the
RuleSet messages a node's control link hands to its handlers: real bodies captured from a
3-node setup, then mutated. A handler may only refuse with ProtocolError (the control link logs
and counts it); anything else would unwind the node's event loop."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from fuzz_inputs import fuzz, json_values, mutate
from qnode_fw.connection.qos import QoS
from qnode_fw.errors import ProtocolError
from sim_backend.chain_testbed import chain

_CAPTURED: dict[str, list[tuple[str, dict]]] = {}


def _capture() -> dict[str, list[tuple[str, dict]]]:
    """Bodies each node received while A set up a connection to C (captured once)."""
    if not _CAPTURED:
        tb = chain(3)
        for name, stack in tb.nodes.items():
            for t, h in list(stack.link._handlers.items()):
                def rec(p, t_, body, h=h, name=name):
                    _CAPTURED.setdefault(t_, []).append((name, copy.deepcopy(body)))
                    return h(p, t_, body)
                stack.link._handlers[t] = rec
        tb.start_links()
        tb.nodes["A"].manager.request(tb.nodes["C"].name, QoS(50, 0.8, count=2))
        tb.run(40)
    return _CAPTURED


def _deep_mutations(body: dict) -> st.SearchStrategy:
    """Mutate the body or one mapping nested one level inside it."""
    nested = [k for k, v in body.items() if isinstance(v, dict) and v]
    out = mutate(body)
    if nested:
        out = out | st.sampled_from(nested).flatmap(
            lambda k: mutate(body[k]).map(lambda sub: {**body, k: sub}))
    return out


def _fresh_node():
    tb = chain(3)
    tb.nodes["A"].manager.request(tb.nodes["C"].name, QoS(50, 0.8, count=2))
    tb.run(1)     # the request is on its way: B and C know the connection id
    return tb


def _fuzz(msg_type: str, body: dict, sender: str, receiver: str) -> None:
    tb = _fresh_node()
    handler = tb.nodes[receiver].link._handlers[msg_type]
    try:
        handler(sender, msg_type, body)
    except ProtocolError as exc:
        assert exc.peer in (sender, None) or exc.msg_type
    tb.run(5)     # whatever the handler scheduled runs without raising


def _strategy(msg_type: str) -> st.SearchStrategy:
    seen = _capture()[msg_type]
    return st.sampled_from(seen).flatmap(
        lambda nb: st.tuples(st.just(nb[0]), _deep_mutations(nb[1]) | json_values.filter(
            lambda v: isinstance(v, dict))))


NEIGHBOUR = {"A": "B", "B": "A", "C": "B"}


@fuzz(40)
@given(case=st.sampled_from(["cs.request", "cs.rules", "cs.confirm", "cs.close", "rs.msg"])
       .flatmap(lambda t: st.tuples(st.just(t), _strategy(t))))
def test_setup_and_ruleset_handlers_only_refuse_with_protocol_error(case):
    msg_type, (receiver, body) = case
    _fuzz(msg_type, body, NEIGHBOUR[receiver], receiver)
