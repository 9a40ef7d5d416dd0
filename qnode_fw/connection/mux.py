"""Multiplexing of a node's qubits between connections, and the fairness measure.

Two policies, selected per node in configuration:

* ``buffer`` - buffer-space multiplexing: each admitted connection gets its own partition of
  qubits (as many as its plan needs at this node, QRNA's "each qubit assigned to one connection");
  a request that does not fit the free qubits is refused with *insufficient resources*. Link
  pairs are generated into a partition and handed to that connection's RuleSet by name.
* ``statistical`` - statistical multiplexing: connections share every qubit; each heralded pair
  goes to the connection holding fewest pairs at the moment (the RuleSet executor's rule), so a
  short connection that completes pairs quickly cannot starve a long one of link pairs. Admission
  only checks that the node has the qubits one connection needs and caps the number of
  connections (``max_connections``).

Fairness is Jain's index over the connections' delivered rate divided by their requested rate:
1 when every connection gets the same share of what it asked for, 1/n when one gets everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from ..addresses import QubitAddress


class MuxPolicy(str, Enum):
    BUFFER = "buffer"
    STATISTICAL = "statistical"


def jain_index(values: Sequence[float]) -> float:
    if not values:
        return 1.0
    s, sq = sum(values), sum(v * v for v in values)
    return 1.0 if sq == 0 else s * s / (len(values) * sq)


@dataclass
class ResourcePool:
    node: str
    qubits: list[QubitAddress]
    policy: MuxPolicy = MuxPolicy.BUFFER
    max_connections: int = 8
    _parts: dict[str, list[QubitAddress]] = field(default_factory=dict)

    def free(self) -> int:
        """Qubits a new connection could have here (what the outbound pass reports)."""
        if self.policy is MuxPolicy.STATISTICAL:
            return len(self.qubits) if len(self._parts) < self.max_connections else 0
        used = sum(len(p) for p in self._parts.values())
        return len(self.qubits) - used

    def reserve(self, conn: str, need: int) -> list[QubitAddress] | None:
        """Set qubits aside for ``conn``; None if they are not there."""
        if conn in self._parts:
            return self._parts[conn]
        if self.free() < need:
            return None
        if self.policy is MuxPolicy.STATISTICAL:
            self._parts[conn] = []
            return []
        taken = {q for p in self._parts.values() for q in p}
        part = [q for q in self.qubits if q not in taken][:need]
        self._parts[conn] = part
        return part

    def release(self, conn: str) -> None:
        self._parts.pop(conn, None)

    def partition(self, conn: str) -> list[QubitAddress]:
        return list(self._parts.get(conn, []))

    @property
    def connections(self) -> list[str]:
        return sorted(self._parts)
