"""Non-paralysable dead time on a sorted click stream (numba kernel, numpy reference)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _dead_time_mask(times: np.ndarray, dead_ps: int) -> np.ndarray:
    keep = np.ones(times.shape[0], np.bool_)
    last = np.int64(-(2**62))
    for i in range(times.shape[0]):
        if times[i] - last < dead_ps:
            keep[i] = False
        else:
            last = times[i]
    return keep


def dead_time_mask(times_ps: np.ndarray, dead_ps: int) -> np.ndarray:
    """True for clicks the detector registers: a click within ``dead_ps`` after the last
    *registered* click is lost (a lost click does not extend the dead time)."""
    t = np.ascontiguousarray(times_ps, dtype=np.int64)
    if dead_ps <= 0 or t.shape[0] < 2:
        return np.ones(t.shape[0], bool)
    gaps = np.diff(t)
    if gaps.min() >= dead_ps:  # common case at low rates: nothing to drop
        return np.ones(t.shape[0], bool)
    return _dead_time_mask(t, np.int64(dead_ps))
