"""One node of a testbed, assembled from its configuration: the runtime kernel of a node PC.

A :class:`Node` owns, as components started in this order and stopped in reverse:

1. its **instruments**, opened through the driver registry (real drivers over their transports, or
   the simulated instruments on the testbed's shared World);
2. its **QNICs** (:class:`~drivers.qnic.QNIC`): a configured qnic instrument, or a simulated QNIC;
3. its **control link** (in-process on the virtual clock, or ZeroMQ with CurveZMQ on a lab PC);
4. for nodes that hold qubits, the **RuleSet executor** and the **connection manager** (QRNA
   two-pass setup, routes by qDijkstra over the link costs).

The node does not own the loop or the clock: in a virtual testbed every node shares one loop, on a
lab PC the node's process runs its own (``qnode run``). What surrounds the node (who its peers are,
which transport, which World) comes in a :class:`NodeEnvironment`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.instrument import Instrument
from drivers.qnic import QNIC, QubitRole
from drivers.registry import DriverContext, InstrumentSpec, open_instrument

from .addresses import NodeAddress, QubitAddress
from .component import ComponentStack, FunctionComponent
from .config.source import Document, format_path
from .config.node import LinkConfig, NodeConfig, QnicConfig
from .connection import ConnectionManager, MuxPolicy, ResourcePool, SetupSettings
from .control import ControlLink
from .errors import ConfigError
from .logs import event
from .loop import EventLoop
from .recent import RecentLog
from .rng import RandomStreams
from .routing import LinkFigures, RouteTable, seconds_per_pair
from .ruleset.circuits import bsm_duration_ps
from .ruleset.executor import RuleSetExecutor
from .ruleset.messages import message_from_wire
from .units import MS

log = logging.getLogger(__name__)

#: Fibre attenuation used for a link's rate *prior* (telecom C band). The link monitor replaces
#: the prior with the measured rate once pairs flow.
PRIOR_FIBRE_DB_PER_KM = 0.2
#: Index fidelity at which qDijkstra compares links (QRNA paper: seconds per Bell pair at F).
INDEX_FIDELITY = 0.9


def prior_link_rate_hz(link: LinkConfig) -> float:
    """Heralded pairs per second expected before any is measured: one attempt per period, each
    photon crossing half the fibre, and the 1/2 ceiling of a linear-optics Bell measurement for
    ``both_endpoints`` links (lossless optics otherwise: the monitor corrects it)."""
    half = 10 ** (-PRIOR_FIBRE_DB_PER_KM * link.fibre_km / 2 / 10)
    per_attempt = {"both_endpoints": 0.5 * half * half, "midpoint_source": half * half,
                   "at_source": 10 ** (-PRIOR_FIBRE_DB_PER_KM * link.fibre_km / 10)}[link.scheme.value]
    return per_attempt / (link.attempts.period_ns * 1e-9)


@dataclass
class NodeEnvironment:
    """What a node gets from whoever runs it."""

    loop: EventLoop
    control: ControlLink
    streams: RandomStreams
    world: Any = None                     # sim_backend.world.World when instruments are simulated
    #: Costs of every quantum link of the testbed (seconds per pair), for qDijkstra.
    link_costs: dict[tuple[str, str], float] = field(default_factory=dict)
    mux_policy: MuxPolicy = MuxPolicy.BUFFER
    setup: SetupSettings = SetupSettings()
    #: The node file as loaded (origins of its values), so start-up errors can name file and line.
    document: Document | None = None


@dataclass(frozen=True)
class NodeStatus:
    address: NodeAddress
    role: str
    running: list[str]
    peers: dict[NodeAddress, tuple[bool, str]]
    instruments: dict[str, str]           # name -> identification string
    qubits_held: int
    qubits_total: int
    connections: int

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "role": self.role, "running": self.running,
                "peers": {p: {"up": up, "reason": r} for p, (up, r) in self.peers.items()},
                "instruments": self.instruments, "qubits_held": self.qubits_held,
                "qubits_total": self.qubits_total, "connections": self.connections}


class Node:
    """A node runtime built from a :class:`NodeConfig` (see the module docstring)."""

    def __init__(self, config: NodeConfig, env: NodeEnvironment,
                 deliver: Callable[[NodeAddress, object], None] | None = None) -> None:
        self.config = config
        self.address = config.address
        self.env = env
        self.loop = env.loop
        self.control = env.control
        self.instruments: dict[str, Instrument] = {}
        self.qnics: dict[int, QNIC] = {}
        self.identities: dict[str, str] = {}
        self.executor: RuleSetExecutor | None = None
        self.manager: ConnectionManager | None = None
        self.pool: ResourcePool | None = None
        self._deliver_hook = deliver
        #: Further ``fn(node_address, event)`` called for every delivery (the application API).
        self.delivery_listeners: list[Callable[[NodeAddress, object], None]] = []
        #: pairs delivered to the applications: the latest kept, len() counts them all
        self.delivered: RecentLog[object] = RecentLog()
        self.stack = ComponentStack(self.address)
        self.stack.add(FunctionComponent("instruments", self._open_instruments, self._close_instruments))
        self.stack.add(FunctionComponent("qnics", self._open_qnics, self._close_qnics))
        self.stack.add(FunctionComponent("control", self.control.start, self.control.stop))
        if config.qnics:
            self.stack.add(FunctionComponent("rulesets", self._start_rulesets, self._stop_rulesets))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.stack.start()
        event(log, logging.INFO, "node.started", node=self.address, role=self.config.role.value,
              components=",".join(self.stack.running))

    def stop(self) -> None:
        failures = self.stack.stop()
        event(log, logging.INFO, "node.stopped", node=self.address, failures=len(failures))

    # -- instruments and QNICs -------------------------------------------------------------------
    def _context(self) -> DriverContext:
        return DriverContext(clock=self.loop.clock, loop=self.loop, streams=self.env.streams,
                             world=self.env.world, instruments=self.instruments)

    def _open_instruments(self) -> None:
        context = self._context()
        for inst in self.config.instruments:
            # Simulated instruments of all nodes share one World, so their names there must be
            # unique across the testbed: qualify them with the node address ("bsa-AB/tagger").
            spec = InstrumentSpec(self.qualified(inst.name), inst.kind.value, inst.model,
                                  inst.resource, dict(inst.limits), dict(inst.options))
            try:
                opened = open_instrument(spec, context)
            except ConfigError as exc:
                raise ConfigError(exc.message, field=f"{self.address}: {exc.field or inst.name}",
                                  expected=exc.expected) from exc
            self.instruments[inst.name] = opened
            context.instruments[inst.name] = opened
            if self.env.world is None and context.world is not None:
                self.env.world = context.world       # the first simulated instrument made one
            self.identities[inst.name] = opened.identify()
        self._apply_calibration()

    def _apply_calibration(self) -> None:
        """Set what the node file's ``calibration:`` (usually an included calibration YAML)
        measured: time-tagger input delays and crystal phase-matching temperatures."""
        cal = self.config.calibration
        if cal is None:
            return
        for name, delays in cal.input_delays_ps.items():
            tagger = self.instruments[name]
            if not hasattr(tagger, "set_input_delay_ps"):
                raise ConfigError(f"calibration sets input delays on {name}, which is not a time "
                                  "tagger", field=f"{self.address}.calibration.input_delays_ps.{name}")
            for channel, delay in delays.items():
                tagger.set_input_delay_ps(int(channel), int(delay))
        for name, celsius in cal.crystal_temperature_c.items():
            source = self.instruments[name]
            if not hasattr(source, "set_crystal_temperature_c"):
                raise ConfigError(f"calibration sets a crystal temperature on {name}, which is not "
                                  "a pair source", field=f"{self.address}.calibration.crystal_temperature_c.{name}")
            source.set_crystal_temperature_c(float(celsius))

    def _close_instruments(self) -> None:
        for name in reversed(list(self.instruments)):
            self.instruments.pop(name).close()

    def qualified(self, instrument_name: str) -> str:
        """The testbed-wide name of one of this node's instruments."""
        return f"{self.address}/{instrument_name}"

    def _open_qnics(self) -> None:
        context = self._context()
        for i, q in enumerate(self.config.qnics):
            if q.instrument is not None:
                qnic = self.instruments[q.instrument]
                if not isinstance(qnic, QNIC):
                    raise ConfigError(f"instrument {q.instrument} is not a QNIC driver",
                                      field=f"{self.address}.qnics[{q.address}].instrument")
                self._check_qnic_instrument(i, q, qnic)
            else:
                qnic = open_instrument(self._sim_qnic_spec(q), context)
                if self.env.world is None:
                    self.env.world = context.world
            self.qnics[q.address] = qnic   # type: ignore[assignment]

    def _check_qnic_instrument(self, i: int, q: QnicConfig, qnic: QNIC) -> None:
        """A QNIC realised by an instrument (a lab binding file) must have the qubits the node
        file says: the RuleSets address ``qnics[].qubits`` and the links split
        ``communication_qubits`` among themselves, while the instrument is what the hardware
        does. A mismatch would surface later as a refused operation in the middle of a run."""
        where = f"{q.instrument} ({qnic.resource})"
        if qnic.num_qubits != q.qubits:
            raise self._node_error(("qnics", i, "qubits"), f"{q.qubits} qubits, but the QNIC "
                                   f"instrument {where} has {qnic.num_qubits}",
                                   f"qubits: {qnic.num_qubits}, as the instrument's binding says")
        declared = sorted(range(q.qubits) if q.communication_qubits is None else q.communication_qubits)
        bound = [k for k in range(qnic.num_qubits) if qnic.role(k) is QubitRole.COMMUNICATION]
        if declared != bound:
            said = "all qubits (no communication_qubits given)" if q.communication_qubits is None else str(declared)
            raise self._node_error(("qnics", i, "communication_qubits"), f"{said} are communication "
                                   f"qubits, but the QNIC instrument {where} binds {bound}",
                                   f"communication_qubits: {bound}, as the instrument's binding says")

    def _node_error(self, path: tuple, message: str, expected: str) -> ConfigError:
        """A ConfigError at ``path`` of the node file (file and line when the node was loaded
        from one)."""
        if self.env.document is not None:
            return self.env.document.error(path, f"node {self.address}: {message}", expected)
        return ConfigError(message, field=f"{self.address}.{format_path(path)}", expected=expected)

    def _sim_qnic_spec(self, q: QnicConfig) -> InstrumentSpec:
        options: dict[str, Any] = {"node": self.address, "qnic_address": q.address,
                                   "num_qubits": q.qubits, "memory": q.memory.as_params()}
        if q.communication_qubits is not None:
            options["communication_qubits"] = list(q.communication_qubits)
        return InstrumentSpec(self.qualified(f"qnic{q.address}"), "qnic", "sim", "sim", {}, options)

    def _close_qnics(self) -> None:
        for q in list(self.qnics):
            qnic = self.qnics.pop(q)
            if q not in {c.address for c in self.config.qnics if c.instrument is not None}:
                qnic.close()

    # -- RuleSets and connections -----------------------------------------------------------------
    def _start_rulesets(self) -> None:
        rng = self.env.streams.get(f"node:{self.address}/executor")
        link = self.control
        self.executor = RuleSetExecutor(
            self.address, self.loop, list(self.qnics.values()),
            send=lambda peer, msg: link.send(peer, "rs.msg", msg.to_wire()),
            deliver=self._delivered, rng=rng)
        executor = self.executor
        link.add_handler("rs.msg", lambda peer, _t, payload: executor.on_message(peer, message_from_wire(payload)))
        qubits = [QubitAddress(q.address, i) for q in self.config.qnics for i in range(q.qubits)]
        self.pool = ResourcePool(self.address, qubits, self.env.mux_policy)
        t2 = min((q.memory.storage_t2_ms or 13.0) for q in self.config.qnics)
        self.manager = ConnectionManager(
            self.address, self.loop, link, self.pool, executor,
            link_figures=self.link_figures, memory_t_ps=int(t2 * MS),
            routes=RouteTable(self.address, dict(self.env.link_costs)), settings=self.env.setup,
            swap_operation_ps=max(bsm_duration_ps(q) for q in self.qnics.values()),
            buffers_from=self.config.buffered_neighbour())

    def _stop_rulesets(self) -> None:
        if self.executor is not None:
            for ruleset_id in list(self.executor.installed):
                self.executor.teardown(ruleset_id)

    def link_figures(self, neighbour: NodeAddress) -> LinkFigures:
        link = self.config.link_to(neighbour)
        if link is None:
            return LinkFigures(0.0, 0.0, 0)
        return LinkFigures(prior_link_rate_hz(link), link.fidelity, 0)

    def _delivered(self, ev: object) -> None:
        self.delivered.append(ev)
        if self.manager is not None and hasattr(ev, "ruleset_id"):
            self.manager.pair_delivered(ev.ruleset_id)  # type: ignore[attr-defined]
        if self._deliver_hook is not None:
            self._deliver_hook(self.address, ev)
        for listener in list(self.delivery_listeners):
            listener(self.address, ev)

    # -- status -------------------------------------------------------------------------------------
    def status(self) -> NodeStatus:
        peers = {p: (s.up, s.reason) for p, s in self.control.status().items()}  # type: ignore[union-attr]
        held = len(self.executor.held_qubits()) if self.executor is not None else 0
        total = sum(q.qubits for q in self.config.qnics)
        conns = len(self.executor.installed) if self.executor is not None else 0
        return NodeStatus(self.address, self.config.role.value, self.stack.running, peers,
                          dict(self.identities), held, total, conns)


def link_costs(configs: list[NodeConfig]) -> dict[tuple[str, str], float]:
    """qDijkstra costs of every link from its configured fidelity and prior rate."""
    costs: dict[tuple[str, str], float] = {}
    for n in configs:
        for l in n.links:
            key = tuple(sorted((n.address, l.neighbour)))
            cost = seconds_per_pair(l.fidelity, prior_link_rate_hz(l), INDEX_FIDELITY)
            costs[key] = cost if math.isfinite(cost) else 1e9   # type: ignore[index]
    return costs


__all__ = ["INDEX_FIDELITY", "Node", "NodeEnvironment", "NodeStatus", "link_costs",
           "prior_link_rate_hz"]
