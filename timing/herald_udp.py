"""The herald link over UDP: one 56-byte frame per datagram, from the sending thread straight to
the kernel and from the kernel straight to the receiving thread.

Why a second network transport: ZeroMQ hands every frame to its I/O thread on the sending side
and again on the receiving side, and those thread wake-ups are most of the herald latency on a
loaded node PC (docs/timing.md, "Latency profile"). A herald frame needs none of what ZeroMQ adds:
it is fixed-size, carries its own integrity check (CRC32, or a keyed MAC), and its sequence number
feeds the receive window (:class:`~timing.frames.SequenceWindow`) that already detects loss,
duplication and reordering. The one thing a datagram does not promise, delivery, costs one attempt
when it fails: the binder's expiry frees the qubit, exactly as for a herald lost in the fibre.

Peers are named by address. Each endpoint lists its peers' ``(host, port)``; a datagram from an
address not on the list is counted (``unknown_peer``), kept in ``last_error`` with the address,
and dropped. A source address can be forged, so on a network anyone can reach, give the link a
key (``FrameCodec(mac_key)``): every frame then carries a keyed BLAKE2b MAC, which is on UDP what
CurveZMQ is on the ZeroMQ link, minus encryption (a herald outcome is not a secret).
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Mapping

from qnode_fw.addresses import NodeAddress
from qnode_fw.errors import ConfigError, ProtocolError
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop

from .frames import FRAME_SIZE, FrameCodec
from .herald_link import HeraldEndpoint

log = logging.getLogger(__name__)

UdpAddress = tuple[str, int]


def _resolve(address: UdpAddress, family: int, what: str) -> UdpAddress:
    """``(host, port)`` as the numeric pair ``recvfrom`` will report, so peers match exactly."""
    host, port = address
    try:
        info = socket.getaddrinfo(host, int(port), family, socket.SOCK_DGRAM)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot resolve herald address {host!r}:{port} ({exc})",
                          field=what) from None
    sockaddr = info[0][4]
    return (sockaddr[0], sockaddr[1])


class UdpHeraldEndpoint(HeraldEndpoint):
    """Herald endpoint on one UDP socket bound to ``bind``; ``peers`` maps node names to their
    endpoints' addresses (more with :meth:`add_peer`)."""

    def __init__(self, node: NodeAddress, link_name: str, *, bind: UdpAddress = ("127.0.0.1", 0),
                 peers: Mapping[NodeAddress, UdpAddress] | None = None,
                 codec: FrameCodec | None = None) -> None:
        super().__init__(node, link_name, codec)
        family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
        self._family = family
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(_resolve(bind, family, f"{link_name}.{node}.bind"))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot bind the herald socket to {bind[0]}:{bind[1]} ({exc})",
                              field=f"{link_name}.{node}.bind") from None
        sock.setblocking(False)
        self._sock: socket.socket | None = sock
        self.address: UdpAddress = sock.getsockname()[:2]
        self._peers: dict[NodeAddress, UdpAddress] = {}
        self._by_address: dict[UdpAddress, NodeAddress] = {}
        self._loop: EventLoop | None = None
        for peer, address in (peers or {}).items():
            self.add_peer(peer, address)

    def add_peer(self, peer: NodeAddress, address: UdpAddress) -> None:
        resolved = _resolve(address, self._family, f"{self.link_name}.{self.node}.peers.{peer}")
        other = self._by_address.get(resolved)
        if other is not None and other != peer:
            raise ConfigError(f"herald peers {other} and {peer} share the address "
                              f"{resolved[0]}:{resolved[1]}",
                              field=f"{self.link_name}.{self.node}.peers.{peer}")
        old = self._peers.get(peer)
        if old is not None:
            del self._by_address[old]
        self._peers[peer] = resolved
        self._by_address[resolved] = peer

    def attach(self, loop: EventLoop) -> None:
        """Register the socket with ``loop`` so received frames are dispatched from it."""
        if self._sock is None:
            raise ProtocolError(f"herald endpoint {self.node} on {self.link_name} is closed",
                                peer=None, msg_type="herald-attach")
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._drain)

    def poll(self, timeout_ms: int = 0) -> int:
        """Receive and dispatch whatever is waiting (for use without an event loop)."""
        if self._sock is None:
            return 0
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        if not poller.poll(timeout_ms):
            return 0
        return self._drain()

    def _drain(self) -> int:
        sock = self._sock
        n = 0
        while sock is not None:
            try:
                # One byte more than a frame: an oversized datagram arrives with the wrong length
                # and the decoder rejects it, instead of being cut to a frame-sized prefix.
                data, address = sock.recvfrom(FRAME_SIZE + 1)
            except BlockingIOError:
                return n
            except OSError as exc:  # an ICMP error queued on the socket: nothing to read
                self.last_error = ProtocolError(f"herald socket error {exc}", peer=None,
                                                msg_type="herald-frame")
                return n
            n += 1
            peer = self._by_address.get(address[:2])
            if peer is None:
                self.stats.unknown_peer += 1
                self.last_error = ProtocolError(
                    f"datagram from {address[0]}:{address[1]}, which is no herald peer of "
                    f"{self.node} on {self.link_name}", peer=f"{address[0]}:{address[1]}",
                    msg_type="herald-frame")
                continue
            self.deliver(peer, data)
        return n

    def _transmit(self, peer: NodeAddress, data: bytes) -> None:
        address = self._peers.get(peer)
        if address is None or self._sock is None:
            self.stats.unknown_peer += 1
            raise ProtocolError(f"herald peer {peer} has no address on {self.link_name}",
                                peer=peer, msg_type="herald-frame")
        try:
            self._sock.sendto(data, address)
        except OSError as exc:
            # Herald frames are real-time: a peer that is not there misses this one.
            self.stats.send_failures += 1
            event(log, logging.WARNING, "herald-send-failed", link=self.link_name, peer=peer,
                  error=exc)

    def close(self) -> None:
        if self._sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
