"""Routing: link monitoring (rate and tomographic fidelity → seconds per Bell pair at an index
fidelity) and qDijkstra with deterministic tie-breaks and recomputation on link down."""

from .cost import bbpssw, purify_to, seconds_per_pair, werner_swap
from .monitor import LinkFigures, LinkMonitor
from .qdijkstra import Route, RouteTable, link_key, qdijkstra

__all__ = ["LinkFigures", "LinkMonitor", "Route", "RouteTable", "bbpssw", "link_key",
           "purify_to", "qdijkstra", "seconds_per_pair", "werner_swap"]
