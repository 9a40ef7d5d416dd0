"""One node on a lab PC: wall clock, ZeroMQ control link, CurveZMQ when the testbed has keys.

``qnode run NODE.yaml --testbed TESTBED.yaml`` builds a :class:`LabNode`: the node file says what
this PC drives, the testbed says who the peers are, where they listen and which public keys they
hold. Simulated instruments (``model: sim``) still work here, each node with its own World, so a
node PC can be rehearsed without its instruments. With ``world`` (``qnode run --world ENDPOINT``)
the node's simulated instruments live in a World server shared with the testbed's other nodes
(:mod:`sim_backend.world_server`; the processes mode of ``qnode testbed``), and the node's loop
runs on that World's testbed clock.

Shutdown: SIGINT or SIGTERM schedules a stop on the loop thread; the node then stops its
components in reverse order (control link first says goodbye to its peers) and the process exits
with 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import zmq

from ..clock import WallClock
from ..component import install_signal_handlers
from ..config.node import NodeConfig
from ..config.testbed import LoadedTestbed
from ..control import (CurveIdentity, LinkSettings, NodeAuthenticator, PeerStatus,
                       ZmqControlLink, load_allowlist, load_identity)
from ..errors import ConfigError
from ..logs import event
from ..loop import EventLoop
from ..node import Node, NodeEnvironment, link_costs
from ..rng import RandomStreams
from ..units import S

log = logging.getLogger(__name__)

#: Prefix of the status lines ``qnode run --json`` prints at every status tick, the node's status
#: as JSON after it (a line starting with "{" is the final status: the processes runner takes the
#: last such line, and reads these for its live view).
STATUS_PREFIX = "status "


class LabNode:
    """A :class:`~qnode_fw.node.Node` in its own process on the wall clock."""

    def __init__(self, testbed: LoadedTestbed, address: str, *, seed: int | None = None,
                 settings: LinkSettings | None = None, world: str | None = None) -> None:
        if address not in testbed.config.addresses:
            raise ConfigError(f"node {address!r} is not part of testbed {testbed.config.name}",
                              file=testbed.document.file, field="nodes",
                              expected="one of " + ", ".join(testbed.config.addresses))
        self.testbed = testbed
        self.config: NodeConfig = testbed.config.node(address)
        self.context = zmq.Context()
        self.authenticator: NodeAuthenticator | None = None
        identity, peer_keys = self._keys()
        #: (this node's CURVE identity, peers' public keys) for the herald links, or None.
        self.curve = (identity, peer_keys) if identity is not None else None
        self.remote_world = None
        if world is not None:
            from sim_backend.remote import RemoteWorld   # only a simulated testbed has a World

            self.remote_world = RemoteWorld.for_testbed_node(world, testbed, address,
                                                             context=self.context, identity=identity)
        self.loop = EventLoop(WallClock() if self.remote_world is None else self.remote_world.wall_clock)
        if self.remote_world is not None:
            self.remote_world.attach(self.loop)
        peers = {n.address: n.control.endpoint for n in testbed.config.nodes if n.address != address}
        control = ZmqControlLink(address, self.loop, bind=self.config.control.endpoint, peers=peers,
                                 context=self.context, identity=identity, peer_keys=peer_keys,
                                 settings=settings)
        self.seed = testbed.config.seed if seed is None else seed
        streams = RandomStreams(self.seed)
        env = NodeEnvironment(self.loop, control, streams, self.remote_world,
                              link_costs(testbed.config.nodes),
                              document=testbed.node_documents.get(address))
        self.node = Node(self.config, env)
        self.shutdown_reason: str | None = None
        self.final_status = None          # the node's status just before it stopped
        self.peer_failure: PeerStatus | None = None   # the peer whose failure stopped the node
        self._closing = False
        self.role = None                  # the node's part in an experiment (node_experiment)
        self.role_result: dict | None = None
        self._peers_seen_up: set[str] = set()

    def _keys(self) -> tuple[CurveIdentity | None, dict[str, bytes] | None]:
        tb = self.testbed
        if tb.config.keys_dir is None and self.config.control.key_file is None:
            return None, None
        if tb.config.keys_dir is None or self.config.control.key_file is None:
            raise ConfigError("CurveZMQ needs both the testbed's keys_dir and the node's "
                              "control.key_file", file=tb.document.file, field="keys_dir",
                              expected="both set (qnode keys generate DIR --testbed FILE), or neither")
        identity = load_identity(tb.resolve_for_node(self.config.address, self.config.control.key_file))
        keys = load_allowlist(tb.resolve(tb.config.keys_dir), tb.config.addresses)
        self.authenticator = NodeAuthenticator(self.context, keys)
        return identity, {a: k for a, k in keys.items() if a != self.config.address}

    def request_shutdown(self, reason: str) -> None:
        """Thread- and signal-safe: stop the loop soon; :meth:`run` then stops the node."""
        if self._closing:
            return                       # a second signal while the node is already closing
        self.shutdown_reason = self.shutdown_reason or reason
        self.loop.call_soon_threadsafe(self.loop.stop)

    def run(self, duration_s: float | None = None,
            every_s: float | None = None, on_tick: Callable[[Node], None] | None = None,
            stop_on_peer_down: bool = False, role: Callable[["LabNode"], object] | None = None) -> None:
        """Start, run until a signal (or ``duration_s``), then stop everything in reverse order.
        ``stop_on_peer_down``: also stop when a peer that was up goes down other than by saying
        goodbye (a crashed or killed node); the shutdown reason names it. ``role(lab)`` makes the
        node's part in an experiment (:mod:`.node_experiment`): started after the node, finished
        (``role_result``) before it stops."""
        restore = install_signal_handlers(self.request_shutdown)
        try:
            if self.authenticator is not None:
                self.authenticator.start()
            if stop_on_peer_down:
                self.node.control.add_status_handler(self._peer_status)
            self.node.start()
            try:
                if role is not None:
                    self.role = role(self)
                    self.role.start()
                if duration_s is not None:
                    self.loop.call_later(int(duration_s * S), self.request_shutdown, "duration")
                if every_s and on_tick is not None:
                    self._tick(int(every_s * S), on_tick)
                self.loop.run_forever()
            finally:
                event(log, logging.INFO, "node.shutdown", node=self.config.address,
                      reason=self.shutdown_reason or "loop ended")
                try:
                    if self.role is not None:
                        self.role_result = self.role.finish()
                finally:
                    self.final_status = self.node.status()
                    self.node.stop()
        finally:
            self._closing = True
            if self.remote_world is not None:
                self.remote_world.close()
            if self.authenticator is not None:
                self.authenticator.stop()
            self.loop.close()
            # destroy, not term: after a failed start (an endpoint that would not bind) some
            # sockets were never closed, and term() would wait for them forever. Sockets the
            # node closed itself have already had their linger to send the goodbyes.
            self.context.destroy(linger=0)
            restore()

    def _peer_status(self, status: PeerStatus) -> None:
        if status.up:
            self._peers_seen_up.add(status.peer)
        elif status.peer in self._peers_seen_up and status.reason != "peer stopped":
            if self.shutdown_reason is None:
                self.peer_failure = status
                self.request_shutdown(f"peer {status.peer} down: {status.reason}")

    def _tick(self, period_ps: int, on_tick: Callable[[Node], None]) -> None:
        on_tick(self.node)
        self.loop.call_later(period_ps, self._tick, period_ps, on_tick)


def node_address_of(path: str | Path) -> str:
    """The address a node file declares (validated on its own first)."""
    from ..config.testbed import load_node

    return load_node(path)[0].address
