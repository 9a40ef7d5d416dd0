"""qDijkstra over the configured topology, with deterministic tie-breaks, and a route table that
recomputes when a link goes down.

Path cost is the sum of link costs (seconds per Bell pair at the index fidelity,
:mod:`.cost`). Ties are broken by fewer hops, then by the lexicographically smaller node sequence,
so every node computing the same route from the same figures gets the same answer.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..addresses import NodeAddress


def link_key(a: NodeAddress, b: NodeAddress) -> tuple[NodeAddress, NodeAddress]:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True, slots=True)
class Route:
    path: tuple[NodeAddress, ...]
    cost: float

    @property
    def hops(self) -> int:
        return len(self.path) - 1


def qdijkstra(costs: Mapping[tuple[NodeAddress, NodeAddress], float], src: NodeAddress,
              dst: NodeAddress, down: Iterable[tuple[NodeAddress, NodeAddress]] = ()) -> Route | None:
    """Least-cost path from ``src`` to ``dst`` over undirected links; None when unreachable."""
    dead = {link_key(*d) for d in down}
    adj: dict[NodeAddress, list[tuple[NodeAddress, float]]] = {}
    for (a, b), c in costs.items():
        if link_key(a, b) in dead or not math.isfinite(c) or c < 0:
            continue
        adj.setdefault(a, []).append((b, c))
        adj.setdefault(b, []).append((a, c))
    best: dict[NodeAddress, tuple[float, int, tuple[NodeAddress, ...]]] = {}
    heap: list[tuple[float, int, tuple[NodeAddress, ...]]] = [(0.0, 0, (src,))]
    while heap:
        cost, hops, path = heapq.heappop(heap)
        node = path[-1]
        if node in best:
            continue
        best[node] = (cost, hops, path)
        if node == dst:
            return Route(path, cost)
        for nxt, c in adj.get(node, ()):
            if nxt not in best and nxt not in path:
                heapq.heappush(heap, (cost + c, hops + 1, path + (nxt,)))
    return None


class RouteTable:
    """Routes from one node; recomputed when a link goes down or comes back, or costs change."""

    def __init__(self, node: NodeAddress,
                 costs: Mapping[tuple[NodeAddress, NodeAddress], float]) -> None:
        self.node = node
        self.costs = {link_key(*k): v for k, v in costs.items()}
        self.down: set[tuple[NodeAddress, NodeAddress]] = set()
        self._routes: dict[NodeAddress, Route | None] = {}
        self.on_change: list[Callable[[NodeAddress, Route | None, Route | None], None]] = []

    def route(self, dst: NodeAddress) -> Route | None:
        if dst not in self._routes:
            self._routes[dst] = qdijkstra(self.costs, self.node, dst, self.down)
        return self._routes[dst]

    def set_cost(self, a: NodeAddress, b: NodeAddress, cost: float) -> None:
        self.costs[link_key(a, b)] = cost
        self._recompute()

    def link_down(self, a: NodeAddress, b: NodeAddress) -> None:
        self.down.add(link_key(a, b))
        self._recompute()

    def link_up(self, a: NodeAddress, b: NodeAddress) -> None:
        self.down.discard(link_key(a, b))
        self._recompute()

    def _recompute(self) -> None:
        old = self._routes
        self._routes = {}
        for dst, before in old.items():
            after = self.route(dst)
            if after != before:
                for cb in list(self.on_change):
                    cb(dst, before, after)
