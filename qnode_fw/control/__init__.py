"""The control plane's transport: authenticated, reliable, ordered messages between nodes.

One :class:`ControlLink` per node serves all its peers. Two transports, one API:

* :class:`InProcessControlLink` - many nodes on one shared :class:`~qnode_fw.loop.EventLoop` with
  a :class:`~qnode_fw.clock.VirtualClock`; made by :meth:`InProcessNetwork.link`, which carries
  messages with a configurable one-way delay, loss, duplication and reordering
  (:class:`Impairments`, per direction via :meth:`InProcessNetwork.set_path`);
  :meth:`InProcessNetwork.crash` kills a node without a goodbye.
* :class:`ZmqControlLink` - one ROUTER bound on the node's control endpoint plus a DEALER per
  peer it connects to, registered with the node's EventLoop (``add_reader``) on the wall clock;
  optional CurveZMQ with a ZAP allowlist of node public keys (:class:`NodeAuthenticator`).

API (all calls and callbacks on the loop thread)::

    net  = InProcessNetwork(loop, rng, Impairments(delay_ps=50 * US))
    link = net.link("A", peers=["B"], settings=LinkSettings())          # in-process
    link = ZmqControlLink("A", loop, bind="tcp://127.0.0.1:5600",         # or ZeroMQ
                          peers={"B": "tcp://127.0.0.1:5601"},
                          context=ctx, identity=CurveIdentity(...), peer_keys={"B": pubB})
    link.on_message = lambda peer, msg_type, payload: ...     # default handler
    link.add_handler("setup.request", handler)                # per message type
    link.add_status_handler(lambda st: print(st.peer, st.up, st.reason))
    link.start()
    seq = link.send("B", "hello", {"x": 1})   # reliable + ordered; payload is a JSON object
    link.status()       # {peer: PeerStatus(peer, up, reason, since_ps)}
    link.is_up("B"); link.unacked("B"); link.stats; link.errors
    link.stop()         # says goodbye: peers mark it down with reason "peer stopped"

Delivery per peer is reliable and in order (selective acks, retransmission every
``LinkSettings.retransmit_ps``, duplicates dropped, early messages held in a window). A peer is
*down* with a stated reason when it said goodbye ("peer stopped"), when nothing was heard for
``missed_heartbeats`` heartbeat intervals ("no heartbeat for N ms"), when a message stayed
unacknowledged through ``max_retransmits`` retransmissions, or when it restarted. It is *up*
again as soon as anything valid arrives from it. The goodbye is best effort: it leaves through
the node's DEALER to the peer when it has one (every testbed node connects to every peer), but a
node that only reaches a peer through its own ROUTER (the peer connected to it, it did not connect
back) can have the goodbye dropped as that socket closes (seen in about 1 of 4 runs); the peer
then goes down on missed heartbeats instead, which is the guarantee. Inbound messages are refused (counted in
``stats.refused``, the :class:`~qnode_fw.errors.ProtocolError` kept in ``errors``) when they
come from an unknown or unauthenticated peer, claim another sender, exceed
``max_message_bytes``, exceed the per-peer rate limit, or do not parse / carry another schema
version. Sending to an unknown peer raises ``ProtocolError``.

Keys: :func:`write_node_keys` / :func:`load_identity` / :func:`load_allowlist` read and write
ZeroMQ certificate files (``qnode keys generate DIR`` makes them for a testbed). Start one
:class:`NodeAuthenticator` per context (``NodeAuthenticator(ctx, {node: pubkey}).start()``); the
same context and keys serve the timing layer's herald links (ZAP domain ``herald``).
"""

from .auth import (CurveIdentity, NodeAuthenticator, load_allowlist, load_identity,
                   load_public_key, write_node_keys)
from .envelope import SCHEMA_VERSION, Envelope, Kind
from .inprocess import Impairments, InProcessControlLink, InProcessNetwork
from .link import ControlLink, LinkSettings, LinkStats, PeerStatus
from .zmq_link import ZmqControlLink

__all__ = ["SCHEMA_VERSION", "ControlLink", "CurveIdentity", "Envelope", "Impairments",
           "InProcessControlLink", "InProcessNetwork", "Kind", "LinkSettings", "LinkStats",
           "NodeAuthenticator", "PeerStatus", "ZmqControlLink", "load_allowlist",
           "load_identity", "load_public_key", "write_node_keys"]
