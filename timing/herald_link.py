"""The dedicated herald link of one quantum link, separate from the control plane.

A herald link joins the nodes of one quantum link (the two end nodes and their BSA or EPPS
station). Each node holds a :class:`HeraldEndpoint` that sends fixed-size frames
(:mod:`timing.frames`) to named peers and dispatches received frames by type. Every endpoint keeps
its own sequence counter per peer and a receive window per peer, so duplicates and replays are
dropped and reordering and loss are counted where they happen.

Two implementations share that behaviour:

* :class:`InProcessHeraldLink` - frames travel on the shared :class:`~qnode_fw.loop.EventLoop` with
  a configured fibre delay per direction (asymmetric if wanted), loss, duplication and reordering
  jitter drawn from a named random stream; bytes are really encoded and decoded.
* :class:`ZmqHeraldEndpoint` - its own ROUTER socket on its own port (never the control port) and a
  DEALER per peer it connects to; CurveZMQ keys are optional, and a caller-supplied
  ``zmq.Context`` lets the control plane's ZAP authenticator vet herald peers too.
"""

from __future__ import annotations

import itertools
import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zmq

from qnode_fw.addresses import NodeAddress
from qnode_fw.control.auth import zap_handler_running
from qnode_fw.errors import ProtocolError
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop

from .frames import (Frame, FrameCodec, FrameType, Outcome, SequenceWindow, Verdict, frame_type_of,
                     link_id_for, outcome_of)

log = logging.getLogger(__name__)

FrameHandler = Callable[[NodeAddress, Frame], None]
_MORE_NOBLOCK = zmq.SNDMORE | zmq.NOBLOCK


@dataclass(slots=True)
class LinkStats:
    sent: int = 0
    received: int = 0
    duplicates: int = 0
    reordered: int = 0
    too_old: int = 0
    malformed: int = 0
    wrong_link: int = 0
    unknown_peer: int = 0
    send_failures: int = 0


class HeraldEndpoint(ABC):
    """One node's end of a herald link."""

    def __init__(self, node: NodeAddress, link_name: str, codec: FrameCodec | None = None,
                 window_size: int = 1024) -> None:
        self.node = node
        self.link_name = link_name
        self.link_id = link_id_for(link_name)
        self.codec = codec or FrameCodec()
        self.stats = LinkStats()
        self.last_error: ProtocolError | None = None
        self._window_size = window_size
        self._seq: dict[NodeAddress, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._windows: dict[NodeAddress, SequenceWindow] = {}
        self._handlers: dict[FrameType, list[FrameHandler]] = defaultdict(list)

    def subscribe(self, frame_type: FrameType, handler: FrameHandler) -> None:
        """Call ``handler(peer, frame)`` for every accepted frame of ``frame_type``."""
        self._handlers[FrameType(frame_type)].append(handler)

    def window(self, peer: NodeAddress) -> SequenceWindow:
        win = self._windows.get(peer)
        if win is None:
            win = self._windows[peer] = SequenceWindow(self._window_size)
        return win

    def send(self, peer: NodeAddress, frame_type: FrameType, attempt_id: int, timestamp_ps: int,
             outcome: Outcome = Outcome.FAILURE, aux_ps: int = 0) -> Frame:
        frame = Frame(frame_type_of(frame_type), self.link_id, next(self._seq[peer]), attempt_id,
                      timestamp_ps, outcome_of(outcome), aux_ps)
        self._transmit(peer, self.codec.encode(frame))
        self.stats.sent += 1
        return frame

    def deliver(self, peer: NodeAddress, data: bytes) -> Frame | None:
        """Decode, check and dispatch one received frame; returns it if it was accepted.

        A bad frame is never raised into the event loop: it is counted, logged with the peer and
        kept in :attr:`last_error`, and dropped.
        """
        try:
            frame = self.codec.decode(data, peer=peer)
        except ProtocolError as exc:
            self.stats.malformed += 1
            self.last_error = exc
            event(log, logging.WARNING, "herald-frame-rejected", link=self.link_name, error=exc)
            return None
        if frame.link_id != self.link_id:
            self.stats.wrong_link += 1
            self.last_error = ProtocolError(
                f"frame for link id {frame.link_id:#010x}, this is {self.link_name} "
                f"({self.link_id:#010x})", peer=peer, msg_type=frame.type.name.lower())
            return None
        verdict = self.window(peer).check(frame.seq)
        if verdict is Verdict.DUPLICATE:
            self.stats.duplicates += 1
            return None
        if verdict is Verdict.TOO_OLD:
            self.stats.too_old += 1
            return None
        if verdict is Verdict.REORDERED:
            self.stats.reordered += 1
        self.stats.received += 1
        for handler in self._handlers.get(frame.type, ()):
            handler(peer, frame)
        return frame

    @abstractmethod
    def _transmit(self, peer: NodeAddress, data: bytes) -> None: ...

    def close(self) -> None:
        """Release sockets. Safe to call twice."""


# -- in-process --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkImpairments:
    """Test knobs: loss and duplication probabilities, and a uniform extra delay in
    ``[0, reorder_jitter_ps)`` per frame that reorders frames closer together than the jitter."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder_jitter_ps: int = 0


class InProcessHeraldLink:
    """Herald link whose frames travel on the event loop with a fibre delay per direction."""

    def __init__(self, loop: EventLoop, link_name: str, *, codec: FrameCodec | None = None,
                 impairments: LinkImpairments | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.loop = loop
        self.link_name = link_name
        self.codec = codec or FrameCodec()
        self.impairments = impairments or LinkImpairments()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self._endpoints: dict[NodeAddress, InProcessHeraldEndpoint] = {}
        self._delay: dict[tuple[NodeAddress, NodeAddress], int] = {}

    def endpoint(self, node: NodeAddress) -> "InProcessHeraldEndpoint":
        ep = self._endpoints.get(node)
        if ep is None:
            ep = self._endpoints[node] = InProcessHeraldEndpoint(node, self)
        return ep

    def set_delay(self, a: NodeAddress, b: NodeAddress, delay_ps: int,
                  reverse_delay_ps: int | None = None) -> None:
        """One-way delay a->b, and b->a (the same unless given: asymmetric fibre pairs)."""
        self._delay[(a, b)] = int(delay_ps)
        self._delay[(b, a)] = int(delay_ps if reverse_delay_ps is None else reverse_delay_ps)

    def delay_ps(self, src: NodeAddress, dst: NodeAddress) -> int:
        try:
            return self._delay[(src, dst)]
        except KeyError:
            raise ProtocolError(f"no herald path from {src} to {dst} on {self.link_name}",
                                peer=dst, msg_type="herald-frame") from None

    def carry(self, src: NodeAddress, dst: NodeAddress, data: bytes) -> None:
        target = self._endpoints.get(dst)
        if target is None:
            raise ProtocolError(f"{dst} has no endpoint on herald link {self.link_name}",
                                peer=dst, msg_type="herald-frame")
        base = self.delay_ps(src, dst)
        imp = self.impairments
        copies = 1
        if imp.duplicate and self.rng.random() < imp.duplicate:
            copies = 2
        for _ in range(copies):
            if imp.loss and self.rng.random() < imp.loss:
                continue
            extra = int(self.rng.integers(0, imp.reorder_jitter_ps)) if imp.reorder_jitter_ps else 0
            self.loop.call_later(base + extra, target.deliver, src, data)


class InProcessHeraldEndpoint(HeraldEndpoint):
    def __init__(self, node: NodeAddress, link: InProcessHeraldLink) -> None:
        super().__init__(node, link.link_name, link.codec)
        self._link = link

    def _transmit(self, peer: NodeAddress, data: bytes) -> None:
        self._link.carry(self.node, peer, data)


# -- ZeroMQ -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """CurveZMQ keys (Z85 text or 32 raw bytes, as ``zmq.curve_keypair()`` makes them).

    ``public``/``secret`` are this node's pair. ``peer_public`` maps each peer this endpoint
    connects to onto that peer's (server) public key.
    """

    public: bytes
    secret: bytes
    peer_public: dict[NodeAddress, bytes] | None = None


class ZmqHeraldEndpoint(HeraldEndpoint):
    """Herald endpoint over ZeroMQ: a ROUTER bound on the herald port, a DEALER per outgoing peer.

    Peers we connect to are addressed by the name in ``connect``. Without CURVE, peers that
    connect to us are known by the routing id they connect with (their node name). With
    ``curve`` set, the ROUTER is a CURVE server and every DEALER a CURVE client of its peer's
    public key; ZAP authentication is whatever the ``context``'s authenticator (owned by the
    control plane) says, under ``zap_domain``, and a peer that connects to us *is* the node its
    key belongs to (the ZAP ``User-Id`` of each frame), whatever routing id it would like: the
    ROUTER assigns routing ids, so an allowlisted node can neither send heralds as another node
    nor take over another node's route.
    """

    def __init__(self, node: NodeAddress, link_name: str, *, bind: str | None = None,
                 connect: dict[NodeAddress, str] | None = None,
                 context: zmq.Context | None = None, curve: CurveKeys | None = None,
                 zap_domain: str = "herald", codec: FrameCodec | None = None) -> None:
        super().__init__(node, link_name, codec)
        self.context = context or zmq.Context.instance()
        self.curve = curve
        self.address: str | None = None
        self._router: zmq.Socket | None = None
        self._dealers: dict[NodeAddress, zmq.Socket] = {}
        self._rid: dict[NodeAddress, bytes] = {}   # CURVE: where the ROUTER last heard each peer
        self._loop: EventLoop | None = None
        self._poller: zmq.Poller | None = None  # built on first poll(), reset by connect()
        if bind is not None:
            sock = self.context.socket(zmq.ROUTER)
            sock.linger = 0
            sock.router_mandatory = True  # unknown peer -> error we count, not a silent drop
            sock.router_handover = True   # a restarted peer takes over its routing id
            if curve is not None:
                if not zap_handler_running(self.context):
                    sock.close(0)
                    # libzmq would admit any CURVE client and name none: refuse, as the
                    # control link does.
                    raise ProtocolError("CURVE herald endpoint needs a ZAP authenticator on its "
                                        "context (start a NodeAuthenticator first)", peer=None,
                                        msg_type="herald-bind")
                sock.curve_server = True
                sock.curve_secretkey = curve.secret
                sock.curve_publickey = curve.public
                sock.zap_domain = zap_domain.encode()
            sock.bind(bind)
            self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            self._router = sock
        for peer, address in (connect or {}).items():
            self.connect(peer, address)

    def connect(self, peer: NodeAddress, address: str) -> None:
        sock = self.context.socket(zmq.DEALER)
        sock.linger = 0
        if self.curve is None:
            sock.routing_id = self.node.encode()
        else:
            server_key = (self.curve.peer_public or {}).get(peer)
            if server_key is None:
                raise ProtocolError(f"no CurveZMQ public key configured for herald peer {peer}",
                                    peer=peer, msg_type="herald-connect")
            sock.curve_serverkey = server_key
            sock.curve_publickey = self.curve.public
            sock.curve_secretkey = self.curve.secret
        sock.connect(address)
        self._dealers[peer] = sock
        self._poller = None
        if self._loop is not None:
            self._loop.add_reader(sock, lambda s=sock, p=peer: self._drain_dealer(s, p))

    def attach(self, loop: EventLoop) -> None:
        """Register the sockets with ``loop`` so received frames are dispatched from it."""
        self._loop = loop
        if self._router is not None:
            loop.add_reader(self._router, self._drain_router)
        for peer, sock in self._dealers.items():
            loop.add_reader(sock, lambda s=sock, p=peer: self._drain_dealer(s, p))

    def poll(self, timeout_ms: int = 0) -> int:
        """Receive and dispatch whatever is waiting (for use without an event loop)."""
        if self._poller is None:
            self._poller = zmq.Poller()
            for s in ([self._router] if self._router is not None else []) + list(self._dealers.values()):
                self._poller.register(s, zmq.POLLIN)
        handled = 0
        for sock, _ in self._poller.poll(timeout_ms):
            if sock is self._router:
                handled += self._drain_router()
            else:
                peer = next(p for p, s in self._dealers.items() if s is sock)
                handled += self._drain_dealer(sock, peer)
        return handled

    # The drains read until the socket has nothing left. They ask the socket (ZMQ_EVENTS) rather
    # than reading until zmq.Again: pyzmq builds an exception object for every Again, which costs
    # more than the frame's whole decode and dispatch.

    def _drain_router(self) -> int:
        sock = self._router
        curve = self.curve is not None
        n = 0
        try:
            while True:
                if curve:
                    # Frames, not bytes: the ZAP User-Id travels as a frame property.
                    parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)  # type: ignore[union-attr]
                    rid = parts[0].bytes
                    peer = parts[-1].get("User-Id")  # the node the ZAP handler matched the key to
                    payload = parts[1].bytes if len(parts) == 2 else b""
                else:
                    parts = sock.recv_multipart(zmq.NOBLOCK)  # type: ignore[union-attr]
                    rid = parts[0]
                    peer = rid.decode(errors="replace")
                    payload = parts[1] if len(parts) == 2 else b""
                n += 1
                if len(parts) != 2 or not peer:
                    self.stats.malformed += 1
                    self.last_error = ProtocolError(f"{len(parts) - 1}-part message or no "
                                                    "authenticated sender", peer=peer or None,
                                                    msg_type="herald-frame")
                else:
                    if curve:
                        self._rid[peer] = rid
                    self.deliver(peer, payload)
                if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # type: ignore[union-attr]
                    return n
        except zmq.Again:
            return n

    def _drain_dealer(self, sock: zmq.Socket, peer: NodeAddress) -> int:
        n = 0
        try:
            while True:
                data = sock.recv(zmq.NOBLOCK)
                n += 1
                self.deliver(peer, data)
                if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    return n
        except zmq.Again:
            return n

    def _transmit(self, peer: NodeAddress, data: bytes) -> None:
        try:
            dealer = self._dealers.get(peer)
            if dealer is not None:
                dealer.send(data, zmq.NOBLOCK)
            elif self._router is not None:
                # Two sends, not send_multipart: half the Python work for a two-part message.
                self._router.send(self._rid.get(peer) or peer.encode(), _MORE_NOBLOCK)
                self._router.send(data, zmq.NOBLOCK)
            else:
                self.stats.unknown_peer += 1
                raise ProtocolError(f"herald peer {peer} is not connected on {self.link_name}",
                                    peer=peer, msg_type="herald-frame")
        except zmq.ZMQError as exc:
            # Herald frames are real-time: a peer that is not there misses this one.
            self.stats.send_failures += 1
            event(log, logging.WARNING, "herald-send-failed", link=self.link_name, peer=peer,
                  error=exc)

    def close(self) -> None:
        socks = list(self._dealers.values()) + ([self._router] if self._router is not None else [])
        for sock in socks:
            if self._loop is not None:
                self._loop.remove_reader(sock)
            sock.close(0)
        self._dealers.clear()
        self._router = None
