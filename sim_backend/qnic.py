"""SimQNIC: the QNIC interface over the exact density-matrix engine.

Construct with::

    SimQNIC(name, node, qnic_address, num_qubits, registry, clock, rng,
            params=MemoryParams(), communication_qubits=None)

* ``name``: instrument name in the node YAML; ``node``: the node's address (part of every qubit's
  global key ``(node, qnic_address, index)`` in the shared :class:`QuantumRegistry`);
* ``registry``: the testbed's shared quantum registry (``World.registry`` in a full simulation);
* ``clock``: the node clock; every operation happens at ``clock.now_ps()`` and first applies the
  T1/T2 decoherence accumulated since the qubit was last touched;
* ``rng``: this QNIC's own numpy Generator (``RandomStreams.get("node:A/qnic:0")``), used for
  measurement outcomes and readout errors;
* ``communication_qubits``: indices that can emit (all qubits when ``None``); the others are
  storage qubits, reachable only through :meth:`move`;
* ``full_operation_log``: keep every operation in :attr:`operation_log`, not only the latest
  :data:`OPERATION_LOG_SIZE` (tests that check a whole run against it).

``emit(index, attempt_id)`` hands an :class:`Emission` to every listener in ``emission_listeners``
(the simulated :class:`~sim_backend.world.World` registers itself); until a link resolves the
attempt, the qubit is entangled with a photon that has left, so it is maximally mixed.
``absorb(index, attempt_id)`` arms a communication qubit to take in a photon (the receiving end of
the ``at_source`` and ``midpoint_source`` schemes) and reaches the listeners the same way, as an
:class:`Emission` with ``absorb=True``. Both refuse storage qubits with
:class:`~qnode_fw.errors.QubitRoleError`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from drivers.qnic import QNIC, Basis, Gate, QubitRole
from qnode_fw.errors import InstrumentError, QubitRoleError

from .memory_params import MemoryParams
from .quantum.registry import QuantumRegistry, QubitKey

_MIXED = np.eye(2, dtype=complex) / 2

#: Operations the log keeps by default: the latest, enough to look at what the QNIC just did; a
#: node running for days would otherwise keep every operation it ever ran.
OPERATION_LOG_SIZE = 1024


@dataclass(frozen=True, slots=True)
class Emission:
    """A memory qubit's part in one link attempt: it emitted a photon, or (``absorb=True``) it was
    armed to absorb one."""

    key: QubitKey
    attempt_id: int
    time_ps: int
    absorb: bool = False


class SimQNIC(QNIC):
    model = "sim"

    def __init__(self, name: str, node: str, qnic_address: int, num_qubits: int,
                 registry: QuantumRegistry, clock, rng: np.random.Generator,
                 params: MemoryParams | None = None,
                 communication_qubits: list[int] | None = None,
                 full_operation_log: bool = False) -> None:
        super().__init__(name, f"sim://{node}/qnic{qnic_address}")
        if num_qubits < 1:
            raise InstrumentError(f"num_qubits must be at least 1, got {num_qubits}", resource=self.resource)
        self.node = node
        self._address = int(qnic_address)
        self._num_qubits = int(num_qubits)
        self.registry = registry
        self.clock = clock
        self.rng = rng
        self.params = params or MemoryParams()
        comm = range(num_qubits) if communication_qubits is None else communication_qubits
        self._communication = frozenset(int(i) for i in comm)
        for i in self._communication:
            self._check_index(i, "communication_qubits")
        self.emission_listeners: list[Callable[[Emission], None]] = []
        #: The latest operations as (time_ps, operation, indices...): what a lab would log from the
        #: AWG; the last OPERATION_LOG_SIZE, or every one with ``full_operation_log`` (a test that
        #: reads a whole run's history). :attr:`operations` counts them all.
        self.operation_log: list[tuple] | deque[tuple] = (
            [] if full_operation_log else deque(maxlen=OPERATION_LOG_SIZE))
        self.operations = 0
        now = clock.now_ps()
        for i in range(num_qubits):
            registry.add(self.key(i), self._decoherence(i), at_ps=now)

    def _log(self, entry: tuple) -> None:
        self.operation_log.append(entry)
        self.operations += 1

    # -- identity ---------------------------------------------------------------------------
    def identify(self) -> str:
        return f"qnode-fw,SimQNIC,{self.node}/qnic{self._address},sim"

    @property
    def qnic_address(self) -> int:
        return self._address

    @property
    def num_qubits(self) -> int:
        return self._num_qubits

    def role(self, index: int) -> QubitRole:
        self._check_index(index, "role")
        return QubitRole.COMMUNICATION if index in self._communication else QubitRole.STORAGE

    def key(self, index: int) -> QubitKey:
        return QubitKey(self.node, self._address, int(index))

    def _decoherence(self, index: int):
        if index in self._communication:
            return self.params.communication_decoherence()
        return self.params.storage_decoherence()

    # -- operations -------------------------------------------------------------------------
    def init(self, index: int) -> None:
        self._check_index(index, "init")
        now = self.clock.now_ps()
        self.registry.reset(self.key(index), at_ps=now)
        self._log((now, "init", index))

    def gate(self, gate: Gate, *indices: int) -> None:
        gate, _ = self._checked_gate(gate, indices)
        now = self.clock.now_ps()
        keys = [self.key(i) for i in indices]
        self.registry.apply(gate.value, keys, at_ps=now)
        p = self.params.two_qubit_gate_error if gate.num_qubits == 2 else self.params.single_qubit_gate_error
        if gate is not Gate.I:
            self.registry.depolarize(keys, p, at_ps=now)
        self._log((now, gate.value, *indices))

    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        self._check_index(index, "measure")
        basis = Basis(basis)
        now = self.clock.now_ps()
        outcome = self.registry.measure(self.key(index), basis.value, self.rng, at_ps=now)
        if self.params.measurement_error > 0 and self.rng.random() < self.params.measurement_error:
            outcome ^= 1
        self._log((now, f"measure_{basis.value}", index))
        return outcome

    def emit(self, index: int, attempt_id: int) -> None:
        self._photon_operation("emit", index, attempt_id)

    def absorb(self, index: int, attempt_id: int) -> None:
        self._photon_operation("absorb", index, attempt_id)

    def _photon_operation(self, operation: str, index: int, attempt_id: int) -> None:
        command = f"{operation} {index} {attempt_id}"
        self._check_index(index, command)
        if index not in self._communication:
            raise QubitRoleError(f"qubit {index} is a storage qubit and cannot {operation}",
                                 resource=self.resource, command=command)
        now = self.clock.now_ps()
        key = self.key(index)
        # emitting: the photon carries half of the entanglement away; absorbing: the qubit is
        # prepared for whatever arrives. Either way it is maximally mixed until the link resolves.
        self.registry.set_state([key], _MIXED, at_ps=now)
        self._log((now, operation, index, attempt_id))
        emission = Emission(key, int(attempt_id), now, absorb=operation == "absorb")
        for listener in list(self.emission_listeners):
            listener(emission)

    def move(self, source: int, destination: int) -> None:
        command = f"move {source} {destination}"
        self._check_index(source, command)
        self._check_index(destination, command)
        if source == destination:
            raise InstrumentError("move needs two different qubits", resource=self.resource, command=command)
        if destination in self._communication:
            raise QubitRoleError(f"move destination {destination} is not a storage qubit",
                                 resource=self.resource, command=command)
        now = self.clock.now_ps()
        src, dst = self.key(source), self.key(destination)
        # state transfer = SWAP with a freshly initialised destination, then re-initialise the source
        self.registry.reset(dst, at_ps=now)
        swap = np.eye(4, dtype=complex)[[0, 2, 1, 3]]
        self.registry.apply(swap, [src, dst], at_ps=now)
        self.registry.reset(src, at_ps=now)
        self.registry.depolarize([dst], self.params.move_error, at_ps=now)
        self._log((now, "move", source, destination))

    def duration_ps(self, operation: str) -> int:
        op = str(getattr(operation, "value", operation))
        durations = self.params.durations_ps
        if op in durations:
            return int(durations[op])
        if op in Gate.__members__:
            cls = "two_qubit_gate" if Gate(op).num_qubits == 2 else "single_qubit_gate"
            return int(durations[cls])
        if op.startswith("measure"):
            return int(durations["measure"])
        raise InstrumentError(f"unknown operation {operation!r}", resource=self.resource,
                              command=f"duration {operation}")
