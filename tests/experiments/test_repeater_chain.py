"""The 3-node memory repeater chain end to end on the virtual testbed, with ideal memories so
that every figure has a closed form: link success ½·η_a·η_b per joint attempt, delivered
fidelity the Werner swap of the links' fidelities (or, with one purification round, the
bilateral-CNOT map of Bell-diagonal weights, then the swap), tomography on the sacrificed pairs
within 3σ of it; no wrong pair, no leaked qubit."""

from __future__ import annotations

import numpy as np
import pytest

from exp_helpers import CONFIGS, run, transmission, within_binomial, write_experiment
from qnode_fw.records import load_run

LINK_F = 0.97            # link fidelity in configs/nodes/chain3/*.yaml
COLLECTION = 0.5
DETECTOR = 0.9
PHYSICS = {"collection_efficiency": COLLECTION,
           "detector": {"efficiency": DETECTOR, "dark_count_rate_hz": 0.0}}


def werner(f: float) -> np.ndarray:
    q = (1 - f) / 3
    return np.array([f, q, q, q])          # Phi+, Phi-, Psi+, Psi-


def bcnot_round(w: np.ndarray) -> np.ndarray:
    """Single selection on two copies of Bell-diagonal weights: the bit (Phi vs Psi) must agree,
    the phases multiply (Deutsch et al.'s map before any twirl)."""
    a, b, c, d = w
    n = (a + b) ** 2 + (c + d) ** 2
    return np.array([a * a + b * b, 2 * a * b, c * c + d * d, 2 * c * d]) / n


def swap(w1: np.ndarray, w2: np.ndarray) -> float:
    """Fidelity to Phi+ after an ideal swap of two Bell-diagonal pairs: the Paulis compose."""
    return float(np.dot(w1, w2))


def success_probability(km_each_side: float) -> float:
    eta = COLLECTION * transmission(km_each_side) * DETECTOR
    return 0.5 * eta * eta


def check_links(details: dict) -> None:
    for name, km in (("A-B", 1.0), ("B-C", 1.5)):
        link = details["links"][name]
        assert within_binomial(link["heralds"], link["joint_attempts"], success_probability(km)), link
        assert link["pairs_ready"][name[0]] == link["pairs_ready"][name[2]] == link["heralds"]


@pytest.mark.slow
def test_swapped_pairs_have_the_werner_swap_fidelity(tmp_path):
    exp = write_experiment(tmp_path, "chain-ideal", "repeater_chain", CONFIGS / "chain3-ideal.yaml",
                           0.03, {"min_fidelity": 0.8, "tomography_fraction": 1.0, "physics": PHYSICS},
                           seed=4)
    result = run(exp, tmp_path / "runs")
    s, d = result.summary, result.results.details
    expected = swap(werner(LINK_F), werner(LINK_F))          # = F^2 + (1 - F)^2 / 3
    assert expected == pytest.approx(LINK_F ** 2 + (1 - LINK_F) ** 2 / 3)
    assert d["plan"]["purification_rounds"] == 0 and d["plan"]["path"] == ["A", "B", "C"]
    assert s.pairs_delivered >= 50
    pairs = load_run(s.run_dir).arrays["pairs"]
    assert pairs.size == s.pairs_delivered
    np.testing.assert_allclose(pairs["fidelity_exact"], expected, atol=1e-9)
    assert abs(s.fidelity - expected) <= 3 * s.fidelity_stderr
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0
    assert d["unmatched_halves"] == 0
    check_links(d)
    # the rate is per simulated second of generation
    assert s.rate_hz == pytest.approx(s.pairs_delivered / d["generation_time_s"])


@pytest.mark.slow
def test_a_fidelity_above_swapping_alone_gets_one_purification_round(tmp_path):
    exp = write_experiment(tmp_path, "chain-purified", "repeater_chain", CONFIGS / "chain3-ideal.yaml",
                           0.03, {"min_fidelity": 0.95, "tomography_fraction": 1.0,
                                  "physics": {**PHYSICS, "max_pairs_per_link": 4}},
                           seed=5)
    result = run(exp, tmp_path / "runs")
    s, d = result.summary, result.results.details
    assert swap(werner(LINK_F), werner(LINK_F)) < 0.95       # swapping alone cannot reach it
    assert d["plan"]["purification_rounds"] == 1
    purified = bcnot_round(werner(LINK_F))
    expected = swap(purified, purified)
    assert expected > 0.95
    assert s.pairs_delivered >= 15
    pairs = load_run(s.run_dir).arrays["pairs"]
    np.testing.assert_allclose(pairs["fidelity_exact"], expected, atol=1e-9)
    assert abs(s.fidelity - expected) <= 3 * s.fidelity_stderr
    assert s.wrong_pairs == 0 and s.leaked_qubits == 0
    check_links(d)
