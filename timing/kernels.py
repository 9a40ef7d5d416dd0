"""Compiled (numba) hot loops over time-tag streams, and the plain-numpy references they are tested
and benchmarked against.

All streams are parallel arrays ``channels`` (int32) and ``timestamps`` (int64 ps), sorted by
time. The compiled kernels are single passes with O(1) state per tag; their numpy counterparts
(``*_reference``) are written for clarity from ``searchsorted`` and are the ground truth in tests.
``cache=True`` keeps numba's compile time out of every run but the first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Per-channel role in the herald kernel's lookup table.
ROLE_IGNORE = -1
ROLE_SYNC = -2

# Herald kernel state slots (an int64 array the caller keeps between batches).
S_OPEN, S_SYNC, S_MASK, S_CLICKS, S_LAST, S_ORDINAL = range(6)
STATE_SIZE = 6

# Counter slots.
C_WINDOWS, C_EMPTY, C_FAILED, C_AMBIGUOUS, C_HERALDS, C_OUT_OF_WINDOW, C_DEAD, C_SYNC = range(8)
COUNTERS_SIZE = 8

OUTCOME_NONE = 0  # lut value for click patterns that herald nothing


def new_state() -> np.ndarray:
    state = np.zeros(STATE_SIZE, np.int64)
    state[S_ORDINAL] = -1
    return state


@njit(cache=True, nogil=True)
def _popcount(x):
    c = 0
    while x:
        x &= x - 1
        c += 1
    return c


@njit(cache=True, nogil=True, inline="always")
def _close_window(sync, mask, clicks, last, ordinal, lut, out_sync, out_time, out_outcome,
                  out_ordinal, n_out, counters):
    counters[C_WINDOWS] += 1
    if clicks == 0:
        counters[C_EMPTY] += 1
    elif clicks == _popcount(mask) and lut[mask] != OUTCOME_NONE:
        out_sync[n_out] = sync
        out_time[n_out] = last
        out_outcome[n_out] = lut[mask]
        out_ordinal[n_out] = ordinal
        n_out += 1
        counters[C_HERALDS] += 1
    elif clicks == 1:
        # One click where the protocol needs two: a lost photon or a dark count.
        counters[C_FAILED] += 1
    else:
        # Several clicks that form no herald pattern (a dark count on top of a photon, a
        # detector firing twice, or a pattern linear optics cannot resolve): never a herald.
        counters[C_AMBIGUOUS] += 1
    return n_out


@njit(cache=True, nogil=True)
def herald_kernel(channels, timestamps, role, dead_ps, last_ps, lut, win_start, win_len,
                  watermark, state, counters, out_sync, out_time, out_outcome, out_ordinal):
    """Find heralds in one sorted batch; returns how many were written to the ``out_*`` arrays.

    ``role[ch]`` is ROLE_SYNC, ROLE_IGNORE or the detector's bit index; ``lut[mask]`` maps the set
    of detectors that clicked (each exactly once) to an outcome code, OUTCOME_NONE if it heralds
    nothing. A window is ``[sync + win_start, sync + win_start + win_len)``; it closes at the next
    sync tag, at the first tag past its end, or when ``watermark`` (no earlier tag can still
    arrive) passes its end. ``dead_ps``/``last_ps`` impose each detector's dead time across
    batches. Outputs must have room for one herald per sync tag in the batch plus one.
    """
    # The window state lives in locals (registers) inside the loop and in ``state`` between
    # batches: writing an array slot per tag costs a third of the throughput.
    is_open = state[S_OPEN]
    sync = state[S_SYNC]
    mask = state[S_MASK]
    clicks = state[S_CLICKS]
    last = state[S_LAST]
    ordinal = state[S_ORDINAL]
    lo = sync + win_start
    hi = lo + win_len
    any_dead = False
    for c in range(dead_ps.shape[0]):
        if dead_ps[c] > 0:
            any_dead = True
    n_out = 0
    out_win = 0
    n = channels.shape[0]
    nroles = role.shape[0]
    for i in range(n):
        ch = channels[i]
        t = timestamps[i]
        if ch < 0 or ch >= nroles:
            continue
        r = role[ch]
        if r == ROLE_IGNORE:
            continue
        if any_dead:
            if t - last_ps[ch] < dead_ps[ch]:
                counters[C_DEAD] += 1
                continue
            last_ps[ch] = t
        if is_open == 1 and t >= hi:
            n_out = _close_window(sync, mask, clicks, last, ordinal, lut, out_sync, out_time,
                                  out_outcome, out_ordinal, n_out, counters)
            is_open = 0
        if r == ROLE_SYNC:
            if is_open == 1:
                n_out = _close_window(sync, mask, clicks, last, ordinal, lut, out_sync,
                                      out_time, out_outcome, out_ordinal, n_out, counters)
            counters[C_SYNC] += 1
            is_open = 1
            sync = t
            lo = t + win_start
            hi = lo + win_len
            mask = 0
            clicks = 0
            ordinal += 1
        elif is_open == 1 and t >= lo:
            mask |= 1 << r
            clicks += 1
            last = t
        else:
            out_win += 1
    if is_open == 1 and hi <= watermark:
        n_out = _close_window(sync, mask, clicks, last, ordinal, lut, out_sync, out_time,
                              out_outcome, out_ordinal, n_out, counters)
        is_open = 0
    counters[C_OUT_OF_WINDOW] += out_win
    state[S_OPEN] = is_open
    state[S_SYNC] = sync
    state[S_MASK] = mask
    state[S_CLICKS] = clicks
    state[S_LAST] = last
    state[S_ORDINAL] = ordinal
    return n_out


@njit(cache=True, nogil=True)
def herald_batch(channels, timestamps, watermark, role, dead_ps, last_ps, lut, win_start, win_len,
                 state, counters, out_sync, out_time, out_outcome, out_ordinal, attempt_start,
                 attempt_period):
    """:func:`herald_kernel` on the tags at or before ``watermark`` of a sorted batch, with the
    ordinals turned into attempt ids when ``attempt_period`` > 0 (the attempt whose start is
    nearest the sync tag). Returns (heralds written, tags consumed); one call instead of several
    numpy steps keeps a small batch (one attempt, the herald-latency case) at microseconds."""
    cut = np.searchsorted(timestamps, watermark, side="right")
    n = herald_kernel(channels[:cut], timestamps[:cut], role, dead_ps, last_ps, lut, win_start,
                      win_len, watermark, state, counters, out_sync, out_time, out_outcome,
                      out_ordinal)
    if attempt_period > 0:
        half = attempt_period // 2
        for i in range(n):
            out_ordinal[i] = (out_sync[i] - attempt_start + half) // attempt_period
    return n, cut


@njit(cache=True, nogil=True)
def max_and_sorted(x):
    """(largest value, whether ``x`` is non-decreasing) of a non-empty array, in one pass."""
    hi = x[0]
    ordered = True
    for i in range(1, x.shape[0]):
        v = x[i]
        if v < x[i - 1]:
            ordered = False
        if v > hi:
            hi = v
    return hi, ordered


@njit(cache=True, nogil=True)
def is_sorted(x):
    for i in range(1, x.shape[0]):
        if x[i] < x[i - 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def unwrap_kernel(raw, wrap, state):
    """Turn timestamps that wrap modulo ``wrap`` into a monotonic int64 scale.

    ``state = [offset, previous raw]`` carries across batches. A jump back by more than half a
    wrap is a wrap; a jump forward by more than half a wrap is a late tag from before the last
    wrap (small reordering across the boundary) and gets the previous offset.
    """
    out = np.empty(raw.shape[0], np.int64)
    half = wrap // 2
    offset = state[0]
    prev = state[1]
    for i in range(raw.shape[0]):
        r = raw[i]
        if r < prev - half:
            offset += wrap
            prev = r
            out[i] = r + offset
        elif r > prev + half and offset >= wrap:
            out[i] = r + offset - wrap
        else:
            if r > prev:
                prev = r
            out[i] = r + offset
    state[0] = offset
    state[1] = prev
    return out


# -- SPDC analysis -----------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def split_two_channels(channels, timestamps, ch_a, ch_b):
    """The timestamps of two channels out of a merged stream, in one pass."""
    na = 0
    nb = 0
    for i in range(channels.shape[0]):
        if channels[i] == ch_a:
            na += 1
        elif channels[i] == ch_b:
            nb += 1
    a = np.empty(na, np.int64)
    b = np.empty(nb, np.int64)
    ia = 0
    ib = 0
    for i in range(channels.shape[0]):
        c = channels[i]
        if c == ch_a:
            a[ia] = timestamps[i]
            ia += 1
        elif c == ch_b:
            b[ib] = timestamps[i]
            ib += 1
    return a, b


@njit(cache=True, nogil=True)
def coincidences_sorted(a, b, lo, hi):
    """Number of pairs (i, j) with ``lo <= b[j] - a[i] <= hi``; a and b sorted."""
    count = 0
    j_lo = 0
    j_hi = 0
    nb = b.shape[0]
    for i in range(a.shape[0]):
        start = a[i] + lo
        stop = a[i] + hi
        while j_lo < nb and b[j_lo] < start:
            j_lo += 1
        if j_hi < j_lo:
            j_hi = j_lo
        while j_hi < nb and b[j_hi] <= stop:
            j_hi += 1
        count += j_hi - j_lo
    return count


@njit(cache=True, nogil=True)
def coincidences_merged(channels, timestamps, ch_a, ch_b, lo, hi):
    """:func:`coincidences_sorted` straight from a merged stream, without splitting it.

    Two cursors run over the merged stream ahead of each ``ch_a`` tag: the first index at or
    after ``t + lo`` and the first after ``t + hi``, each carrying how many ``ch_b`` tags it has
    passed; the difference is the coincidence count. No allocation, three sequential reads.
    """
    n = timestamps.shape[0]
    count = 0
    j_lo = 0
    j_hi = 0
    b_lo = 0
    b_hi = 0
    for i in range(n):
        if channels[i] != ch_a:
            continue
        start = timestamps[i] + lo
        stop = timestamps[i] + hi
        while j_lo < n and timestamps[j_lo] < start:
            if channels[j_lo] == ch_b:
                b_lo += 1
            j_lo += 1
        if j_hi < j_lo:
            j_hi = j_lo
            b_hi = b_lo
        while j_hi < n and timestamps[j_hi] <= stop:
            if channels[j_hi] == ch_b:
                b_hi += 1
            j_hi += 1
        count += b_hi - b_lo
    return count


@njit(cache=True, nogil=True)
def correlation_sorted(a, b, lo, binwidth, n_bins):
    """Histogram of ``b[j] - a[i]`` over ``[lo, lo + n_bins * binwidth)``; a and b sorted."""
    hist = np.zeros(n_bins, np.int64)
    hi = lo + n_bins * binwidth
    j_lo = 0
    nb = b.shape[0]
    for i in range(a.shape[0]):
        start = a[i] + lo
        while j_lo < nb and b[j_lo] < start:
            j_lo += 1
        j = j_lo
        stop = a[i] + hi
        while j < nb and b[j] < stop:
            hist[(b[j] - start) // binwidth] += 1
            j += 1
    return hist


def coincidences_reference(a: np.ndarray, b: np.ndarray, lo: int, hi: int) -> int:
    """numpy: pairs with ``lo <= b - a <= hi``."""
    return int((np.searchsorted(b, a + hi, "right") - np.searchsorted(b, a + lo, "left")).sum())


def correlation_reference(a: np.ndarray, b: np.ndarray, lo: int, binwidth: int,
                          n_bins: int) -> np.ndarray:
    """numpy: histogram of every difference ``b - a`` in ``[lo, lo + n_bins*binwidth)``."""
    hi = lo + n_bins * binwidth
    first = np.searchsorted(b, a + lo, "left")
    last = np.searchsorted(b, a + hi, "left")
    counts = last - first
    ai = np.repeat(np.arange(a.shape[0]), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    diffs = b[np.repeat(first, counts) + offsets] - a[ai]
    return np.bincount((diffs - lo) // binwidth, minlength=n_bins).astype(np.int64)
