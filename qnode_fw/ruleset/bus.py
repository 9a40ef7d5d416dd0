"""An in-process control link for RuleSet messages, on the shared EventLoop, with faults.

Used by tests, benches and single-process simulations in place of the control plane's reliable
transport. Every message goes through its wire form (``to_wire`` → ``message_from_wire``) so the
serialisation is exercised too. Faults, each drawn from one named random stream:

* ``delay_ps`` base one-way delay plus uniform ``jitter_ps`` (jitter reorders messages);
* ``loss`` probability a message is dropped;
* ``duplication`` probability a message is delivered twice (the copy after its own delay).

A receiver's :class:`~qnode_fw.errors.ProtocolError` is recorded in :attr:`errors` (peer and
message named) instead of unwinding the loop, as a transport would log and NACK it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..addresses import NodeAddress
from ..errors import ProtocolError
from ..loop import EventLoop
from .messages import RuleSetMessage, message_from_wire


@dataclass(frozen=True)
class LinkFaults:
    delay_ps: int = 1_000_000          # 1 µs, about 200 m of fibre
    jitter_ps: int = 0
    loss: float = 0.0
    duplication: float = 0.0


class InProcessBus:
    def __init__(self, loop: EventLoop, rng: np.random.Generator,
                 faults: LinkFaults = LinkFaults()) -> None:
        self.loop = loop
        self.rng = rng
        self.faults = faults
        self._receivers: dict[NodeAddress, Callable[[NodeAddress, RuleSetMessage], None]] = {}
        self.errors: list[ProtocolError] = []
        self.sent = 0
        self.lost = 0
        self.duplicated = 0
        self.log: list[tuple[int, NodeAddress, NodeAddress, dict]] = []

    def attach(self, node: NodeAddress,
               receiver: Callable[[NodeAddress, RuleSetMessage], None]) -> Callable:
        """Register ``node``'s receiver; returns the ``send(peer, message)`` callable for it."""
        self._receivers[node] = receiver
        return lambda peer, msg: self.send(node, peer, msg)

    def max_one_way_ps(self) -> int:
        return self.faults.delay_ps + self.faults.jitter_ps

    def send(self, src: NodeAddress, dst: NodeAddress, msg: RuleSetMessage) -> None:
        self.sent += 1
        wire = msg.to_wire()
        self.log.append((self.loop.now_ps(), src, dst, wire))
        f = self.faults
        if f.loss and self.rng.random() < f.loss:
            self.lost += 1
            return
        copies = 2 if f.duplication and self.rng.random() < f.duplication else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            jitter = int(self.rng.integers(0, f.jitter_ps + 1)) if f.jitter_ps else 0
            self.loop.call_later(f.delay_ps + jitter, self._arrive, src, dst, dict(wire))

    def _arrive(self, src: NodeAddress, dst: NodeAddress, wire: dict) -> None:
        receiver = self._receivers.get(dst)
        try:
            if receiver is None:
                raise ProtocolError(f"no node {dst!r} on this bus", peer=src,
                                    msg_type=str(wire.get("type")))
            receiver(src, message_from_wire(wire))
        except ProtocolError as exc:
            self.errors.append(exc)
