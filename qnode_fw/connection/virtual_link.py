"""A network presented to the layer above as one link (QRNA recursion).

A border router of network N shows the layer above one *virtual link* between N's entry and exit
border routers. Its figures are what N's own planner promises for a connection across N: the
end-to-end rate and fidelity of the inner plan (after whatever inner purification the network's
policy asks for; QRNA expects "a slower but higher quality link"), and as free resources the
fewest free qubits any node of N reported. Only these aggregates leave the network: the layer
above never learns N's nodes or links, as a single BGP hop hides an autonomous system.

Two ways to obtain the figures:

* :meth:`VirtualLink.advertised` - before any connection, for routing: the inner planner run on
  the border router's view of N's links (what its link monitors and link-state exchange report);
* :meth:`VirtualLink.from_setup` - once an inner connection is set up, from the plan its Responder
  made and the free qubits the inner outbound pass collected. This is what the entry border
  router reports in the outer setup request.

Either way :meth:`VirtualLink.figures` is a :class:`~qnode_fw.routing.monitor.LinkFigures`, so the
outer qDijkstra (:meth:`VirtualLink.cost`) and the outer Responder's planner treat the virtual
link like any physical one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..addresses import NodeAddress
from ..routing.cost import seconds_per_pair
from ..routing.monitor import LinkFigures
from .planner import HopReport, Plan, Refusal, plan
from .qos import QoS


def virtual_link_name(entry: NodeAddress, exit_: NodeAddress) -> str:
    """How the outer layer names the virtual link between two border routers."""
    return f"{entry}~{exit_}"


@dataclass(frozen=True, slots=True)
class VirtualLink:
    """Network N between border routers ``entry`` and ``exit``, as one link of the layer above."""

    entry: NodeAddress
    exit: NodeAddress
    rate: float              # end-to-end pairs/s the inner planner promises
    fidelity: float          # end-to-end fidelity the inner planner promises
    free_qubits: int         # fewest free qubits on any node of N
    rounds: int              # inner purification rounds behind these figures (stays inside N)

    @property
    def name(self) -> str:
        return virtual_link_name(self.entry, self.exit)

    def figures(self) -> LinkFigures:
        # No pairs were sacrificed for these figures: they are a plan, not a measurement.
        return LinkFigures(self.rate, self.fidelity, 0)

    def cost(self, index_fidelity: float, max_rounds: int = 4) -> float:
        """The outer qDijkstra cost: seconds per Bell pair at ``index_fidelity``."""
        return seconds_per_pair(self.fidelity, self.rate, index_fidelity, max_rounds)

    @classmethod
    def from_setup(cls, entry: NodeAddress, exit_: NodeAddress, inner: Plan,
                   free_qubits: int) -> VirtualLink:
        """The figures of an inner connection that is set up: its Responder's plan."""
        return cls(entry, exit_, inner.rate, inner.fidelity, free_qubits, inner.rounds)

    @classmethod
    def advertised(cls, path: Sequence[NodeAddress],
                   figures: Callable[[NodeAddress, NodeAddress], LinkFigures],
                   free_qubits: Callable[[NodeAddress], int], memory_t_ps: int,
                   min_fidelity: float, max_rounds: int = 3) -> VirtualLink | Refusal:
        """What the inner planner would promise over the inner route ``path`` (entry first) for
        pairs of at least ``min_fidelity``: the figures a border router advertises for routing.
        A :class:`Refusal` when N cannot deliver such pairs (the link is then unusable)."""
        if len(path) < 2:
            raise ValueError(f"an inner route needs two or more nodes, got {list(path)}")
        k = len(path) - 1
        hops = [HopReport(n, free_qubits(n), memory_t_ps,
                          figures(n, path[i + 1]) if i < k else None) for i, n in enumerate(path)]
        # Advertising asks for no particular rate: the smallest positive one passes the rate check.
        result = plan(hops, QoS(sys.float_info.min, min_fidelity, count=1), path[-1], max_rounds)
        if isinstance(result, Refusal):
            return result
        return cls.from_setup(path[0], path[-1], result, min(h.free_qubits for h in hops))
