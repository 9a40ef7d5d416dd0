"""In-process control links: many nodes on one :class:`~qnode_fw.loop.EventLoop`, virtual time.

:class:`InProcessNetwork` carries encoded envelopes between :class:`InProcessControlLink` s with a
configured one-way delay per direction plus impairments drawn from a named random stream: loss,
duplication and reordering (extra uniform delay up to ``reorder_ps``). Bytes really are encoded
and decoded, so the in-process path exercises the same parsing as ZeroMQ. ``crash(node)``
silences a node without a goodbye, which its peers can only notice through missing heartbeats
and unacknowledged messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..addresses import NodeAddress
from ..loop import EventLoop
from ..units import US
from .link import ControlLink, LinkSettings


@dataclass(frozen=True, slots=True)
class Impairments:
    delay_ps: int = 50 * US
    loss: float = 0.0
    duplicate: float = 0.0
    reorder_ps: int = 0


class InProcessNetwork:
    def __init__(self, loop: EventLoop, rng: np.random.Generator | None = None,
                 default: Impairments = Impairments()) -> None:
        self.loop = loop
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.default = default
        self._paths: dict[tuple[NodeAddress, NodeAddress], Impairments] = {}
        self._links: dict[NodeAddress, InProcessControlLink] = {}
        self.in_flight = 0

    def set_path(self, a: NodeAddress, b: NodeAddress, imp: Impairments, both_ways: bool = True) -> None:
        self._paths[(a, b)] = imp
        if both_ways:
            self._paths[(b, a)] = imp

    def impairments(self, a: NodeAddress, b: NodeAddress) -> Impairments:
        return self._paths.get((a, b), self.default)

    def link(self, node: NodeAddress, peers: Iterable[NodeAddress],
             settings: LinkSettings | None = None, boot: int = 0) -> "InProcessControlLink":
        return InProcessControlLink(node, self, peers, settings, boot)

    def crash(self, node: NodeAddress) -> None:
        """The node's process dies: no goodbye, nothing more sent or received."""
        link = self._links.get(node)
        if link is not None:
            link.stop(say_bye=False)

    def _join(self, link: "InProcessControlLink") -> None:
        self._links[link.node] = link

    def _leave(self, link: "InProcessControlLink") -> None:
        if self._links.get(link.node) is link:
            del self._links[link.node]

    def carry(self, src: NodeAddress, dst: NodeAddress, data: bytes) -> None:
        imp = self.impairments(src, dst)
        copies = 0 if self.rng.random() < imp.loss else 1
        if copies and imp.duplicate and self.rng.random() < imp.duplicate:
            copies = 2
        for _ in range(copies):
            extra = int(self.rng.integers(0, imp.reorder_ps + 1)) if imp.reorder_ps else 0
            self.in_flight += 1
            self.loop.call_later(imp.delay_ps + extra, self._arrive, src, dst, data)

    def _arrive(self, src: NodeAddress, dst: NodeAddress, data: bytes) -> None:
        self.in_flight -= 1
        link = self._links.get(dst)
        if link is not None:
            # The network knows the true sender, as an authenticated transport would.
            link._receive(src, data)


class InProcessControlLink(ControlLink):
    def __init__(self, node: NodeAddress, network: InProcessNetwork, peers: Iterable[NodeAddress],
                 settings: LinkSettings | None = None, boot: int = 0) -> None:
        super().__init__(node, network.loop, peers, settings, boot)
        self.network = network

    def _open(self) -> None:
        self.network._join(self)

    def _close(self) -> None:
        self.network._leave(self)

    def _transmit(self, peer: NodeAddress, data: bytes) -> None:
        self.network.carry(self.node, peer, data)
