"""RuleSet executors on a chain of simulated QNICs (exact density matrices), for physics tests.

Every node gets a :class:`~sim_backend.qnic.SimQNIC` over one shared
:class:`~sim_backend.quantum.registry.QuantumRegistry` and the real
:class:`~qnode_fw.ruleset.executor.RuleSetExecutor`; RuleSet messages go through the in-process
bus (wire form included) on one virtual-clock EventLoop. The test plays the link layer
(:meth:`SimChain.herald` writes a Bell-diagonal state into two free qubits and hands both ends a
``PairReady``) and the application: once both halves of an end-to-end pair are delivered it reads
their exact two-qubit density matrix from the registry, then frees both qubits.

Nothing here computes an expected value; the tests hold the closed forms.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.events import PairReady
from qnode_fw.loop import EventLoop
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.bus import InProcessBus, LinkFaults
from qnode_fw.ruleset.executor import MeasurementOutcome, PairDelivered, RuleSetExecutor
from sim_backend.memory_params import MemoryParams
from sim_backend.qnic import SimQNIC
from sim_backend.quantum.registry import QuantumRegistry, QubitKey

# Bell vectors written out here (textbook, |q_first q_last>), so the tests do not take their
# reference states from the simulator they check.
_S = 1 / np.sqrt(2)
BELL = {
    BellState.PHI_PLUS: np.array([1, 0, 0, 1], dtype=complex) * _S,
    BellState.PHI_MINUS: np.array([1, 0, 0, -1], dtype=complex) * _S,
    BellState.PSI_PLUS: np.array([0, 1, 1, 0], dtype=complex) * _S,
    BellState.PSI_MINUS: np.array([0, 1, -1, 0], dtype=complex) * _S,
}
#: Coefficient order used by every vector of Bell-diagonal weights in these tests.
ORDER = (BellState.PHI_PLUS, BellState.PHI_MINUS, BellState.PSI_PLUS, BellState.PSI_MINUS)
#: Pauli on the second qubit that takes Φ+ to each Bell state (up to a global phase).
_FROM_PHI_PLUS = {BellState.PHI_PLUS: "I", BellState.PHI_MINUS: "Z",
                  BellState.PSI_PLUS: "X", BellState.PSI_MINUS: "Y"}


def bell_diagonal(coeffs: Iterable[float]) -> np.ndarray:
    return sum(c * np.outer(BELL[b], BELL[b].conj()) for c, b in zip(coeffs, ORDER))


def werner(f: float) -> tuple[float, float, float, float]:
    q = (1 - f) / 3
    return (f, q, q, q)


def bell_weights(rho: np.ndarray) -> np.ndarray:
    """<B|rho|B> for B in ORDER."""
    return np.array([np.real(BELL[b].conj() @ rho @ BELL[b]) for b in ORDER])


class ScriptedUniform:
    """Stands in for a QNIC's random generator so a test chooses Born-rule outcomes: the
    registry reports outcome 0 when the draw is below P(0). Running out of draws raises."""

    def __init__(self, draws: Iterable[float]) -> None:
        self.draws = deque(draws)

    def random(self) -> float:
        return self.draws.popleft()


def draw_for(outcome: int) -> float:
    """A draw that yields ``outcome`` whenever P(0) is strictly between 1/4 and 3/4."""
    return 0.25 if outcome == 0 else 0.75


@dataclass(frozen=True)
class EndPair:
    """An end-to-end pair the application received: names, qubits, exact state when the second
    half arrived, and each end's fidelity estimate."""

    name: PairName
    first: QubitKey
    last: QubitKey
    rho: np.ndarray
    estimates: tuple[float, float]
    delivered_ps: int


# NV durations (MemoryParams defaults) with no noise: the control timing is realistic (a CNOT
# takes 500 µs, so results leave half a millisecond after the rule fires) and the states are
# exactly what the circuits make.
IDEAL = MemoryParams.ideal()


class SimChain:
    def __init__(self, path: list[str], rulesets: Mapping[str, m.RuleSet], *, qubits: int = 8,
                 params: MemoryParams = IDEAL, seed: int = 1,
                 qnic_rngs: Mapping[str, object] | None = None,
                 faults: LinkFaults = LinkFaults()) -> None:
        self.path = list(path)
        self.loop = EventLoop(VirtualClock())
        self.registry = QuantumRegistry()
        self.bus = InProcessBus(self.loop, np.random.default_rng([seed, 1]), faults)
        self.qnics: dict[str, SimQNIC] = {}
        self.executors: dict[str, RuleSetExecutor] = {}
        self.app_held: dict[str, dict[int, PairDelivered]] = {n: {} for n in path}
        self.waiting: dict[PairName, tuple[str, PairDelivered]] = {}
        self.end_pairs: list[EndPair] = []
        self.outcomes: list[tuple[str, MeasurementOutcome]] = []
        self._last_name: dict[int, int] = {}
        for i, n in enumerate(path):
            rng = (qnic_rngs or {}).get(n) or np.random.default_rng([seed, 2, i])
            qnic = SimQNIC(f"{n}-qnic", n, 0, qubits, self.registry, self.loop.clock, rng, params,
                           full_operation_log=True)      # compared whole between two runs
            ex = RuleSetExecutor(n, self.loop, [qnic],
                                 send=lambda peer, msg, n=n: self.bus.send(n, peer, msg),
                                 deliver=lambda ev, n=n: self._delivered(n, ev),
                                 rng=np.random.default_rng([seed, 3, i]))
            self.bus.attach(n, ex.on_message)
            ex.install(rulesets[n], path)
            self.qnics[n], self.executors[n] = qnic, ex

    # -- link layer -------------------------------------------------------------------------
    def free_qubit(self, node: str) -> int | None:
        busy = {q.index for q in self.executors[node].held_qubits()} | set(self.app_held[node])
        return next((i for i in range(self.qnics[node].num_qubits) if i not in busy), None)

    def herald(self, link: int, coeffs=(1.0, 0.0, 0.0, 0.0),
               declared: BellState = BellState.PHI_PLUS, estimate: float | None = None
               ) -> PairName | None:
        """A pair on link (path[link], path[link+1]) in the Bell-diagonal state ``coeffs`` (in
        :data:`ORDER`) about Φ+, rotated so that the herald reports ``declared``; None when
        either end has no free qubit."""
        x, y = self.path[link], self.path[link + 1]
        qx, qy = self.free_qubit(x), self.free_qubit(y)
        if qx is None or qy is None:
            return None
        now = self.loop.now_ps()
        ts = max(now, self._last_name.get(link, -1) + 1)
        self._last_name[link] = ts
        name = PairName(f"bsa-{x}{y}", ts)
        kx, ky = self.qnics[x].key(qx), self.qnics[y].key(qy)
        self.registry.set_state([kx, ky], bell_diagonal(coeffs), at_ps=now)
        self.registry.apply(_FROM_PHI_PLUS[declared], [ky], at_ps=now)
        fid = coeffs[0] if estimate is None else estimate
        for node, q, other in ((x, qx, y), (y, qy, x)):
            self.executors[node].on_pair_ready(PairReady(QubitAddress(0, q), name, other, declared,
                                                         f"{x}-{y}", ts, now, fid))
        return name

    # -- application ------------------------------------------------------------------------
    def _delivered(self, node: str, ev) -> None:
        if isinstance(ev, MeasurementOutcome):
            self.outcomes.append((node, ev))
            return
        if not isinstance(ev, PairDelivered):
            return
        self.app_held[node][ev.qubit.index] = ev
        other = self.waiting.pop(ev.name, None)
        if other is None:
            self.waiting[ev.name] = (node, ev)
            return
        on, oev = other
        halves = sorted([(node, ev), (on, oev)], key=lambda h: self.path.index(h[0]))
        (n1, e1), (n2, e2) = halves
        k1, k2 = self.qnics[n1].key(e1.qubit.index), self.qnics[n2].key(e2.qubit.index)
        self.end_pairs.append(EndPair(ev.name, k1, k2, self.registry.density_matrix([k1, k2]),
                                      (e1.fidelity_estimate, e2.fidelity_estimate),
                                      self.loop.now_ps()))
        for n, e in halves:
            self.qnics[n].init(e.qubit.index)
            del self.app_held[n][e.qubit.index]

    def release_unmatched(self) -> int:
        """The application gives up on halves whose other half never came; returns how many."""
        count = 0
        for node, ev in self.waiting.values():
            self.qnics[node].init(ev.qubit.index)
            del self.app_held[node][ev.qubit.index]
            count += 1
        self.waiting.clear()
        return count

    # -- inspection -------------------------------------------------------------------------
    def run_for(self, ps: int) -> None:
        self.loop.run_until(self.loop.now_ps() + ps)

    def wire(self, msg_type: str) -> list[tuple[int, str, str, dict]]:
        return [e for e in self.bus.log if e[3]["type"] == msg_type]

    def held(self) -> dict[str, set[QubitAddress]]:
        return {n: ex.held_qubits() for n, ex in self.executors.items() if ex.held_qubits()}

    def unclean_qubits(self) -> list[str]:
        """Qubits of any node not alone in |0> in the registry: anything still entangled or
        left in a state after it was given back."""
        zero = np.array([[1, 0], [0, 0]], dtype=complex)
        bad = []
        for qnic in self.qnics.values():
            for i in range(qnic.num_qubits):
                g = self.registry.group_of(qnic.key(i))
                if g.n != 1 or not np.allclose(g.rho, zero, atol=1e-12):
                    bad.append(str(qnic.key(i)))
        return bad
