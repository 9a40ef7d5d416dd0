"""Each simulated instrument, opened through the driver registry as `model: sim`, passes the same
interface conformance checks as the real drivers (drivers/conformance/)."""

from __future__ import annotations

import pytest

from drivers.conformance import CHECKS, LIMITS
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import ConfigError
from qnode_fw.rng import RandomStreams
from sim_backend.world import World


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_sim_instrument_conformance(kind):
    clock = VirtualClock()
    context = DriverContext(clock=clock, streams=RandomStreams(1), world=World(clock, RandomStreams(1)))
    inst = open_instrument(InstrumentSpec("x", kind, "sim", "sim", LIMITS[kind]), context)
    assert inst.model == "sim" and inst.kind == kind
    CHECKS[kind](inst)


def test_sim_instruments_share_the_context_world():
    context = DriverContext(clock=VirtualClock(), streams=RandomStreams(1))
    src = open_instrument(InstrumentSpec("src", "pair_source", "sim", "sim"), context)
    tagger = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), context)
    qnic = open_instrument(InstrumentSpec("q", "qnic", "sim", "sim", options={"node": "A", "num_qubits": 3}), context)
    assert src.world is tagger.world is context.world
    assert qnic.registry is context.world.registry and qnic.num_qubits == 3


def test_bad_sim_options_name_the_field():
    context = DriverContext(clock=VirtualClock(), streams=RandomStreams(1))
    with pytest.raises(ConfigError, match=r"instruments\.tt\.options\.bogus"):
        open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim", options={"bogus": 1}), context)
    with pytest.raises(ConfigError, match=r"instruments\.q\.options\.node"):
        open_instrument(InstrumentSpec("q", "qnic", "sim", "sim"), context)
