"""The application API of one node: quantum sockets (RFC 9340 §4 service model, QRNA's
application interface).

An application on an end node::

    api = NodeApi(node)                      # one per node
    sock = api.open("C")                     # a socket towards end node C
    sock.request(count=100, min_fidelity=0.9)        # or rate_hz=..., duration_s=...
    ...                                      # the node's event loop runs
    ev = sock.receive()                      # DeliveredPair | MeasuredOutcome | ConnectionEvent
    bit = sock.measure(ev, "Z")              # or sock.release(ev): the qubit is freed either way
    sock.close()                             # tears the connection down along its path

and on the other end ``api.listen(on_accept)`` gets a socket for every connection another node
opened to it. ``sock.on_event = fn`` instead of polling :meth:`QuantumSocket.receive` pushes each
event as it happens (on the node's loop, so ``fn`` must not block).

How a request is served depends on the node: a node with QNICs asks its connection manager for a
QRNA connection (two-pass setup along the qDijkstra route; the RuleSets deliver pairs here); a
photonic MEAS node asks the EPPS station of its link to pump (:mod:`.photonic`), and its
detections arrive as :class:`~.events.DetectionBatch`.

A delivered pair's qubit belongs to the application until it calls :meth:`QuantumSocket.measure`
or :meth:`QuantumSocket.release`; :meth:`NodeApi.held_qubits` lists them, so the link layer does
not emit from a qubit the application still holds.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from enum import Enum

from drivers.qnic import Basis

from ..addresses import NodeAddress, PairName, QubitAddress
from ..bell import BellState
from ..connection.qos import QoS, Outcome
from ..errors import QnodeError
from ..logs import event
from ..ruleset.executor import MeasurementOutcome, NoticeReceived, PairDelivered
from ..units import S
from .events import AppEvent, ConnectionEvent, DeliveredPair, DetectionBatch, MeasuredOutcome

log = logging.getLogger(__name__)

#: Rate a count-only request declares for admission when the application names none (pairs/s).
DEFAULT_REQUEST_RATE_HZ = 1.0


class SocketState(str, Enum):
    OPEN = "open"                  # opened, nothing requested yet
    REQUESTED = "requested"        # request sent, connection not yet established
    ESTABLISHED = "established"    # pairs (or detections) may arrive
    CLOSED = "closed"              # closed by the application or the network (see close_reason)


class QuantumSocket:
    """One application's channel to one remote end node (see the module docstring)."""

    def __init__(self, api: "NodeApi", remote: NodeAddress, *,
                 connection: str | None = None,
                 on_event: Callable[[AppEvent], None] | None = None) -> None:
        self.api = api
        self.remote = remote
        self.connection = connection
        self.on_event = on_event
        self.state = SocketState.ESTABLISHED if connection is not None else SocketState.OPEN
        self.close_reason: str | None = None
        self.held: dict[PairName, DeliveredPair] = {}
        self.received = 0
        self._queue: deque[AppEvent] = deque()

    # -- requests -------------------------------------------------------------------------------
    def request(self, *, count: int | None = None, rate_hz: float | None = None,
                duration_s: float | None = None, min_fidelity: float = 0.8) -> str:
        """Ask for ``count`` pairs, or pairs at ``rate_hz`` for ``duration_s``, each of at least
        ``min_fidelity``. Returns the connection id; establishment (or refusal, with its reason)
        arrives as a :class:`ConnectionEvent`."""
        if self.state is not SocketState.OPEN:
            raise QnodeError(f"socket {self.api.node.address}->{self.remote} is {self.state.value}; "
                             "open a new socket for another request")
        if (count is None) == (duration_s is None):
            raise QnodeError("request needs exactly one of count and duration_s")
        duration_ps = None if duration_s is None else int(round(duration_s * S))
        qos = QoS(rate_hz if rate_hz is not None else DEFAULT_REQUEST_RATE_HZ, min_fidelity,
                  count, duration_ps)
        self.connection = self.api._request(self, qos)
        if self.state is SocketState.OPEN:     # not refused synchronously (no route)
            self.state = SocketState.REQUESTED
        return self.connection

    # -- receiving ------------------------------------------------------------------------------
    def receive(self) -> AppEvent | None:
        """The oldest event not yet taken, or None."""
        return self._queue.popleft() if self._queue else None

    def drain(self) -> list[AppEvent]:
        out = list(self._queue)
        self._queue.clear()
        return out

    def _push(self, ev: AppEvent) -> None:
        self.received += 1
        if isinstance(ev, DeliveredPair):
            self.held[ev.name] = ev
        if self.on_event is not None:
            self.on_event(ev)
        else:
            self._queue.append(ev)

    # -- using pairs ----------------------------------------------------------------------------
    def measure(self, pair: DeliveredPair, basis: Basis | str) -> int:
        """Measure the pair's qubit in ``basis`` (X, Y or Z); the qubit is freed afterwards."""
        self._take(pair)
        qnic = self.api.node.qnics[pair.qubit.qnic]
        outcome = int(qnic.measure(pair.qubit.index, Basis(basis)))
        qnic.init(pair.qubit.index)
        return outcome

    def release(self, pair: DeliveredPair) -> None:
        """Give the pair's qubit back unused (it is reset)."""
        self._take(pair)
        self.api.node.qnics[pair.qubit.qnic].init(pair.qubit.index)

    def _take(self, pair: DeliveredPair) -> None:
        if self.held.pop(pair.name, None) is None:
            raise QnodeError(f"pair {pair.name} is not held by this socket "
                             f"({self.api.node.address}->{self.remote}); measured or released twice?")

    # -- closing --------------------------------------------------------------------------------
    def close(self) -> None:
        """Release every held pair and tear the connection down (idempotent)."""
        for pair in list(self.held.values()):
            self.release(pair)
        if self.state is not SocketState.CLOSED:
            self.state = SocketState.CLOSED
            self.close_reason = self.close_reason or "closed by the application"
            self.api._closed(self)

    def _connection_event(self, ev: ConnectionEvent) -> None:
        if ev.established:
            if self.state in (SocketState.OPEN, SocketState.REQUESTED):
                self.state = SocketState.ESTABLISHED
        elif self.state is not SocketState.CLOSED:
            self.state = SocketState.CLOSED
            self.close_reason = f"{ev.reason} at {ev.stated_by}: {ev.detail}"
        self._push(ev)

    def __repr__(self) -> str:
        return (f"QuantumSocket({self.api.node.address}->{self.remote}, {self.state.value}, "
                f"connection={self.connection}, held={len(self.held)})")


class NodeApi:
    """The application API of one :class:`~qnode_fw.node.Node` (see the module docstring)."""

    def __init__(self, node) -> None:
        self.node = node
        self.loop = node.loop
        self.sockets: list[QuantumSocket] = []
        self._by_connection: dict[str, QuantumSocket] = {}
        self._on_accept: Callable[[QuantumSocket], None] | None = None
        #: Deliveries no socket wanted (their qubits were freed at once).
        self.unclaimed = 0
        #: Set by a photonic service (:class:`~.photonic.PhotonicEnd`) on photonic MEAS nodes.
        self.photonic = None
        node.delivery_listeners.append(self._on_delivery)
        if node.manager is not None:
            node.manager.on_outcome.append(self._on_outcome)

    @property
    def address(self) -> NodeAddress:
        return self.node.address

    # -- sockets --------------------------------------------------------------------------------
    def open(self, remote: NodeAddress, on_event: Callable[[AppEvent], None] | None = None) -> QuantumSocket:
        if remote == self.node.address:
            raise QnodeError(f"node {remote} cannot open a socket to itself")
        sock = QuantumSocket(self, remote, on_event=on_event)
        self.sockets.append(sock)
        return sock

    def listen(self, on_accept: Callable[[QuantumSocket], None]) -> None:
        """Accept connections other nodes open to this one: ``on_accept(socket)`` runs before the
        socket's first event, so it can set ``socket.on_event``."""
        self._on_accept = on_accept

    def held_qubits(self) -> set[QubitAddress]:
        return {p.qubit for s in self.sockets for p in s.held.values()}

    def _request(self, sock: QuantumSocket, qos: QoS) -> str:
        if self.photonic is not None:           # a photonic MEAS node: the EPPS pumps for it
            conn = self.photonic.request(sock.remote, qos)
            self._by_connection[conn] = sock
            return conn
        if self.node.manager is not None:       # a node with memories: QRNA connection setup
            conn = self.node.manager.request(sock.remote, qos)
            self._by_connection[conn] = sock
            outcome = self.node.manager.outcomes.get(conn)
            if outcome is not None:             # refused before anything was sent
                self._on_outcome(outcome)
            return conn
        raise QnodeError(f"node {self.node.address} has neither QNICs (connection setup) nor a "
                         "photonic measurement service: it cannot request pairs")

    def _closed(self, sock: QuantumSocket) -> None:
        if sock.connection is None:
            return
        if self.photonic is not None:
            self.photonic.release(sock.connection)
        elif self.node.manager is not None and sock.connection in self.node.manager.connections:
            self.node.manager.teardown(sock.connection, detail=f"closed by the application at "
                                                                f"{self.node.address}")

    def _socket_for(self, connection: str, partner: NodeAddress) -> QuantumSocket | None:
        sock = self._by_connection.get(connection)
        if sock is None and self._on_accept is not None:
            sock = QuantumSocket(self, partner, connection=connection)
            self.sockets.append(sock)
            self._by_connection[connection] = sock
            self._on_accept(sock)
        return sock

    # -- events from the node -------------------------------------------------------------------
    def _on_delivery(self, _node: NodeAddress, ev: object) -> None:
        if isinstance(ev, PairDelivered):
            sock = self._socket_for(ev.connection, ev.partner)
            pair = DeliveredPair(ev.name, ev.partner, ev.qubit, BellState.PHI_PLUS,
                                 ev.fidelity_estimate, ev.delivered_ps, ev.created_ps, ev.connection)
            if sock is None or sock.state is SocketState.CLOSED:
                self.unclaimed += 1
                self.node.qnics[ev.qubit.qnic].init(ev.qubit.index)
                return
            sock._push(pair)
        elif isinstance(ev, MeasurementOutcome):
            sock = self._socket_for(ev.connection, ev.partner)
            if sock is None:
                self.unclaimed += 1
                return
            sock._push(MeasuredOutcome(ev.name, ev.partner, ev.basis, ev.outcome, ev.measured_ps,
                                       ev.connection))
        elif isinstance(ev, NoticeReceived):
            event(log, logging.INFO, "app.notice", node=self.node.address, sender=ev.sender,
                  text=ev.text)

    def deliver_detections(self, connection: str, partner: NodeAddress, batch: DetectionBatch) -> None:
        """A photonic measurement service hands over detections made for ``connection``."""
        sock = self._socket_for(connection, partner)
        if sock is None or sock.state is SocketState.CLOSED:
            self.unclaimed += 1
            return
        sock._push(batch)

    def connection_event(self, connection: str, partner: NodeAddress, ev: ConnectionEvent) -> None:
        sock = self._socket_for(connection, partner) if ev.established else self._by_connection.get(connection)
        if sock is not None:
            sock._connection_event(ev)

    def _on_outcome(self, outcome: Outcome) -> None:
        manager = self.node.manager
        conn = manager.connections.get(outcome.conn_id) if manager is not None else None
        sock = self._by_connection.get(outcome.conn_id)
        if sock is None and conn is not None and outcome.established and conn.responder:
            sock = self._socket_for(outcome.conn_id, conn.path[0])
        if sock is None:
            return
        sock._connection_event(ConnectionEvent(
            outcome.conn_id, outcome.established,
            outcome.reason.value if outcome.reason is not None else None, outcome.detail,
            outcome.node, self.loop.now_ps()))
