"""Local circuits the executor runs through the QNIC, and the fidelity estimates they imply.

Conventions (each end runs the same circuit on its halves; indices are on one QNIC):

* **Bell-state measurement** of ``a`` (pair with the left partner) and ``b`` (right partner):
  CNOT(a→b), H(a), measure a and b in Z. With Φ+ on both input pairs, the left and right ends then
  share X^m_b Z^m_a Φ+ on the left end's qubit, so the left end applies Z^m_a then X^m_b
  (frame_x = m_b, frame_z = m_a) and the right end nothing (QuISP's convention).
* **Single selection**, kept ``k``, sacrificed ``s``: ``SINGLE_X`` (catches X and Y errors):
  CNOT(k→s), measure s in Z; ``SINGLE_Z`` (catches Z and Y errors): CNOT(s→k), measure s in X;
  ``SINGLE_Y`` (catches X and Z errors): the lower-addressed end applies S and the other S† to
  both qubits (this keeps Φ+), then the ``SINGLE_Z`` circuit, then undoes the rotation on k.
  The two ends keep k when their bits agree.
* **Double selection** (Fujii–Yamamoto), kept k, s1, s2: ``DOUBLE_X``: CNOT(k→s1), CNOT(s2→s1),
  measure s1 in Z and s2 in X; ``DOUBLE_Z`` the same with X and Z exchanged. Both bits must agree.
"""

from __future__ import annotations

from drivers.qnic import QNIC, Basis, Gate

from .model import PurificationMethod


def werner_swap(f1: float, f2: float) -> float:
    """Fidelity after swapping two Werner pairs: F1F2 + (1-F1)(1-F2)/3."""
    return f1 * f2 + (1 - f1) * (1 - f2) / 3


def bbpssw(f1: float, f2: float) -> tuple[float, float]:
    """(success probability, output fidelity) of one BBPSSW round on Werner pairs."""
    q1, q2 = (1 - f1) / 3, (1 - f2) / 3
    p = f1 * f2 + f1 * q2 + q1 * f2 + 5 * q1 * q2
    return p, (f1 * f2 + q1 * q2) / p


def bell_measure(qnic: QNIC, a: int, b: int) -> tuple[int, int]:
    """BSM of a and b; returns (frame_x, frame_z) for the left end."""
    qnic.gate(Gate.CNOT, a, b)
    qnic.gate(Gate.H, a)
    m_a = qnic.measure(a, Basis.Z)
    m_b = qnic.measure(b, Basis.Z)
    return m_b, m_a


def bsm_duration_ps(qnic: QNIC) -> int:
    return qnic.duration_ps("CNOT") + qnic.duration_ps("H") + 2 * qnic.duration_ps("measure")


def purify(qnic: QNIC, method: PurificationMethod, kept: int, sacrificed: list[int],
           lower_end: bool) -> tuple[tuple[int, ...], int]:
    """Run ``method``; returns (result bits, duration in ps). Sacrificed qubits are measured."""
    d = qnic.duration_ps
    if method is PurificationMethod.SINGLE_X:
        (s,) = sacrificed
        qnic.gate(Gate.CNOT, kept, s)
        return (qnic.measure(s, Basis.Z),), d("CNOT") + d("measure")
    if method is PurificationMethod.SINGLE_Z:
        (s,) = sacrificed
        qnic.gate(Gate.CNOT, s, kept)
        return (qnic.measure(s, Basis.X),), d("CNOT") + d("measure")
    if method is PurificationMethod.SINGLE_Y:
        (s,) = sacrificed
        fwd, back = (Gate.S, Gate.SDG) if lower_end else (Gate.SDG, Gate.S)
        qnic.gate(fwd, kept)
        qnic.gate(fwd, s)
        qnic.gate(Gate.CNOT, s, kept)
        bit = qnic.measure(s, Basis.X)
        qnic.gate(back, kept)
        return (bit,), 3 * d(fwd.value) + d("CNOT") + d("measure")
    s1, s2 = sacrificed
    if method is PurificationMethod.DOUBLE_X:
        qnic.gate(Gate.CNOT, kept, s1)
        qnic.gate(Gate.CNOT, s2, s1)
        bits = (qnic.measure(s1, Basis.Z), qnic.measure(s2, Basis.X))
    else:
        qnic.gate(Gate.CNOT, s1, kept)
        qnic.gate(Gate.CNOT, s1, s2)
        bits = (qnic.measure(s1, Basis.X), qnic.measure(s2, Basis.Z))
    return bits, 2 * d("CNOT") + 2 * d("measure")


def double_selection(f: float, f1: float, f2: float) -> tuple[float, float]:
    """(success probability, output fidelity) of double selection on Werner pairs: kept ``f``,
    sacrificed ``f1`` (checked directly) and ``f2`` (checks ``f1``).

    Sums over the Pauli errors (x, z) of the three pairs (Φ+ = (0,0), Φ− = (0,1), Ψ+ = (1,0),
    Ψ− = (1,1)): DOUBLE_X keeps when x_k⊕x_1⊕x_2 = 0 and z_1 = z_2, leaving the kept pair with
    (x_k, z_k⊕z_1). DOUBLE_Z is the same with x and z exchanged, which Werner weights cannot
    tell apart, so one formula serves both. This is not two BBPSSW rounds: the second sacrificed
    pair catches the phase error the first one kicks back, which a second round cannot.
    """
    def weights(fid: float) -> dict[tuple[int, int], float]:
        q = (1 - fid) / 3
        return {(0, 0): fid, (0, 1): q, (1, 0): q, (1, 1): q}

    p = good = 0.0
    for (xk, zk), a in weights(f).items():
        for (x1, z1), b in weights(f1).items():
            for (x2, z2), c in weights(f2).items():
                if xk ^ x1 ^ x2 == 0 and z1 == z2:
                    p += a * b * c
                    if xk == 0 and zk == z1:
                        good += a * b * c
    return p, good / p


def purified_fidelity(method: PurificationMethod, f: float, sacrificed: list[float]) -> float:
    """Fidelity estimate after a matching result, treating every input as a Werner pair:
    BBPSSW for single selection, :func:`double_selection` for double selection."""
    if method.pairs_needed == 3:
        return double_selection(f, *sacrificed)[1]
    (fs,) = sacrificed
    return bbpssw(f, fs)[1]
