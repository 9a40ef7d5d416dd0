"""The switched minimal repeater of the QRNA paper's Figure 2 in a 3-node chain A - B - C.

B has one communication qubit, one storage qubit and a 1x2 optical switch. Its scheduler tries
the left link until a pair is heralded, its RuleSet moves the pair into storage, the switch turns
right (no attempt before the switching time has passed), it tries right until a pair is heralded,
swaps, and turns back. The chain delivers end-to-end pairs at the rate of that cycle's closed form:

    E[cycle] = T·c·(1/p_L − 1) + τ_LR + T·c·(1/p_R − 1) + τ_RL

with one attempt every c = ⌊busy/T⌋ + 1 slots (busy = 2·d + herald delay: the failure report's
round trip), τ_LR = T·⌈(busy + max(switching, move))/T⌉ (the herald arrives, the move and the switch
run in parallel, then the next slot) and τ_RL = T·⌈(busy + max(switching, BSM))/T⌉. The same chain
with two communication qubits at B (one per link, no switch, no move) runs in the same test:

    E[cycle] = T·c·(E[max(N_L, N_R)] − 1) + T·⌈(busy + BSM)/T⌉,

N geometric. Both are checked within 3σ (closed-form variances), and so is their ratio. Every
end-to-end pair has the Werner-swap fidelity of its inputs, the buffered one after the move's
depolarising error. The switch's own command log is checked against every attempt window."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from chain_harness import ChainSettings, build_chain
from qnode_fw.units import FIBRE_DELAY_PS_PER_KM, MS
from timing.switched import AttemptWindow, SwitchPolicy, SwitchPolicyKind, check_switch_log

S = ChainSettings()


def geometric_mean_var(p: float) -> tuple[float, float]:
    """Mean and variance of N - 1 for N ~ Geometric(p) on {1, 2, ...}."""
    return 1 / p - 1, (1 - p) / p ** 2


def max_of_two_geometric(p: float) -> tuple[float, float]:
    """Mean and variance of max(N_L, N_R) for independent Geometric(p), by their series."""
    q = 1 - p
    m = np.arange(0, 2000)
    tail = 1 - (1 - q ** m) ** 2  # P(max > m)
    mean = tail.sum()
    second = ((2 * m + 1) * tail).sum()
    return float(mean), float(second - mean ** 2)


def closed_forms():
    t = S.period_ps
    eta = S.physics.collection_efficiency * 10 ** (-0.2 * S.km_to_bsa / 10) * S.physics.detector.efficiency
    eta_switched = eta * 10 ** (-S.switch_loss_db / 10)
    busy = 2 * round(S.km_to_bsa * FIBRE_DELAY_PS_PER_KM) + S.herald_delay_ps
    c = busy // t + 1
    bsm = S.cnot_ps + S.h_ps + 2 * S.measure_ps
    slot = lambda d: t * math.ceil(d / t)  # noqa: E731
    p1 = 0.5 * eta * eta_switched
    mean_n, var_n = geometric_mean_var(p1)
    switched = (2 * t * c * mean_n + slot(busy + max(S.switching_time_ps, S.move_ps))
                + slot(busy + max(S.switching_time_ps, bsm)), 2 * (t * c) ** 2 * var_n)
    p2 = 0.5 * eta * eta
    mean_m, var_m = max_of_two_geometric(p2)
    two = (t * c * (mean_m - 1) + slot(busy + bsm), (t * c) ** 2 * var_m)
    return switched, two


def werner_swap(f1, f2):
    return f1 * f2 + (1 - f1) * (1 - f2) / 3


@pytest.mark.slow
def test_minimal_repeater_chain_rate_against_closed_form_and_two_transceivers():
    (mean1, var1), (mean2, var2) = closed_forms()
    f = S.physics.link_fidelity
    results = {}
    for repeater, run_ms, expected in (("switched", 30, (mean1, var1)), ("two_comm", 17, (mean2, var2))):
        chain = build_chain(repeater, seed=3)
        chain.run(run_ms * MS)
        cycles = np.diff(chain.swap_times())[1:]  # the first cycle starts from an idle chain
        n = len(cycles)
        assert n > 150
        sigma = math.sqrt(expected[1] / n)
        assert abs(cycles.mean() - expected[0]) <= 3 * sigma, (repeater, cycles.mean(), expected[0], sigma)
        results[repeater] = (cycles.mean(), sigma)
        # every swap became an end-to-end pair at A and C with the closed-form fidelity
        assert len(chain.e2e) >= len(chain.swap_times()) - 1
        buffered = (1 - S.move_error) * f + S.move_error / 4 if repeater == "switched" else f
        assert np.allclose([x for _, _, x in chain.e2e], werner_swap(buffered, f), atol=1e-9)
        assert not chain.world.lost_emissions
        if repeater == "switched":
            problems = check_switch_log(chain.switch.command_log, chain.transceiver.windows,
                                        {"AB": 1, "BC": 2}, 1, S.switching_time_ps)
            assert problems == []
            assert len(chain.switch.command_log) >= 2 * n
    # rate of the single transceiver against the two-transceiver repeater
    (m1, s1), (m2, s2) = results["switched"], results["two_comm"]
    ratio, expected_ratio = m2 / m1, mean2 / mean1
    sigma_ratio = ratio * math.hypot(s1 / m1, s2 / m2)
    assert abs(ratio - expected_ratio) <= 3 * sigma_ratio
    assert 0.3 < expected_ratio < 0.6


def test_round_robin_switching_waits_for_photons_in_flight_and_for_the_switch():
    """Scheduler only (pairs freed at once, B wants both links all the time): round robin with two
    attempts per turn switches right after attempts, while their photons are still on the way to
    the BSA; every such command waits for the window to close, and no attempt meets a moving
    switch."""
    chain = build_chain("switched", seed=5, repeater_ruleset=False,
                        policy=SwitchPolicy(("AB", "BC"), SwitchPolicyKind.ROUND_ROBIN, 2))
    chain.run(3 * MS)
    windows = chain.transceiver.windows
    log = chain.switch.command_log
    assert len(windows) > 40 and len(log) > 20
    assert check_switch_log(log, windows, {"AB": 1, "BC": 2}, 1, S.switching_time_ps) == []
    assert not chain.world.lost_emissions
    # the guard acted: commands wait exactly until a photon's window has closed
    ends = {w.end_ps for w in windows}
    assert sum(t in ends for t, _, _ in log) >= len(log) // 2
    # turns of at most two attempts, alternating links
    links = [w.link for w in windows]
    runs = [len(list(g)) for _, g in itertools.groupby(links)]
    assert max(runs) <= 2 and len(runs) > 10
    assert chain.b_pairs_freed > 0


def test_check_switch_log_finds_a_command_in_flight_and_an_unsettled_attempt():
    windows = [AttemptWindow("AB", 1, 100, 200), AttemptWindow("BC", 2, 250, 300)]
    problems = check_switch_log([(0, 1, 1), (150, 1, 2)], windows, {"AB": 1, "BC": 2}, 1, 50)
    assert any("while attempt 1 on AB was in flight" in p for p in problems)
    problems = check_switch_log([(0, 1, 1), (220, 1, 2)], windows, {"AB": 1, "BC": 2}, 1, 50)
    assert any("30 ps after the switch moved" in p for p in problems)
    assert check_switch_log([(0, 1, 1), (200, 1, 2)], windows, {"AB": 1, "BC": 2}, 1, 50) == []
