"""Spontaneous parametric down-conversion (SPDC) photon-pair source.

* Pump: a laser diode above threshold, ``P = slope · (I − I_th)`` at the crystal.
* Pair generation rate ``R = pair_rate_per_mw_hz · P · η_pm(T)`` with the phase-matching curve
  ``η_pm(T) = sinc²(0.8859·(T − T0)/FWHM)`` (numpy's sinc, whose main lobe has FWHM 0.8859), so a
  crystal-temperature scan peaks at T0.
* Pulsed pumping: mean pair number per pulse ``μ = R / f_rep``; the number of pairs in one pulse is
  thermal (single-mode), ``P(n) = μⁿ/(1+μ)^{n+1}``, which carries the multi-pair emission that
  limits the coincidence-to-accidental ratio at high μ.
* CW pumping: pairs form a Poisson process of rate R; both photons of a pair are emitted at the same
  instant (the biphoton correlation time, ps, is below detector jitter).
* Polarisation entanglement: each pair is in ``V|Φ+><Φ+| + (1−V)I/4``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .polarization import entangled_state

_SINC_FWHM = 0.885893  # FWHM of np.sinc(x)**2 in x


@dataclass(frozen=True, slots=True)
class SpdcParams:
    mode: str = "pulsed"  # "pulsed" or "cw"
    repetition_rate_hz: float = 80e6
    pair_rate_per_mw_hz: float = 1.0e6
    pump_threshold_ma: float = 25.0
    pump_slope_mw_per_ma: float = 0.1
    phase_matching_temperature_c: float = 35.0
    phase_matching_fwhm_c: float = 2.5
    visibility: float = 0.98
    bell_state: str = "PHI_PLUS"
    oven_time_constant_ps: int = 20 * 10**12  # first-order approach of the crystal to its setpoint

    def __post_init__(self) -> None:
        if self.mode not in ("pulsed", "cw"):
            raise ValueError(f"SPDC mode must be 'pulsed' or 'cw', got {self.mode!r}")
        if self.repetition_rate_hz <= 0 or self.phase_matching_fwhm_c <= 0:
            raise ValueError("repetition rate and phase-matching width must be positive")
        if not 0.0 <= self.visibility <= 1.0:
            raise ValueError(f"visibility must be in [0, 1], got {self.visibility}")

    @property
    def period_ps(self) -> int:
        return int(round(1e12 / self.repetition_rate_hz))

    def pump_power_mw(self, current_ma: float) -> float:
        return self.pump_slope_mw_per_ma * max(current_ma - self.pump_threshold_ma, 0.0)

    def phase_matching(self, temperature_c: float) -> float:
        x = _SINC_FWHM * (temperature_c - self.phase_matching_temperature_c) / self.phase_matching_fwhm_c
        return float(np.sinc(x) ** 2)

    def pair_rate_hz(self, current_ma: float, temperature_c: float) -> float:
        return self.pair_rate_per_mw_hz * self.pump_power_mw(current_ma) * self.phase_matching(temperature_c)

    def mean_pairs_per_pulse(self, current_ma: float, temperature_c: float) -> float:
        return self.pair_rate_hz(current_ma, temperature_c) / self.repetition_rate_hz

    def polarization_state(self) -> np.ndarray:
        return entangled_state(self.visibility, self.bell_state)


def pulse_range(start_ps: int, end_ps: int, period_ps: int, phase_ps: int = 0) -> tuple[int, int]:
    """Indices ``[k0, k1)`` of the pulses ``phase + k·period`` that fall in ``[start, end)``."""
    k0 = -((phase_ps - start_ps) // period_ps)  # ceil((start - phase) / period)
    k1 = -((phase_ps - end_ps) // period_ps)
    return int(k0), int(max(k1, k0))


def sample_pulsed_pairs(mu: float, start_ps: int, end_ps: int, period_ps: int,
                        rng: np.random.Generator, phase_ps: int = 0) -> np.ndarray:
    """Emission times (int64 ps, one entry per pair) of thermal pair numbers per pulse.

    Only non-empty pulses are drawn: gaps between them are geometric with p = μ/(1+μ), and given a
    non-empty pulse its pair number is again geometric (the thermal law is memoryless), so the cost
    scales with the number of pairs, not pulses.
    """
    k0, k1 = pulse_range(start_ps, end_ps, period_ps, phase_ps)
    n_pulses = k1 - k0
    if mu <= 0 or n_pulses <= 0:
        return np.empty(0, np.int64)
    p_nonempty = mu / (1.0 + mu)
    chunks = []
    position = -1
    while True:
        expect = int((n_pulses - position) * p_nonempty * 1.1) + 16
        gaps = rng.geometric(p_nonempty, size=expect)
        idx = position + np.cumsum(gaps)
        inside = idx[idx < n_pulses]
        chunks.append(inside)
        if inside.size < idx.size:
            break
        position = int(idx[-1])
    nonempty = np.concatenate(chunks)
    counts = rng.geometric(1.0 / (1.0 + mu), size=nonempty.size)
    pulses = np.repeat(nonempty, counts)
    return (phase_ps + (k0 + pulses) * np.int64(period_ps)).astype(np.int64)


def sample_cw_pairs(rate_hz: float, start_ps: int, end_ps: int, rng: np.random.Generator) -> np.ndarray:
    span = end_ps - start_ps
    if rate_hz <= 0 or span <= 0:
        return np.empty(0, np.int64)
    n = rng.poisson(rate_hz * span * 1e-12)
    return np.sort(start_ps + rng.integers(0, span, n, dtype=np.int64))


def thermal_click_probability(mu: float, eta: float, dark: float) -> float:
    """P(threshold detector clicks in a pulse window): 1 − (1−d)/(1+μη)."""
    return 1.0 - (1.0 - dark) / (1.0 + mu * eta)


def thermal_coincidence_probability(mu: float, eta_a: float, eta_b: float, dark_a: float, dark_b: float) -> float:
    """P(both detectors click in the same pulse window) for a single-mode thermal pair source."""
    no_a = (1.0 - dark_a) / (1.0 + mu * eta_a)
    no_b = (1.0 - dark_b) / (1.0 + mu * eta_b)
    no_ab = (1.0 - dark_a) * (1.0 - dark_b) / (1.0 + mu * (eta_a + eta_b - eta_a * eta_b))
    return 1.0 - no_a - no_b + no_ab


def cw_rates(rate_hz: float, eta_a: float, eta_b: float, dark_a_hz: float, dark_b_hz: float,
             window_ps: float, jitter_sigma_ps: float = 0.0) -> tuple[float, float]:
    """(true coincidence rate, accidental rate) in Hz for a CW source and a window of ``window_ps``
    centred on the pair delay; jitter is the combined Gaussian sigma of the click-time difference."""
    singles_a = rate_hz * eta_a + dark_a_hz
    singles_b = rate_hz * eta_b + dark_b_hz
    frac = 1.0 if jitter_sigma_ps <= 0 else math.erf(window_ps / 2 / (math.sqrt(2) * jitter_sigma_ps))
    return rate_hz * eta_a * eta_b * frac, singles_a * singles_b * window_ps * 1e-12
