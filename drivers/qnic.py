"""QNIC interface: the memory qubits of a node and the operations the RuleSet executor runs on them.

A QNIC is addressed ``<QNICAddress, QubitIndex>`` as in the QRNA paper. Operations are synchronous
calls; each has a duration (:meth:`QNIC.duration_ps`) that the executor accounts for in its
schedule. In the lab a QNIC is bound (in YAML) to AWG sequences for gates and emission and to
time-tagger counting windows for readout; in simulation it acts on exact density matrices.
"""

from __future__ import annotations

from abc import abstractmethod
from enum import Enum

from qnode_fw.errors import InstrumentError

from .instrument import Instrument


class Gate(str, Enum):
    I = "I"
    X = "X"
    Y = "Y"
    Z = "Z"
    H = "H"
    S = "S"
    SDG = "SDG"
    CNOT = "CNOT"  # control, target
    CZ = "CZ"

    @property
    def num_qubits(self) -> int:
        return 2 if self in (Gate.CNOT, Gate.CZ) else 1


class Basis(str, Enum):
    X = "X"
    Y = "Y"
    Z = "Z"


class QubitRole(str, Enum):
    COMMUNICATION = "communication"  # can emit a photon entangled with itself
    STORAGE = "storage"  # holds a pair after a move; cannot emit


class QNIC(Instrument):
    kind = "qnic"

    @property
    @abstractmethod
    def qnic_address(self) -> int: ...

    @property
    @abstractmethod
    def num_qubits(self) -> int: ...

    @abstractmethod
    def role(self, index: int) -> QubitRole: ...

    # -- argument checks every implementation makes before acting --------------------------------
    def _check_index(self, index: int, command: str) -> None:
        """Refuse a qubit index outside ``0..num_qubits-1``, naming the command."""
        if not 0 <= int(index) < self.num_qubits:
            raise InstrumentError(f"qubit index {index} out of range 0..{self.num_qubits - 1}",
                                  resource=self.resource, command=command)

    def _checked_gate(self, gate: "Gate | str", indices: tuple[int, ...]) -> tuple["Gate", str]:
        """``gate`` as a :class:`Gate` of the fixed set and the command text, after checking its
        arity, that a two-qubit gate names two different qubits, and every index."""
        try:
            gate = Gate(gate)
        except ValueError:
            raise InstrumentError(f"{gate!r} is not a gate of the fixed set", resource=self.resource,
                                  command=f"{gate} {' '.join(map(str, indices))}") from None
        command = f"{gate.value} {' '.join(map(str, indices))}"
        if len(indices) != gate.num_qubits:
            raise InstrumentError(f"gate {gate.value} takes {gate.num_qubits} qubit(s), got "
                                  f"{len(indices)}", resource=self.resource, command=command)
        if len(set(indices)) != len(indices):
            raise InstrumentError("a two-qubit gate needs two different qubits",
                                  resource=self.resource, command=command)
        for i in indices:
            self._check_index(i, command)
        return gate, command

    @abstractmethod
    def init(self, index: int) -> None:
        """Reset qubit ``index`` to |0>, breaking any entanglement it had."""

    @abstractmethod
    def gate(self, gate: Gate, *indices: int) -> None:
        """Apply ``gate`` to the given qubit indices (control first for two-qubit gates)."""

    @abstractmethod
    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        """Measure in ``basis``; returns 0 (+1 eigenvalue) or 1 (-1 eigenvalue)."""

    @abstractmethod
    def emit(self, index: int, attempt_id: int) -> None:
        """Emit a photon entangled with communication qubit ``index`` for attempt ``attempt_id``."""

    def absorb(self, index: int, attempt_id: int) -> None:
        """Arm communication qubit ``index`` to take in the photon of attempt ``attempt_id``
        through the QNIC's transducer (receiving end of the ``at_source`` and ``midpoint_source``
        link schemes). Emitter-only hardware keeps this default, which refuses."""
        from qnode_fw.errors import InstrumentError

        raise InstrumentError(f"{self.model} QNIC has no absorbing transducer",
                              resource=self.resource, command=f"absorb {index} {attempt_id}")

    @abstractmethod
    def move(self, source: int, destination: int) -> None:
        """Transfer the state of ``source`` (communication) into ``destination`` (storage); the
        source is left re-initialised. Takes ``duration_ps("move")``."""

    @abstractmethod
    def duration_ps(self, operation: str) -> int:
        """How long ``operation`` (``init``, a gate name, ``measure``, ``emit``, ``move``) takes."""
