"""Names of things: nodes, physical qubits and Bell pairs.

The QRNA paper binds every resource to a physical qubit ``<QNICAddress, QubitIndex>`` and names a
Bell pair ``<NodeAddress, Timestamp>`` after the node that heralded it (the BSA station or EPPS)
and the herald time. Pairing by name, never by arrival order, is what rules out wrong pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

NodeAddress = str
"""A node's address as written in the testbed YAML (for example ``"A"`` or ``"bsa-AB"``)."""


@dataclass(frozen=True, order=True, slots=True)
class QubitAddress:
    """One physical memory qubit: the QNIC it sits on and its index within that QNIC."""

    qnic: int
    index: int

    def __str__(self) -> str:
        return f"<{self.qnic},{self.index}>"


@dataclass(frozen=True, order=True, slots=True)
class PairName:
    """The name of a Bell pair: the node that heralded it and the herald time in picoseconds.

    After an entanglement swap the pair is renamed after the swapping node and the swap time, and
    the new name travels in the swap result so both ends agree on it.
    """

    origin: NodeAddress
    timestamp_ps: int

    def __str__(self) -> str:
        return f"<{self.origin},{self.timestamp_ps}>"

    def to_wire(self) -> list:
        return [self.origin, self.timestamp_ps]

    @classmethod
    def from_wire(cls, value: list) -> "PairName":
        origin, ts = value
        return cls(str(origin), int(ts))
