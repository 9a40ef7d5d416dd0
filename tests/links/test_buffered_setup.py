"""A minimal repeater tells the Responder which side it buffers: the hop report's ``buffers``.

The outbound pass carries it (optional on the wire: a node that buffers nothing may leave it out,
as nodes before it did); a value that is not a node address is a malformed report. The end-to-end
path (the Responder writing ``buffered_chain_rulesets`` and the chain delivering through the
buffer) runs in tests/experiments/test_minimal_repeater_yaml.py.
"""

from __future__ import annotations

import pytest

from qnode_fw.connection.planner import HopReport
from qnode_fw.routing import LinkFigures


def test_hop_report_carries_the_buffered_neighbour_and_reads_reports_without_it():
    hop = HopReport("B", 2, 10**12, LinkFigures(1000.0, 0.92, 0), 9_100_000, buffers="A")
    wire = hop.to_wire()
    assert wire["buffers"] == "A"
    assert HopReport.from_wire(wire) == hop
    del wire["buffers"]
    assert HopReport.from_wire(wire).buffers is None


def test_a_hop_report_whose_buffers_is_not_an_address_is_malformed():
    wire = HopReport("B", 2, 10**12, None, 0).to_wire()
    wire["buffers"] = 3
    with pytest.raises(TypeError):
        HopReport.from_wire(wire)
