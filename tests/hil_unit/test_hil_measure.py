"""The measurements the bench checks are made of, against streams with known answers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from drivers.time_tagger import TagBatch
from qnode_fw.hil.bench import load_bench
from qnode_fw.hil.checks import _peak
from qnode_fw.hil.checks_config import LightCheck
from qnode_fw.hil.conformance import effective_limits
from qnode_fw.hil.measure import comb_channels, correlation_peak, judge_light, light_map

SIM = Path(__file__).resolve().parents[2] / "configs" / "benches" / "sim.yaml"


def merged(*streams: tuple[int, np.ndarray]) -> TagBatch:
    ch = np.concatenate([np.full(t.size, c, np.int32) for c, t in streams])
    t = np.concatenate([t for _, t in streams]).astype(np.int64)
    order = np.argsort(t, kind="stable")
    return TagBatch(ch[order], t[order])


def test_correlation_peak_finds_a_known_delay_within_its_statistical_error():
    rng = np.random.default_rng(5)
    n, delay, sigma = 4000, 12_345, 20.0
    ref = np.sort(rng.integers(0, 10**11, n))  # 100 ms of pairs
    det = ref + delay + np.rint(rng.normal(0, sigma, n)).astype(np.int64)
    noise = rng.integers(0, 10**11, 2000)  # uncorrelated light on the detector channel
    peak = correlation_peak(merged((5, ref), (2, np.sort(np.r_[det, noise]))), 5, 2, 50_000, 100, 1000)
    assert abs(peak.delay_ps - delay) <= 3 * sigma / math.sqrt(n)
    assert abs(peak.coincidences - n) <= 3 * math.sqrt(n)


def test_comb_channels_tells_a_marker_burst_from_random_light():
    rng = np.random.default_rng(6)
    comb = 1_000_000 + np.arange(100) * 4_000_000 + np.rint(rng.normal(0, 8, 100)).astype(np.int64)
    light = np.sort(rng.integers(0, 400_000_000, 100))
    found = comb_channels(merged((3, comb), (2, light)), 4_000_000.0, 70.0, 50)
    assert found == {3: 100}
    assert comb_channels(merged((3, comb)), 4_000_000.0, 70.0, 50, exclude=3) == {}


def test_effective_limits_are_what_both_allow():
    assert effective_limits({"pump_current_ma": (0, 50), "crystal_temperature_c": (20, 40)},
                            {"pump_current_ma": (0, 60), "input_port": (1, 3)}) == \
        {"pump_current_ma": (0, 50), "crystal_temperature_c": (20, 40), "input_port": (1, 3)}


def test_peak_of_a_phase_matching_curve():
    temperatures = np.round(33 + 0.25 * np.arange(17), 3)
    for t0 in (34.6, 35.0, 35.2):
        rates = 1e5 * np.sinc(0.885893 * (temperatures - t0) / 2.5) ** 2  # counts no noise: a model bias
        peak, error, width = _peak(temperatures, rates, 1.0)
        assert abs(peak - t0) < 0.01 and abs(width - 2.5) < 0.05 and error < 0.01
    assert "widen" in _peak(temperatures, np.linspace(1, 10, 17) * 1e3, 1.0)


def test_judge_light_names_tagger_channel_detector_and_where_the_light_went():
    bench = load_bench(SIM)
    expected = light_map(bench.config.wiring, "spdc", {"idler": 1})
    assert expected == {("tagger", 2): ("A", True), ("tagger", 4): ("B", False), ("tagger", 5): ("C", True)}
    rates = {("tagger", 1): 0.0, ("tagger", 2): 150.0, ("tagger", 3): 1.2e5, ("tagger", 4): 90.0,
             ("tagger", 5): 1.7e5}
    problems = judge_light(bench, rates, expected, LightCheck(), "switch osw input 1 -> output 1")
    assert len(problems) == 1
    assert problems[0].startswith("switch osw input 1 -> output 1: detector A should light tagger 'tagger' "
                                  "channel 2 but it counted 150 Hz")
    assert "light arrived on tagger 'tagger' channel 3 (1.2e+05 Hz) instead" in problems[0]
    assert f"wiring.detectors.A.input at {SIM}:" in problems[0]
    lit_b = judge_light(bench, {**rates, ("tagger", 3): 0.0, ("tagger", 4): 9e4}, expected, LightCheck(), "s")
    assert "tagger 'tagger' channel 4 (detector B) counted 9e+04 Hz but should be dark" in " ".join(lit_b)


@pytest.mark.parametrize("dark, lit", [(10.0, 10.0), (5000.0, 100.0)])
def test_light_thresholds_must_be_ordered(dark, lit):
    with pytest.raises(ValueError, match="dark_hz"):
        LightCheck(dark_hz=dark, lit_hz=lit)
