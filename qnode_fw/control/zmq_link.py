"""The control link over ZeroMQ: one ROUTER per node for everything inbound, a DEALER per peer.

* The ROUTER binds the node's control endpoint and receives from every peer's DEALER. Without
  CURVE a DEALER's routing id is its node address. With CURVE the client does not choose: the
  ROUTER assigns routing ids and the sender *is* the node its ZAP-authenticated key belongs to
  (the ``User-Id`` of each message), so no node can take over or speak on another's connection.
* A DEALER per configured peer carries what this node sends; ``immediate`` makes a send to a
  peer that is not connected fail at once (retransmission covers it) instead of queueing stale
  heartbeats.
* With CURVE (``identity`` and ``peer_keys`` given), the ROUTER is a CURVE server under ZAP
  domain ``control`` and each DEALER a CURVE client pinned to its peer's public key. The context's
  :class:`~qnode_fw.control.auth.NodeAuthenticator` admits only allowlisted keys and names the
  node each key belongs to; a message whose envelope claims another sender is refused. Without a ZAP handler on the context libzmq would admit any
  client, so a CURVE link refuses to start without one.

The sockets are registered with the node's :class:`~qnode_fw.loop.EventLoop` (``add_reader``),
so delivery, acks and heartbeats all run on the loop thread, on the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import zmq

from ..addresses import NodeAddress
from ..errors import ConfigError, ProtocolError
from ..loop import EventLoop
from .auth import CurveIdentity, _z85, zap_handler_running
from .link import ControlLink, LinkSettings


#: How long closing sockets keep trying to deliver what is queued (the goodbyes), in ms.
CLOSE_LINGER_MS = 250

class ZmqControlLink(ControlLink):
    def __init__(self, node: NodeAddress, loop: EventLoop, *, bind: str,
                 peers: Mapping[NodeAddress, str | None],
                 context: zmq.Context | None = None,
                 identity: CurveIdentity | None = None,
                 peer_keys: Mapping[NodeAddress, bytes | str] | None = None,
                 settings: LinkSettings | None = None, boot: int | None = None,
                 zap_domain: str = "control") -> None:
        """``peers`` maps each peer to the endpoint we connect to (None: it only connects to us)."""
        super().__init__(node, loop, peers.keys(), settings,
                         boot if boot is not None else time.time_ns() // 1000)
        self.context = context or zmq.Context.instance()
        self.bind_endpoint = bind
        self.endpoints = dict(peers)
        self.identity = identity
        self.peer_keys = {p: _z85(k) for p, k in (peer_keys or {}).items()}
        self.zap_domain = zap_domain
        self.address: str | None = None
        self._router: zmq.Socket | None = None
        self._dealers: dict[NodeAddress, zmq.Socket] = {}
        self._rid: dict[NodeAddress, bytes] = {}   # where the ROUTER last heard each peer
        if identity is not None:
            missing = [p for p, ep in self.endpoints.items() if ep and p not in self.peer_keys]
            if missing:
                raise ProtocolError(f"no CurveZMQ public key configured for {', '.join(missing)}",
                                    peer=missing[0], msg_type="control-connect")

    def _open(self) -> None:
        s = self.settings
        router = self.context.socket(zmq.ROUTER)
        router.linger = 0
        router.router_mandatory = True
        router.router_handover = True  # without CURVE: a restarted peer takes its id back
        router.maxmsgsize = s.max_message_bytes + 64
        if self.identity is not None:
            self._require_zap()
            router.curve_server = True
            router.curve_secretkey = self.identity.secret
            router.curve_publickey = self.identity.public
            router.zap_domain = self.zap_domain.encode()
        try:
            router.bind(self.bind_endpoint)
        except zmq.ZMQError as exc:
            router.close(0)
            raise ConfigError(f"node {self.node} cannot bind its control endpoint "
                              f"{self.bind_endpoint}: {exc.strerror}", field="control.endpoint",
                              expected="a free host:port on this PC (is another node or "
                                       "program using it?)") from None
        self.address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._router = router
        self.loop.add_reader(router, self._drain_router)
        for peer, endpoint in self.endpoints.items():
            if endpoint:
                self._connect(peer, endpoint)

    def _require_zap(self) -> None:
        if zap_handler_running(self.context):
            return
        raise ProtocolError("CURVE control link needs a ZAP authenticator on its context "
                            "(start a NodeAuthenticator first)", peer=None, msg_type="control-start")

    def _connect(self, peer: NodeAddress, endpoint: str) -> None:
        d = self.context.socket(zmq.DEALER)
        d.linger = 0
        d.immediate = True
        d.sndhwm = 1000
        if self.identity is None:
            d.routing_id = self.node.encode()
        d.maxmsgsize = self.settings.max_message_bytes + 64
        if self.identity is not None:
            d.curve_serverkey = self.peer_keys[peer]
            d.curve_publickey = self.identity.public
            d.curve_secretkey = self.identity.secret
        d.connect(endpoint)
        self._dealers[peer] = d
        self.loop.add_reader(d, lambda s=d, p=peer: self._drain_dealer(s, p))

    def _close(self) -> None:
        for sock in [self._router, *self._dealers.values()]:
            if sock is not None:
                self.loop.remove_reader(sock)
                # Linger briefly: stop() has just queued the goodbyes, and a zero linger would
                # let ZeroMQ drop them before its I/O thread sent them (peers would then see a
                # crash, "no heartbeat", instead of "peer stopped").
                sock.close(linger=CLOSE_LINGER_MS)
        self._router = None
        self._dealers.clear()

    def _transmit(self, peer: NodeAddress, data: bytes) -> None:
        try:
            dealer = self._dealers.get(peer)
            if dealer is not None:
                dealer.send(data, zmq.NOBLOCK)
            elif self._router is not None:
                self._router.send_multipart([self._rid.get(peer, peer.encode()), data], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # not connected / unroutable: the retransmission timer tries again

    def _drain_router(self) -> None:
        while self._router is not None:
            try:
                frames = self._router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            rid = frames[0].bytes
            if self.identity is not None:
                who = frames[-1].get("User-Id")  # the node the ZAP handler matched the key to
            else:
                who = rid.decode(errors="replace")
            if len(frames) != 2 or not who:
                self._refuse(ProtocolError(f"{len(frames) - 1}-part message or no authenticated "
                                           f"sender", peer=who or None, msg_type="envelope"))
                continue
            self._rid[who] = rid
            self._receive(who, frames[1].bytes)

    def _drain_dealer(self, sock: zmq.Socket, peer: NodeAddress) -> None:
        # Only the peer's ROUTER (whose server key we pinned) can reach this socket.
        while not sock.closed:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._receive(peer, data)
