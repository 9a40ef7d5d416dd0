"""The analysis the experiments run on their data, with the statistical error of every figure.

* coincidences between two tag streams (window around a delay), the cross-correlation
  histogram, the coincidence-to-accidental ratio from the side peaks of a pulsed source;
* correlators E = (N₀₀ + N₁₁ − N₀₁ − N₁₀)/N with their stderr, CHSH S;
* two-qubit linear-inversion tomography from Pauli correlators, and the Bell-state fidelity
  from the three correlators it depends on (with its stderr);
* a least-squares fit of the sinc² phase-matching curve (temperature scan) and of a Gaussian
  peak (detector delay), each with the stderr from the fit's covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..bell import BellState

# Pauli matrices written out (the analysis must not take its operators from the simulator).
_I2 = np.eye(2, dtype=complex)
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.array([[1, 0], [0, -1]], dtype=complex)
PAULI = {"I": _I2, "X": _X, "Y": _Y, "Z": _Z}

#: <B|σ⊗σ|B> for the Bell states: the sign of each Pauli correlator in each state.
BELL_CORRELATOR_SIGNS = {
    BellState.PHI_PLUS: {"X": 1, "Y": -1, "Z": 1},
    BellState.PHI_MINUS: {"X": -1, "Y": 1, "Z": 1},
    BellState.PSI_PLUS: {"X": 1, "Y": 1, "Z": -1},
    BellState.PSI_MINUS: {"X": -1, "Y": -1, "Z": -1},
}


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    stderr: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "stderr": self.stderr}


# -- coincidences ---------------------------------------------------------------------------------
def coincidence_indices(ta: np.ndarray, tb: np.ndarray, delay_ps: int, window_ps: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) with ``|tb[j] - ta[i] - delay_ps| <= window_ps // 2``; each a-tag takes
    the first b-tag in its window (``ta``, ``tb`` sorted)."""
    half = window_ps // 2
    lo = np.searchsorted(tb, ta + delay_ps - half, side="left")
    hi = np.searchsorted(tb, ta + delay_ps + half, side="right")
    hit = hi > lo
    return np.flatnonzero(hit), lo[hit]


def count_in_window(ta: np.ndarray, tb: np.ndarray, delay_ps: int, window_ps: int) -> int:
    half = window_ps // 2
    lo = np.searchsorted(tb, ta + delay_ps - half, side="left")
    hi = np.searchsorted(tb, ta + delay_ps + half, side="right")
    return int((hi - lo).sum())


def cross_histogram(ta: np.ndarray, tb: np.ndarray, range_ps: int, bin_ps: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of tb − ta over ``[-range_ps, range_ps)`` (bin edges, counts)."""
    edges = np.arange(-range_ps, range_ps + 1, bin_ps, dtype=np.int64)
    lo = np.searchsorted(tb, ta - range_ps, side="left")
    hi = np.searchsorted(tb, ta + range_ps, side="left")
    n = hi - lo
    if n.sum() == 0:
        return edges, np.zeros(edges.size - 1, np.int64)
    a_idx = np.repeat(np.arange(ta.size), n)
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    diffs = tb[np.repeat(lo, n) + offsets] - ta[a_idx]
    counts, _ = np.histogram(diffs, bins=edges)
    return edges, counts


def car(ta: np.ndarray, tb: np.ndarray, delay_ps: int, window_ps: int, period_ps: int,
        side_peaks: int = 5) -> tuple[int, float, Estimate]:
    """Coincidences at ``delay_ps``, the mean accidentals of ``side_peaks`` pump periods on each
    side, and the coincidence-to-accidental ratio (stderr from Poisson counts)."""
    cc = count_in_window(ta, tb, delay_ps, window_ps)
    acc_counts = [count_in_window(ta, tb, delay_ps + k * period_ps, window_ps)
                  for k in list(range(-side_peaks, 0)) + list(range(1, side_peaks + 1))]
    acc_total = sum(acc_counts)
    acc = acc_total / len(acc_counts)
    if acc_total == 0 or cc == 0:
        return cc, acc, Estimate(math.inf if acc_total == 0 else 0.0, math.inf)
    ratio = cc / acc
    return cc, acc, Estimate(ratio, ratio * math.sqrt(1 / cc + 1 / acc_total))


# -- correlators, CHSH, tomography ----------------------------------------------------------------
def correlator(counts: np.ndarray) -> Estimate:
    """E and its stderr from a 2×2 table of outcome counts (rows: a's outcome, columns: b's).

    E = 1 − 2k/N for k disagreeing outcomes; its stderr 2·√(p(1−p)/N) takes p = (k+1)/(N+2)
    (Laplace's rule), which is √((1 − E²)/N) for large N but does not claim a zero error when
    no (or every) outcome pair disagreed in a small sample."""
    n = float(counts.sum())
    if n == 0:
        return Estimate(0.0, math.inf)
    k = float(counts[0, 1] + counts[1, 0])
    e = (n - 2 * k) / n
    p = (k + 1) / (n + 2)
    return Estimate(e, 2 * math.sqrt(p * (1 - p) / n))


def outcome_table(oa: np.ndarray, ob: np.ndarray) -> np.ndarray:
    table = np.zeros((2, 2), np.int64)
    np.add.at(table, (oa.astype(np.int64), ob.astype(np.int64)), 1)
    return table


def chsh(e00: Estimate, e01: Estimate, e10: Estimate, e11: Estimate) -> Estimate:
    """S = |E(a0,b0) − E(a0,b1) + E(a1,b0) + E(a1,b1)| with independent settings' errors."""
    s = e00.value - e01.value + e10.value + e11.value
    return Estimate(abs(s), math.sqrt(sum(e.stderr ** 2 for e in (e00, e01, e10, e11))))


def bell_fidelity(correlators: dict[str, Estimate], state: BellState = BellState.PHI_PLUS) -> Estimate:
    """F = (1 + s_X<XX> + s_Y<YY> + s_Z<ZZ>)/4 for the Bell state's signs s."""
    signs = BELL_CORRELATOR_SIGNS[BellState(state)]
    f = (1 + sum(signs[p] * correlators[p].value for p in "XYZ")) / 4
    return Estimate(f, math.sqrt(sum(correlators[p].stderr ** 2 for p in "XYZ")) / 4)


def linear_inversion(correlators: dict[tuple[str, str], float],
                     singles_a: dict[str, float], singles_b: dict[str, float]) -> np.ndarray:
    """ρ = ¼ Σ <σ_i⊗σ_j> σ_i⊗σ_j from the nine correlators and the one-sided expectations."""
    rho = np.kron(_I2, _I2).astype(complex)
    for p in "XYZ":
        rho += singles_a.get(p, 0.0) * np.kron(PAULI[p], _I2) + singles_b.get(p, 0.0) * np.kron(_I2, PAULI[p])
        for q in "XYZ":
            rho += correlators[(p, q)] * np.kron(PAULI[p], PAULI[q])
    return rho / 4


def state_fidelity_pure(rho: np.ndarray, state: BellState) -> float:
    s = 1 / math.sqrt(2)
    vec = {BellState.PHI_PLUS: [s, 0, 0, s], BellState.PHI_MINUS: [s, 0, 0, -s],
           BellState.PSI_PLUS: [0, s, s, 0], BellState.PSI_MINUS: [0, s, -s, 0]}[BellState(state)]
    v = np.array(vec, dtype=complex)
    return float(np.real(v.conj() @ rho @ v))


# -- fits -----------------------------------------------------------------------------------------
_SINC_FWHM = 0.885893      # FWHM of np.sinc(x)**2 in x


def sinc2(t: np.ndarray, amplitude: float, centre: float, fwhm: float, background: float) -> np.ndarray:
    return amplitude * np.sinc(_SINC_FWHM * (t - centre) / fwhm) ** 2 + background


def fit_sinc2(t: np.ndarray, counts: np.ndarray) -> dict[str, Estimate]:
    """Poisson-weighted least squares of :func:`sinc2` (Gauss–Newton from the peak bin)."""
    t = np.asarray(t, float)
    y = np.asarray(counts, float)
    i = int(np.argmax(y))
    half = y[i] / 2
    above = t[y >= half]
    p = np.array([y[i] - y.min(), t[i], max(above.max() - above.min(), np.diff(t).min()), y.min()])
    w = 1.0 / np.maximum(y, 1.0)
    for _ in range(50):
        model = sinc2(t, *p)
        jac = np.empty((t.size, 4))
        for k in range(4):
            step = np.zeros(4)
            step[k] = 1e-6 * max(abs(p[k]), 1e-3)
            jac[:, k] = (sinc2(t, *(p + step)) - model) / step[k]
        jtw = jac.T * w
        try:
            delta = np.linalg.solve(jtw @ jac, jtw @ (y - model))
        except np.linalg.LinAlgError:
            break
        p = p + delta
        if np.all(np.abs(delta) <= 1e-9 * np.maximum(np.abs(p), 1e-6)):
            break
    model = sinc2(t, *p)
    jac = np.empty((t.size, 4))
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-6 * max(abs(p[k]), 1e-3)
        jac[:, k] = (sinc2(t, *(p + step)) - model) / step[k]
    cov = np.linalg.pinv((jac.T * w) @ jac)
    dof = max(t.size - 4, 1)
    chi2 = float(np.sum(w * (y - model) ** 2)) / dof
    err = np.sqrt(np.diag(cov) * max(chi2, 1.0))
    names = ("amplitude", "centre", "fwhm", "background")
    out = {n: Estimate(float(v), float(e)) for n, v, e in zip(names, p, err)}
    out["fwhm"] = Estimate(abs(out["fwhm"].value), out["fwhm"].stderr)
    return out


def peak_offset(diffs_ps: np.ndarray, search_ps: int, bin_ps: int, fit_halfwidth_ps: int) -> Estimate:
    """The position of the peak of a delay distribution: the highest bin of a histogram over
    ``[-search_ps, search_ps)``, refined by the mean of the samples within ``fit_halfwidth_ps`` of
    it (stderr: their standard deviation over √n)."""
    diffs = np.asarray(diffs_ps, np.int64)
    edges = np.arange(-search_ps, search_ps + 1, bin_ps)
    counts, _ = np.histogram(diffs, bins=edges)
    if counts.sum() == 0:
        return Estimate(math.nan, math.inf)
    centre = edges[int(np.argmax(counts))] + bin_ps / 2
    near = diffs[np.abs(diffs - centre) <= fit_halfwidth_ps].astype(float)
    for _ in range(3):       # re-centre the selection on the refined mean
        if near.size == 0:
            break
        centre = near.mean()
        near = diffs[np.abs(diffs - centre) <= fit_halfwidth_ps].astype(float)
    if near.size < 2:
        return Estimate(float(centre), math.inf)
    return Estimate(float(near.mean()), float(near.std(ddof=1) / math.sqrt(near.size)))
