"""The QNIC conformance checks (drivers/conformance/qnic.py), unchanged, against the lab binding on each
AWG emulator with the fake Swabian tagger, and against the simulated QNIC; all opened through the
driver registry as a node would open them."""

from __future__ import annotations

import math

import pytest

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from drivers.conformance import QNIC_CHECKS
from qnic_lab_rig import open_lab_rig
from qnode_fw.clock import VirtualClock
from qnode_fw.rng import RandomStreams
from sim_backend.world import World

#: A noiseless simulated memory (the checks need certain outcomes).
IDEAL_MEMORY = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf,
                "storage_t1_ps": math.inf, "storage_t2_ps": math.inf,
                "single_qubit_gate_error": 0.0, "two_qubit_gate_error": 0.0,
                "measurement_error": 0.0, "move_error": 0.0}

IMPLEMENTATIONS = ["lab_binding-keysight_33500b", "lab_binding-tektronix_awg70k", "sim"]


@pytest.fixture(params=IMPLEMENTATIONS)
def qnic(request):
    if request.param == "sim":
        clock = VirtualClock()
        context = DriverContext(clock=clock, streams=RandomStreams(3), world=World(clock, RandomStreams(3)))
        spec = InstrumentSpec("qnic0", "qnic", "sim", "sim",
                              options={"node": "A", "num_qubits": 2, "communication_qubits": [0],
                                       "memory": IDEAL_MEMORY})
        yield open_instrument(spec, context)
        return
    rig = open_lab_rig(awg_model=request.param.split("-", 1)[1])
    yield rig.qnic
    rig.close()


@pytest.mark.parametrize("check", QNIC_CHECKS, ids=[c.__name__.removeprefix("check_") for c in QNIC_CHECKS])
def test_qnic_conformance(qnic, check):
    check(qnic)
