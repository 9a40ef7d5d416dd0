"""Message faults: drop, duplicate, reorder and delay what a node sends, at configured rates.

One sender-side shim serves every transport. It replaces the ``_transmit(peer, data)`` hook of a
:class:`~qnode_fw.control.link.ControlLink` or a :class:`~timing.herald_link.HeraldEndpoint`
instance (in-process or ZeroMQ alike), so the virtual-clock and the processes modes see the same
fault semantics, the bytes really travel (and are really parsed) after the fault decision, and
the reliability, dedup and windowing code above the transport meets the faults exactly as it
would meet a bad network. The in-process transports' own :class:`Impairments` stay what they
are: the physical path (fibre delay, queueing jitter); faults come on top.

Held-back copies are sent later from the node's :class:`~qnode_fw.loop.EventLoop`; a copy whose
sender has stopped meanwhile is not sent (a dead process sends nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ProtocolError
from ..logs import event
from ..loop import EventLoop
from .plan import MessageFaults

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MessageFaultStats:
    messages: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0
    sent_late: int = 0
    late_undeliverable: int = 0   # held back, and by then the sender was gone


class MessageFaultInjector:
    """Decides the fate of each message from one random stream."""

    def __init__(self, faults: MessageFaults, rng: np.random.Generator) -> None:
        self.faults = faults
        self.rng = rng
        self.stats = MessageFaultStats()

    def fate(self) -> list[int]:
        """Extra delay (ps) of each copy to send: ``[]`` drops it, ``[0]`` sends it as it is."""
        f, rng = self.faults, self.rng
        self.stats.messages += 1
        if f.drop and rng.random() < f.drop:
            self.stats.dropped += 1
            return []
        copies = [self._hold_ps()]
        if f.dup and rng.random() < f.dup:
            self.stats.duplicated += 1
            copies.append(self._hold_ps())
        return copies

    def _hold_ps(self) -> int:
        f, rng = self.faults, self.rng
        hold = 0
        rate = f.delay_rate
        if rate and (rate >= 1.0 or rng.random() < rate):
            self.stats.delayed += 1
            hold += f.delay_ps
        if f.reorder and rng.random() < f.reorder:
            self.stats.reordered += 1
            hold += int(rng.integers(1, f.reorder_ps + 1))
        return hold


class TransmitShim:
    """Installed on one sender object; :meth:`remove` restores it."""

    def __init__(self, target: object, injector: MessageFaultInjector, loop: EventLoop,
                 alive: Callable[[], bool], label: str) -> None:
        if "_transmit" in vars(target):
            raise ValueError(f"{label} already has a transmit shim")
        self.target = target
        self.injector = injector
        self.loop = loop
        self.alive = alive
        self.label = label
        self._original = target._transmit  # type: ignore[attr-defined]
        target._transmit = self._transmit  # type: ignore[attr-defined]

    def _transmit(self, peer: str, data: bytes) -> None:
        for hold in self.injector.fate():
            if hold == 0:
                self._original(peer, data)
            else:
                self.loop.call_later(hold, self._late, peer, data)

    def _late(self, peer: str, data: bytes) -> None:
        if not self.alive():
            self.injector.stats.late_undeliverable += 1
            return
        try:
            self._original(peer, data)
        except ProtocolError as exc:
            # The peer went away while the copy was held: what a real late packet would meet.
            self.injector.stats.late_undeliverable += 1
            event(log, logging.INFO, "fault-late-copy-undeliverable", sender=self.label, error=exc)
            return
        self.injector.stats.sent_late += 1

    def remove(self) -> None:
        if vars(self.target).get("_transmit") == self._transmit:
            del self.target._transmit  # type: ignore[attr-defined]


def shim_control_link(link, faults: MessageFaults, rng: np.random.Generator) -> TransmitShim:
    """Faults on everything ``link`` (a ControlLink) sends: data, retransmissions, acks,
    heartbeats and goodbyes."""
    return TransmitShim(link, MessageFaultInjector(faults, rng), link.loop,
                        lambda: bool(link.running), f"control:{link.node}")


def shim_herald_endpoint(endpoint, faults: MessageFaults, rng: np.random.Generator,
                         loop: EventLoop) -> TransmitShim:
    """Faults on every frame ``endpoint`` (a HeraldEndpoint) sends: heralds and clock sync."""

    def alive() -> bool:
        # A closed ZeroMQ endpoint has no sockets left; in-process endpoints never close.
        return not (hasattr(endpoint, "_dealers") and not endpoint._dealers
                    and getattr(endpoint, "_router", None) is None)

    return TransmitShim(endpoint, MessageFaultInjector(faults, rng), loop, alive,
                        f"herald:{endpoint.node}:{endpoint.link_name}")
