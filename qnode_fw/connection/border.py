"""A border router: the node where an outer connection crosses a network as one virtual link.

QRNA recursion, as built here (docs/connections.md, "Recursion"). A :class:`BorderRouter` sits
next to a node's :class:`~.manager.ConnectionManager` and RuleSet executor and serves the virtual
links configured for it (:class:`VirtualLinkSpec`: the border router at the far side of the
network and the fidelity the network promises across it). Both border routers of a virtual link
run one.

**Forward pass.** An outer ``cs.request`` whose next hop is a virtual link stops at the entry
border router, which becomes the inner Initiator: it requests an inner connection across the
network to the exit border router (the inner Responder) on the inner route, asking the outer
rate at the network's promised fidelity. The inner request names the outer connection it embeds
(``outer``), so the exit border router binds the two. When the inner connection is active the
entry border router appends one :class:`~.planner.HopReport` for itself whose link figures are
the virtual link's (:class:`~.virtual_link.VirtualLink`, from the inner plan) and whose free
qubits are the fewest on any node of the network, and forwards the outer request straight to the
exit border router. A refusal inside the network closes the outer connection with the same
reason; the detail names the virtual link and never an inner node (inner details stay in the
border router's log).

**Return pass.** Both border routers rewrite their outer RuleSet before installing it: the
discard timers for pairs held with the far border router (the virtual link's Stages) and the
swapping peer's timer in ``timing`` grow by the longest age an inner pair may have when it is
delivered (the inner RuleSet's longest discard timer, the same at both ends of an inner chain),
so a pair that is fresh for the outer layer is not discarded for the time it spent inside the
network, and the discard-timer race between the two border routers keeps its margin.

**Delivery → PairReady.** The inner connection's delivered pairs are not the application's: the
node's delivery callback hands each :class:`~qnode_fw.ruleset.executor.PairDelivered` of an
inner connection to :meth:`BorderRouter.on_delivery`, which gives it to the executor as a
:class:`~qnode_fw.events.PairReady` for the outer RuleSet's Stage 0, partner the far border
router, created when its oldest component was. Both ends rename the pair alike from the inner
name: ``<inner Responder/inner connection id, timestamp of the inner name>``, so the names are
unique on each node and the outer swap results of the two border routers agree on them.

**Qubits.** The virtual link's pairs sit on the inner connection's qubits, so a border router's
outer reservation leaves out its virtual side (:meth:`BorderRouter.qubits_inside`): it holds
what a repeater of the flat chain would.

**Close, both ways.** Closing the outer connection at a border router tears the inner one down
(reason carried over), which releases the inner RuleSets and qubits across the network; an inner
connection that closes (a dead inner peer, a timeout) closes the outer one with that reason and
the detail ``virtual link X~Y: <reason> inside its network``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..addresses import NodeAddress, PairName
from ..bell import BellState
from ..events import PairReady
from ..logs import event
from ..routing.qdijkstra import RouteTable
from ..ruleset import model as m
from ..ruleset.executor import DeliveryEvent, PairDelivered, RuleSetExecutor
from .manager import Connection, ConnectionManager
from .planner import HopReport
from .qos import QoS, Outcome, Reason
from .virtual_link import VirtualLink, virtual_link_name

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VirtualLinkSpec:
    """One virtual link a border router serves: the border router at the network's far side,
    and the fidelity the network promises pairs across it at (its policy: typically more inner
    purification, "a slower but higher quality link")."""

    far_end: NodeAddress
    min_fidelity: float
    max_rounds: int = 3


@dataclass
class _Crossing:
    """One outer connection crossing the network through this border router."""

    outer: str
    inner: str
    far_end: NodeAddress
    link_name: str
    #: entry side, while the inner setup runs: the outer request to forward once it is active
    body: dict | None = None
    hops: list[HopReport] | None = None
    virtual: VirtualLink | None = None


class BorderRouter:
    def __init__(self, manager: ConnectionManager, executor: RuleSetExecutor,
                 inner_routes: RouteTable, links: Iterable[VirtualLinkSpec]) -> None:
        """``inner_routes``: routes inside the network (its own qDijkstra); ``links``: the
        virtual links this node serves, by the border router at their far end."""
        self.node = manager.node
        self.manager = manager
        self.executor = executor
        self.inner_routes = inner_routes
        self.links = {s.far_end: s for s in links}
        self._by_outer: dict[str, _Crossing] = {}
        self._by_inner: dict[str, _Crossing] = {}
        manager.border = self
        manager.on_outcome.append(self._on_outcome)
        manager.on_close.append(self._on_closed)

    # -- queries ----------------------------------------------------------------------------
    def inner_of(self, outer_conn: str) -> str | None:
        """The inner connection carrying ``outer_conn`` across the network here, if any."""
        c = self._by_outer.get(outer_conn)
        return None if c is None else c.inner

    def virtual_link(self, outer_conn: str) -> VirtualLink | None:
        """The figures reported for ``outer_conn``'s virtual link (entry border router)."""
        c = self._by_outer.get(outer_conn)
        return None if c is None else c.virtual

    # -- forward pass (called by the manager) -----------------------------------------------
    def intercepts_request(self, conn: Connection, body: dict, hops: list[HopReport]) -> bool:
        """Take an outer request whose next hop is a virtual link (True); note an inner request
        that embeds an outer connection when this node is its Responder (False: it goes on)."""
        outer = body.get("outer")
        if conn.responder and outer is not None and conn.path[0] in self.links:
            self._bind(_Crossing(str(outer), conn.conn_id, conn.path[0],
                                 virtual_link_name(conn.path[0], self.node)))
            return False
        if conn.responder or conn.path[conn.pos + 1] not in self.links:
            return False
        spec = self.links[conn.path[conn.pos + 1]]
        name = virtual_link_name(self.node, spec.far_end)
        route = self.inner_routes.route(spec.far_end)
        if route is None:
            self._refuse(conn, Reason.NO_ROUTE, f"virtual link {name}: no route inside its network")
            return True
        q = conn.qos
        # The inner connection ends when the outer one does (the close crosses the layers); its
        # deliveries feed the outer RuleSet, not an application, so its count is never counted.
        # A duration outlasts the outer one: that starts at most one setup timeout later.
        inner_qos = QoS(q.pairs_per_s, spec.min_fidelity, count=q.count,
                        duration_ps=None if q.duration_ps is None
                        else q.duration_ps + self.manager.settings.timeout_ps)
        crossing = _Crossing(conn.conn_id, "", spec.far_end, name, dict(body), list(hops))
        self._by_outer[conn.conn_id] = crossing
        inner = self.manager.request(spec.far_end, inner_qos, path=route.path, embeds=conn.conn_id)
        crossing.inner = inner
        self._by_inner[inner] = crossing
        event(log, logging.INFO, "virtual-link-setup", node=self.node, outer=conn.conn_id,
              inner=inner, link=name, inner_path="-".join(route.path))
        done = self.manager.connections.get(inner)
        if done is None or done.state == "closed":
            # The request could not even leave (the first inner hop is down).
            o = self.manager.outcomes.get(inner)
            self._inner_closed(crossing, o.reason if o and o.reason else Reason.PEER_DOWN)
        return True

    def _on_outcome(self, o: Outcome) -> None:
        crossing = self._by_inner.get(o.conn_id)
        if crossing is None or not o.established or crossing.body is None:
            return
        inner = self.manager.connections[o.conn_id]
        outer = self.manager.connections.get(crossing.outer)
        if outer is None or outer.state == "closed" or not inner.initiator:
            return
        free_min = inner.free_min if inner.free_min is not None else self.manager.pool.free()
        crossing.virtual = VirtualLink.from_setup(self.node, crossing.far_end, inner.plan, free_min)
        report = self.manager.hop_report(outer, link=crossing.virtual.figures(),
                                         free_qubits=min(self.manager.pool.free(), free_min))
        body, hops = crossing.body, crossing.hops or []
        crossing.body = crossing.hops = None
        event(log, logging.INFO, "virtual-link-up", node=self.node, outer=crossing.outer,
              link=crossing.link_name, rate=round(crossing.virtual.rate, 3),
              fidelity=round(crossing.virtual.fidelity, 4))
        self.manager.forward_request(outer, body, hops + [report])

    # -- return pass: the outer RuleSet's Stages for the virtual link -----------------------
    def qubits_inside(self, conn: Connection, need: int) -> int:
        """How many of the ``need`` qubits outer connection ``conn`` would reserve here the
        inner connection already holds: the virtual link's pairs arrive on the inner
        connection's qubits, so the outer reservation leaves out that side (up to what the
        inner one reserved here)."""
        crossing = self._by_outer.get(conn.conn_id)
        if crossing is None or conn.plan is None:
            return 0
        per_side = 2 if conn.plan.rounds else 1
        inner = len(self.manager.pool.partition(crossing.inner))
        return min(per_side, inner, need)

    def rewrite(self, conn: Connection, rs: m.RuleSet) -> m.RuleSet:
        """The outer RuleSet as this border router installs it (unchanged for other RuleSets)."""
        crossing = self._by_outer.get(conn.conn_id)
        if crossing is None:
            return rs
        inner = self.manager.connections.get(crossing.inner)
        if inner is None or inner.ruleset is None:
            return rs
        extra = max((c.limit_ps for s in inner.ruleset.stages for r in s.rules
                     for c in r.conditions if isinstance(c, m.PairAgeOver)), default=0)
        far = crossing.far_end

        def aged(c: m.Condition) -> m.Condition:
            if isinstance(c, m.PairAgeOver) and c.partner == far:
                return dataclasses.replace(c, limit_ps=c.limit_ps + extra)
            return c

        stages = tuple(dataclasses.replace(s, rules=tuple(
            dataclasses.replace(r, conditions=tuple(aged(c) for c in r.conditions))
            for r in s.rules)) for s in rs.stages)
        timing = tuple(dataclasses.replace(t, discard_after_ps=t.discard_after_ps + extra)
                       if t.peer == far else t for t in rs.timing)
        return dataclasses.replace(rs, stages=stages, timing=timing)

    # -- delivery → PairReady ---------------------------------------------------------------
    def on_delivery(self, ev: DeliveryEvent) -> bool:
        """Feed a pair delivered by an inner connection to the outer RuleSet; True if taken
        (the node's application never sees it)."""
        if not isinstance(ev, PairDelivered):
            return False
        crossing = self._by_inner.get(ev.ruleset_id)
        if crossing is None:
            return False
        inner = self.manager.connections[crossing.inner]
        name = PairName(f"{inner.path[-1]}/{crossing.inner}", ev.name.timestamp_ps)
        # created_ps of a delivery is on the executor's loop clock, the clock pairs age on.
        ready = PairReady(ev.qubit, name, ev.partner, BellState.PHI_PLUS, crossing.link_name, 0,
                          ev.created_ps, ev.fidelity_estimate, created_mono_ps=ev.created_ps)
        # A pair that arrives before the outer RuleSet is installed here (or after it is torn
        # down) is freed by the executor, as a herald for no RuleSet is.
        self.executor.on_pair_ready(ready, crossing.outer)
        return True

    # -- close, across the layers -----------------------------------------------------------
    def _on_closed(self, conn: Connection, reason: Reason, detail: str, where: str) -> None:
        crossing = self._by_outer.get(conn.conn_id)
        if crossing is not None and crossing.inner:
            self._unbind(crossing)
            self.manager.teardown(crossing.inner, reason,
                                  f"outer connection {crossing.outer} closed: {reason.value}")
            return
        crossing = self._by_inner.get(conn.conn_id)
        if crossing is not None:
            event(log, logging.INFO, "virtual-link-closed", node=self.node, outer=crossing.outer,
                  inner=conn.conn_id, reason=reason.value, detail=detail, at=where)
            self._inner_closed(crossing, reason)

    def _inner_closed(self, crossing: _Crossing, reason: Reason) -> None:
        self._unbind(crossing)
        detail = f"virtual link {crossing.link_name}: {reason.value} inside its network"
        outer = self.manager.connections.get(crossing.outer)
        if outer is None or outer.state == "closed":
            return
        self.manager.teardown(crossing.outer, reason, detail)

    def _refuse(self, conn: Connection, reason: Reason, detail: str) -> None:
        self.manager.teardown(conn.conn_id, reason, detail)

    def _bind(self, crossing: _Crossing) -> None:
        self._by_outer[crossing.outer] = crossing
        self._by_inner[crossing.inner] = crossing

    def _unbind(self, crossing: _Crossing) -> None:
        self._by_outer.pop(crossing.outer, None)
        self._by_inner.pop(crossing.inner, None)
