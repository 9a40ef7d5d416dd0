"""A QNIC that records every operation and answers measurements from a script.

Used where a test asserts the exact operation sequence the executor issues (like asserting the
exact command exchange with an instrument emulator). Physics is tested on the simulated QNIC.
"""

from __future__ import annotations

from collections import deque

from drivers.qnic import QNIC, Basis, Gate, QubitRole


class RecordingQNIC(QNIC):
    model = "recording"

    def __init__(self, address: int = 0, size: int = 32, outcomes=()) -> None:
        super().__init__(f"rec{address}", "recording")
        self._address = address
        self._size = size
        self.ops: list[tuple] = []
        self.outcomes = deque(outcomes)

    def identify(self) -> str:
        return "recording QNIC"

    @property
    def qnic_address(self) -> int:
        return self._address

    @property
    def num_qubits(self) -> int:
        return self._size

    def role(self, index: int) -> QubitRole:
        return QubitRole.COMMUNICATION

    def init(self, index: int) -> None:
        self.ops.append(("init", index))

    def gate(self, gate: Gate, *indices: int) -> None:
        self.ops.append((Gate(gate).value, *indices))

    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        self.ops.append(("measure", index, Basis(basis).value))
        return self.outcomes.popleft() if self.outcomes else 0

    def emit(self, index: int, attempt_id: int) -> None:
        self.ops.append(("emit", index, attempt_id))

    def move(self, source: int, destination: int) -> None:
        self.ops.append(("move", source, destination))

    def duration_ps(self, operation: str) -> int:
        return 0
