"""What a connection asks for, and why a setup can be refused."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class QoS:
    """End-to-end Bell pairs per second, minimum fidelity, and a count or a duration."""

    pairs_per_s: float
    min_fidelity: float
    count: int | None = None
    duration_ps: int | None = None

    def __post_init__(self) -> None:
        if (self.count is None) == (self.duration_ps is None):
            raise ValueError("QoS needs exactly one of count and duration_ps")
        if not 0.5 < self.min_fidelity <= 1.0:
            raise ValueError(f"min_fidelity must be in (0.5, 1], got {self.min_fidelity}")
        if self.pairs_per_s <= 0:
            raise ValueError(f"pairs_per_s must be positive, got {self.pairs_per_s}")

    def to_wire(self) -> dict:
        return {"pairs_per_s": self.pairs_per_s, "min_fidelity": self.min_fidelity,
                "count": self.count, "duration_ps": self.duration_ps}

    @classmethod
    def from_wire(cls, d: dict) -> "QoS":
        return cls(float(d["pairs_per_s"]), float(d["min_fidelity"]),
                   None if d.get("count") is None else int(d["count"]),
                   None if d.get("duration_ps") is None else int(d["duration_ps"]))


class Reason(str, Enum):
    NO_ROUTE = "no route"
    INSUFFICIENT_RESOURCES = "insufficient resources"
    UNREACHABLE_FIDELITY = "unreachable fidelity"
    TIMEOUT = "timeout"
    PEER_DOWN = "peer down"
    RULESET_REFUSED = "ruleset refused"
    TORN_DOWN = "torn down"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a connection ended up, as seen by one node."""

    conn_id: str
    established: bool
    reason: Reason | None = None
    detail: str = ""
    node: str = ""        # the node that stated the reason

    def __str__(self) -> str:
        if self.established:
            return f"{self.conn_id}: established"
        return f"{self.conn_id}: {self.reason.value if self.reason else '?'} at {self.node}: {self.detail}"
