"""Memory decoherence as single-qubit channels for an elapsed time.

T1 is energy relaxation (amplitude damping towards |0>); T2 is the total coherence time, so the
off-diagonal element of a single qubit decays as exp(−t/T2). Amplitude damping alone already
decays it as exp(−t/(2·T1)); the rest is pure dephasing with 1/T_φ = 1/T2 − 1/(2·T1). That needs
T2 ≤ 2·T1, the physical bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Decoherence:
    """Coherence times of one memory qubit, in picoseconds (``math.inf``: no decay)."""

    t1_ps: float = math.inf
    t2_ps: float = math.inf

    def __post_init__(self) -> None:
        if self.t1_ps <= 0 or self.t2_ps <= 0:
            raise ValueError(f"T1 and T2 must be positive, got T1={self.t1_ps} ps, T2={self.t2_ps} ps")
        if self.t2_ps > 2 * self.t1_ps * (1 + 1e-12):
            raise ValueError(f"T2={self.t2_ps} ps exceeds the physical bound 2·T1={2 * self.t1_ps} ps")

    @property
    def is_ideal(self) -> bool:
        return math.isinf(self.t1_ps) and math.isinf(self.t2_ps)

    def kraus(self, dt_ps: int) -> tuple[np.ndarray, ...]:
        """Kraus operators of amplitude damping followed by pure dephasing for ``dt_ps``."""
        gamma = 0.0 if math.isinf(self.t1_ps) else -math.expm1(-dt_ps / self.t1_ps)
        inv_tphi = (0.0 if math.isinf(self.t2_ps) else 1.0 / self.t2_ps) - (
            0.0 if math.isinf(self.t1_ps) else 0.5 / self.t1_ps)
        inv_tphi = max(inv_tphi, 0.0)
        # pure-dephasing coherence factor exp(-dt/T_phi) = 1 - 2p for a Z flip with probability p
        p_flip = 0.5 * (-math.expm1(-dt_ps * inv_tphi))
        a0 = np.array([[1, 0], [0, math.sqrt(1 - gamma)]], dtype=complex)
        a1 = np.array([[0, math.sqrt(gamma)], [0, 0]], dtype=complex)
        z = np.diag([1.0, -1.0]).astype(complex)
        s0 = math.sqrt(1 - p_flip)
        s1 = math.sqrt(p_flip)
        ops = [s0 * a0, s0 * a1, s1 * (z @ a0), s1 * (z @ a1)]
        return tuple(op for op in ops if np.any(op))
