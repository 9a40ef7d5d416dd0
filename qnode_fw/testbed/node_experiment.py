"""The part of an experiment that one node process runs (``qnode run --experiment EXP.yaml``; the
processes mode of ``qnode testbed``).

On the virtual testbed an experiment kind sees every node at once
(:mod:`qnode_fw.experiments`). A node process sees its own node, so each kind that runs across
processes has a *node role* here, built from the same experiment YAML and parameter model:

* ``repeater_chain`` (:class:`RepeaterChainNode`): every node runs its share of the memory links
  (:class:`~qnode_fw.testbed.node_links.NodeLinks`); the initiator's application opens a socket
  to the responder once its control links are up and requests pairs, the responder's accepts.
  Both ends decide from the pair's name alone which pairs to sacrifice and in which basis (the
  rule of :class:`~qnode_fw.experiments.repeater_chain.RepeaterChain`, so the two processes
  agree without a message), measure or release, and log every half in their own run record.

:func:`merge_repeater_chain` joins the two ends' records by pair name into the run's summary:
pairs delivered at both ends, tomography from the sacrificed pairs, wrong pairs (the World's
cross-check of which qubit each half was entangled with) and leaked qubits.

A role starts once the node has started (:meth:`NodeRole.start`) and finishes before it stops
(:meth:`NodeRole.finish`): attempts stop, pairs in flight get ``grace_s`` to land, the initiator
closes the connection, and once more ``grace_s`` later the role counts what it still holds.

Faults: a role started with a fault plan (the experiment's ``faults:`` with ``qnode run --fault``
over it) applies this node's share once its links are up (:func:`~qnode_fw.faults.runners.
node_fault_targets`: its control link, herald endpoints and instruments; entries for other
nodes are theirs), logs what it injects in the node's record and reports the counts in its
figures (``faults``). An instrument error escaping into the loop is named and handled as the
experiment's ``on_instrument_failure`` says: ``stop`` shuts the node down naming the instrument
(:attr:`NodeRole.stop_reason`; ``qnode run`` then exits 1), ``continue`` runs on.
Node crashes in the plan are the runner's (it kills and restarts this process); the node leaves
them out of its share.

A peer that dies: the role logs ``peer.down`` (with the control link's reason) and ``peer.back``
in the record and reports them (``peer_events``). Under ``on_peer_failure: stop`` ``qnode run``
stops the node there; under ``continue`` the connection manager has closed the connections
through the dead peer (their RuleSets torn down, qubits freed) and the initiator asks for a new
connection once every peer is up again. A restarted end runs a fresh role; neither end holds a
delivered half for the other (each measures or releases at once), so a half whose partner never
comes is only an unmatched row.
"""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ..addresses import PairName, QubitAddress
from ..bell import BellState
from ..errors import ConfigError
from ..events import PairReady
from ..logs import event
from ..units import MS, S

log = logging.getLogger(__name__)

#: Pause before the initiator asks again for a connection that closed early (a peer died).
REQUEST_AGAIN_PS = 200 * MS

#: One delivered half at one end. ``link_click_ps``: when the photons of the link pair that this
#: qubit held before the swap were detected (the pair's name at the BSA), the physics' part of
#: the pair's history; ``partner_*``: the qubit the World says the half shared its state with at
#: delivery (empty when the other end had already measured or released its half).
#:
#: No exact fidelity: on one virtual clock both halves can be looked at together; across processes
#: the other end may already have measured, released or not yet corrected its half when this one
#: asks, and the World keeps no history to look back at. The fidelity is the tomography's.
HALF_DTYPE = np.dtype([("t_ps", "<i8"), ("origin", "U24"), ("name_ps", "<i8"), ("node", "U24"),
                       ("partner", "U24"), ("qnic", "<i4"), ("index", "<i4"),
                       ("fidelity_estimate", "<f8"), ("partner_node", "U24"), ("partner_qnic", "<i4"), ("partner_index", "<i4"),
                       ("basis", "U1"), ("outcome", "i1"), ("created_ps", "<i8"),
                       ("link_click_ps", "<i8")])


def sacrificed_basis(name: PairName, seed: int, fraction: float) -> str | None:
    """Which basis both ends measure ``name`` in (None: release it) - from the name and the run's
    seed alone, as :class:`~qnode_fw.experiments.repeater_chain.RepeaterChain` decides it."""
    h = zlib.crc32(f"{name.origin}/{name.timestamp_ps}/{seed}".encode())
    if (h % 10_000) >= fraction * 10_000:
        return None
    return "XYZ"[(h // 10_000) % 3]


class NodeRole(ABC):
    """What one node process does for an experiment (see the module docstring)."""

    @abstractmethod
    def start(self) -> None:
        """Wire the node's part onto the started node."""

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """Stop, let what is in flight land, and return this node's figures (JSON-able)."""

    def status(self) -> str:
        return ""

    #: Why the node stopped early (a failed instrument under ``on_instrument_failure: stop``).
    stop_reason: str | None = None


def node_role(lab: Any, experiment: Any, record: Any, fault: str | None = None) -> NodeRole:
    """The role of ``lab``'s node (a :class:`~qnode_fw.testbed.lab.LabNode`) in ``experiment``
    (a LoadedExperiment); ``record`` is the node's RunRecord (or None); ``fault`` the ``--fault``
    string over the experiment's ``faults:``."""
    from ..faults.runners import run_fault_plan

    kind = experiment.config.kind
    plan = run_fault_plan(experiment.config.faults, fault)
    if plan is not None and plan.nodes:
        # Node crashes are the runner's to inject (it kills and starts this process); what is
        # left for the node is its share of message and instrument faults.
        plan = plan.model_copy(update={"nodes": []})
        if plan.empty:
            plan = None
    if kind == "repeater_chain":
        return RepeaterChainNode(lab, experiment, record, plan=plan)
    raise ConfigError(f"experiment kind {kind!r} runs on the virtual testbed only; across node "
                      f"processes: repeater_chain", file=str(experiment.document.file), field="kind",
                      expected="repeater_chain (or run without --processes)")


class RepeaterChainNode(NodeRole):
    def __init__(self, lab: Any, experiment: Any, record: Any, *, grace_s: float = 0.5,
                 plan: Any = None) -> None:
        self.lab = lab
        self.plan = plan
        self.policy = experiment.config.on_instrument_failure
        self.peer_policy = experiment.config.on_peer_failure
        #: Peers that went down other than by saying goodbye, and came back (each with its time).
        self.peer_events: list[dict[str, Any]] = []
        self._peers_up: set[str] = set()
        self._finishing = False
        self._requesting = False
        self.failures = None
        self.fault_log = None
        self.node = lab.node
        self.loop = lab.loop
        self.params = experiment.params
        self.seed = lab.seed
        self.record = record
        self.grace_ps = int(grace_s * S)
        self.address = self.node.address
        p = self.params
        cfg = lab.testbed.config
        for role, address in (("initiator", p.initiator), ("responder", p.responder)):
            if address not in cfg.addresses:
                raise ConfigError(f"{role} {address!r} is not a node of {cfg.name}",
                                  file=str(experiment.document.file), field=f"params.{role}",
                                  expected="one of " + ", ".join(cfg.addresses))
        self.is_end = self.address in (p.initiator, p.responder)
        self.api = None
        self.socket = None
        self.sockets: list[Any] = []
        #: halves delivered here (their rows go to the record's ``halves`` table at each flush;
        #: kept in memory they grew an end's process with every pair)
        self.halves = 0
        self.pending_rows: list[tuple] = []
        self.connection_events: list[dict[str, Any]] = []
        self.requested_ps: int | None = None
        self.established_ps: int | None = None
        self._click_of: dict[QubitAddress, int] = {}
        self.links = None

    # -- starting ---------------------------------------------------------------------------------
    def start(self) -> None:
        from ..app import NodeApi
        from .node_links import NodeLinks

        if self.is_end:
            if self.node.manager is None:
                raise ConfigError(f"end node {self.address} has no QNIC, so no connection manager",
                                  field="params", expected="an end node with memories")
            self.api = NodeApi(self.node)
        held = self.api.held_qubits if self.api is not None else None
        self.links = NodeLinks(self.node, self.lab.testbed.config, self.params.physics,
                               context=self.lab.context, curve=self.lab.curve, held=held,
                               on_pair_ready=self._link_pair, record=self.record)
        self.links.use_link_budget_for_routing()
        self.links.follow_connections()
        self.links.start()
        self.node.control.add_status_handler(self._peer_status)
        self._faults()
        if self.address == self.params.responder:
            self.api.listen(self._accept)
        if self.address == self.params.initiator:
            self._request_when_peers_up()
        self._log("role.started", is_end=self.is_end, links=sorted(self.links.ends),
                  stations=sorted(self.links.stations))

    def _faults(self) -> None:
        """This node's share of the fault plan, and the instrument-failure policy."""
        from ..faults.apply import apply_fault_plan
        from ..faults.runners import (FaultLog, InstrumentFailures, instrument_names,
                                      node_fault_targets)

        self.failures = InstrumentFailures(
            self.policy, instrument_names({self.address: self.node}), self.loop.now_ps,
            on_failure=lambda f: self._log("instrument.failed", **{k: v for k, v in f.to_dict().items()
                                                                   if k != "t_ps"}),
            on_recovery=lambda f: self._log("instrument.recovered", **f))
        self.failures.guard_run_forever(self.loop, self._stop_for_instrument)
        self.failures.guard_run_until(self.loop)       # finish() drains on the same loop
        if self.plan is None:
            return
        applied = apply_fault_plan(self.plan, node_fault_targets(
            self.lab, self, self.node.env.streams, self.loop.now_ps()))
        self.fault_log = FaultLog(self.plan, applied, self.record, self.failures, self.address)
        self._log("faults.applied", plan=self.plan.model_dump(mode="json", exclude_defaults=True))

    def _stop_for_instrument(self, reason: str) -> None:
        self.stop_reason = reason
        self.lab.request_shutdown(reason)

    def _peer_status(self, status: Any) -> None:
        """Name a peer that died (no heartbeat, or back under a new boot id) and one that came
        back, in the record and the figures. Under ``on_peer_failure: continue`` the connection
        manager has already closed the connections through it (freeing their qubits); the
        initiator sets a connection up again once every peer is up (:meth:`_connection_closed`).
        Under ``stop`` the node process stops (``qnode run --stop-on-peer-down``).

        Each event carries the peer's boot id as the control link knows it: a peer heard from
        again under the boot it died with is the same process (a message it sent before it died
        that arrived late, or a network that came back); a restarted one has a later boot."""
        if self._finishing:
            return
        peer = status.peer
        boot = self.node.control.peer_boot(peer)
        if status.up:
            if peer in self._peers_up:
                return
            self._peers_up.add(peer)
            downs = [e for e in self.peer_events if e["peer"] == peer and e["kind"] == "peer-down"]
            if downs:
                again = "new" if boot != downs[-1]["boot"] else "same"
                self._peer_event("peer-back", peer, f"heard from ({again} boot {boot})", boot)
            return
        if peer not in self._peers_up or status.reason == "peer stopped":
            self._peers_up.discard(peer)
            return
        self._peers_up.discard(peer)
        self._peer_event("peer-down", peer, status.reason, boot)

    def _peer_event(self, kind: str, peer: str, detail: str, boot: int | None) -> None:
        t_ps = self.loop.now_ps()
        self.peer_events.append({"t_ps": t_ps, "kind": kind, "peer": peer, "detail": detail,
                                 "boot": boot})
        self._log("peer.down" if kind == "peer-down" else "peer.back", peer=peer, detail=detail,
                  boot=boot, policy=self.peer_policy)

    def _request_when_peers_up(self) -> None:
        """Connection setup needs every node on the path: wait for the control links."""
        if self._finishing:
            self._requesting = False
            return
        self._requesting = True
        if not all(up for up, _ in self.node.status().peers.values()):
            self.loop.call_later(20 * MS, self._request_when_peers_up)
            return
        self._requesting = False
        p = self.params
        sock = self.socket = self.api.open(p.responder)
        sock.on_event = lambda ev: self._event(sock, ev)   # this socket's, also once replaced
        self.sockets.append(self.socket)
        self.requested_ps = self.loop.now_ps()
        if p.count is not None:
            self.socket.request(count=p.count, rate_hz=p.rate_hz, min_fidelity=p.min_fidelity)
        else:
            # The run ends when the testbed is stopped: ask for far more than it can take.
            self.socket.request(duration_s=3600.0, rate_hz=p.rate_hz, min_fidelity=p.min_fidelity)
        self._log("chain.requested", responder=p.responder, connection=self.socket.connection,
                  min_fidelity=p.min_fidelity, count=p.count)

    def _accept(self, sock: Any) -> None:
        self.sockets.append(sock)
        sock.on_event = lambda ev, s=sock: self._event(s, ev)

    # -- pairs ------------------------------------------------------------------------------------
    def _link_pair(self, ev: PairReady) -> None:
        # The link pair's name is <BSA, last click>: when its photons were detected.
        self._click_of[ev.qubit] = ev.name.timestamp_ps
        self.node.executor.on_pair_ready(ev)

    def _event(self, sock: Any, ev: Any) -> None:
        from ..app import ConnectionEvent, DeliveredPair

        if isinstance(ev, ConnectionEvent):
            if ev.established and self.established_ps is None:
                self.established_ps = self.loop.now_ps()
            self.connection_events.append({"connection": ev.connection, "established": ev.established,
                                           "reason": ev.reason, "detail": ev.detail,
                                           "stated_by": ev.stated_by, "t_ps": self.loop.now_ps()})
            self._log("connection", connection=ev.connection, established=ev.established,
                      reason=ev.reason, detail=ev.detail, stated_by=ev.stated_by)
            if not ev.established:
                self._connection_closed(sock)
            return
        if not isinstance(ev, DeliveredPair):
            return
        # World-wide qubit names are (node, QNIC address, index), as SimQNIC.key gives them.
        key = (self.address, self.node.qnics[ev.qubit.qnic].qnic_address, ev.qubit.index)
        partner_key = self._partner_of(key)
        basis = sacrificed_basis(ev.name, self.seed, self.params.tomography_fraction)
        outcome = -1
        if basis is not None:
            outcome = sock.measure(ev, basis)
        else:
            sock.release(ev)
        row = (ev.timestamp_ps, ev.name.origin, ev.name.timestamp_ps, self.address, ev.partner,
               ev.qubit.qnic, ev.qubit.index, ev.fidelity_estimate, *partner_key, basis or "", outcome, ev.created_ps,
               self._click_of.pop(ev.qubit, -1))
        self.halves += 1
        self.pending_rows.append(row)
        self._log("pair.delivered", pair=str(ev.name), partner=ev.partner, qubit=str(ev.qubit),
                  basis=basis, outcome=outcome)

    def _connection_closed(self, sock: Any) -> None:
        """The initiator under ``on_peer_failure: continue`` asks again for a connection that
        closed before the run's end (a peer died or restarted, or setup failed while it was
        away), once every peer is up; a short pause keeps a setup that keeps failing from
        flooding the control links."""
        if (self.address != self.params.initiator or self.peer_policy != "continue"
                or self._finishing or self._requesting or sock is not self.socket):
            return
        self._requesting = True
        self.loop.call_later(REQUEST_AGAIN_PS, self._request_when_peers_up)

    def _partner_of(self, key: tuple) -> tuple[str, int, int]:
        """The qubit the World says this half shares its state with: the simulator's own answer,
        which a lab has not (empty when there is none, or not exactly one)."""
        registry = getattr(self.node.env.world, "registry", None)
        partners = registry.partners(key) if registry is not None and hasattr(registry, "partners") else []
        if len(partners) != 1:
            return ("", -1, -1)
        other = partners[0]
        return (str(other[0]), int(other[1]), int(other[2]))

    # -- finishing --------------------------------------------------------------------------------
    def flush(self) -> None:
        if self.fault_log is not None:
            self.fault_log.flush()
        if self.record is not None:
            if self.pending_rows:
                self.record.append_rows("halves", np.array(self.pending_rows, HALF_DTYPE))
            self.record.flush()
        self.pending_rows = []

    def finish(self) -> dict[str, Any]:
        stopped_ps = self.loop.now_ps()
        self._finishing = True
        self._log("role.finishing")
        if self.links is not None:
            self.links.stop_attempts()
            self.loop.run_until(self.loop.now_ps() + self.grace_ps)
        for sock in self.sockets if self.address == self.params.initiator else []:
            sock.close()
        self.loop.run_until(self.loop.now_ps() + self.grace_ps)
        if self.links is not None:
            link_stats = self.links.stats()
            pending = self.links.pending()
            self.links.close()
        else:
            link_stats, pending = {}, 0
        for sock in self.sockets:
            for pair in list(sock.held.values()):
                sock.release(pair)
            sock.close()
        leaked = self._leaked() + pending
        self.flush()
        out = {"role": "initiator" if self.address == self.params.initiator else
               "responder" if self.address == self.params.responder else "link",
               "halves": self.halves, "leaked_qubits": leaked, "links": link_stats,
               "requested_ps": self.requested_ps, "established_ps": self.established_ps,
               "stopped_ps": stopped_ps, "world_calls": self._world_calls(),
               "connection_events": self.connection_events,
               "durations_ps": self._durations(),
               "instrument_failures": self.failures.to_list() if self.failures is not None else [],
               "stop_reason": self.stop_reason, "on_peer_failure": self.peer_policy,
               "peer_events": self.peer_events}
        if self.fault_log is not None:
            out["faults"] = self.fault_log.summary()
        self._log("role.finished", **{k: v for k, v in out.items() if k != "links"})
        return out

    def _leaked(self) -> int:
        ex, manager = self.node.executor, self.node.manager
        if ex is None:
            return 0
        held = set(ex.held_qubits())
        reserved = {q for qs in manager.held().values() for q in qs} if manager else set()
        app = self.api.held_qubits() if self.api is not None else set()
        return len(held | app) + len(reserved)

    def _world_calls(self) -> dict[str, Any]:
        """Round trips to the World server (measurements, tagger reads) and their mean wait."""
        client = getattr(self.node.env.world, "client", None)
        if client is None:
            return {}
        st = client.stats
        return {"calls": st.calls, "casts": st.casts,
                "mean_wait_us": st.call_wait_ns / st.calls / 1000 if st.calls else None}

    def _durations(self) -> dict[str, int]:
        """The QNIC operation times the physics takes (BSM and corrections), for the latency
        figures: the software overhead is what is left once they are taken off."""
        from ..ruleset.circuits import bsm_duration_ps

        if not self.node.qnics:
            return {}
        qnic = next(iter(self.node.qnics.values()))
        return {"bsm": bsm_duration_ps(qnic), "X": qnic.duration_ps("X"), "Z": qnic.duration_ps("Z")}

    def status(self) -> str:
        return f"{self.halves} halves"

    def _log(self, what: str, **fields: Any) -> None:
        if self.record is not None:
            self.record.event(self.loop.now_ps(), what, self.address, **fields)
            self.record.flush()
        event(log, logging.INFO, what, node=self.address, **{k: v for k, v in fields.items()
                                                           if not isinstance(v, (list, dict))})


# -- joining the ends' records -----------------------------------------------------------------------
def merge_repeater_chain(halves: dict[str, np.ndarray], params: Any, nodes: dict[str, dict]) -> dict[str, Any]:
    """The run's results from each end's ``halves`` table (by node) and each node's final figures
    (``nodes[address]``: the ``experiment`` part of its ``qnode run --json``)."""
    from ..experiments import analysis as an

    a_rows = halves.get(params.initiator, np.empty(0, HALF_DTYPE))
    c_rows = halves.get(params.responder, np.empty(0, HALF_DTYPE))
    by_name_c = {(r["origin"], int(r["name_ps"])): r for r in c_rows}
    counts = {b: np.zeros((2, 2), np.int64) for b in "XYZ"}
    pairs, wrong, unchecked, overhead_us = 0, 0, 0, []
    init = nodes.get(params.initiator, {})
    durations = {n: (f.get("durations_ps") or {}) for n, f in nodes.items()}
    for a in a_rows:
        c = by_name_c.get((a["origin"], int(a["name_ps"])))
        if c is None:
            continue
        pairs += 1
        # Entangled with each other, says the World: every end that still found a partner at its
        # delivery (the other end may have measured its half already) found the other end's qubit.
        seen = [(x, y) for x, y in ((a, c), (c, a)) if x["partner_node"]]
        if a["partner"] != c["node"] or c["partner"] != a["node"] or any(
                (x["partner_node"], x["partner_qnic"], x["partner_index"]) != (y["node"], y["qnic"], y["index"])
                for x, y in seen):
            wrong += 1
        if not seen:
            unchecked += 1
        if a["basis"] and a["basis"] == c["basis"] and a["outcome"] >= 0 and c["outcome"] >= 0:
            counts[str(a["basis"])][int(a["outcome"]), int(c["outcome"])] += 1
        if a["link_click_ps"] >= 0 and c["link_click_ps"] >= 0:
            swapper = str(a["origin"])
            physics = durations.get(swapper, {}).get("bsm", 0) + max(
                durations.get(params.initiator, {}).get(g, 0) for g in ("X", "Z"))
            overhead_us.append((int(a["t_ps"]) - max(int(a["link_click_ps"]), int(c["link_click_ps"]))
                                - physics) / 1e6)
    out: dict[str, Any] = {"pairs_delivered": pairs, "wrong_pairs": wrong,
                           "pairs_not_cross_checked": unchecked,
                           "unmatched_halves": len(a_rows) + len(c_rows) - 2 * pairs,
                           "tomography_pairs": {b: int(c.sum()) for b, c in counts.items()}}
    if all(c.sum() for c in counts.values()):
        corr = {b: an.correlator(c) for b, c in counts.items()}
        f = an.bell_fidelity(corr, BellState.PHI_PLUS)
        out["fidelity"], out["fidelity_stderr"] = f.value, f.stderr
    if overhead_us:
        out["e2e_software_overhead_us"] = overhead_us
    req, est = init.get("requested_ps"), init.get("established_ps")
    if req is not None and est is not None:
        out["setup_ms"] = (est - req) / MS
    if req is not None and len(a_rows):
        first_pair = min(int(r["t_ps"]) for r in a_rows)
        out["request_to_first_pair_ms"] = (first_pair - req) / MS
    return out


#: A node process started again in the same run (a crash and restart) writes its record beside
#: the first one's: ``nodes/<address>``, then ``nodes/<address>.restart1``, ``.restart2``...
RESTART_SUFFIX = ".restart"


def record_dirs(run_dir: Path, address: str) -> list[Path]:
    """Every record one node's processes wrote under ``run_dir/nodes``, oldest first."""
    nodes = Path(run_dir) / "nodes"
    out = [nodes / address] if (nodes / address).is_dir() else []
    n = 1
    while (nodes / f"{address}{RESTART_SUFFIX}{n}").is_dir():
        out.append(nodes / f"{address}{RESTART_SUFFIX}{n}")
        n += 1
    return out


def next_record_dir(run_dir: Path, address: str) -> Path:
    """Where a node process starting now writes its record: the first process of ``address``
    in this run gets ``nodes/<address>``, one started again after a crash the next free
    ``nodes/<address>.restartN`` (the killed process's record stays as it was flushed)."""
    taken = record_dirs(run_dir, address)
    if not taken:
        return Path(run_dir) / "nodes" / address
    return Path(run_dir) / "nodes" / f"{address}{RESTART_SUFFIX}{len(taken)}"


def read_halves(run_dir: Path, address: str) -> np.ndarray:
    """One node's ``halves`` table from its records under ``run_dir/nodes/`` (every process of
    that node in the run, a crashed one's up to its last flush)."""
    from ..records import read_chunks

    parts = [rows for d in record_dirs(run_dir, address)
             if (rows := read_chunks(d / "arrays" / "halves")).dtype == HALF_DTYPE]
    return np.concatenate(parts) if parts else np.empty(0, HALF_DTYPE)


__all__ = ["HALF_DTYPE", "NodeRole", "RepeaterChainNode", "merge_repeater_chain", "next_record_dir",
           "node_role", "read_halves", "record_dirs", "sacrificed_basis"]
