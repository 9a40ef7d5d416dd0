"""The memory repeater chain: end-to-end Bell pairs from an initiator to a responder through
repeaters, over heralded memory links, with the QRNA connection setup installing the RuleSets.

1. Every memory link of the testbed runs its physical path (:mod:`.memory_links`), whatever its
   scheme (``both_endpoints``, ``midpoint_source``, ``at_source``): AWG triggers or armed
   receivers, simulated photons through fibre to the heralding detectors' taggers, herald
   detection, herald frames, binding to the qubit that acted, ``PairReady`` into the node's RuleSet
   executor. A node with a ``transceiver:`` (the minimal repeater) attempts through its optical
   switch, and reports the neighbour it buffers so the Responder writes it the buffered RuleSet.
2. The initiator's application opens a socket to the responder and requests pairs (the run's
   duration, or ``count`` pairs) of at least ``min_fidelity``; the connection managers set the
   connection up in two passes along the qDijkstra route, the responder plans purification
   rounds if the links alone cannot reach ``min_fidelity``, and every node installs its RuleSet.
   The link budget (success probability × attempt cadence) is the routing and planning prior.
3. The RuleSets purify (if planned), swap at the repeaters and deliver both halves of each
   end-to-end pair to the applications at the two ends.
4. The applications agree without talking which pairs to sacrifice for tomography and in which
   basis, from a hash of the pair's name (the same at both ends): a ``tomography_fraction`` of the
   pairs is measured in X, Y or Z at both ends; the rest are released. The fidelity to Φ+ is
   ``(1 + <XX> − <YY> + <ZZ>)/4`` from the sacrificed pairs, with its stderr.

An end that crashes and restarts (the virtual testbed's fault plan, :meth:`RepeaterChain.follow_crashes`):
the application runs beside the node in the runner's process, so it dies with it by hand. At the
crash the end's application forgets its sockets and every half it held (the crash re-initialised
their qubits: they are neither delivered, measured nor leaked) and the other end gives back the
halves it holds for a partner at the dead end, which can no longer come. At the restart the end
runs a fresh application (a new :class:`~qnode_fw.app.NodeApi`; the responder listens again) and
the initiator asks for a new connection once the old one is closed at every node, as the
processes-mode initiator does (:mod:`qnode_fw.testbed.node_experiment`); the virtual one sees every
node, so it asks at the first look (every ``REQUEST_AGAIN_POLL_PS``) that finds it closed.
A repeater that restarts closes the connection through it at both ends (they hear it under a new
boot id): the initiator asks again the same way. A node whose restart leaves the connection up (a
BSA station: it is on no connection's path) changes nothing; the initiator stops looking after
``REQUEST_AGAIN_WAIT_PS``.

Cross-checks from the simulator's exact state (the lab has no such thing): each pair's exact
fidelity when both halves are delivered, *wrong pairs* (halves with the same name that are not
entangled with each other, although the heralds of both ends' link pairs did entangle their
memories), *false heralds* (halves not entangled because an end's link pair came from a herald
the physics cannot tell from a good one: a dark count, or a midpoint source's photons of two
different pairs) and, after the connection is closed, *leaked qubits* (still held by an
executor, reserved by a connection, held by an application or waiting for a herald).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..addresses import PairName
from ..app import ConnectionEvent, DeliveredPair, NodeApi, QuantumSocket
from ..app.socket import SocketState
from ..bell import BellState
from ..errors import ConfigError
from ..ruleset import model as rs_model
from ..units import MS, S
from . import analysis as an
from .base import Experiment, Params, Results, RunContext, StatusRow, experiment_kind
from .memory_links import LinkPhysics, MemoryLinks

#: Simulated time the run allows after the attempts stop (pairs in flight are swapped and
#: delivered or discarded, the last attempts' qubits come back) and again after the connection is
#: closed (the close travels the path).
CLOSE_GRACE_PS = 5 * MS

#: How often a restarted chain looks whether the old connection is closed at every node, before
#: the initiator asks for a new one.
REQUEST_AGAIN_POLL_PS = 1 * MS

#: How long after another node's restart the initiator looks for its connection to close: the
#: ends hear a restarted peer at its first message (a heartbeat, 100 ms apart in the virtual
#: testbed), so three heartbeat periods.
REQUEST_AGAIN_WAIT_PS = 300 * MS

PAIR_DTYPE = np.dtype([("t_ps", "<i8"), ("origin", "U16"), ("name_ps", "<i8"),
                       ("fidelity_exact", "<f8"), ("fidelity_estimate", "<f8"),
                       ("sacrificed", "?"), ("basis", "U1"), ("outcome_a", "i1"),
                       ("outcome_b", "i1"), ("age_ps", "<i8")])


class RepeaterChainParams(Params):
    initiator: str = "A"
    responder: str = "C"
    #: Minimum end-to-end fidelity; above what the links give after swapping, the responder
    #: plans purification rounds.
    min_fidelity: float = Field(0.8, gt=0.5, le=1.0)
    #: Stop after this many end-to-end pairs (None: run the whole duration).
    count: int | None = Field(None, gt=0)
    #: Pairs per second the request declares (admission checks it against the link budget).
    rate_hz: float = Field(10.0, gt=0)
    tomography_fraction: float = Field(0.5, ge=0, le=1)
    physics: LinkPhysics = LinkPhysics()


@dataclass
class _Half:
    node: str
    pair: DeliveredPair
    socket: QuantumSocket


@experiment_kind
class RepeaterChain(Experiment):
    kind = "repeater_chain"
    params_model = RepeaterChainParams
    ends_at_duration = True

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        self.slice_ps = max(1 * MS, min(10 * MS, ctx.duration_ps // 50))
        self.waiting: dict[PairName, _Half] = {}
        self.rows: list[tuple] = []
        self.pending_rows: list[tuple] = []
        self.wrong_pairs = 0
        self.false_heralds = 0
        self.tomo_counts = {b: np.zeros((2, 2), np.int64) for b in "XYZ"}
        self.connection_events: list[ConnectionEvent] = []
        self.closed = False
        self.gen_start_ps: int | None = None
        self.halves_given_up = 0
        #: halves an end held when it crashed (their qubits re-initialised with it)
        self.halves_lost_to_crashes = 0
        self.connections: list[str] = []
        self._requesting = False
        self._finishing = False

    # -- setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        p: RepeaterChainParams = self.params
        tb = self.ctx.testbed
        for role, address in (("initiator", p.initiator), ("responder", p.responder)):
            node = tb.nodes.get(address)
            if node is None:
                raise ConfigError(f"{role} {address!r} is not a node of {tb.config.name}",
                                  field=f"params.{role}", expected="one of " + ", ".join(tb.nodes))
            if node.manager is None:
                raise ConfigError(f"{role} {address} has no QNIC, so no connection manager",
                                  field=f"params.{role}", expected="an end node with memories")
        self.apis = {a: NodeApi(tb.nodes[a]) for a in (p.initiator, p.responder)}
        self.links = MemoryLinks(self.ctx, p.physics,
                                 held=lambda n: self.apis[n].held_qubits() if n in self.apis else set())
        if not self.links.links:
            raise ConfigError(f"testbed {tb.config.name} has no memory link",
                              field="params", expected="a testbed of memory nodes linked through "
                              "BSA or EPPS stations, or at_source links")
        for address, t in self.links.transceivers.items():
            node = tb.nodes[address].config
            qnic = node.link_to(next(iter(t.spec.partners.values()))).qnic
            if (t.spec.policy.kind.value == "round_robin"
                    and len(node.communication_qubits(qnic)) < len(t.spec.routes)):
                raise ConfigError(f"{address}'s transceiver takes turns (round_robin) with fewer "
                                  "communication qubits than links: the repeater chain's buffered "
                                  "RuleSet stores the first link of a priority order",
                                  field=f"{address}.transceiver.policy", expected="priority")
        self.links.use_link_budget_for_routing()
        self.links.follow_connections()
        self.apis[p.responder].listen(self._accept)
        self._request()

    def _accept(self, sock: QuantumSocket) -> None:
        responder = self.params.responder
        sock.on_event = lambda ev, s=sock: self._event(responder, s, ev)

    def _request(self) -> None:
        """The initiator's application opens a socket to the responder and asks for pairs."""
        p: RepeaterChainParams = self.params
        sock = self.socket = self.apis[p.initiator].open(p.responder)
        sock.on_event = lambda ev, s=sock: self._event(p.initiator, s, ev)
        if p.count is not None:
            sock.request(count=p.count - len(self.rows), rate_hz=p.rate_hz,
                         min_fidelity=p.min_fidelity)
        else:
            # The application closes the connection itself after draining (finish); the
            # requested duration only has to outlast the run.
            sock.request(duration_s=(self.ctx.duration_ps + 4 * CLOSE_GRACE_PS) / S,
                         rate_hz=p.rate_hz, min_fidelity=p.min_fidelity)
        self.connections.append(str(sock.connection))
        self.ctx.log("chain.requested", p.initiator, responder=p.responder,
                     connection=sock.connection, min_fidelity=p.min_fidelity, count=p.count)

    # -- an end that crashes and restarts (module docstring) ---------------------------------------
    def follow_crashes(self, testbed) -> None:
        """Follow the crashes and restarts of ``testbed``'s nodes (a fault plan's ``nodes:``)."""
        testbed.on_crash.append(self._end_crashed)
        testbed.on_restart.append(self._node_restarted)

    def _node_restarted(self, address: str) -> None:
        if address in self.apis:
            self._end_restarted(address)
        elif not self._finishing and not self._requesting:
            # A repeater (or station) is back: if the connection closes on hearing it, ask again.
            self._requesting = True
            self._request_when_closed(self.ctx.now_ps() + REQUEST_AGAIN_WAIT_PS)

    def _end_crashed(self, address: str) -> None:
        api = self.apis.get(address)
        if api is None:
            return
        node = self.ctx.testbed.nodes[address]
        # The dead application hears nothing more: its successor registers afresh at the restart.
        node.delivery_listeners.remove(api._on_delivery)
        node.manager.on_outcome.remove(api._on_outcome)
        for sock in api.sockets:
            # Their qubits were re-initialised by the crash: forget them, give nothing back.
            sock.held.clear()
            if sock.state is not SocketState.CLOSED:
                sock.state = SocketState.CLOSED
                sock.close_reason = f"{address} crashed"
        lost = [name for name, half in self.waiting.items() if half.node == address]
        for name in lost:
            del self.waiting[name]
        self.halves_lost_to_crashes += len(lost)
        # Every half still waiting is the other end's, and its partner was at the dead end.
        partnerless = list(self.waiting)
        for name in partnerless:
            self._give_up_half(name)
        self.ctx.log("chain.end_crashed", address, halves_lost=len(lost),
                     halves_given_up=len(partnerless))

    def _end_restarted(self, address: str) -> None:
        p: RepeaterChainParams = self.params
        if address not in self.apis or self._finishing:
            return
        api = self.apis[address] = NodeApi(self.ctx.testbed.nodes[address])
        if address == p.responder:
            api.listen(self._accept)
        self.ctx.log("chain.end_restarted", address)
        if not self._requesting:
            self._requesting = True
            self._request_when_closed()

    def _request_when_closed(self, give_up_ps: int | None = None) -> None:
        """Ask again once the initiator runs, its socket is closed and the old connection is
        closed at every node (a node that still has it would refuse or mix up the new one).
        With ``give_up_ps``, stop looking then if the initiator's socket is still open."""
        p: RepeaterChainParams = self.params
        tb = self.ctx.testbed
        if self._finishing:
            self._requesting = False
            return
        old = self.socket.connection
        still_open = (p.initiator in tb.crashed or self.socket.state is not SocketState.CLOSED
                      or any(n.manager is not None and old in n.manager.connections
                             and n.manager.connections[old].state != "closed"
                             for n in tb.nodes.values()))
        if still_open:
            if (give_up_ps is not None and self.ctx.now_ps() >= give_up_ps
                    and self.socket.state is not SocketState.CLOSED):
                self._requesting = False            # the connection outlived the restart
                return
            self.ctx.loop.call_later(REQUEST_AGAIN_POLL_PS, self._request_when_closed, give_up_ps)
            return
        self._requesting = False
        if p.count is None or len(self.rows) < p.count:
            self._request()

    # -- pairs --------------------------------------------------------------------------------
    def _event(self, node: str, sock: QuantumSocket, ev) -> None:
        if node in getattr(self.ctx.testbed, "crashed", ()):
            return          # the crash closing its connections, heard by nobody
        if isinstance(ev, ConnectionEvent):
            self.connection_events.append(ev)
            self.ctx.log("connection", node, connection=ev.connection, established=ev.established,
                         reason=ev.reason, detail=ev.detail, stated_by=ev.stated_by)
            if ev.established and self.gen_start_ps is None:
                self.gen_start_ps = self.ctx.now_ps()
            return
        if not isinstance(ev, DeliveredPair):
            return
        self.ctx.log("pair.delivered", node, name=str(ev.name), partner=ev.partner,
                     qubit=str(ev.qubit), fidelity_estimate=round(ev.fidelity_estimate, 5))
        other = self.waiting.pop(ev.name, None)
        if other is None:
            self.waiting[ev.name] = _Half(node, ev, sock)
            # A lost or late swap result (a control-message fault) makes the other end discard
            # its half: holding this one for ever would starve the link of qubits. The other end
            # delivers, if ever, before its discard timers fire; after that, give up.
            self.ctx.loop.call_later(self._other_end_deadline_ps(node, sock.connection),
                                     self._give_up_half, ev.name)
            return
        self._both_halves(other, _Half(node, ev, sock))

    def _other_end_deadline_ps(self, node: str, ruleset_id: str) -> int:
        """The longest the other end may still hold (and then deliver) its half: its RuleSet's
        longest pair age or stage timeout (its half was created before this one was delivered)."""
        p: RepeaterChainParams = self.params
        other = p.responder if node == p.initiator else p.initiator
        inst = self.ctx.testbed.nodes[other].executor.installed.get(ruleset_id)
        if inst is None:
            return 0
        limits = [c.limit_ps if isinstance(c, rs_model.PairAgeOver) else c.after_ps
                  for stage in inst.rs.stages for rule in stage.rules for c in rule.conditions
                  if isinstance(c, (rs_model.PairAgeOver, rs_model.StageTimeout))]
        if not limits:
            # A direct link (no swap, no discard timer): the other end delivers as soon as its
            # own herald arrives, at most its binder's expiry after the attempt (an at_source
            # emitter hears one fibre delay after the receiver).
            run = next((r for r in self.links.links.values() if {node, other} == set(r.params.nodes)),
                       None)
            if run is not None:
                limits = [run.params.binder_expiry_ps(i) for i in (0, 1)]
        return max(limits, default=0) + 1

    def _give_up_half(self, name: PairName) -> None:
        half = self.waiting.pop(name, None)
        if half is None:
            return
        self.halves_given_up += 1
        self.ctx.log("pair.unmatched", half.node, name=str(name), qubit=str(half.pair.qubit))
        if half.pair.name in half.socket.held:
            half.socket.release(half.pair)

    def _both_halves(self, x: _Half, y: _Half) -> None:
        p: RepeaterChainParams = self.params
        a, b = (x, y) if x.node == p.initiator else (y, x)
        world = self.ctx.world
        key_a = self.ctx.testbed.nodes[a.node].qnics[a.pair.qubit.qnic].key(a.pair.qubit.index)
        key_b = self.ctx.testbed.nodes[b.node].qnics[b.pair.qubit.qnic].key(b.pair.qubit.index)
        entangled = world.registry.is_entangled_with(key_a, key_b)
        false_herald = not entangled and (self.links.false_herald(a.node, a.pair.qubit)
                                          or self.links.false_herald(b.node, b.pair.qubit))
        wrong = ((not entangled and not false_herald)
                 or a.pair.partner != b.node or b.pair.partner != a.node)
        if false_herald:
            self.false_heralds += 1
            self.ctx.log("pair.false_herald", None, name=str(a.pair.name), a=str(a.pair.qubit),
                         b=str(b.pair.qubit))
        if wrong:
            self.wrong_pairs += 1
            self.ctx.log("pair.wrong", None, name=str(a.pair.name), a=str(a.pair.qubit), b=str(b.pair.qubit))
        exact = world.registry.bell_fidelity(key_a, key_b, BellState.PHI_PLUS)
        basis = self._sacrifice(a.pair.name)
        oa = ob = -1
        if basis is not None:
            oa = a.socket.measure(a.pair, basis)
            ob = b.socket.measure(b.pair, basis)
            self.tomo_counts[basis][oa, ob] += 1
        else:
            a.socket.release(a.pair)
            b.socket.release(b.pair)
        now = self.ctx.now_ps()
        row = (now, a.pair.name.origin, a.pair.name.timestamp_ps, exact, a.pair.fidelity_estimate,
               basis is not None, basis or "", oa, ob, now - min(a.pair.created_ps, b.pair.created_ps))
        self.rows.append(row)
        self.pending_rows.append(row)
        self.ctx.log("pair.e2e", None, name=str(a.pair.name), fidelity_exact=round(exact, 6),
                     basis=basis, outcome_a=oa, outcome_b=ob)
        if self.ctx.record is not None and a.pair.name.origin not in (a.node, b.node):
            # An end-to-end pair is named after the node and time of its last swap.
            self.ctx.record.event(a.pair.name.timestamp_ps, "swap", a.pair.name.origin,
                                  name=str(a.pair.name))

    def _sacrifice(self, name: PairName) -> str | None:
        """Both ends compute this from the pair's name alone, so they agree without a message."""
        h = zlib.crc32(f"{name.origin}/{name.timestamp_ps}/{self.ctx.seed}".encode())
        if (h % 10_000) >= self.params.tomography_fraction * 10_000:
            return None
        return "XYZ"[(h // 10_000) % 3]

    # -- runner hooks ----------------------------------------------------------------------------
    def done(self) -> bool:
        return self.params.count is not None and len(self.rows) >= self.params.count

    def progress(self) -> tuple[float, list[StatusRow]]:
        if self.pending_rows and self.ctx.record is not None:
            self.ctx.record.append_rows("pairs", np.array(self.pending_rows, PAIR_DTYPE))
        self.pending_rows = []
        self.links.log_heralds()
        rows = []
        for address, node in self.ctx.testbed.nodes.items():
            st = node.status()
            if node.executor is None:
                links = [r for r in self.links.links.values() if r.station == address]
                figures = ", ".join(f"{r.name}: {r.heralds()} heralds" for r in links)
                rows.append(StatusRow(address, st.role, "station", figures))
                continue
            ready = sum(r.pairs_ready.get(address, 0) for r in self.links.links.values())
            app = self.apis.get(address)
            held_app = len(app.held_qubits()) if app else 0
            rows.append(StatusRow(address, st.role, f"{st.connections} ruleset(s)",
                                  f"{ready} link pairs, {st.qubits_held}/{st.qubits_total} qubits "
                                  f"held, {held_app} at app"))
        frac = len(self.rows) / self.params.count if self.params.count else 0.0
        return frac, rows

    def metrics(self) -> dict:
        return {"links": self.links.links, "pools": self.links.pools, "e2e_pairs": len(self.rows),
                "fidelity_exact": [r[3] for r in self.rows[-50:]], "connection": self.socket.connection}

    # -- results ----------------------------------------------------------------------------------
    def finish(self) -> Results:
        p: RepeaterChainParams = self.params
        tb = self.ctx.testbed
        end_gen = self.ctx.now_ps()
        # Drain, then close: stop the attempts, let pairs already heralded be swapped and
        # delivered (or discarded by their timers), then tear the connection down, so that few
        # swap results are still on their way to a torn-down RuleSet.
        self._finishing = True
        self.links.stop()
        tb.loop.run_until(tb.now_ps() + CLOSE_GRACE_PS)
        self.socket.close()
        tb.loop.run_until(tb.now_ps() + CLOSE_GRACE_PS)
        self.links.stop_stations()
        unmatched = len(self.waiting) + self.halves_given_up
        for half in self.waiting.values():
            if half.pair.name in half.socket.held:
                half.socket.release(half.pair)
        self.waiting.clear()
        for api in self.apis.values():
            for sock in api.sockets:
                sock.close()
        leaked = self._leaked()
        self.progress()
        n = len(self.rows)
        start = self.gen_start_ps if self.gen_start_ps is not None else end_gen
        gen_s = max(end_gen - start, 1) / S
        details: dict = {"connection": self.socket.connection, "close_reason": self.socket.close_reason,
                         "connections": list(self.connections),
                         "unmatched_halves": unmatched, "generation_time_s": gen_s,
                         "halves_lost_to_crashes": self.halves_lost_to_crashes,
                         "leaked": leaked, "false_heralds": self.false_heralds,
                         # photons that met a moving or mis-set optical switch (or no link)
                         "lost_emissions": len(self.ctx.world.lost_emissions)}
        results = Results(pairs_delivered=n, rate_hz=n / gen_s, wrong_pairs=self.wrong_pairs,
                          leaked_qubits=sum(leaked.values()), details=details)
        sacrificed = {b: int(c.sum()) for b, c in self.tomo_counts.items()}
        details["tomography_pairs"] = sacrificed
        if all(sacrificed.values()):
            corr = {b: an.correlator(c) for b, c in self.tomo_counts.items()}
            f = an.bell_fidelity(corr, BellState.PHI_PLUS)
            results.fidelity, results.fidelity_stderr = f.value, f.stderr
            details["correlators"] = {b: e.to_dict() for b, e in corr.items()}
        if n:
            exact = np.array([r[3] for r in self.rows])
            details["fidelity_exact_mean"] = float(exact.mean())
            details["fidelity_exact_sem"] = float(exact.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
            details["fidelity_estimate_mean"] = float(np.mean([r[4] for r in self.rows]))
            details["pair_age_ms_mean"] = float(np.mean([r[9] for r in self.rows])) / MS
        conn = None
        for node in tb.nodes.values():
            if node.manager is not None and self.socket.connection in node.manager.connections:
                conn = node.manager.connections[self.socket.connection]
                break
        if conn is not None and conn.plan is not None:
            details["plan"] = {"path": list(conn.path), "purification_rounds": conn.plan.rounds,
                               "fidelity": conn.plan.fidelity, "rate": conn.plan.rate}
        details["links"] = {}
        for name, run in self.links.links.items():
            joint = run.joint_attempts()
            heralds = run.heralds()
            lat = run.herald_latency_ps.mean_ps()
            details["links"][name] = {
                "scheme": run.scheme, "station": run.station, "joint_attempts": joint,
                "heralds": heralds, "false_heralds": len(run.false_heralds),
                "success_probability": heralds / joint if joint else None,
                "success_probability_expected": run.success_probability,
                "entangled_probability_expected": run.p_entangled,
                "slot_share": run.duty, "period_us": run.params.period_ps / 1e6,
                "pair_rate_expected_hz": self.links.expected_rate_hz(run),
                "pairs_ready": dict(run.pairs_ready),
                "herald_latency_us_mean": lat / 1e6 if lat is not None else None,
                "qubits": {k: list(v) for k, v in run.qubits.items()}}
        if self.links.transceivers:
            details["transceivers"] = {a: self.links.transceiver_report(a)
                                       for a in self.links.transceivers}
            self.links.record_transceivers()
        details["executors"] = {a: dict(node.executor.stats) for a, node in tb.nodes.items()
                                if node.executor is not None}
        return results

    def _leaked(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for address, node in self.ctx.testbed.nodes.items():
            if node.executor is None:
                continue
            held = set(node.executor.held_qubits())
            reserved = {q for qs in node.manager.held().values() for q in qs} if node.manager else set()
            app = self.apis[address].held_qubits() if address in self.apis else set()
            waiting = {(k, q) for (n, k), pool in self.links.pools.items() if n == address
                       for q in pool.pending}
            count = len(held | app) + len(reserved) + len(waiting)
            if count:
                out[address] = count
        return out
