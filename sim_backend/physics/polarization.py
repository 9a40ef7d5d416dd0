"""Two-photon polarisation states and analysers (linear polariser at an angle + two detectors).

A polarisation qubit uses |H> = |0>, |V> = |1>. An analyser at angle θ sends |θ> = cosθ|H> +
sinθ|V> to its first detector (outcome 0) and |θ+90°> to its second (outcome 1).
"""

from __future__ import annotations

import math

import numpy as np

from sim_backend.quantum import operators as ops


def entangled_state(visibility: float, bell: str = "PHI_PLUS") -> np.ndarray:
    """V|B><B| + (1−V)·I/4: a Bell state with white noise, visibility V (CHSH S = 2√2·V)."""
    if not 0.0 <= visibility <= 1.0:
        raise ValueError(f"visibility must be in [0, 1], got {visibility}")
    return visibility * ops.bell_projector(bell) + (1.0 - visibility) * np.eye(4) / 4


CIRCULAR = "circular"


def analyser_basis(angle_deg: float | str | None) -> np.ndarray:
    """Rows are <outcome 0|, <outcome 1| for a linear analyser at ``angle_deg``; ``"circular"``
    puts a quarter-wave plate before the polarising beam splitter (outcome 0 = |R> = (|H>+i|V>)/√2,
    the +1 eigenstate of Pauli Y); None: no analyser, one detector that receives every photon."""
    if angle_deg is None:
        return np.ones((1, 2), dtype=complex)
    if angle_deg == CIRCULAR:
        return np.array([[1, -1j], [1, 1j]], dtype=complex) / math.sqrt(2)
    th = math.radians(angle_deg)
    return np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]], dtype=complex)


def outcome_probabilities(rho: np.ndarray, angle_a_deg: float | None, angle_b_deg: float | None) -> np.ndarray:
    """Joint probabilities P[r_a, r_b] of the analyser outcomes for the two-photon state ``rho``."""
    ba = analyser_basis(angle_a_deg)
    bb = analyser_basis(angle_b_deg)
    if angle_a_deg is None and angle_b_deg is None:
        return np.ones((1, 1))
    if angle_a_deg is None:
        rho_b = ops.partial_trace(rho, 2, [1])
        return np.real(np.einsum("ri,ij,rj->r", bb, rho_b, bb.conj())).reshape(1, -1)
    if angle_b_deg is None:
        rho_a = ops.partial_trace(rho, 2, [0])
        return np.real(np.einsum("ri,ij,rj->r", ba, rho_a, ba.conj())).reshape(-1, 1)
    p = np.empty((2, 2))
    for ra in range(2):
        for rb in range(2):
            v = np.kron(ba[ra], bb[rb])  # <ra rb| as a row vector
            p[ra, rb] = np.real(v @ rho @ v.conj())
    return p


def sample_outcomes(probabilities: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``n`` joint outcomes; returns (r_a, r_b) int arrays."""
    p = np.clip(probabilities, 0.0, None)
    flat = p.ravel() / p.sum()
    idx = rng.choice(flat.size, size=n, p=flat)
    ra, rb = np.unravel_index(idx, p.shape)
    return ra.astype(np.int64), rb.astype(np.int64)
