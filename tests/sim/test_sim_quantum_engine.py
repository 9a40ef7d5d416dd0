"""The density-matrix engine against textbook states, Born-rule statistics and closed-form decay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnode_fw.bell import BellState
from sim_backend.quantum import Decoherence, QuantumRegistry, QubitKey
from sim_backend.quantum import operators as ops

A = QubitKey("A", 0, 0)
B = QubitKey("B", 0, 0)
C = QubitKey("C", 0, 0)


def registry(*keys, decoherence=None):
    reg = QuantumRegistry()
    for k in keys:
        reg.add(k, decoherence, at_ps=0)
    return reg


def ket(*amplitudes):
    v = np.array(amplitudes, dtype=complex)
    return v / np.linalg.norm(v)


def three_sigma(p, n):
    return 3 * math.sqrt(p * (1 - p) / n)


def test_new_qubit_is_ground_state_and_hadamard_makes_plus():
    reg = registry(A)
    assert np.allclose(reg.density_matrix([A]), np.diag([1, 0]))
    reg.apply("H", [A])
    plus = ket(1, 1)
    assert np.allclose(reg.density_matrix([A]), np.outer(plus, plus))
    reg.apply("S", [A])  # |+> -> |+i>
    assert reg.probability(A, "Y") == pytest.approx(1.0)
    reg.apply("SDG", [A])
    assert reg.probability(A, "X") == pytest.approx(1.0)


@pytest.mark.parametrize("gate, expected", [
    ("X", ket(0, 1)), ("Y", ket(0, 1j)), ("Z", ket(1, 0)), ("I", ket(1, 0)),
])
def test_paulis_on_ground_state(gate, expected):
    reg = registry(A)
    reg.apply(gate, [A])
    assert np.allclose(reg.density_matrix([A]), np.outer(expected, expected.conj()))


def test_hadamard_cnot_makes_phi_plus_across_two_groups_and_merges_them():
    reg = registry(A, B)
    assert not reg.is_entangled_with(A, B)
    reg.apply("H", [A])
    reg.apply("CNOT", [A, B])
    assert reg.is_entangled_with(A, B)
    assert reg.bell_fidelity(A, B, BellState.PHI_PLUS) == pytest.approx(1.0)
    # control/target order matters: CNOT(B, A) on |+>|0> leaves a product state
    reg2 = registry(A, B)
    reg2.apply("H", [A])
    reg2.apply("CNOT", [B, A])
    assert np.allclose(reg2.density_matrix([A, B]), np.kron(np.full((2, 2), 0.5), np.diag([1, 0])))


def test_cz_equals_h_cnot_h():
    reg = registry(A, B)
    reg.apply("H", [A])
    reg.apply("H", [B])
    reg.apply("CZ", [A, B])
    reg.apply("H", [B])  # CZ on |++> then H on B = CNOT on |+0> = Φ+
    assert reg.bell_fidelity(A, B, BellState.PHI_PLUS) == pytest.approx(1.0)


@pytest.mark.parametrize("state", list(BellState))
def test_create_each_bell_state(state):
    reg = registry(A, B)
    reg.create_bell_pair(A, B, state)
    for other in BellState:
        assert reg.bell_fidelity(A, B, other) == pytest.approx(1.0 if other == state else 0.0, abs=1e-12)
    # reduced states of a maximally entangled pair are maximally mixed
    assert np.allclose(reg.density_matrix([A]), np.eye(2) / 2)


def test_werner_state_weights_and_reverse_key_order():
    reg = registry(A, B)
    reg.create_bell_pair(A, B, BellState.PSI_MINUS, fidelity=0.7)
    assert reg.bell_fidelity(A, B, BellState.PSI_MINUS) == pytest.approx(0.7)
    assert reg.bell_fidelity(A, B, BellState.PHI_PLUS) == pytest.approx(0.1)
    # Ψ− is antisymmetric and Ψ+ symmetric: swapping the key order keeps both weights
    assert reg.bell_fidelity(B, A, BellState.PSI_MINUS) == pytest.approx(0.7)


def test_born_rule_statistics_for_a_rotated_qubit():
    theta = 1.1
    ry = np.array([[math.cos(theta / 2), -math.sin(theta / 2)], [math.sin(theta / 2), math.cos(theta / 2)]])
    rng = np.random.default_rng(11)
    n = 4000
    ones = 0
    for _ in range(n):
        reg = registry(A)
        reg.apply(ry, [A])
        ones += reg.measure(A, "Z", rng)
    p1 = math.sin(theta / 2) ** 2
    assert abs(ones / n - p1) < three_sigma(p1, n)


@pytest.mark.parametrize("state, basis, correlation", [
    (BellState.PHI_PLUS, "Z", +1), (BellState.PHI_PLUS, "X", +1), (BellState.PHI_PLUS, "Y", -1),
    (BellState.PSI_MINUS, "Z", -1), (BellState.PSI_MINUS, "X", -1), (BellState.PSI_MINUS, "Y", -1),
    (BellState.PSI_PLUS, "Y", +1), (BellState.PHI_MINUS, "X", -1),
])
def test_bell_pair_measurements_collapse_the_partner(state, basis, correlation):
    rng = np.random.default_rng(5)
    firsts = []
    for _ in range(200):
        reg = registry(A, B)
        reg.create_bell_pair(A, B, state)
        a = reg.measure(A, basis, rng)
        firsts.append(a)
        # after the collapse the partner is in a definite eigenstate of the same basis
        expected_b = a if correlation > 0 else 1 - a
        assert reg.probability(B, basis) == pytest.approx(1.0 if expected_b == 0 else 0.0, abs=1e-12)
        assert reg.measure(B, basis, rng) == expected_b
        assert not reg.is_entangled_with(A, B)
    assert abs(np.mean(firsts) - 0.5) < three_sigma(0.5, 200)


def test_reset_breaks_entanglement_and_leaves_partner_mixed():
    reg = registry(A, B)
    reg.create_bell_pair(A, B, BellState.PHI_PLUS)
    reg.reset(A)
    assert np.allclose(reg.density_matrix([A]), np.diag([1, 0]))
    assert np.allclose(reg.density_matrix([B]), np.eye(2) / 2)


def test_depolarising_two_qubit_channel_gives_werner_fidelity():
    reg = registry(A, B)
    reg.create_bell_pair(A, B)
    reg.depolarize([A, B], 0.2)
    # (1-p)|Φ+><Φ+| + p I/4 has fidelity 1 - p + p/4
    assert reg.bell_fidelity(A, B) == pytest.approx(1 - 0.2 + 0.2 / 4)
    reg1 = registry(A, B)
    reg1.create_bell_pair(A, B)
    reg1.depolarize([A], 0.2)
    # one-qubit depolarising: Φ+ survives with 1 - 3p/4
    assert reg1.bell_fidelity(A, B) == pytest.approx(1 - 0.75 * 0.2)


@pytest.mark.parametrize("t_over_t2", [0.1, 0.5, 1.0, 3.0])
def test_stored_pair_dephasing_matches_exp_decay(t_over_t2):
    t2 = 10_000_000  # 10 us
    reg = registry(A, B, decoherence=Decoherence(t1_ps=math.inf, t2_ps=t2))
    reg.create_bell_pair(A, B, at_ps=0)
    t = int(t_over_t2 * t2)
    # each qubit's coherence decays as exp(-t/T2), so <00|rho|11> decays as exp(-2t/T2)
    assert reg.bell_fidelity(A, B, at_ps=t) == pytest.approx((1 + math.exp(-2 * t / t2)) / 2, rel=1e-9)


def test_lazy_decoherence_is_the_same_whether_touched_often_or_once():
    d = Decoherence(t1_ps=50_000_000, t2_ps=30_000_000)
    once = registry(A, B, decoherence=d)
    often = registry(A, B, decoherence=d)
    for reg in (once, often):
        reg.create_bell_pair(A, B, at_ps=0)
    for t in range(1_000_000, 20_000_001, 1_000_000):
        often.advance([A], at_ps=t)
    f_once = once.bell_fidelity(A, B, at_ps=20_000_000)
    f_often = often.bell_fidelity(A, B, at_ps=20_000_000)
    assert f_once == pytest.approx(f_often, rel=1e-12)


def test_amplitude_damping_population_and_coherence():
    t1 = 40_000_000
    d = Decoherence(t1_ps=t1, t2_ps=2 * t1)  # T2 at its bound: no pure dephasing
    reg = registry(A, B, decoherence=d)
    reg.apply("X", [A], at_ps=0)
    reg.apply("H", [B], at_ps=0)
    t = 25_000_000
    assert 1 - reg.probability(A, "Z", at_ps=t) == pytest.approx(math.exp(-t / t1), rel=1e-9)
    # <X> = 2 Re rho01 = exp(-t/(2 T1))
    assert 2 * reg.probability(B, "X", at_ps=t) - 1 == pytest.approx(math.exp(-t / (2 * t1)), rel=1e-9)


def test_t2_above_twice_t1_is_refused():
    with pytest.raises(ValueError, match="physical bound"):
        Decoherence(t1_ps=10, t2_ps=21)


def test_uhlmann_fidelity_reduces_to_overlap_for_pure_target():
    rho = ops.werner_state(0.8)
    assert ops.fidelity(rho, ops.bell_projector(BellState.PHI_PLUS)) == pytest.approx(0.8)
    assert ops.fidelity(rho, rho) == pytest.approx(1.0)
