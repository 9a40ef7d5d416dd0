"""SimQNIC: the QNIC interface over the engine (roles, errors, move, emission, decoherence by clock)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.qnic import Basis, Gate, QubitRole
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import InstrumentError
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, US
from sim_backend.memory_params import MemoryParams
from sim_backend.qnic import SimQNIC
from sim_backend.quantum import QuantumRegistry


def make(num_qubits=3, params=None, comm=None, node="A", clock=None, registry=None, seed=1, streams=None):
    clock = clock or VirtualClock()
    registry = registry or QuantumRegistry()
    rng = (streams or RandomStreams(seed)).get(f"node:{node}/qnic:0")
    q = SimQNIC("qnic0", node, 0, num_qubits, registry, clock, rng,
                params=params or MemoryParams.ideal(), communication_qubits=comm)
    return q, clock, registry


def test_identity_roles_and_keys():
    q, _, reg = make(3, comm=[0])
    assert q.qnic_address == 0 and q.num_qubits == 3
    assert q.role(0) is QubitRole.COMMUNICATION and q.role(2) is QubitRole.STORAGE
    assert q.key(1) in reg
    assert "SimQNIC" in q.identify()


def test_bell_circuit_through_the_interface():
    q, _, reg = make(2)
    q.gate(Gate.H, 0)
    q.gate(Gate.CNOT, 0, 1)
    assert reg.bell_fidelity(q.key(0), q.key(1), BellState.PHI_PLUS) == pytest.approx(1.0)
    a = q.measure(0, Basis.X)
    assert q.measure(1, Basis.X) == a


def test_bad_input_names_resource_and_command():
    q, _, _ = make(2, comm=[0])
    with pytest.raises(InstrumentError, match=r"sim://A/qnic0.*out of range") as err:
        q.gate(Gate.X, 5)
    assert err.value.command == "X 5"
    with pytest.raises(InstrumentError, match="takes 2 qubit"):
        q.gate(Gate.CNOT, 0)
    with pytest.raises(InstrumentError, match="storage qubit and cannot emit"):
        q.emit(1, attempt_id=7)
    with pytest.raises(InstrumentError, match="not a storage qubit"):
        q.move(1, 0)


def test_gate_error_depolarises_with_configured_probability():
    params = MemoryParams(math.inf, math.inf, math.inf, math.inf, 0.0, 0.1, 0.0, 0.0)
    q, _, reg = make(2, params=params)
    q.gate(Gate.H, 0)
    q.gate(Gate.CNOT, 0, 1)
    assert reg.bell_fidelity(q.key(0), q.key(1)) == pytest.approx(1 - 0.1 + 0.1 / 4)


def test_measurement_error_rate():
    params = MemoryParams(math.inf, math.inf, math.inf, math.inf, 0.0, 0.0, 0.05, 0.0)
    q, _, _ = make(1, params=params)
    n = 4000
    wrong = 0
    for _ in range(n):
        q.init(0)
        wrong += q.measure(0)
    assert abs(wrong / n - 0.05) < 3 * math.sqrt(0.05 * 0.95 / n)


def test_move_carries_the_pair_into_storage_with_its_error():
    params = MemoryParams(math.inf, math.inf, math.inf, math.inf, 0.0, 0.0, 0.0, 0.08)
    a, clock, reg = make(2, params=params, comm=[0], node="A")
    b, _, _ = make(1, params=MemoryParams.ideal(), node="B", clock=clock, registry=reg)
    reg.create_bell_pair(a.key(0), b.key(0), BellState.PSI_PLUS)
    a.move(0, 1)
    assert reg.bell_fidelity(a.key(1), b.key(0), BellState.PSI_PLUS) == pytest.approx(1 - 0.75 * 0.08)
    assert np.allclose(reg.density_matrix([a.key(0)]), np.diag([1, 0]))


def test_stored_pair_decays_with_storage_t2_on_the_node_clock():
    t2 = 13 * MS
    params = MemoryParams(math.inf, math.inf, math.inf, t2, 0.0, 0.0, 0.0, 0.0)
    a, clock, reg = make(2, params=params, comm=[0], node="A")
    b, _, _ = make(1, params=MemoryParams.ideal(), node="B", clock=clock, registry=reg)
    reg.create_bell_pair(a.key(0), b.key(0), at_ps=0)
    a.move(0, 1)
    clock.advance_to(10 * MS)
    b.gate(Gate.I, 0)
    # only A's storage qubit dephases: coherence exp(-t/T2)
    assert reg.bell_fidelity(a.key(1), b.key(0), at_ps=clock.now_ps()) == \
        pytest.approx((1 + math.exp(-10 * MS / t2)) / 2, rel=1e-9)


def test_emit_notifies_listeners_and_leaves_the_qubit_mixed():
    q, clock, reg = make(1)
    seen = []
    q.emission_listeners.append(seen.append)
    clock.advance_to(5 * US)
    q.emit(0, attempt_id=42)
    assert [(e.key, e.attempt_id, e.time_ps) for e in seen] == [(q.key(0), 42, 5 * US)]
    assert np.allclose(reg.density_matrix([q.key(0)]), np.eye(2) / 2)


def test_durations_by_operation_class():
    q, _, _ = make(1)
    d = q.params.durations_ps
    assert q.duration_ps("CNOT") == d["two_qubit_gate"]
    assert q.duration_ps(Gate.H) == d["single_qubit_gate"]
    assert q.duration_ps("measure") == 3_700_000
    with pytest.raises(InstrumentError, match="unknown operation"):
        q.duration_ps("teleport")


def test_same_seed_same_outcomes_and_streams_are_independent():
    def outcomes(seed, extra):
        streams = RandomStreams(seed)
        if extra:  # another instrument taking and using its own stream first must not change this one
            streams.get("node:Z/qnic:9").random(100)
        q, _, reg = make(1, streams=streams)
        out = []
        for _ in range(64):
            q.init(0)
            q.gate(Gate.H, 0)
            out.append(q.measure(0))
        return out

    assert outcomes(9, False) == outcomes(9, True)
    assert outcomes(9, False) != outcomes(10, False)
