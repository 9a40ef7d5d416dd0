"""SPDC entanglement distribution end to end: the EPPS station pumps on the application's
request, both MEAS nodes switch analysers in step and receive their detections through their
sockets; coincidences, CAR, CHSH and tomography against the closed forms of a thermal
polarisation-entangled source (μ ≪ 1): rate μ·f·η_a·η_b·(light time), CAR from the thermal
click statistics, S = 2√2·V, Bell fidelity (1 + 3V)/4."""

from __future__ import annotations

import math

import numpy as np

from exp_helpers import REPO, run, transmission, write_experiment
from qnode_fw.records import load_run

V = 0.95                       # configs/nodes/epps2/epps.yaml
REP_HZ = 80e6
MU = 40_000.0 * 0.1 * (35.0 - 25.0) / REP_HZ    # pairs per pulse at 35 mA (1 mW at the crystal)
DET = 0.8
SWITCHING_PS = 1_000_000_000                     # configs/nodes/epps2/{alice,bob}.yaml
ETA = transmission(1.0) * transmission(1.0, 1.0) * DET   # 1 km of fibre, the switch's 1 dB, detector


def thermal_coincidence(mu: float, eta_a: float, eta_b: float) -> float:
    """Both ends click in one pulse (threshold detectors, no darks)."""
    return 1 - 1 / (1 + mu * eta_a) - 1 / (1 + mu * eta_b) + 1 / (1 + mu * (eta_a + eta_b - eta_a * eta_b))


def thermal_click(mu: float, eta: float) -> float:
    return 1 - 1 / (1 + mu * eta)


def test_chsh_tomography_rate_and_car_against_closed_forms(tmp_path):
    params = {"station": "epps", "source": "source", "pump_current_ma": 35.0,
              "crystal_temperature_c": 36.3,
              "ends": [{"node": "alice", "analysers": [0.0, 45.0, "circular"]},
                       {"node": "bob", "analysers": [22.5, 67.5, 0.0, 45.0, "circular"]}],
              "detectors": {"efficiency": DET, "dark_count_rate_hz": 0.0, "dead_time_ns": 20.0,
                            "jitter_fwhm_ps": 50.0},
              "coincidence_window_ps": 1000, "chsh": {"a": [0.0, 45.0], "b": [22.5, 67.5]},
              "tomography": True, "chsh_fraction": 0.5}
    exp = write_experiment(tmp_path, "spdc", "spdc_distribution",
                           REPO / "configs/testbeds/epps-2meas-sim.yaml", 1.0, params, seed=9)
    result = run(exp, tmp_path / "runs")
    s, d = result.summary, result.results.details
    # CHSH and tomography
    assert abs(s.chsh_s - 2 * math.sqrt(2) * V) <= 3 * s.chsh_s_stderr
    assert abs(s.fidelity - (1 + 3 * V) / 4) <= 3 * s.fidelity_stderr
    assert s.chsh_s > 2 + 5 * s.chsh_s_stderr            # a Bell violation, not a near miss
    # Coincidences: each setting has light except while a switch moved at its start.
    settings = load_run(s.run_dir).arrays["settings"]
    ports = [(-1, -1)] + [(a, b) for a, b in zip(settings["port_a"], settings["port_b"])]
    light_s = sum((end - start - (SWITCHING_PS if ports[k + 1] != ports[k] else 0)) * 1e-12
                  for k, (start, end) in enumerate(zip(settings["start_ps"], settings["end_ps"])))
    expected = thermal_coincidence(MU, ETA, ETA) * REP_HZ * light_s
    assert abs(s.pairs_delivered - expected) <= 3 * math.sqrt(expected), (s.pairs_delivered, expected)
    # Accidentals: clicks in pulses one period apart.
    car_expected = thermal_coincidence(MU, ETA, ETA) / thermal_click(MU, ETA) ** 2
    car = d["car"]
    assert abs(car["value"] - car_expected) <= 3 * car["stderr"], (car, car_expected)
    assert d["pump_period_ps"] == 12_500 and abs(d["delay_ps"]) <= 100   # equal arms: no delay
    # The application saw its request served: established, detections per setting, released.
    assert d["settings"] == 13
    sock = result.experiment.socket
    assert sock.state.value == "closed" and result.experiment.epps.requests == 1
    assert not result.experiment.source.pump_is_on()
    rho = np.load(result.run_dir / "arrays" / "tomography_rho.npy")
    assert rho.shape == (2, 4, 4)
    assert abs(np.trace(rho[0]) - 1.0) < 1e-9
