"""Single-photon detectors: efficiency, dark counts, dead time and Gaussian timing jitter.

The detector is a threshold detector: photons that reach it at the same time (a multi-pair pulse)
give one click, because the later ones fall inside its dead time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .deadtime import dead_time_mask

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Defaults: a superconducting nanowire detector (SNSPD), see docs/physics.md."""

    efficiency: float = 0.9
    dark_count_rate_hz: float = 100.0
    dead_time_ps: int = 20_000
    jitter_fwhm_ps: float = 15.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.efficiency <= 1.0:
            raise ValueError(f"detector efficiency must be in [0, 1], got {self.efficiency}")
        if self.dark_count_rate_hz < 0 or self.dead_time_ps < 0 or self.jitter_fwhm_ps < 0:
            raise ValueError("dark-count rate, dead time and jitter must be non-negative")

    @property
    def jitter_sigma_ps(self) -> float:
        return self.jitter_fwhm_ps / FWHM_PER_SIGMA

    def dark_probability(self, window_ps: float) -> float:
        """Probability of at least one dark count in a window of ``window_ps``."""
        return -math.expm1(-self.dark_count_rate_hz * window_ps * 1e-12)


def detect(arrivals_ps: np.ndarray, start_ps: int, end_ps: int, params: DetectorParams,
           rng: np.random.Generator, *, apply_efficiency: bool = True,
           previous_click_ps: int | None = None, n_dark: int | None = None) -> np.ndarray:
    """Click times (sorted int64 ps) for photons arriving at ``arrivals_ps`` during
    ``[start_ps, end_ps)``, plus dark counts over that span.

    ``apply_efficiency=False`` when the caller already folded the efficiency into its own
    per-photon transmission (vectorised link models do that).
    """
    t = np.asarray(arrivals_ps, dtype=np.int64)
    if apply_efficiency and params.efficiency < 1.0 and t.size:
        t = t[rng.random(t.size) < params.efficiency]
    if params.jitter_fwhm_ps > 0 and t.size:
        t = t + np.rint(rng.normal(0.0, params.jitter_sigma_ps, t.size)).astype(np.int64)
    span = max(end_ps - start_ps, 0)
    if n_dark is None:  # callers that batch several detectors draw the Poisson numbers themselves
        n_dark = rng.poisson(params.dark_count_rate_hz * span * 1e-12) if span else 0
    if n_dark:
        darks = start_ps + rng.integers(0, span, n_dark, dtype=np.int64)
        t = np.concatenate([t, darks])
    t = np.sort(t, kind="stable")
    if previous_click_ps is not None and t.size:
        # the dead time of the last click of the previous span still runs into this one
        t = t[t >= previous_click_ps + params.dead_time_ps] if t[0] < previous_click_ps + params.dead_time_ps else t
    return t[dead_time_mask(t, params.dead_time_ps)]
