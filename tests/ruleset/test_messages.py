"""Wire form of RuleSet messages: exact dicts, round trips, and typed errors naming the peer."""

from __future__ import annotations

import pytest

from qnode_fw.addresses import PairName
from qnode_fw.errors import ProtocolError
from qnode_fw.ruleset.messages import Notice, PurificationResult, SwapResult, message_from_wire


def test_swap_result_wire_form_is_exact() -> None:
    msg = SwapResult("rs", 4, 17, "B", PairName("bsa-AB", 1000), 1, 0, "C",
                     PairName("B", 2500), 0.81, 900)
    assert msg.to_wire() == {
        "type": "SwapResult", "v": 1, "ruleset_id": "rs", "tag": 4, "seq": 17, "sender": "B",
        "pair_name": ["bsa-AB", 1000], "frame": [1, 0], "new_partner": "C",
        "new_pair_name": ["B", 2500], "fidelity_estimate": 0.81, "created_ps": 900}
    assert message_from_wire(msg.to_wire()) == msg


def test_purification_result_and_notice_round_trip() -> None:
    p = PurificationResult("rs", 2, 3, "A", PairName("m", 1), (PairName("m", 2),), "SINGLE_X", (1,))
    assert p.to_wire()["sacrificed"] == [["m", 2]] and p.to_wire()["result"] == [1]
    assert message_from_wire(p.to_wire()) == p
    n = Notice("rs", -1, 0, "C", None, "done")
    assert n.to_wire()["pair_name"] is None
    assert message_from_wire(n.to_wire()) == n


@pytest.mark.parametrize("patch, words", [
    ({"frame": [2, 0]}, "frame"),
    ({"pair_name": ["x"]}, "pair name"),
    ({"seq": "1"}, "seq"),
    ({"v": 9}, "wire version"),
    ({"type": "Teleport"}, "unknown message type"),
    ({"fidelity_estimate": 1.5}, "fidelity_estimate"),
])
def test_malformed_messages_name_peer_and_type(patch, words) -> None:
    wire = SwapResult("rs", 4, 1, "B", PairName("x", 1), 0, 0, "C", PairName("B", 2), 0.5, 0).to_wire()
    wire.update(patch)
    with pytest.raises(ProtocolError) as info:
        message_from_wire(wire)
    assert info.value.peer == "B"
    assert words in str(info.value)


def test_missing_field_is_named() -> None:
    wire = Notice("rs", -1, 0, "C", None, "x").to_wire()
    del wire["text"]
    with pytest.raises(ProtocolError, match="missing field 'text'"):
        message_from_wire(wire)
