"""Which communication qubits of a QNIC are free for a link attempt (RFC 9340 §5.4.3).

Only communication qubits reach a link; a node with one of them can serve one link at a time. A
communication qubit is busy from the moment it emits or is armed until its attempt's outcome is
known (``pending``), while a heralded pair sits on it (whoever consumes pairs says so through
``held``), and while a local operation on it runs (a move or a swap; ``free_at_ps``). Link ends
take a qubit for each attempt and give it back on failure; the attempt schedule's gate asks
:meth:`CommQubitPool.free` first, so an attempt without a free communication qubit is vetoed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from drivers.qnic import QNIC, QubitRole
from qnode_fw.addresses import QubitAddress
from qnode_fw.clock import Clock
from qnode_fw.errors import QubitRoleError


class CommQubitPool:
    def __init__(self, qnic: QNIC, clock: Clock, *,
                 held: Callable[[], set[QubitAddress]] | None = None,
                 free_at_ps: Callable[[QubitAddress], int] | None = None) -> None:
        self.qnic = qnic
        self.clock = clock
        self.address = qnic.qnic_address
        self.indices = tuple(i for i in range(qnic.num_qubits)
                             if qnic.role(i) is QubitRole.COMMUNICATION)
        if not self.indices:
            raise QubitRoleError("QNIC has no communication qubit, so it cannot serve a link",
                                 resource=qnic.resource, command="communication_qubits")
        self._held = held or (lambda: set())
        self._free_at = free_at_ps or (lambda q: 0)
        self.pending: set[int] = set()
        self.taken = 0
        self.released = 0

    def check(self, qubits: Iterable[int], what: str) -> tuple[int, ...]:
        """Validate a link's list of usable qubits: every one must be a communication qubit."""
        out = tuple(int(q) for q in qubits)
        for q in out:
            if q not in self.indices:
                raise QubitRoleError(f"{what} lists qubit {q}, which is not a communication qubit "
                                     f"(communication qubits: {list(self.indices)})",
                                     resource=self.qnic.resource, command="communication_qubits")
        return out

    def free(self, allowed: tuple[int, ...] | None = None) -> list[int]:
        now = self.clock.now_ps()
        held = self._held()
        return [i for i in (self.indices if allowed is None else allowed)
                if i not in self.pending and QubitAddress(self.address, i) not in held
                and self._free_at(QubitAddress(self.address, i)) <= now]

    def take(self, allowed: tuple[int, ...] | None = None) -> int:
        free = self.free(allowed)
        if not free:
            raise QubitRoleError("no free communication qubit for this attempt",
                                 resource=self.qnic.resource, command="attempt")
        self.pending.add(free[0])
        self.taken += 1
        return free[0]

    def release(self, index: int) -> None:
        """The attempt failed or expired: re-initialise the qubit and make it free again."""
        self.pending.discard(index)
        self.qnic.init(index)
        self.released += 1

    def untake(self, index: int) -> None:
        """The attempt never started (its QNIC call failed): free again, without calling the
        QNIC that just failed."""
        self.pending.discard(index)
        self.taken -= 1

    def bound(self, index: int) -> None:
        """The attempt heralded a pair: the qubit now belongs to the pair's consumer."""
        self.pending.discard(index)
