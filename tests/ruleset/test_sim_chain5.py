"""5-node chain A–B–C–D–E on simulated QNICs: link-level purification, nested swapping (B and D,
then C), delivery at A and E, and teardown.

Closed form for the delivered state. With Pauli labels (x, z) (Φ+ = (0,0), Φ− = (0,1),
Ψ+ = (1,0), Ψ− = (1,1)), swapping Bell-diagonal pairs with weights w1, w2 and applying the frame
correction leaves the Bell-diagonal state w(u) = Σ_{v} w1(v) w2(u ⊕ v) (Pauli labels add), whatever
the outcome; for Werner pairs this is F' = F1F2 + (1−F1)(1−F2)/3. A purified link pair is the
bilateral-CNOT output of :mod:`test_sim_purification` (BBPSSW on Werner pairs). A BBPSSW round
leaves a Bell-diagonal pair that is not Werner (its Φ− weight 2Fq/p stands out), so the Werner
swap formula applied to BBPSSW fidelities is only the estimate the executor carries; the exact
state follows the Bell-diagonal composition. Both are checked: the state against the exact
composition, the executor's estimate against the Werner composition.

Ideal memories make every delivered pair's state deterministic, so the check is exact (1e-9);
the statistics are in which pairs survive purification.
"""

from __future__ import annotations

import numpy as np
import pytest

from qnode_fw.ruleset.builders import ChainTimers, chain_rulesets
from qnode_fw.units import MS

from sim_chain import SimChain, bell_weights, werner
from test_sim_purification import LABEL, bcnot_round

PATH = ["A", "B", "C", "D", "E"]
TIMERS = ChainTimers(swap_base_ps=20 * MS, step_ps=20 * MS, wait_margin_ps=10 * MS,
                     purify_ps=15 * MS)
LINK_F = (0.95, 0.9, 0.85, 0.92)


def swap_weights(w1, w2) -> np.ndarray:
    out = np.zeros(4)
    for (x1, z1), i in LABEL.items():
        for (x2, z2), j in LABEL.items():
            out[LABEL[(x1 ^ x2, z1 ^ z2)]] += w1[i] * w2[j]
    return out


def werner_swap(f1: float, f2: float) -> float:
    return f1 * f2 + (1 - f1) * (1 - f2) / 3


def bbpssw_fidelity(f: float) -> float:
    q = (1 - f) / 3
    return (f * f + q * q) / (f * f + 2 * f * q + 5 * q * q)


def chain_sets(rounds: int):
    return chain_rulesets(PATH, ruleset_id="chain5", connection="A-E", purification_rounds=rounds,
                          timers=TIMERS, one_way_latency_ps=lambda a, b: 1_000_000)


def feed(chain: SimChain, batches: int, per_link: int, period_ps: int = 2 * MS) -> None:
    for _ in range(batches):
        for link, f in enumerate(LINK_F):
            for _ in range(per_link):
                chain.herald(link, werner(f))
        chain.run_for(period_ps)


@pytest.mark.parametrize("rounds", [0, 1])
def test_nested_swapping_with_link_purification_delivers_closed_form_pairs(rounds: int) -> None:
    if rounds:
        links = [bcnot_round(werner(f), werner(f))[1] for f in LINK_F]
        est = [bbpssw_fidelity(f) for f in LINK_F]
    else:
        links = [np.array(werner(f)) for f in LINK_F]
        est = list(LINK_F)
    # Nesting as the builder bisects: (A-B ∘ B-C) at B, (C-D ∘ D-E) at D, then the two at C.
    exact = swap_weights(swap_weights(links[0], links[1]), swap_weights(links[2], links[3]))
    estimate = werner_swap(werner_swap(est[0], est[1]), werner_swap(est[2], est[3]))
    if not rounds:
        assert exact[0] == pytest.approx(estimate, abs=1e-15)  # Werner in, Werner out

    batches = 40
    chain = SimChain(PATH, chain_sets(rounds), seed=7 + rounds)
    feed(chain, batches, per_link=1 + rounds)
    chain.loop.run_until_idle()

    swaps = chain.wire("SwapResult")
    assert {src for _, src, _, _ in swaps} == {"B", "C", "D"}
    # Purification survivors combine across batches; with every link's success probability
    # p_i each batch gives at least Π p_i end-to-end pairs on average. Loose floor only.
    p_all = np.prod([bcnot_round(werner(f), werner(f))[0] for f in LINK_F]) if rounds else 1.0
    assert len(chain.end_pairs) >= 0.6 * p_all * batches
    for pair in chain.end_pairs:
        assert (pair.first.node, pair.last.node) == ("A", "E")
        assert bell_weights(pair.rho) == pytest.approx(exact, abs=1e-9)
        assert pair.estimates == pytest.approx((estimate, estimate), abs=1e-12)
    # Both halves of every pair were delivered; nothing is left anywhere.
    assert chain.waiting == {} and chain.held() == {} and chain.unclean_qubits() == []
    assert chain.bus.errors == []


@pytest.mark.parametrize("at_ps", [300_000_000, 700_000_000, 1_200_000_000, 1_700_000_000])
def test_teardown_frees_every_qubit_on_every_node_and_in_the_simulated_state(at_ps: int) -> None:
    """Teardown mid-flight (purifying, waiting for swap results, results on the wire): every
    executor gives back all it held, the simulated qubits are all |0> and unentangled, and late
    messages and heralds for the connection are refused or freed, never acted on."""
    chain = SimChain(PATH, chain_sets(1), seed=11)
    feed(chain, 3, per_link=2)
    for link, f in enumerate(LINK_F):
        chain.herald(link, werner(f))
        chain.herald(link, werner(f))
    chain.run_for(at_ps)                    # into the batch: 0.3 ms purifying … 1.7 ms level 2
    held_before = chain.held()
    assert held_before, "teardown must find qubits to free"
    freed = {n: set(ex.teardown("chain5")) for n, ex in chain.executors.items()}
    assert {n: q for n, q in freed.items() if q} == held_before
    assert chain.held() == {}
    chain.release_unmatched()   # halves the application owns
    assert chain.unclean_qubits() == []
    # Whatever was in flight arrives at torn-down RuleSets and is refused; new heralds on the
    # connection's links are not assigned and their qubits are freed at once.
    for link, f in enumerate(LINK_F):
        chain.herald(link, werner(f))
    chain.loop.run_until_idle()
    assert all("torn down" in str(e) for e in chain.bus.errors)
    assert chain.held() == {} and chain.unclean_qubits() == []
    assert all(ex.stats["unassigned"] >= 1 for ex in chain.executors.values())
