"""The QRNA Figure 2 minimal repeater from YAML, end to end through ``qnode testbed --json``.

``configs/testbeds/chain-3node-minimal-sim.yaml``: A - bsa-AB - B - bsa-BC - C, B with one
transceiver qubit, one buffer qubit and a simulated 1x2 optical switch (``transceiver:`` in its
node file). The run goes through the CLI with a run record; the same chain with two
communication qubits at B (no switch, no buffer) runs through the runner API in the same module.
Closed forms (docs/links.md), with T = 12 us, c = 1, busy = 2 d + h, p per attempt
½·η_A·η_B (B's side through the switch's 1 dB):

    switched:  E[cycle] = 2·T·(1/p1 − 1) + T⌈(busy + max(switching, move))/T⌉
                          + T⌈(busy + max(switching, BSM))/T⌉,   Var = 2 T² (1 − p1)/p1²
    two qubits: E[cycle] = T·(E[max(N_L, N_R)] − 1) + T⌈(busy + BSM)/T⌉

A cycle is the time between two of B's swaps, read from the end-to-end pairs' names (each is
named after B and the time of its swap). Every pair's exact fidelity is the Werner swap of the
links' 0.92, the buffered side after the move's 5 % depolarising. The switch's own command log
(in the run record) is checked against the transceiver's attempt windows.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from exp_helpers import CONFIGS, REPO
from qnode_fw.cli.main import main as qnode
from qnode_fw.experiments import RunOptions, run_experiment
from qnode_fw.records import load_run
from qnode_fw.units import FIBRE_DELAY_PS_PER_KM, US
from timing.switched import AttemptWindow, check_switch_log

TESTBED = REPO / "configs/testbeds/chain-3node-minimal-sim.yaml"
EXPERIMENT = REPO / "configs/experiments/chain3-minimal-repeater.yaml"
TWO_COMM = CONFIGS / "chain3min-two-comm.yaml"

# the figures of configs/nodes/chain3min/*.yaml
T = 12 * US
KM_TO_BSA = 1.0
HERALD_DELAY = 1_300_000
SWITCHING = 23 * US
SWITCH_DB = 1.0
MOVE = 31 * US
MOVE_ERROR = 0.05
BSM = 6 * US + 100_000 + 2 * 1_500_000      # CNOT + H + two readouts
COLLECTION, DETECTOR = 1.0, 0.9
LINK_F = 0.92
PORTS = {"A-B": 1, "B-C": 2}


def slot(d: int) -> int:
    return T * math.ceil(d / T)


def closed_forms() -> dict[str, tuple[float, float]]:
    """(mean, variance) of the cycle in ps for both repeaters."""
    eta = COLLECTION * 10 ** (-0.2 * KM_TO_BSA / 10) * DETECTOR
    busy = 2 * round(KM_TO_BSA * FIBRE_DELAY_PS_PER_KM) + HERALD_DELAY
    assert busy < T                              # c = 1: an attempt in every slot
    p1 = 0.5 * eta * eta * 10 ** (-SWITCH_DB / 10)
    switched = (2 * T * (1 / p1 - 1) + slot(busy + max(SWITCHING, MOVE)) + slot(busy + max(SWITCHING, BSM)),
                2 * T ** 2 * (1 - p1) / p1 ** 2)
    p2 = 0.5 * eta * eta
    q = 1 - p2
    m = np.arange(0, 4000)
    tail = 1 - (1 - q ** m) ** 2                 # P(max(N_L, N_R) > m)
    mean_max = tail.sum()
    assert mean_max == pytest.approx(2 / p2 - 1 / (1 - q * q))
    var_max = ((2 * m + 1) * tail).sum() - mean_max ** 2
    two = (T * (mean_max - 1) + slot(busy + BSM), T ** 2 * var_max)
    return {"switched": switched, "two_comm": two}


def werner_swap(f1: float, f2: float) -> float:
    return f1 * f2 + (1 - f1) * (1 - f2) / 3


def cycles(name_ps: np.ndarray) -> np.ndarray:
    # the first cycle starts from an idle chain (connection set-up)
    return np.diff(np.sort(name_ps))[1:].astype(float)


@pytest.fixture(scope="module")
def switched(tmp_path_factory):
    """The minimal-repeater chain through the CLI: (exit code, --json summary, run record)."""
    out = tmp_path_factory.mktemp("runs")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = qnode(["testbed", str(TESTBED), "--experiment", str(EXPERIMENT), "--json",
                      "--out", str(out)])
    summary = json.loads(buf.getvalue().strip().splitlines()[-1])
    return code, summary, load_run(summary["run_dir"])


@pytest.mark.slow
def test_minimal_repeater_chain_delivers_at_the_closed_form_rate(switched):
    code, summary, data = switched
    assert code == 0
    assert summary["pairs_delivered"] >= 150
    assert summary["wrong_pairs"] == 0 and summary["leaked_qubits"] == 0
    details = data.summary["details"]
    assert details["plan"]["path"] == ["A", "B", "C"] and details["plan"]["purification_rounds"] == 0
    assert details["transceivers"]["B"]["buffered"] == "A"
    assert details["lost_emissions"] == 0 and details["unmatched_halves"] == 0
    pairs = data.arrays["pairs"]
    assert pairs.size == summary["pairs_delivered"]
    assert set(pairs["origin"]) == {"B"}         # every end-to-end pair is B's swap
    # every pair went through the buffer: the moved side carries the move's depolarising
    buffered = (1 - MOVE_ERROR) * LINK_F + MOVE_ERROR / 4
    np.testing.assert_allclose(pairs["fidelity_exact"], werner_swap(buffered, LINK_F), atol=1e-9)

    forms = closed_forms()
    mean1, var1 = forms["switched"]
    c1 = cycles(pairs["name_ps"])
    sigma1 = math.sqrt(var1 / c1.size)
    assert abs(c1.mean() - mean1) <= 3 * sigma1, (c1.mean(), mean1, sigma1)
    # the end-to-end rate is one pair per cycle
    rate_closed = 1e12 / mean1
    assert abs(summary["rate_hz"] - rate_closed) <= 3 * rate_closed * sigma1 / mean1 + 2 / details["generation_time_s"]

    # the same chain with two communication qubits at B, in the same test: the ratio of rates
    two = run_experiment(EXPERIMENT, TWO_COMM, RunOptions(duration_s=0.015))
    assert two.summary.wrong_pairs == 0 and two.summary.leaked_qubits == 0
    assert "transceivers" not in two.results.details
    c2 = cycles(np.array([row[2] for row in two.experiment.rows]))
    mean2, var2 = forms["two_comm"]
    sigma2 = math.sqrt(var2 / c2.size)
    assert abs(c2.mean() - mean2) <= 3 * sigma2, (c2.mean(), mean2, sigma2)
    fid2 = np.array([row[3] for row in two.experiment.rows])
    np.testing.assert_allclose(fid2, werner_swap(LINK_F, LINK_F), atol=1e-9)
    ratio, expected = c2.mean() / c1.mean(), mean2 / mean1
    sigma_ratio = expected * math.hypot(sigma1 / mean1, sigma2 / mean2)
    assert abs(ratio - expected) <= 3 * sigma_ratio, (ratio, expected, sigma_ratio)
    assert 0.3 < expected < 0.5          # roughly half the opportunities, minus move and switching


@pytest.mark.slow
def test_switch_is_never_commanded_while_a_photon_is_in_flight(switched):
    _code, _summary, data = switched
    commands = [tuple(int(x) for x in c) for c in data.arrays["switch_commands-B"]]
    windows = [AttemptWindow(str(w["link"]), int(w["attempt_id"]), int(w["start_ps"]), int(w["end_ps"]))
               for w in data.arrays["attempt_windows-B"]]
    assert len(windows) > 1000 and len(commands) >= 2 * data.summary["pairs_delivered"]
    assert check_switch_log(commands, windows, PORTS, 1, SWITCHING) == []
    # the windows are the photons' flight: emission to the BSA's window closing (d + w/2)
    d = round(KM_TO_BSA * FIBRE_DELAY_PS_PER_KM)
    assert {w.end_ps - w.start_ps for w in windows} == {d + 1_000}
    # B alternates: A until a pair, then C; each turn of the switch is one change of route
    links = [w.link for w in windows]
    turns = sum(1 for x, y in zip(links, links[1:]) if x != y)
    changes = sum(1 for x, y in zip(commands, commands[1:]) if x[2] != y[2])
    assert turns <= changes <= turns + 2
    assert data.summary["details"]["transceivers"]["B"]["switch_log_problems"] == []


@pytest.mark.slow
def test_the_check_finds_a_command_in_flight_in_a_recorded_log(switched):
    """The same check fails on the run's own log once one command is moved into a window."""
    _code, _summary, data = switched
    commands = [tuple(int(x) for x in c) for c in data.arrays["switch_commands-B"]]
    windows = [AttemptWindow(str(w["link"]), int(w["attempt_id"]), int(w["start_ps"]), int(w["end_ps"]))
               for w in data.arrays["attempt_windows-B"]]
    w = windows[len(windows) // 2]
    moved = sorted(commands + [(w.start_ps + 1, 1, 3 - PORTS[w.link])])
    problems = check_switch_log(moved, windows, PORTS, 1, SWITCHING)
    assert any(f"attempt {w.attempt_id} on {w.link} was in flight" in p for p in problems)

