"""Linear-optics Bell-state analyser (one beam splitter, a polarising beam splitter on each output,
four threshold detectors), as used for heralding between two emitting memories.

Photons with polarisation qubits |H>=|0>, |V>=|1> meet on the beam splitter. Only the Ψ states are
told apart (Lütkenhaus et al. 1999 show linear optics cannot do better than 50 %):

* Ψ+ : both photons leave by the same port with orthogonal polarisations, clicks {aH, aV} or {bH, bV};
* Ψ− : they leave by different ports with orthogonal polarisations, clicks {aH, bV} or {aV, bH};
* Φ± : both photons bunch into one detector (Hong-Ou-Mandel), a single click: no herald.

Detector indices here are 0=aH, 1=aV, 2=bH, 3=bV.
"""

from __future__ import annotations

import numpy as np

from qnode_fw.bell import BellState

A_H, A_V, B_H, B_V = 0, 1, 2, 3
POLARIZATION = np.array([0, 1, 0, 1])  # H -> memory |0>, V -> memory |1>

#: Detector pairs that each photonic Bell outcome lights (each with probability 1/2).
_PAIRS = {
    BellState.PSI_PLUS: ((A_H, A_V), (B_H, B_V)),
    BellState.PSI_MINUS: ((A_H, B_V), (A_V, B_H)),
}
_OUTCOMES = (BellState.PHI_PLUS, BellState.PHI_MINUS, BellState.PSI_PLUS, BellState.PSI_MINUS)


def sample_two_photon_paths(rng: np.random.Generator) -> tuple[BellState, tuple[int, int]]:
    """Bell outcome the photons are projected on (uniform for maximally entangled emitters) and
    the detector each photon goes to (equal entries for Φ±: they bunch)."""
    outcome = _OUTCOMES[int(rng.integers(4))]
    if outcome in _PAIRS:
        pair = _PAIRS[outcome][int(rng.integers(2))]
        return outcome, pair
    detector = int(rng.integers(4))
    return outcome, (detector, detector)


def heralded_success_probability(eta_a: float, eta_b: float) -> float:
    """Both photons detected and the outcome a Ψ: ½·η_a·η_b (no dark counts)."""
    return 0.5 * eta_a * eta_b
