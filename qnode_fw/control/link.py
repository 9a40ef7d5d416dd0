"""One node's control-plane endpoint: reliable, ordered delivery per peer, heartbeats, limits.

:class:`ControlLink` holds everything that does not depend on how bytes travel; subclasses
(:mod:`.inprocess`, :mod:`.zmq_link`) only implement ``_transmit(peer, data)`` and call
:meth:`ControlLink._receive` with whatever arrives (having already established, for ZeroMQ, which
peer really sent it).

Reliability is per peer and selective: every ``data`` envelope carries a sequence number in the
sender's current stream and is acknowledged individually; unacknowledged ones are retransmitted
every ``retransmit_ps`` up to ``max_retransmits`` times, after which the peer is declared down and
the stream's epoch advances (the peer resets its receive state on the new epoch, so a lost tail
never blocks later messages). The receiver delivers in sequence order, holds early ones in a
bounded window (``receive_window`` messages, ``max_early_bytes`` bytes per peer), and acknowledges
duplicates again without delivering them; a message it does not hold is not acknowledged.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..addresses import NodeAddress
from ..errors import ProtocolError
from ..logs import event
from ..loop import EventLoop, TimerHandle
from ..units import MS
from .envelope import Envelope, Kind, decode

log = logging.getLogger(__name__)

MessageHandler = Callable[[NodeAddress, str, dict], None]
StatusHandler = Callable[["PeerStatus"], None]


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Timers and limits of a control link (picoseconds, bytes, messages per second)."""

    heartbeat_ps: int | None = 100 * MS      # None: no heartbeats (peer-down only via acks)
    missed_heartbeats: int = 3               # down after this many intervals of silence
    retransmit_ps: int = 50 * MS
    max_retransmits: int = 8
    receive_window: int = 1024               # early messages held per peer
    max_early_bytes: int = 16 << 20          # and at most this many bytes of them
    max_message_bytes: int = 1 << 20
    rate_per_s: float = 5000.0               # inbound token bucket per peer
    burst: int = 2000


@dataclass(frozen=True, slots=True)
class PeerStatus:
    peer: NodeAddress
    up: bool
    reason: str
    since_ps: int


@dataclass(slots=True)
class LinkStats:
    sent: int = 0
    delivered: int = 0
    retransmits: int = 0
    duplicates: int = 0
    reordered: int = 0
    acks_in: int = 0
    heartbeats_in: int = 0
    refused: int = 0            # unknown peer, forged sender, malformed, oversize, rate limit
    dropped_on_down: int = 0


@dataclass(slots=True)
class _Pending:
    env: Envelope
    data: bytes
    tries: int = 0
    timer: TimerHandle | None = None


@dataclass(slots=True)
class _Peer:
    name: NodeAddress
    status: PeerStatus
    epoch: int = 0
    next_seq: int = 0
    unacked: dict[int, _Pending] = field(default_factory=dict)
    rx_stream: tuple[int, int] | None = None
    rx_next: int = 0
    rx_early: dict[int, Envelope] = field(default_factory=dict)
    rx_early_bytes: dict[int, int] = field(default_factory=dict)
    last_heard_ps: int | None = None
    peer_boot: int | None = None
    tokens: float = 0.0
    tokens_ps: int = 0


class ControlLink(ABC):
    """Base class of a node's control endpoint; see the package docstring for the API."""

    def __init__(self, node: NodeAddress, loop: EventLoop, peers: Iterable[NodeAddress],
                 settings: LinkSettings | None = None, boot: int = 0) -> None:
        self.node = node
        self.loop = loop
        self.settings = settings or LinkSettings()
        self.boot = int(boot)
        self.stats = LinkStats()
        self.on_message: MessageHandler | None = None
        self._handlers: dict[str, MessageHandler] = {}
        self._status_handlers: list[StatusHandler] = []
        self._peers: dict[NodeAddress, _Peer] = {}
        self.errors: list[ProtocolError] = []
        self.running = False
        self._hb_timer: TimerHandle | None = None
        for p in peers:
            self.add_peer(p)

    # -- configuration ----------------------------------------------------------------------
    def add_peer(self, peer: NodeAddress) -> None:
        if peer == self.node:
            raise ValueError(f"node {peer!r} cannot be its own control peer")
        if peer not in self._peers:
            self._peers[peer] = _Peer(peer, PeerStatus(peer, False, "not heard from yet", 0),
                                      tokens=float(self.settings.burst))

    @property
    def peers(self) -> list[NodeAddress]:
        return sorted(self._peers)

    def add_handler(self, msg_type: str, handler: MessageHandler) -> None:
        """Route messages of ``msg_type`` to ``handler``; others go to :attr:`on_message`."""
        self._handlers[msg_type] = handler

    def add_status_handler(self, handler: StatusHandler) -> None:
        self._status_handlers.append(handler)

    def status(self, peer: NodeAddress | None = None) -> PeerStatus | dict[NodeAddress, PeerStatus]:
        if peer is not None:
            return self._known(peer, "status").status
        return {p: s.status for p, s in sorted(self._peers.items())}

    def is_up(self, peer: NodeAddress) -> bool:
        return self._known(peer, "status").status.up

    def peer_boot(self, peer: NodeAddress) -> int | None:
        """The boot id ``peer`` last spoke under (None before it spoke): a later one means the
        peer's process started again."""
        p = self._peers.get(peer)
        return None if p is None else p.peer_boot

    def unacked(self, peer: NodeAddress) -> int:
        return len(self._known(peer, "unacked").unacked)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            return
        self.running = True
        self._open()
        if self.settings.heartbeat_ps:
            self._heartbeat()

    def stop(self, say_bye: bool = True) -> None:
        """Stop: tell peers (unless ``say_bye`` is False, which models a crash), cancel timers."""
        if not self.running:
            return
        if say_bye:
            for p in self._peers.values():
                self._send_control(p, Kind.BYE)
        self.running = False
        if self._hb_timer is not None:
            self._hb_timer.cancel()
        for p in self._peers.values():
            for pend in p.unacked.values():
                if pend.timer is not None:
                    pend.timer.cancel()
            p.unacked.clear()
        self._close()

    def _open(self) -> None:
        """Subclass hook: open sockets / join the in-process network."""

    def _close(self) -> None:
        """Subclass hook: close sockets / leave the in-process network."""

    @abstractmethod
    def _transmit(self, peer: NodeAddress, data: bytes) -> None:
        """Move ``data`` towards ``peer``, best effort (the base class retransmits)."""

    # -- sending ----------------------------------------------------------------------------
    def send(self, peer: NodeAddress, msg_type: str, payload: dict[str, Any]) -> int:
        """Queue ``payload`` for reliable, ordered delivery to ``peer``; returns its sequence number."""
        p = self._known(peer, msg_type)
        if not self.running:
            raise ProtocolError("control link is not started", peer=peer, msg_type=msg_type)
        env = Envelope(Kind.DATA, self.node, peer, (self.boot, p.epoch), p.next_seq, msg_type, payload)
        data = env.encode()
        if len(data) > self.settings.max_message_bytes:
            raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of "
                                f"{self.settings.max_message_bytes}", peer=peer, msg_type=msg_type)
        p.next_seq += 1
        pend = _Pending(env, data)
        p.unacked[env.seq] = pend
        self.stats.sent += 1
        self._attempt(p, pend)
        return env.seq

    def _attempt(self, p: _Peer, pend: _Pending) -> None:
        if not self.running or p.unacked.get(pend.env.seq) is not pend:
            return
        if pend.tries > self.settings.max_retransmits:
            self._give_up(p, f"{self.settings.max_retransmits} retransmissions of "
                             f"{pend.env.msg_type!r} (seq {pend.env.seq}) unacknowledged")
            return
        if pend.tries:
            self.stats.retransmits += 1
        pend.tries += 1
        self._transmit(p.name, pend.data)
        pend.timer = self.loop.call_later(self.settings.retransmit_ps, self._attempt, p, pend)

    def _give_up(self, p: _Peer, reason: str) -> None:
        for pend in p.unacked.values():
            if pend.timer is not None:
                pend.timer.cancel()
        self.stats.dropped_on_down += len(p.unacked)
        p.unacked.clear()
        p.epoch += 1
        p.next_seq = 0
        self._set_status(p, False, reason)

    def _send_control(self, p: _Peer, kind: Kind, seq: int = 0,
                      stream: tuple[int, int] | None = None) -> None:
        env = Envelope(kind, self.node, p.name, stream or (self.boot, p.epoch), seq)
        self._transmit(p.name, env.encode())

    # -- heartbeats -------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        if not self.running:
            return
        now = self.loop.now_ps()
        limit = self.settings.heartbeat_ps * self.settings.missed_heartbeats
        for p in self._peers.values():
            self._send_control(p, Kind.HEARTBEAT)
            if p.status.up and p.last_heard_ps is not None and now - p.last_heard_ps > limit:
                self._set_status(p, False, f"no heartbeat for {(now - p.last_heard_ps) / MS:.0f} ms "
                                           f"(limit {limit / MS:.0f} ms)")
        self._hb_timer = self.loop.call_later(self.settings.heartbeat_ps, self._heartbeat)

    def _set_status(self, p: _Peer, up: bool, reason: str) -> None:
        if p.status.up == up and p.status.reason == reason:
            return
        p.status = PeerStatus(p.name, up, reason, self.loop.now_ps())
        event(log, logging.INFO if up else logging.WARNING, "peer-status", node=self.node,
              peer=p.name, up=up, reason=reason)
        for h in list(self._status_handlers):
            h(p.status)

    # -- receiving --------------------------------------------------------------------------
    def _refuse(self, err: ProtocolError) -> None:
        self.stats.refused += 1
        self.errors.append(err)
        del self.errors[:-100]
        event(log, logging.WARNING, "control-refused", node=self.node, error=str(err))

    def _receive(self, peer: NodeAddress, data: bytes) -> None:
        """Handle bytes that the transport has established came from ``peer``."""
        if not self.running:
            return
        p = self._peers.get(peer)
        if p is None:
            self._refuse(ProtocolError("not a configured peer of " + self.node, peer=peer,
                                       msg_type="envelope"))
            return
        if len(data) > self.settings.max_message_bytes:
            self._refuse(ProtocolError(f"{len(data)}-byte message exceeds the limit", peer=peer))
            return
        if not self._take_token(p):
            self._refuse(ProtocolError("inbound rate limit exceeded", peer=peer))
            return
        try:
            env = decode(data, peer)
        except ProtocolError as err:
            self._refuse(err)
            return
        if env.src != peer or env.dst != self.node:
            self._refuse(ProtocolError(f"envelope claims {env.src}->{env.dst} but came from {peer} "
                                       f"to {self.node}", peer=peer, msg_type=env.msg_type or None))
            return
        p.last_heard_ps = self.loop.now_ps()
        own_stream = env.kind is Kind.ACK  # an ack echoes our stream, not the peer's
        if not own_stream and p.peer_boot is not None and env.stream[0] > p.peer_boot:
            # The peer process restarted: what we had queued for the old one is moot, and the
            # new one expects our sequence numbers from 0 in a fresh epoch.
            self._give_up(p, "peer restarted")
        if not own_stream and (p.peer_boot is None or env.stream[0] > p.peer_boot):
            p.peer_boot = env.stream[0]
        if env.kind is Kind.BYE:
            self._reset_rx(p, None)
            self._set_status(p, False, "peer stopped")
            return
        if not p.status.up:
            self._set_status(p, True, "heard from")
        if env.kind is Kind.HEARTBEAT:
            self.stats.heartbeats_in += 1
        elif env.kind is Kind.ACK:
            self.stats.acks_in += 1
            if env.stream == (self.boot, p.epoch):
                pend = p.unacked.pop(env.seq, None)
                if pend is not None and pend.timer is not None:
                    pend.timer.cancel()
        else:
            self._receive_data(p, env, len(data))

    def _reset_rx(self, p: _Peer, stream: tuple[int, int] | None) -> None:
        p.rx_stream, p.rx_next = stream, 0
        p.rx_early.clear()
        p.rx_early_bytes.clear()

    def _receive_data(self, p: _Peer, env: Envelope, size: int) -> None:
        if p.rx_stream is None or env.stream > p.rx_stream:
            self._reset_rx(p, env.stream)
        elif env.stream < p.rx_stream:
            self.stats.duplicates += 1  # a straggler from a stream the sender already abandoned
            return
        if env.seq < p.rx_next or env.seq in p.rx_early:
            self._send_control(p, Kind.ACK, env.seq, env.stream)
            self.stats.duplicates += 1
            return
        if env.seq > p.rx_next:
            if (env.seq - p.rx_next > self.settings.receive_window
                    or sum(p.rx_early_bytes.values()) + size > self.settings.max_early_bytes):
                # Not held, so not acknowledged: the sender resends it. An ack here would lose
                # the message for good and stall the stream behind the gap.
                return
            self._send_control(p, Kind.ACK, env.seq, env.stream)
            self.stats.reordered += 1
            p.rx_early[env.seq] = env
            p.rx_early_bytes[env.seq] = size
            return
        self._send_control(p, Kind.ACK, env.seq, env.stream)
        self._deliver(p, env)
        while p.rx_next in p.rx_early:
            p.rx_early_bytes.pop(p.rx_next, None)
            self._deliver(p, p.rx_early.pop(p.rx_next))

    def _deliver(self, p: _Peer, env: Envelope) -> None:
        p.rx_next = env.seq + 1
        self.stats.delivered += 1
        handler = self._handlers.get(env.msg_type, self.on_message)
        if handler is None:
            self._refuse(ProtocolError("no handler for this message type", peer=p.name,
                                       msg_type=env.msg_type))
            return
        try:
            handler(p.name, env.msg_type, env.payload)
        except ProtocolError as err:  # the message was delivered but its content is refused
            self._refuse(err)

    def _take_token(self, p: _Peer) -> bool:
        now = self.loop.now_ps()
        p.tokens = min(float(self.settings.burst),
                       p.tokens + (now - p.tokens_ps) * self.settings.rate_per_s / 1e12)
        p.tokens_ps = now
        if p.tokens < 1.0:
            return False
        p.tokens -= 1.0
        return True

    def _known(self, peer: NodeAddress, msg_type: str) -> _Peer:
        p = self._peers.get(peer)
        if p is None:
            raise ProtocolError(f"not a configured peer of {self.node}", peer=peer, msg_type=msg_type)
        return p
