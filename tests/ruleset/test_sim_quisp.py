"""The QuISP-format 3-node swapping set (configs/rulesets/quisp_swap_3node.json), imported, runs
on simulated QNICs to the same end states as the native set: the same pairs under the same
names, the same density matrices (the Werner swap closed form), the same swap frames and the
same QNIC operations at the same times."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qnode_fw.bell import BellState
from qnode_fw.ruleset.builders import ChainTimers, chain_rulesets
from qnode_fw.ruleset.checks import check_connection
from qnode_fw.ruleset.quisp import import_quisp
from qnode_fw.units import MS

from sim_chain import SimChain, bell_diagonal, werner

QUISP_SET = Path(__file__).resolve().parents[2] / "configs" / "rulesets" / "quisp_swap_3node.json"
PATH = ["A", "B", "C"]
LATENCY = lambda a, b: 1_000_000  # noqa: E731
SWAP_PS = 507_400_000   # CNOT 500 us + H 5 ns + two 3.7 us readouts (MemoryParams defaults)


def imported_sets():
    docs = json.loads(QUISP_SET.read_text())
    sets = {rs.owner: rs for rs in (
        import_quisp(d, address_map={1: "A", 2: "B", 3: "C"}, discard_after_ps=20 * MS,
                     tomography_as_delivery=True) for d in docs)}
    return check_connection(sets, LATENCY, lambda node: SWAP_PS)


def native_sets():
    timers = ChainTimers(swap_base_ps=20 * MS, step_ps=20 * MS, wait_margin_ps=10 * MS)
    return chain_rulesets(PATH, ruleset_id="native", connection="A-C", timers=timers,
                          one_way_latency_ps=LATENCY, swap_operation_ps=lambda node: SWAP_PS)


def run(sets) -> SimChain:
    chain = SimChain(PATH, sets, seed=31)
    heralds = [BellState.PHI_PLUS, BellState.PSI_MINUS, BellState.PHI_MINUS, BellState.PSI_PLUS]
    for k in range(8):
        chain.herald(0, werner(0.95), declared=heralds[k % 4])
        chain.herald(1, werner(0.9), declared=heralds[(k + 1) % 4])
        chain.run_for(2 * MS)
    chain.loop.run_until_idle()
    return chain


def test_quisp_set_on_simqnic_reaches_the_native_end_states() -> None:
    quisp, native = run(imported_sets()), run(native_sets())
    expected = bell_diagonal(werner(0.95 * 0.9 + 0.05 * 0.1 / 3))
    for chain in (quisp, native):
        assert len(chain.end_pairs) == 8
        for pair in chain.end_pairs:
            assert np.allclose(pair.rho, expected, atol=1e-9)
        assert chain.held() == {} and chain.unclean_qubits() == [] and chain.bus.errors == []
    frames = [sorted({tuple(w["frame"]) for _, _, dst, w in c.wire("SwapResult") if dst == "A"})
              for c in (quisp, native)]
    assert frames[0] == frames[1] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for q, n in zip(quisp.end_pairs, native.end_pairs):
        assert (q.name, q.first, q.last, q.delivered_ps) == (n.name, n.first, n.last, n.delivered_ps)
        assert q.rho == pytest.approx(n.rho, abs=1e-12)
    for node in PATH:
        assert quisp.qnics[node].operation_log == native.qnics[node].operation_log
