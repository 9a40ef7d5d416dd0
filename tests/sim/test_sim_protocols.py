"""Swapping and purification done with gates and measurements in the engine, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnode_fw.bell import BellState
from sim_backend.quantum import QuantumRegistry, QubitKey

A = QubitKey("A", 0, 0)
A2 = QubitKey("A", 0, 1)
B1 = QubitKey("B", 0, 0)
B2 = QubitKey("B", 0, 1)
C = QubitKey("C", 0, 0)


def fresh(*keys):
    reg = QuantumRegistry()
    for k in keys:
        reg.add(k)
    return reg


def swap_once(f1, f2, rng):
    reg = fresh(A, B1, B2, C)
    reg.create_bell_pair(A, B1, BellState.PHI_PLUS, f1)
    reg.create_bell_pair(B2, C, BellState.PHI_PLUS, f2)
    # Bell measurement at B: CNOT, H, two Z readouts
    reg.apply("CNOT", [B1, B2])
    reg.apply("H", [B1])
    m_z = reg.measure(B1, "Z", rng)
    m_x = reg.measure(B2, "Z", rng)
    # Pauli frame on the far end: X^m_x Z^m_z
    if m_x:
        reg.apply("X", [C])
    if m_z:
        reg.apply("Z", [C])
    return reg.bell_fidelity(A, C, BellState.PHI_PLUS), (m_z, m_x)


@pytest.mark.parametrize("f1, f2", [(1.0, 1.0), (0.9, 0.9), (0.95, 0.8), (0.6, 0.7)])
def test_werner_swap_fidelity_closed_form_in_every_outcome_branch(f1, f2):
    expected = f1 * f2 + (1 - f1) * (1 - f2) / 3
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(40):
        f, outcome = swap_once(f1, f2, rng)
        seen.add(outcome)
        assert f == pytest.approx(expected, abs=1e-12)
    assert seen == {(0, 0), (0, 1), (1, 0), (1, 1)}


def bilateral_cnot_round(reg, rng):
    """Both ends: CNOT from the kept pair (A, B1) onto the sacrificed pair (A2, B2), measure Z."""
    reg.apply("CNOT", [A, A2])
    reg.apply("CNOT", [B1, B2])
    ma = reg.measure(A2, "Z", rng)
    mb = reg.measure(B2, "Z", rng)
    return ma == mb


def test_bbpssw_success_probability_and_output_fidelity_for_werner_inputs():
    f = 0.9
    q = (1 - f) / 3
    p_expected = f * f + 2 * f * (1 - f) / 3 + 5 * q * q
    f_expected = (f * f + q * q) / p_expected
    assert p_expected == pytest.approx(0.8756, abs=5e-5)
    assert f_expected == pytest.approx(0.9264, abs=5e-5)
    rng = np.random.default_rng(17)
    n = 3000
    successes = 0
    for _ in range(n):
        reg = fresh(A, A2, B1, B2)
        reg.create_bell_pair(A, B1, BellState.PHI_PLUS, f)
        reg.create_bell_pair(A2, B2, BellState.PHI_PLUS, f)
        if bilateral_cnot_round(reg, rng):
            successes += 1
            assert reg.bell_fidelity(A, B1) == pytest.approx(f_expected, abs=1e-12)
    assert abs(successes / n - p_expected) < 3 * math.sqrt(p_expected * (1 - p_expected) / n)


def dejmps_expected(coeffs):
    """DEJMPS map (Deutsch et al. 1996) with the paper's labels A=Φ+, B=Ψ−, C=Ψ+, D=Φ−."""
    phi_p, phi_m, psi_p, psi_m = coeffs
    a, b, c, d = phi_p, psi_m, psi_p, phi_m
    n = (a + b) ** 2 + (c + d) ** 2
    out = {"PHI_PLUS": (a * a + b * b) / n, "PSI_MINUS": 2 * c * d / n,
           "PSI_PLUS": (c * c + d * d) / n, "PHI_MINUS": 2 * a * b / n}
    return n, out


@pytest.mark.parametrize("coeffs", [(0.8, 0.1, 0.06, 0.04), (0.7, 0.05, 0.05, 0.2), (0.6, 0.3, 0.05, 0.05)])
def test_dejmps_on_bell_diagonal_inputs(coeffs):
    p_expected, out_expected = dejmps_expected(coeffs)
    rng = np.random.default_rng(23)
    n = 1500
    successes = 0
    for _ in range(n):
        reg = fresh(A, A2, B1, B2)
        reg.create_bell_diagonal_pair(A, B1, coeffs)
        reg.create_bell_diagonal_pair(A2, B2, coeffs)
        # Alice: Rx(+π/2) = H S H; Bob: Rx(−π/2) = H S† H (up to global phases), on both qubits
        for k in (A, A2):
            reg.apply("H", [k]); reg.apply("S", [k]); reg.apply("H", [k])
        for k in (B1, B2):
            reg.apply("H", [k]); reg.apply("SDG", [k]); reg.apply("H", [k])
        if bilateral_cnot_round(reg, rng):
            successes += 1
            for state, weight in out_expected.items():
                assert reg.bell_fidelity(A, B1, BellState[state]) == pytest.approx(weight, abs=1e-12)
    assert abs(successes / n - p_expected) < 3 * math.sqrt(p_expected * (1 - p_expected) / n)
