"""Gate matrices, Bell-state vectors and the tensor kernels that apply operators to density matrices.

A group of ``n`` qubits is one ``(2**n, 2**n)`` complex array; qubit 0 of the group is the most
significant bit of the row index (``|q0 q1 ... q_{n-1}>``), the usual textbook order, so the
two-qubit state ``|01>`` is row 1.
"""

from __future__ import annotations

import itertools

import numpy as np

from qnode_fw.bell import BellState

_SQ2 = 1.0 / np.sqrt(2.0)

I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
Z = np.array([[1, 0], [0, -1]], dtype=complex)
H = _SQ2 * np.array([[1, 1], [1, -1]], dtype=complex)
S = np.array([[1, 0], [0, 1j]], dtype=complex)
SDG = S.conj().T
CNOT = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)
CZ = np.diag([1, 1, 1, -1]).astype(complex)

#: Unitaries by the names of :class:`drivers.qnic.Gate`.
GATES: dict[str, np.ndarray] = {
    "I": I2, "X": X, "Y": Y, "Z": Z, "H": H, "S": S, "SDG": SDG, "CNOT": CNOT, "CZ": CZ,
}

PAULIS = (I2, X, Y, Z)

#: Unitary that maps the eigenbasis of a Pauli basis onto the Z basis: measuring Z after it is a
#: measurement in that basis (outcome 0 = +1 eigenvalue).
BASIS_CHANGE: dict[str, np.ndarray] = {"Z": I2, "X": H, "Y": H @ SDG}

_BELL_VECTORS = {
    BellState.PHI_PLUS: np.array([1, 0, 0, 1], dtype=complex) * _SQ2,
    BellState.PHI_MINUS: np.array([1, 0, 0, -1], dtype=complex) * _SQ2,
    BellState.PSI_PLUS: np.array([0, 1, 1, 0], dtype=complex) * _SQ2,
    BellState.PSI_MINUS: np.array([0, 1, -1, 0], dtype=complex) * _SQ2,
}

#: Order of the Bell-diagonal coefficients used throughout: (Φ+, Φ−, Ψ+, Ψ−).
BELL_ORDER = (BellState.PHI_PLUS, BellState.PHI_MINUS, BellState.PSI_PLUS, BellState.PSI_MINUS)


def bell_vector(state: BellState | str) -> np.ndarray:
    return _BELL_VECTORS[BellState(state)].copy()


def bell_projector(state: BellState | str) -> np.ndarray:
    v = _BELL_VECTORS[BellState(state)]
    return np.outer(v, v.conj())


def bell_diagonal_state(coefficients) -> np.ndarray:
    """Σ_k c_k |B_k><B_k| with ``coefficients`` in :data:`BELL_ORDER` (they must sum to 1)."""
    c = np.asarray(coefficients, dtype=float)
    if c.shape != (4,) or np.any(c < -1e-12) or abs(c.sum() - 1.0) > 1e-9:
        raise ValueError(f"Bell-diagonal coefficients must be 4 non-negative numbers summing to 1, got {coefficients}")
    return sum(ck * bell_projector(b) for ck, b in zip(c, BELL_ORDER))


def werner_coefficients(fidelity: float, state: BellState | str = BellState.PHI_PLUS) -> np.ndarray:
    """Bell-diagonal weights of the Werner state: F on ``state``, (1−F)/3 on each of the others."""
    if not 0.0 <= fidelity <= 1.0:
        raise ValueError(f"fidelity must be in [0, 1], got {fidelity}")
    c = np.full(4, (1.0 - fidelity) / 3.0)
    c[BELL_ORDER.index(BellState(state))] = fidelity
    return c


def werner_state(fidelity: float, state: BellState | str = BellState.PHI_PLUS) -> np.ndarray:
    return bell_diagonal_state(werner_coefficients(fidelity, state))


def apply_unitary(rho: np.ndarray, n: int, u: np.ndarray, targets: tuple[int, ...]) -> np.ndarray:
    """U ρ U† where U acts on the group positions ``targets`` (in U's own qubit order)."""
    return apply_kraus(rho, n, (u,), targets)


def apply_kraus(rho: np.ndarray, n: int, kraus, targets: tuple[int, ...]) -> np.ndarray:
    """Σ_k K_k ρ K_k† with each K_k acting on ``targets``."""
    k = len(targets)
    t = rho.reshape((2,) * (2 * n))
    ket_axes = list(targets)
    bra_axes = [n + q for q in targets]
    out = np.zeros_like(t)
    for op in kraus:
        m = op.reshape((2,) * (2 * k))
        # contract op's input indices with the ket axes, then conj(op) with the bra axes
        a = np.tensordot(m, t, axes=(list(range(k, 2 * k)), ket_axes))
        a = np.moveaxis(a, list(range(k)), ket_axes)
        b = np.tensordot(m.conj(), a, axes=(list(range(k, 2 * k)), bra_axes))
        b = np.moveaxis(b, list(range(k)), bra_axes)
        out = out + b
    return out.reshape(rho.shape)


def depolarize(rho: np.ndarray, n: int, targets: tuple[int, ...], p: float) -> np.ndarray:
    """(1−p)ρ + p·(I/2^k ⊗ Tr_targets ρ): the k-qubit depolarising channel on ``targets``.

    Written as a uniform Pauli twirl: the average of P ρ P over all 4^k Paulis replaces the targets
    by the maximally mixed state.
    """
    if p <= 0.0:
        return rho
    k = len(targets)
    twirled = np.zeros_like(rho)
    for paulis in itertools.product(PAULIS, repeat=k):
        op = paulis[0]
        for extra in paulis[1:]:
            op = np.kron(op, extra)
        twirled += apply_unitary(rho, n, op, targets)
    twirled /= 4 ** k
    return (1.0 - p) * rho + p * twirled


def partial_trace(rho: np.ndarray, n: int, keep: list[int]) -> np.ndarray:
    """Reduced state of positions ``keep`` (in that order)."""
    drop = [q for q in range(n) if q not in keep]
    t = rho.reshape((2,) * (2 * n))
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ket = list(letters[:n])
    bra = list(letters[n : 2 * n])
    for q in drop:
        bra[q] = ket[q]
    out = "".join(ket[q] for q in keep) + "".join(bra[q] for q in keep)
    r = np.einsum("".join(ket) + "".join(bra) + "->" + out, t)
    d = 2 ** len(keep)
    return r.reshape(d, d)


def permute(rho: np.ndarray, n: int, order: list[int]) -> np.ndarray:
    """Reorder a group's qubits so that new position i holds old position ``order[i]``."""
    t = rho.reshape((2,) * (2 * n))
    t = np.transpose(t, list(order) + [n + q for q in order])
    return t.reshape(rho.shape)


def fidelity_pure(rho: np.ndarray, psi: np.ndarray) -> float:
    """<ψ|ρ|ψ>."""
    return float(np.real(psi.conj() @ rho @ psi))


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.conj().T) / 2)
    w = np.clip(w, 0.0, None)
    return (v * np.sqrt(w)) @ v.conj().T


def fidelity(rho: np.ndarray, sigma: np.ndarray) -> float:
    """Uhlmann fidelity (Tr √(√ρ σ √ρ))², the squared convention (pure σ: <ψ|ρ|ψ>)."""
    s = _psd_sqrt(rho)
    inner = _psd_sqrt(s @ sigma @ s)
    return float(np.real(np.trace(inner)) ** 2)
