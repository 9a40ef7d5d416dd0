"""Two-pass connection setup, admission, teardown: one :class:`ConnectionManager` per node.

Messages travel hop by hop along the route on the node's control link (neighbours only):

``cs.request``  outbound, Initiator → Responder. Carries the connection id, the route (chosen by
                the Initiator with qDijkstra), the QoS, and one :class:`HopReport` per node so
                far; every node appends its own (free qubits, memory coherence, figures of the
                link to the next hop) and forwards.
``cs.rules``    return pass, Responder → Initiator. The Responder plans (rounds of purification,
                :mod:`.planner`), writes every node's RuleSet (swap order by bisection for any
                path length, :func:`~qnode_fw.ruleset.builders.chain_rulesets`), installs its
                own and sends them back; every node reserves its qubits, installs its RuleSet
                and forwards.
``cs.confirm``  Initiator → Responder once the Initiator has installed: every node on the path
                has installed and acknowledged, and the connection is *active* everywhere.
``cs.close``    either way, with a reason (refusal, timeout, peer down, teardown, completed) and
                the node that stated it. A node receiving it tears its RuleSet down, releases its
                qubits and forwards it away from the sender, so resources are released on the
                whole path whichever node gives up.

A border router (:mod:`.border`) takes part in two layers at once: a request whose next hop is
a virtual link it serves waits while it sets up the inner connection across its network, and
``cs.request`` then carries an ``outer`` field naming the outer connection the inner one
embeds.

A node that loses a neighbour (control-link peer down) while a connection through it is not
closed closes it with reason *peer down* naming that neighbour and its status reason. Every node
arms a setup timer when it first sees a connection; a connection not active by then closes with
*timeout*. The Initiator tears an active connection down when its count of delivered pairs is
reached or its duration has passed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..addresses import NodeAddress, QubitAddress
from ..control.link import ControlLink, PeerStatus
from ..errors import ProtocolError, RuleSetError
from ..logs import event
from ..loop import EventLoop, TimerHandle
from ..routing.monitor import LinkFigures
from ..routing.qdijkstra import RouteTable
from ..ruleset import model as m
from ..ruleset.builders import ChainTimers, buffered_chain_rulesets, chain_rulesets
from ..ruleset.serialise import from_dict, to_dict
from ..units import MS, S, US
from .mux import ResourcePool
from .planner import HopReport, Plan, Refusal, harmonic, plan
from .qos import QoS, Outcome, Reason

if TYPE_CHECKING:
    from .border import BorderRouter

log = logging.getLogger(__name__)


class Installer(Protocol):
    """What the manager needs from the RuleSet executor."""

    def install(self, rs: m.RuleSet, connection_nodes: Iterable[NodeAddress] | None = None) -> None: ...

    def teardown(self, ruleset_id: str) -> list[QubitAddress]: ...


@dataclass(frozen=True, slots=True)
class SetupSettings:
    timeout_ps: int = 500 * MS
    max_rounds: int = 3
    one_way_latency_ps: int = 50 * US     # worst case on the control link, for discard timers


@dataclass
class Connection:
    conn_id: str
    path: tuple[NodeAddress, ...]
    qos: QoS
    pos: int
    state: str = "pending"          # pending → installed → active → closed
    plan: Plan | None = None
    ruleset: m.RuleSet | None = None
    qubits: list[QubitAddress] = field(default_factory=list)
    delivered: int = 0
    active_ps: int | None = None
    timer: TimerHandle | None = None
    outcome: Outcome | None = None
    #: fewest free qubits any node on the path reported in the outbound pass (from the plan)
    free_min: int | None = None

    @property
    def initiator(self) -> bool:
        return self.pos == 0

    @property
    def responder(self) -> bool:
        return self.pos == len(self.path) - 1

    def neighbours(self) -> list[NodeAddress]:
        return [self.path[q] for q in (self.pos - 1, self.pos + 1) if 0 <= q < len(self.path)]


def _refusing_malformed(handler: Callable[[NodeAddress, str, dict], None]
                        ) -> Callable[[NodeAddress, str, dict], None]:
    """A peer's message whose body lacks a field or holds a value of the wrong type or range
    raises KeyError/TypeError/ValueError/ArithmeticError deep in the parsing; the control link
    only expects ProtocolError from a handler, so turn those into one naming the peer and the
    message type (the link logs and counts it) instead of unwinding the node's event loop."""

    def guarded(peer: NodeAddress, msg_type: str, body: dict) -> None:
        try:
            handler(peer, msg_type, body)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise ProtocolError(f"malformed {msg_type}: {exc!r}", peer=peer,
                                msg_type=msg_type) from None

    return guarded


class ConnectionManager:
    def __init__(self, node: NodeAddress, loop: EventLoop, link: ControlLink, pool: ResourcePool,
                 installer: Installer, link_figures: Callable[[NodeAddress], LinkFigures],
                 memory_t_ps: int, routes: RouteTable | None = None,
                 settings: SetupSettings = SetupSettings(), swap_operation_ps: int = 0,
                 buffers_from: NodeAddress | None = None) -> None:
        """``swap_operation_ps``: this node's Bell-state measurement time (reported in the
        outbound pass so the Responder's discard timers cover it). ``buffers_from``: the
        neighbour whose pairs this node moves into storage (a minimal repeater, reported in the
        outbound pass so the Responder writes it the buffered RuleSet)."""
        self.node = node
        self.loop = loop
        self.link = link
        self.pool = pool
        self.installer = installer
        self.link_figures = link_figures
        self.memory_t_ps = memory_t_ps
        self.swap_operation_ps = swap_operation_ps
        self.buffers_from = buffers_from
        self.routes = routes
        self.settings = settings
        self.connections: dict[str, Connection] = {}
        self.outcomes: dict[str, Outcome] = {}     # latest per connection
        self.history: list[Outcome] = []            # every outcome reported, in order
        self.on_outcome: list[Callable[[Outcome], None]] = []
        #: called with (connection, reason, detail, node that stated it) whenever one closes here
        self.on_close: list[Callable[[Connection, Reason, str, str], None]] = []
        #: set by a :class:`~.border.BorderRouter` serving virtual links from this node
        self.border: BorderRouter | None = None
        self._ids = itertools.count(1)
        for t, h in (("cs.request", self._on_request), ("cs.rules", self._on_rules),
                     ("cs.confirm", self._on_confirm), ("cs.close", self._on_close)):
            link.add_handler(t, _refusing_malformed(h))
        link.add_status_handler(self._on_peer_status)

    # -- Initiator API ----------------------------------------------------------------------
    def request(self, responder: NodeAddress, qos: QoS, path: Iterable[NodeAddress] | None = None,
                embeds: str | None = None) -> str:
        """Start a connection to ``responder``; the result arrives in :attr:`outcomes` / ``on_outcome``.

        ``embeds``: the outer connection this one carries across a virtual link (a border
        router's inner connection); the request tells the far border router so."""
        conn_id = f"{self.node}-{self.loop.now_ps()}-{next(self._ids)}"
        if path is None:
            route = self.routes.route(responder) if self.routes is not None else None
            if route is None:
                self._report(Outcome(conn_id, False, Reason.NO_ROUTE,
                                     f"no usable route from {self.node} to {responder}", self.node))
                return conn_id
            path = route.path
        conn = Connection(conn_id, tuple(path), qos, 0)
        self._track(conn)
        body = {"conn": conn_id, "path": list(conn.path), "qos": qos.to_wire()}
        if embeds is not None:
            body["outer"] = embeds
        if self.border is not None and self.border.intercepts_request(conn, body, []):
            return conn_id      # the first hop is a virtual link: sent once it is up
        self.forward_request(conn, body, [self.hop_report(conn)])
        return conn_id

    def teardown(self, conn_id: str, reason: Reason = Reason.TORN_DOWN, detail: str = "on demand") -> None:
        conn = self.connections.get(conn_id)
        if conn is not None and conn.state != "closed":
            self._close(conn, reason, detail, self.node, notify=conn.neighbours())

    def pair_delivered(self, ruleset_id: str) -> None:
        """Count a pair delivered by this node's executor; the Initiator stops at ``count``."""
        conn = self.connections.get(ruleset_id)
        if conn is None or conn.state != "active":
            return
        conn.delivered += 1
        if conn.initiator and conn.qos.count is not None and conn.delivered >= conn.qos.count:
            self._close(conn, Reason.COMPLETED, f"{conn.delivered} pairs delivered", self.node,
                        notify=conn.neighbours())

    # -- outbound pass ----------------------------------------------------------------------
    def _on_request(self, peer: NodeAddress, _t: str, body: dict) -> None:
        try:
            conn_id, path, qos = str(body["conn"]), tuple(body["path"]), QoS.from_wire(body["qos"])
            hops = [HopReport.from_wire(h) for h in body["hops"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed setup request: {exc!r}", peer=peer, msg_type="cs.request") from None
        if self.node not in path or path.index(self.node) == 0 or path[path.index(self.node) - 1] != peer:
            raise ProtocolError(f"setup request {conn_id} does not route through {self.node} after {peer}",
                                peer=peer, msg_type="cs.request")
        conn = Connection(conn_id, path, qos, path.index(self.node))
        self._track(conn)
        if self.border is not None and self.border.intercepts_request(conn, body, hops):
            return      # the next hop is a virtual link: forwarded once the inner connection is up
        hops.append(self.hop_report(conn))
        if not conn.responder:
            self.forward_request(conn, body, hops)
            return
        result = plan(hops, qos, self.node, self.settings.max_rounds)
        if isinstance(result, Refusal):
            self._close(conn, result.reason, result.detail, self.node, notify=[peer])
            return
        try:
            swap_ps = {h.node: h.swap_ps for h in hops}
            common = dict(ruleset_id=conn_id, connection=conn_id, timers=self._timers(hops, result),
                          one_way_latency_ps=lambda a, b: self.settings.one_way_latency_ps,
                          swap_operation_ps=lambda node: swap_ps[node])
            # Repeaters on this path that buffer one side (their neighbour on it) get the
            # buffered RuleSet; such a node holds one pair per side, so it cannot purify.
            buffered = {h.node: h.buffers for pos, h in enumerate(hops)
                        if h.buffers is not None and 0 < pos < len(path) - 1
                        and h.buffers in (path[pos - 1], path[pos + 1])}
            if buffered and result.rounds:
                raise RuleSetError(f"{', '.join(buffered)} buffer(s) one pair per side and cannot "
                                   f"purify ({result.rounds} round(s) planned)", ruleset=conn_id)
            if buffered:
                rulesets = buffered_chain_rulesets(path, buffered, **common)
            else:
                rulesets = chain_rulesets(path, purification_rounds=result.rounds, **common)
        except (RuleSetError, ValueError) as exc:
            self._close(conn, Reason.RULESET_REFUSED, str(exc), self.node, notify=[peer])
            return
        conn.plan = result
        event(log, logging.INFO, "setup-planned", conn=conn_id, rounds=result.rounds,
              fidelity=round(result.fidelity, 4), rate=round(result.rate, 3))
        conn.free_min = min(h.free_qubits for h in hops)
        wire = {"conn": conn_id, "plan": {"rounds": result.rounds, "fidelity": result.fidelity,
                                          "rate": result.rate, "free_min": conn.free_min},
                "rulesets": {n: to_dict(rs) for n, rs in rulesets.items()}}
        if self._install(conn, wire):
            self._send(conn, path[conn.pos - 1], "cs.rules", wire)

    def forward_request(self, conn: Connection, body: dict, hops: list[HopReport]) -> None:
        """Send the outbound request on to the next hop with ``hops`` (this node's report last)."""
        if conn.state == "closed":
            return
        self._send(conn, conn.path[conn.pos + 1], "cs.request",
                   {**body, "hops": [h.to_wire() for h in hops]})

    def _timers(self, hops: list[HopReport], p: Plan) -> ChainTimers:
        # Discard timers: a few expected waits for the slowest link, never past half the memory
        # coherence; waiters add the slowest swap operation and twice the worst one-way latency
        # (QRNA's discard-timer race: the notice leaves only after the Bell measurement).
        k = len(hops) - 1
        wait_ps = int(3 * harmonic(k) * S / p.rate) if p.rate > 0 else self.memory_t_ps
        base = max(20 * US, min(wait_ps, min(h.memory_t_ps for h in hops) // 2))
        margin = 2 * self.settings.one_way_latency_ps + max(h.swap_ps for h in hops) + 10 * US
        return ChainTimers(swap_base_ps=base, step_ps=base, wait_margin_ps=margin, purify_ps=base)

    # -- return pass ------------------------------------------------------------------------
    def _on_rules(self, peer: NodeAddress, _t: str, body: dict) -> None:
        conn = self._expect(body, peer, "cs.rules", direction=+1)
        if conn is None:
            return
        pl = body.get("plan", {})
        conn.plan = Plan(int(pl["rounds"]), float(pl["fidelity"]), float(pl["rate"]))
        conn.free_min = None if pl.get("free_min") is None else int(pl["free_min"])
        if not self._install(conn, body):
            return
        if conn.initiator:
            self._activate(conn)
            self._send(conn, conn.path[1], "cs.confirm", {"conn": conn.conn_id})
        else:
            self._send(conn, conn.path[conn.pos - 1], "cs.rules", body)

    def _install(self, conn: Connection, body: dict) -> bool:
        need = conn.plan.qubits_needed(conn.pos, len(conn.path))
        if self.border is not None:
            need -= self.border.qubits_inside(conn, need)
        got = self.pool.reserve(conn.conn_id, need)
        if got is None:
            self._close(conn, Reason.INSUFFICIENT_RESOURCES,
                        f"{self.node} has {self.pool.free()} free qubit(s), needs {need}", self.node,
                        notify=conn.neighbours())
            return False
        conn.qubits = got
        try:
            rs = from_dict(body["rulesets"][self.node])
            if self.border is not None:
                rs = self.border.rewrite(conn, rs)
            if rs.id != conn.conn_id:
                # A RuleSet runs under its own id; one for another connection would hold
                # qubits this connection's teardown never frees.
                raise RuleSetError(f"RuleSet is for connection {rs.id!r}, not {conn.conn_id!r}",
                                   ruleset=rs.id, field="id")
            self.installer.install(rs, conn.path)
        except (RuleSetError, KeyError, TypeError) as exc:
            self._close(conn, Reason.RULESET_REFUSED, f"{self.node}: {exc}", self.node,
                        notify=conn.neighbours())
            return False
        conn.ruleset = rs
        conn.state = "installed"
        return True

    def _on_confirm(self, peer: NodeAddress, _t: str, body: dict) -> None:
        conn = self._expect(body, peer, "cs.confirm", direction=-1)
        if conn is None or conn.state != "installed":
            return
        self._activate(conn)
        if not conn.responder:
            self._send(conn, conn.path[conn.pos + 1], "cs.confirm", body)

    def _activate(self, conn: Connection) -> None:
        conn.state = "active"
        conn.active_ps = self.loop.now_ps()
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.initiator and conn.qos.duration_ps is not None:
            conn.timer = self.loop.call_later(conn.qos.duration_ps, self._duration_over, conn)
        self._report(Outcome(conn.conn_id, True, node=self.node))

    def _duration_over(self, conn: Connection) -> None:
        if conn.state == "active":
            self._close(conn, Reason.COMPLETED, f"duration {conn.qos.duration_ps / MS:g} ms over",
                        self.node, notify=conn.neighbours())

    # -- closing ----------------------------------------------------------------------------
    def _on_close(self, peer: NodeAddress, _t: str, body: dict) -> None:
        conn = self.connections.get(str(body.get("conn")))
        if conn is None or conn.state == "closed" or peer not in conn.neighbours():
            return
        try:
            reason = Reason(body["reason"])
        except (KeyError, ValueError):
            raise ProtocolError(f"unknown close reason {body.get('reason')!r}", peer=peer,
                                msg_type="cs.close") from None
        self._close(conn, reason, str(body.get("detail", "")), str(body.get("node", peer)),
                    notify=[n for n in conn.neighbours() if n != peer])

    def _on_peer_status(self, st: PeerStatus) -> None:
        if st.up:
            return
        for conn in list(self.connections.values()):
            if conn.state != "closed" and st.peer in conn.neighbours():
                self._close(conn, Reason.PEER_DOWN, f"{st.peer}: {st.reason}", self.node,
                            notify=[n for n in conn.neighbours() if n != st.peer])

    def _setup_timeout(self, conn: Connection) -> None:
        conn.timer = None
        if conn.state in ("pending", "installed"):
            self._close(conn, Reason.TIMEOUT, f"not active after {self.settings.timeout_ps / MS:g} ms",
                        self.node, notify=conn.neighbours())

    def _close(self, conn: Connection, reason: Reason, detail: str, where: str,
               notify: list[NodeAddress]) -> None:
        if conn.state == "closed":
            return
        was = conn.state
        conn.state = "closed"
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if conn.ruleset is not None:
            self.installer.teardown(conn.ruleset.id)
        self.pool.release(conn.conn_id)
        conn.qubits = []
        for n in notify:
            self._send(conn, n, "cs.close", {"conn": conn.conn_id, "reason": reason.value,
                                                 "detail": detail, "node": where})
        event(log, logging.INFO, "connection-closed", node=self.node, conn=conn.conn_id,
              was=was, reason=reason.value, detail=detail, at=where)
        if conn.initiator or conn.responder or was == "active":
            self._report(Outcome(conn.conn_id, False, reason, detail, where))
        for cb in list(self.on_close):
            cb(conn, reason, detail, where)

    # -- helpers ----------------------------------------------------------------------------
    def _track(self, conn: Connection) -> None:
        if conn.conn_id in self.connections:
            raise ProtocolError(f"connection {conn.conn_id} already known here",
                                peer=None, msg_type="cs.request")
        self.connections[conn.conn_id] = conn
        conn.timer = self.loop.call_later(self.settings.timeout_ps, self._setup_timeout, conn)

    def hop_report(self, conn: Connection, link: LinkFigures | None = None,
                   free_qubits: int | None = None) -> HopReport:
        """This node's outbound report; ``link``/``free_qubits`` replace the figures of the link
        to the next hop and the node's free qubits (a border router reporting a virtual link)."""
        nxt = link
        if nxt is None and not conn.responder:
            nxt = self.link_figures(conn.path[conn.pos + 1])
        free = self.pool.free() if free_qubits is None else free_qubits
        return HopReport(self.node, free, self.memory_t_ps, nxt, self.swap_operation_ps,
                         self.buffers_from)

    def _expect(self, body: dict, peer: NodeAddress, msg_type: str, direction: int) -> Connection | None:
        conn = self.connections.get(str(body.get("conn")))
        if conn is None:
            raise ProtocolError(f"unknown connection {body.get('conn')!r}", peer=peer, msg_type=msg_type)
        want = conn.pos + direction
        if not 0 <= want < len(conn.path) or conn.path[want] != peer:
            raise ProtocolError(f"{msg_type} for {conn.conn_id} from the wrong neighbour",
                                peer=peer, msg_type=msg_type)
        return None if conn.state == "closed" else conn

    def _send(self, conn: Connection, peer: NodeAddress, msg_type: str, body: dict) -> None:
        try:
            self.link.send(peer, msg_type, body)
        except ProtocolError as exc:
            if msg_type != "cs.close":
                self._close(conn, Reason.PEER_DOWN, f"{peer}: {exc}", self.node,
                            notify=[n for n in conn.neighbours() if n != peer])

    def _report(self, outcome: Outcome) -> None:
        self.outcomes[outcome.conn_id] = outcome
        self.history.append(outcome)
        for cb in list(self.on_outcome):
            cb(outcome)

    def held(self) -> dict[str, list[QubitAddress]]:
        """Qubits reserved per open connection (empty when everything is released)."""
        return {c: self.pool.partition(c) for c in self.pool.connections}
