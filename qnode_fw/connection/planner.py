"""The Responder's plan: purification rounds per link chosen to meet the target fidelity, the
expected end-to-end fidelity and rate, and the qubits each node must set aside.

Model (Werner pairs throughout, the model the routing cost also uses):

* each link delivers Werner pairs of its reported fidelity ``F_i`` at its reported rate;
  ``r`` rounds of BBPSSW on every link give ``F_i(r)`` and divide the rate by ``2 / p`` per round;
* memories depolarise: a pair waiting ``t`` keeps its Werner parameter ``w = (4F - 1) / 3``
  scaled by ``exp(-2 t / T)`` (both halves, memory coherence ``T`` = the shortest any node on
  the path reports). Link pairs wait for the slowest of the ``k`` links: the expected time for
  ``k`` independent links to all hold a pair is ``H_k / λ_min`` (harmonic number ``H_k``);
* swapping multiplies Werner parameters (``F' = F1 F2 + (1 - F1)(1 - F2) / 3``);
* the end-to-end rate is then about ``λ_min / H_k``.

The Responder picks the fewest rounds (0 .. ``max_rounds``) whose estimate meets the target;
if none does the request is refused as *unreachable fidelity*, and if the resulting rate is
below the requested pairs per second, or a node lacks qubits, as *insufficient resources*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..routing.cost import bbpssw
from ..routing.monitor import LinkFigures
from ..units import S
from .qos import QoS, Reason


@dataclass(frozen=True, slots=True)
class HopReport:
    """What one node appends on the outbound pass."""

    node: str
    free_qubits: int
    memory_t_ps: int
    link_to_next: LinkFigures | None     # None at the Responder
    swap_ps: int = 0                     # this node's Bell-state measurement time
    #: The neighbour whose pairs this node moves into storage as they arrive (a minimal
    #: repeater: one transceiver qubit and a buffer), or None.
    buffers: str | None = None

    def to_wire(self) -> dict:
        return {"node": self.node, "free_qubits": self.free_qubits, "memory_t_ps": self.memory_t_ps,
                "link": None if self.link_to_next is None else self.link_to_next.to_wire(),
                "swap_ps": self.swap_ps, "buffers": self.buffers}

    @classmethod
    def from_wire(cls, d: dict) -> "HopReport":
        buffers = d.get("buffers")
        if buffers is not None and not isinstance(buffers, str):
            raise TypeError(f"buffers must be a node address or null, got {buffers!r}")
        return cls(str(d["node"]), int(d["free_qubits"]), int(d["memory_t_ps"]),
                   None if d["link"] is None else LinkFigures.from_wire(d["link"]),
                   int(d["swap_ps"]), buffers)


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    fidelity: float
    rate: float

    def qubits_needed(self, position: int, path_len: int) -> int:
        """Qubits a node must reserve: per link side one, or two while purifying."""
        per_side = 2 if self.rounds else 1
        sides = 1 if position in (0, path_len - 1) else 2
        return per_side * sides


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    detail: str
    node: str


def harmonic(k: int) -> float:
    return sum(1.0 / i for i in range(1, k + 1))


def estimate(links: Sequence[LinkFigures], rounds: int, memory_t_ps: int) -> tuple[float, float]:
    """(end-to-end fidelity, end-to-end rate) with ``rounds`` of link purification."""
    ws, rates = [], []
    for lk in links:
        f, r = lk.fidelity, lk.rate
        for _ in range(rounds):
            p, f = bbpssw(f)
            r *= p / 2.0
        ws.append((4.0 * f - 1.0) / 3.0)
        rates.append(r)
    lam = min(rates)
    if lam <= 0:
        return 0.25, 0.0
    wait_s = harmonic(len(links)) / lam
    decay = math.exp(-2.0 * wait_s * S / memory_t_ps) if memory_t_ps > 0 else 0.0
    w = math.prod(ws) * decay
    return (1.0 + 3.0 * w) / 4.0, lam / harmonic(len(links))


def plan(hops: Sequence[HopReport], qos: QoS, responder: str, max_rounds: int = 3) -> Plan | Refusal:
    links = [h.link_to_next for h in hops[:-1]]
    if any(lk is None for lk in links):
        return Refusal(Reason.INSUFFICIENT_RESOURCES, "a hop reported no link figures", responder)
    memory = min(h.memory_t_ps for h in hops)
    chosen = None
    best = (0.0, -1)
    for rounds in range(max_rounds + 1):
        fid, rate = estimate(links, rounds, memory)   # type: ignore[arg-type]
        if fid > best[0]:
            best = (fid, rounds)
        if fid >= qos.min_fidelity:
            chosen = Plan(rounds, fid, rate)
            break
    if chosen is None:
        return Refusal(Reason.UNREACHABLE_FIDELITY,
                       f"target {qos.min_fidelity:.3f}; best estimate {best[0]:.3f} with "
                       f"{best[1]} purification round(s) (max {max_rounds})", responder)
    for pos, h in enumerate(hops):
        need = chosen.qubits_needed(pos, len(hops))
        if h.free_qubits < need:
            return Refusal(Reason.INSUFFICIENT_RESOURCES,
                           f"{h.node} has {h.free_qubits} free qubit(s), needs {need}", responder)
    if chosen.rate < qos.pairs_per_s:
        return Refusal(Reason.INSUFFICIENT_RESOURCES,
                       f"expected {chosen.rate:.3g} pairs/s at fidelity {chosen.fidelity:.3f} "
                       f"with {chosen.rounds} round(s), {qos.pairs_per_s:.3g} requested", responder)
    return chosen
