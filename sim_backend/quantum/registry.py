"""The quantum registry: every simulated memory qubit of a testbed, held as exact density matrices.

Qubits are keyed by a global :class:`QubitKey` ``(node, qnic, index)``. Qubits that are entangled
(or have been acted on together) share one :class:`QubitGroup` whose state is a numpy density
matrix; a two-qubit gate across groups merges them (tensor product), and a measurement or reset
splits the measured qubit back out, so groups stay as small as the physics allows.

Decoherence is lazy: each qubit remembers when its noise was last applied, and any operation that
touches it first applies T1/T2 for the elapsed time. Local channels on different qubits commute,
so applying a partner's noise later, when it is touched, gives exactly the same state.

Every operation takes ``at_ps``, the time it happens; ``None`` uses the registry's clock if it has
one and otherwise skips decoherence (pure state-algebra use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

import numpy as np

from qnode_fw.bell import BellState

from . import operators as ops
from .noise import Decoherence


class QubitKey(NamedTuple):
    node: str
    qnic: int
    index: int

    def __str__(self) -> str:
        return f"{self.node}<{self.qnic},{self.index}>"


@dataclass(eq=False)
class QubitGroup:
    keys: list[QubitKey]
    rho: np.ndarray

    @property
    def n(self) -> int:
        return len(self.keys)

    def position(self, key: QubitKey) -> int:
        return self.keys.index(key)


_ZERO = np.array([[1, 0], [0, 0]], dtype=complex)
_ONE = np.array([[0, 0], [0, 1]], dtype=complex)


@dataclass
class _QubitInfo:
    decoherence: Decoherence
    last_ps: int | None = None  # when noise was last brought up to date


@dataclass
class QuantumRegistry:
    clock: object | None = None  # qnode_fw.clock.Clock
    _groups: dict[QubitKey, QubitGroup] = field(default_factory=dict)
    _info: dict[QubitKey, _QubitInfo] = field(default_factory=dict)

    # -- membership -------------------------------------------------------------------------
    def add(self, key: QubitKey, decoherence: Decoherence | None = None, at_ps: int | None = None) -> None:
        """Register a qubit in |0>. Registering an existing key raises ValueError."""
        key = QubitKey(*key)
        if key in self._groups:
            raise ValueError(f"qubit {key} is already registered")
        self._groups[key] = QubitGroup([key], _ZERO.copy())
        self._info[key] = _QubitInfo(decoherence or Decoherence(), self._now(at_ps))

    def __contains__(self, key) -> bool:
        return QubitKey(*key) in self._groups

    def keys(self) -> list[QubitKey]:
        return list(self._groups)

    def group_of(self, key: QubitKey) -> QubitGroup:
        try:
            return self._groups[QubitKey(*key)]
        except KeyError:
            raise KeyError(f"qubit {key} is not registered") from None

    def set_decoherence(self, key: QubitKey, decoherence: Decoherence) -> None:
        self._info[QubitKey(*key)].decoherence = decoherence

    # -- time -------------------------------------------------------------------------------
    def _now(self, at_ps: int | None) -> int | None:
        if at_ps is not None:
            return int(at_ps)
        if self.clock is not None:
            return self.clock.now_ps()
        return None

    def _touch(self, keys: Iterable[QubitKey], now: int | None) -> None:
        """Apply each qubit's T1/T2 for the time since its noise was last applied."""
        if now is None:
            return
        for key in keys:
            info = self._info[key]
            if info.last_ps is not None and now > info.last_ps and not info.decoherence.is_ideal:
                group = self._groups[key]
                group.rho = ops.apply_kraus(group.rho, group.n, info.decoherence.kraus(now - info.last_ps),
                                            (group.position(key),))
            if info.last_ps is None or now > info.last_ps:
                info.last_ps = now

    def advance(self, keys: Iterable[QubitKey], at_ps: int | None = None) -> None:
        """Bring the stored noise of ``keys`` up to ``at_ps`` (or the clock)."""
        self._touch([QubitKey(*k) for k in keys], self._now(at_ps))

    # -- structure --------------------------------------------------------------------------
    def _merged(self, keys: list[QubitKey]) -> QubitGroup:
        """One group that holds all ``keys`` (tensoring their groups together if needed)."""
        groups: list[QubitGroup] = []
        for key in keys:
            g = self.group_of(key)
            if all(g is not h for h in groups):
                groups.append(g)
        if len(groups) == 1:
            return groups[0]
        merged_keys: list[QubitKey] = []
        rho = np.ones((1, 1), dtype=complex)
        for g in groups:
            merged_keys.extend(g.keys)
            rho = np.kron(rho, g.rho)
        merged = QubitGroup(merged_keys, rho)
        for k in merged_keys:
            self._groups[k] = merged
        return merged

    def _split_off(self, key: QubitKey, single_state: np.ndarray) -> None:
        """Remove ``key`` from its group (tracing it out) and give it ``single_state`` alone."""
        group = self._groups[key]
        if group.n > 1:
            pos = group.position(key)
            keep = [i for i in range(group.n) if i != pos]
            group.rho = ops.partial_trace(group.rho, group.n, keep)
            group.keys = [group.keys[i] for i in keep]
        self._groups[key] = QubitGroup([key], single_state.astype(complex))

    # -- operations -------------------------------------------------------------------------
    def reset(self, key: QubitKey, at_ps: int | None = None) -> None:
        """Put ``key`` in |0>, discarding any entanglement (the partner keeps its reduced state)."""
        key = QubitKey(*key)
        self.group_of(key)
        now = self._now(at_ps)
        self._split_off(key, _ZERO)
        if now is not None:
            self._info[key].last_ps = now

    def set_state(self, keys: list[QubitKey], rho: np.ndarray, at_ps: int | None = None) -> None:
        """Replace the state of ``keys`` by ``rho`` (qubit order as in ``keys``).

        Whatever the keys were entangled with is traced over first; noise on them starts at
        ``at_ps``.
        """
        keys = [QubitKey(*k) for k in keys]
        rho = np.asarray(rho, dtype=complex)
        d = 2 ** len(keys)
        if rho.shape != (d, d):
            raise ValueError(f"state for {len(keys)} qubits must be {d}x{d}, got {rho.shape}")
        if len(set(keys)) != len(keys):
            raise ValueError(f"repeated qubit in {keys}")
        now = self._now(at_ps)
        for key in keys:
            self.group_of(key)
            self._split_off(key, _ZERO)
        group = QubitGroup(list(keys), rho.copy())
        for key in keys:
            self._groups[key] = group
            if now is not None:
                self._info[key].last_ps = now

    def create_bell_pair(self, a: QubitKey, b: QubitKey, state: BellState | str = BellState.PHI_PLUS,
                         fidelity: float = 1.0, at_ps: int | None = None) -> None:
        """Put ``(a, b)`` in a Werner state of ``fidelity`` to the Bell state ``state``."""
        self.set_state([a, b], ops.werner_state(fidelity, state), at_ps)

    def create_bell_diagonal_pair(self, a: QubitKey, b: QubitKey, coefficients,
                                  at_ps: int | None = None) -> None:
        """Put ``(a, b)`` in Σ c_k |B_k><B_k| with ``coefficients`` ordered (Φ+, Φ−, Ψ+, Ψ−)."""
        self.set_state([a, b], ops.bell_diagonal_state(coefficients), at_ps)

    def apply(self, unitary: np.ndarray | str, keys: list[QubitKey], at_ps: int | None = None) -> None:
        """Apply a unitary (a matrix or a gate name of :data:`operators.GATES`) to ``keys``."""
        u = ops.GATES[unitary] if isinstance(unitary, str) else np.asarray(unitary, dtype=complex)
        self.apply_kraus((u,), keys, at_ps)

    def apply_kraus(self, kraus, keys: list[QubitKey], at_ps: int | None = None) -> None:
        keys = [QubitKey(*k) for k in keys]
        if len(set(keys)) != len(keys):
            raise ValueError(f"repeated qubit in {keys}")
        self._touch(keys, self._now(at_ps))
        group = self._merged(keys)
        targets = tuple(group.position(k) for k in keys)
        group.rho = ops.apply_kraus(group.rho, group.n, kraus, targets)

    def depolarize(self, keys: list[QubitKey], p: float, at_ps: int | None = None) -> None:
        """The len(keys)-qubit depolarising channel with probability ``p``."""
        if p <= 0.0:
            return
        keys = [QubitKey(*k) for k in keys]
        self._touch(keys, self._now(at_ps))
        group = self._merged(keys)
        group.rho = ops.depolarize(group.rho, group.n, tuple(group.position(k) for k in keys), p)

    def probability(self, key: QubitKey, basis: str = "Z", at_ps: int | None = None) -> float:
        """Probability of outcome 0 (+1 eigenvalue) when measuring ``key`` in ``basis``."""
        key = QubitKey(*key)
        self._touch([key], self._now(at_ps))
        rho1 = self.density_matrix([key])
        b = ops.BASIS_CHANGE[basis]
        return float(np.real((b @ rho1 @ b.conj().T)[0, 0]))

    def measure(self, key: QubitKey, basis: str, rng: np.random.Generator, at_ps: int | None = None) -> int:
        """Projective measurement in ``basis`` (``X``, ``Y``, ``Z``); returns 0 (+1) or 1 (−1).

        The outcome is sampled from the Born rule with ``rng``; the rest of the group collapses
        accordingly and the measured qubit is left alone in the eigenstate it was found in.
        """
        key = QubitKey(*key)
        basis = str(getattr(basis, "value", basis))
        change = ops.BASIS_CHANGE[basis]
        self._touch([key], self._now(at_ps))
        group = self._groups[key]
        pos = group.position(key)
        n = group.n
        rho = ops.apply_unitary(group.rho, n, change, (pos,)) if basis != "Z" else group.rho
        t = rho.reshape((2,) * (2 * n))
        # diagonal block where the measured qubit is 0 on both ket and bra
        index0 = [slice(None)] * (2 * n)
        index0[pos] = 0
        index0[n + pos] = 0
        block0 = t[tuple(index0)]
        side = 2 ** (n - 1)
        p0 = float(np.real(np.trace(block0.reshape(side, side))))
        p0 = min(max(p0, 0.0), 1.0)
        outcome = 0 if rng.random() < p0 else 1
        index = [slice(None)] * (2 * n)
        index[pos] = outcome
        index[n + pos] = outcome
        rest = t[tuple(index)].reshape(side, side)
        prob = p0 if outcome == 0 else 1.0 - p0
        # eigenstate of the measured basis: |m> rotated back by change†
        ket = change.conj().T[:, outcome]
        single = np.outer(ket, ket.conj())
        if n > 1:
            group.keys = [k for k in group.keys if k != key]
            group.rho = rest / prob if prob > 0 else rest
        self._groups[key] = QubitGroup([key], single)
        return outcome

    # -- inspection -------------------------------------------------------------------------
    def density_matrix(self, keys: list[QubitKey], at_ps: int | None = None) -> np.ndarray:
        """Reduced state of ``keys`` in that order (product across groups)."""
        keys = [QubitKey(*k) for k in keys]
        self._touch(keys, self._now(at_ps))
        pieces: list[tuple[QubitGroup, list[QubitKey]]] = []
        for key in keys:
            g = self.group_of(key)
            for piece in pieces:
                if piece[0] is g:
                    piece[1].append(key)
                    break
            else:
                pieces.append((g, [key]))
        rho = np.ones((1, 1), dtype=complex)
        order: list[QubitKey] = []
        for g, members in pieces:
            reduced = ops.partial_trace(g.rho, g.n, [g.position(k) for k in members])
            rho = np.kron(rho, reduced)
            order.extend(members)
        perm = [order.index(k) for k in keys]
        return ops.permute(rho, len(keys), perm)

    def bell_fidelity(self, a: QubitKey, b: QubitKey, state: BellState | str = BellState.PHI_PLUS,
                      at_ps: int | None = None) -> float:
        """<B|ρ_ab|B> for the Bell state ``state``."""
        return ops.fidelity_pure(self.density_matrix([a, b], at_ps), ops.bell_vector(state))

    def fidelity_to(self, keys: list[QubitKey], target: np.ndarray, at_ps: int | None = None) -> float:
        """Uhlmann fidelity of the reduced state of ``keys`` to ``target`` (matrix or pure vector)."""
        rho = self.density_matrix(keys, at_ps)
        target = np.asarray(target, dtype=complex)
        if target.ndim == 1:
            return ops.fidelity_pure(rho, target)
        return ops.fidelity(rho, target)

    def is_entangled_with(self, a: QubitKey, b: QubitKey) -> bool:
        """True when ``a`` and ``b`` share a group (they may be correlated)."""
        return self.group_of(a) is self.group_of(b)
