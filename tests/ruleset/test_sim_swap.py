"""3-node chain A–B–C on simulated QNICs, B swapping: in each of the four Bell-measurement
outcomes (chosen by scripting B's Born-rule draws), the pair A and C end with is exactly Φ+
after A's Pauli correction when the link pairs are perfect, and exactly the Werner state of
fidelity F1·F2 + (1−F1)(1−F2)/3 when they are Werner pairs. Heralds that report Φ−, Ψ+ or Ψ−
are corrected by the executor before the swap. Afterwards no node holds a qubit and every
simulated qubit is back in |0>, unentangled."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qnode_fw.bell import BellState
from qnode_fw.ruleset.builders import ChainTimers, chain_rulesets
from qnode_fw.units import MS

from sim_chain import BELL, SimChain, ScriptedUniform, bell_diagonal, draw_for, werner

B_ = BellState
PATH = ["A", "B", "C"]
# Millisecond discard timers: a BSM on the NV memory takes about 0.5 ms before its result leaves.
TIMERS = ChainTimers(swap_base_ps=20 * MS, step_ps=20 * MS, wait_margin_ps=10 * MS,
                     purify_ps=15 * MS)


def swap_sets():
    return chain_rulesets(PATH, ruleset_id="swap3", connection="A-C", timers=TIMERS,
                          one_way_latency_ps=lambda a, b: 1_000_000)


def run_one_swap(m_a: int, m_b: int, heralds, f1: float = 1.0, f2: float = 1.0) -> SimChain:
    """B's BSM measures its A-side qubit (after H) first, then its C-side qubit."""
    chain = SimChain(PATH, swap_sets(),
                     qnic_rngs={"B": ScriptedUniform([draw_for(m_a), draw_for(m_b)])})
    chain.herald(0, werner(f1), declared=heralds[0])
    chain.herald(1, werner(f2), declared=heralds[1])
    chain.loop.run_until_idle()
    return chain


OUTCOMES = list(itertools.product((0, 1), repeat=2))


@pytest.mark.parametrize("m_a, m_b", OUTCOMES)
@pytest.mark.parametrize("heralds", [(B_.PHI_PLUS, B_.PHI_PLUS), (B_.PSI_MINUS, B_.PHI_MINUS),
                                     (B_.PSI_PLUS, B_.PSI_MINUS), (B_.PHI_MINUS, B_.PSI_PLUS)])
def test_each_bsm_outcome_ends_in_phi_plus(m_a: int, m_b: int, heralds) -> None:
    chain = run_one_swap(m_a, m_b, heralds)
    # The outcome really was the one scripted: the frame B sent to A is (x, z) = (m_b, m_a)
    # (Z^m_a then X^m_b at A), and C gets none.
    frames = {dst: wire["frame"] for _, src, dst, wire in chain.wire("SwapResult")}
    assert frames == {"A": [m_b, m_a], "C": [0, 0]}
    (pair,) = chain.end_pairs
    assert (pair.first.node, pair.last.node) == ("A", "C")
    phi = BELL[B_.PHI_PLUS]
    assert np.real(phi.conj() @ pair.rho @ phi) == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(pair.rho, np.outer(phi, phi.conj()), atol=1e-9)
    assert pair.estimates == (1.0, 1.0)
    assert chain.held() == {} and chain.unclean_qubits() == []
    assert chain.bus.errors == []


@pytest.mark.parametrize("m_a, m_b", OUTCOMES)
def test_werner_links_swap_to_the_werner_closed_form_in_every_outcome(m_a: int, m_b: int) -> None:
    f1, f2 = 0.95, 0.8
    expected = f1 * f2 + (1 - f1) * (1 - f2) / 3
    chain = run_one_swap(m_a, m_b, (B_.PHI_PLUS, B_.PSI_PLUS), f1, f2)
    (pair,) = chain.end_pairs
    # The whole state, not only its fidelity: swapping Werner pairs gives a Werner pair.
    assert np.allclose(pair.rho, bell_diagonal(werner(expected)), atol=1e-9)
    assert pair.estimates == pytest.approx((expected, expected), abs=1e-12)
    assert chain.held() == {} and chain.unclean_qubits() == []


def test_unscripted_outcomes_cover_all_four_and_every_pair_is_phi_plus() -> None:
    """Seeded Born-rule draws over many swaps: all four outcomes occur, each ends in Φ+."""
    chain = SimChain(PATH, swap_sets(), seed=5)
    for _ in range(24):
        chain.herald(0, declared=B_.PSI_MINUS)
        chain.herald(1, declared=B_.PHI_MINUS)
        chain.run_for(2 * MS)
    chain.loop.run_until_idle()
    frames = [tuple(w["frame"]) for _, _, dst, w in chain.wire("SwapResult") if dst == "A"]
    assert len(chain.end_pairs) == 24 == len(frames)
    assert set(frames) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    phi = BELL[B_.PHI_PLUS]
    for pair in chain.end_pairs:
        assert np.real(phi.conj() @ pair.rho @ phi) == pytest.approx(1.0, abs=1e-9)
    assert chain.held() == {} and chain.unclean_qubits() == []
