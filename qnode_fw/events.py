"""Events that cross layer boundaries inside a node.

The timing layer raises :class:`PairReady` when a herald binds a new Bell pair to a local physical
qubit; the RuleSet executor consumes it. Keeping the type here (not in either layer) lets each
side be built and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .addresses import NodeAddress, PairName, QubitAddress
from .bell import BellState


@dataclass(frozen=True, slots=True)
class PairReady:
    """A heralded Bell pair now held on ``qubit``.

    ``name`` is <heralding node, herald timestamp>; ``partner`` the node holding the other half;
    ``bell_state`` the state the herald reported (before any correction); ``link`` the link id;
    ``created_ps`` when the pair was created (emission time) on this node's clock (the PC clock
    clock sync steers, which a fault may step); ``fidelity_estimate`` the link's current
    estimate, used by fidelity conditions; ``created_mono_ps`` the same emission on the node's
    monotonic event-loop clock, which ages and timers run on (None from a source with one clock
    only: ``created_ps`` is then on the loop's clock).
    """

    qubit: QubitAddress
    name: PairName
    partner: NodeAddress
    bell_state: BellState
    link: str
    attempt_id: int
    created_ps: int
    fidelity_estimate: float
    created_mono_ps: int | None = None
