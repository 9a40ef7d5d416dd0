"""The four Bell states and the Pauli correction that turns each into Φ+.

A heralded pair arrives in whichever Bell state the Bell-state measurement projected onto; the
herald says which. Applying :func:`correction_to_phi_plus` on one end turns it into Φ+, the
convention every RuleSet in qnode-fw assumes for a finished pair.
"""

from __future__ import annotations

from enum import Enum


class BellState(str, Enum):
    PHI_PLUS = "PHI_PLUS"    # (|00> + |11>)/√2
    PHI_MINUS = "PHI_MINUS"  # (|00> - |11>)/√2
    PSI_PLUS = "PSI_PLUS"    # (|01> + |10>)/√2
    PSI_MINUS = "PSI_MINUS"  # (|01> - |10>)/√2


#: Pauli applied to ONE qubit of the pair to reach Φ+ (up to a global phase).
_CORRECTION = {
    BellState.PHI_PLUS: "I",
    BellState.PHI_MINUS: "Z",
    BellState.PSI_PLUS: "X",
    BellState.PSI_MINUS: "Y",
}


def correction_to_phi_plus(state: BellState) -> str:
    """Name of the single-qubit Pauli (``I``, ``X``, ``Y``, ``Z``) that maps ``state`` to Φ+."""
    return _CORRECTION[BellState(state)]


def pauli_frame_bits(state: BellState) -> tuple[int, int]:
    """(x, z) bits of the correction: X^x Z^z, the form swap results carry on the wire."""
    return {"I": (0, 0), "X": (1, 0), "Z": (0, 1), "Y": (1, 1)}[correction_to_phi_plus(state)]
