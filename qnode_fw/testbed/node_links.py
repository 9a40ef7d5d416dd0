"""One node's share of the testbed's heralded memory links, run in that node's own process
(``qnode run --experiment``: the processes mode of ``qnode testbed``, and the lab).

The virtual testbed builds every link of the testbed in one place
(:class:`~qnode_fw.experiments.memory_links.MemoryLinks`). A node process only has its own node,
so the same link layer is split by who does what, from the same YAML and the same
:class:`~qnode_fw.experiments.memory_links.LinkPhysics`:

* **every process** derives each ``both_endpoints`` link's
  :class:`~timing.schemes.LinkSchemeParams` and the communication qubits each end gives it
  (:func:`plan_links`) identically, with the attempt grid anchored at testbed time 0, so both ends
  attempt in the same slots without talking;
* an **end node** runs, per link, the attempt schedule on the World's hardware loop (so the AWG
  burst starts exactly at the slot time, whatever the wall-clock loop's lateness), its AWG marker
  edges emit a free communication qubit (:class:`~timing.link_end.LinkEndRuntime`), and it binds
  heralds from its own ZeroMQ herald endpoint (it binds the link's ``herald_endpoint``);
* a **BSA station** reads its time tagger every ``station_read_us`` and sends heralds to both ends
  over ZeroMQ (it connects to the ends' herald endpoints);
* the **World server** adds each link's photonics to the World (:func:`build_world_links`).

CurveZMQ protects the herald links whenever the testbed has keys (ZAP domain ``herald``, the
node authenticator the control plane already runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..addresses import NodeAddress, QubitAddress
from ..config.node import InstrumentKind, LinkScheme as ConfigScheme, NodeConfig
from ..config.testbed import TestbedConfig
from ..errors import ConfigError, QubitRoleError
from ..events import PairReady
from ..recent import LatencyLog
from ..records.tagger_tap import RecordingTagger
from ..routing import LinkFigures
from ..units import NS, US

_ATTEMPT_WAVEFORM = "attempt"
_MARKER_SAMPLES = 4
_MAX_SAMPLE_RATE_HZ = 1e9
#: Samples per attempt-slot waveform: the largest of these that divides the slot exactly at no
#: more than 1 GS/s (a 1 us slot is 1000 samples at 1 GS/s; a 2 ms slot 1000 at 500 kS/s), so
#: every burst's marker edges fall exactly on the slot grid.
_SLOT_SAMPLES = (1000, 500, 250, 200, 100, 50, 20, 10, 5)


@dataclass(frozen=True)
class LinkPlan:
    """One ``both_endpoints`` link as every process sees it."""

    name: str
    params: Any                          # timing.schemes.LinkSchemeParams
    station: NodeAddress
    tagger: str                          # the station's time tagger, testbed-wide name
    fidelity: float
    shares: dict[NodeAddress, tuple[int, ...]]
    herald_endpoints: dict[NodeAddress, str]

    @property
    def nodes(self) -> tuple[NodeAddress, NodeAddress]:
        return self.params.nodes

    def grid(self) -> tuple[int, int]:
        """The common attempt grid (as the virtual testbed's): in every cycle of ``c`` slots (the
        longer busy time of the two ends) the first ``n`` (the fewer qubits of the two ends)."""
        cycle = max(self.params.slots_per_attempt(i) for i in (0, 1))
        share = min(len(self.shares[n]) for n in self.nodes)
        return cycle, min(share, cycle)


def qubit_shares(node: NodeConfig) -> dict[NodeAddress, tuple[int, ...]]:
    """neighbour -> the communication qubits of the link's QNIC this link may use: a QNIC serving
    several links splits its communication qubits among them in the order the node lists them
    (the rule of :class:`~qnode_fw.experiments.memory_links.MemoryLinks`)."""
    shares: dict[NodeAddress, tuple[int, ...]] = {}
    by_qnic: dict[int, list[str]] = {}
    for link in node.links:
        if link.scheme is ConfigScheme.BOTH_ENDPOINTS:
            by_qnic.setdefault(link.qnic, []).append(link.neighbour)
    for qnic_addr, neighbours in by_qnic.items():
        q = node.qnic(qnic_addr)
        if q is None:
            raise ConfigError(f"link of {node.address} uses QNIC {qnic_addr}, which it does not have",
                              field=f"{node.address}.links.qnic")
        comm = list(q.communication_qubits if q.communication_qubits is not None else range(q.qubits))
        per = len(comm) // len(neighbours)
        if per == 0:
            raise ConfigError(f"QNIC {qnic_addr} of {node.address} has {len(comm)} communication "
                              f"qubit(s) for {len(neighbours)} links",
                              field=f"{node.address}.qnics[{qnic_addr}].communication_qubits",
                              expected="at least one per link using the QNIC")
        for k, nb in enumerate(neighbours):
            shares[nb] = tuple(comm[k * per:(k + 1) * per])
    return shares


def instrument_of(node: NodeConfig, kind: InstrumentKind) -> str:
    for inst in node.instruments:
        if inst.kind is kind:
            return inst.name
    raise ConfigError(f"{node.address} has no {kind.value} instrument",
                      field=f"{node.address}.instruments", expected=f"a {kind.value}")


def plan_links(cfg: TestbedConfig, physics: Any) -> list[LinkPlan]:
    """Every ``both_endpoints`` link of the testbed, for ``physics`` (a LinkPhysics)."""
    from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

    plans = []
    for a, b in cfg.quantum_links():
        la, lb = cfg.node(a).link_to(b), cfg.node(b).link_to(a)
        if la is None or lb is None or la.scheme is not ConfigScheme.BOTH_ENDPOINTS:
            continue
        name = f"{a}-{b}"
        params = LinkSchemeParams(
            name, LinkScheme.BOTH_ENDPOINTS, la.station,
            (LinkEndParams(a, la.qnic, la.fibre_km / 2), LinkEndParams(b, lb.qnic, lb.fibre_km / 2)),
            period_ps=int(round(la.attempts.period_ns * NS)), start_ps=0,
            window_ps=int(round(la.attempts.window_ns * NS)),
            herald_delay_ps=int(round((physics.station_read_us + physics.decode_us) * US)),
            where=f"{a}.links[{b}]")
        endpoints = {}
        for node, link in ((a, la), (b, lb)):
            if link.herald_endpoint is None:
                raise ConfigError(f"{node}'s end of link {name} has no herald_endpoint; a node in its "
                                  f"own process hears its heralds there",
                                  field=f"{node}.links[{link.neighbour}].herald_endpoint",
                                  expected="tcp://host:port")
            endpoints[node] = link.herald_endpoint
        station = cfg.node(la.station)
        tagger = f"{station.address}/{instrument_of(station, InstrumentKind.TIME_TAGGER)}"
        shares = {a: qubit_shares(cfg.node(a))[b], b: qubit_shares(cfg.node(b))[a]}
        plans.append(LinkPlan(name, params, station.address, tagger, la.fidelity, shares, endpoints))
    return plans


def sim_physics(physics: Any, fidelity: float):
    """The World's physics of one link (sim_backend.link_schemes.SimLinkPhysics)."""
    from sim_backend.link_schemes import SimLinkPhysics
    from sim_backend.physics.detector import DetectorParams

    det = physics.detector
    return SimLinkPhysics(collection_efficiency=physics.collection_efficiency,
                          detector=DetectorParams(det.efficiency, det.dark_count_rate_hz,
                                                  int(det.dead_time_ns * NS), det.jitter_fwhm_ps),
                          link_fidelity=fidelity, attenuation_db_per_km=physics.attenuation_db_per_km)


def build_world_links(world: Any, plans: list[LinkPlan], physics: Any) -> None:
    """The World server's part: each link's photons, fibres, BSA and tagger stream."""
    from sim_backend.link_schemes import build_sim_link

    for plan in plans:
        build_sim_link(world, plan.params, sim_physics(physics, plan.fidelity),
                       taggers={plan.station: plan.tagger}, qubits=dict(plan.shares))


def success_probability(plan: LinkPlan, physics: Any) -> float:
    """½·η_a·η_b, η = collection · fibre · detector efficiency (the link budget's prior)."""
    eta = [physics.collection_efficiency * 10 ** (-physics.attenuation_db_per_km * e.fibre_km / 10)
           * physics.detector.efficiency for e in plan.params.ends]
    return 0.5 * eta[0] * eta[1]


@dataclass
class EndLink:
    """This node's end of one link."""

    plan: LinkPlan
    runtime: Any                          # timing.link_end.LinkEndRuntime
    schedule: Any                         # timing.schedule.AttemptSchedule
    demand: Any                           # timing.schedule.DemandCounter
    endpoint: Any                         # timing.herald_link.ZmqHeraldEndpoint
    armed: set[int] = field(default_factory=set)
    pairs_ready: int = 0
    herald_latency_ps: LatencyLog = field(default_factory=LatencyLog)


@dataclass
class StationLink:
    """This station's side of one link."""

    plan: LinkPlan
    runtime: Any                          # timing.link_end.BsaStationRuntime
    endpoint: Any
    timer: Any = None

    def heralds(self) -> int:
        return self.runtime.heralds_sent


class NodeLinks:
    """The links of ``node`` (a started :class:`~qnode_fw.node.Node` whose ``env.world`` is a
    :class:`~sim_backend.remote.RemoteWorld`); see the module docstring.

    ``held()`` lists the qubits the application holds (they are not free for attempts);
    ``on_pair_ready`` overrides where a heralded pair goes (default: the RuleSet executor);
    ``curve`` is ``(identity, peer public keys)`` from the testbed's keys, or None.
    """

    def __init__(self, node: Any, cfg: TestbedConfig, physics: Any, *, context: Any,
                 curve: tuple[Any, dict[str, bytes]] | None = None,
                 held: Callable[[], set[QubitAddress]] | None = None,
                 on_pair_ready: Callable[[PairReady], None] | None = None,
                 record: Any = None) -> None:
        from timing.comm_qubits import CommQubitPool
        from timing.herald_link import CurveKeys, ZmqHeraldEndpoint
        from timing.link_end import BsaStationRuntime, LinkEndRuntime
        from timing.schedule import DemandCounter

        from .herald_sync import HeraldClockSync

        self.node = node
        self.address: NodeAddress = node.address
        self.physics = physics
        self.world = node.env.world
        self.loop = node.loop
        self.hw = self.world.loop            # the hardware loop: exact slot times
        self._held = held or (lambda: set())
        self._on_pair_ready = on_pair_ready
        self.record = record
        self.plans = plan_links(cfg, physics)
        self.ends: dict[str, EndLink] = {}
        self.stations: dict[str, StationLink] = {}
        self.pools: dict[int, Any] = {}
        self._routes: dict[tuple[str, int], EndLink] = {}
        from timing.clock_sync import SimulatedClock

        #: This node's PC clock, which it stamps emissions and clock-sync exchanges with: true
        #: (the testbed clock) until a fault plan's ``clocks:`` steps or detunes it. The attempt
        #: grid stays on the hardware loop, the testbed's shared timing reference.
        self.clock = SimulatedClock(self.loop.clock)
        #: Two-way clock sync with each link's station over the herald links (herald_sync).
        self.sync = HeraldClockSync(self.address, self.loop, clock=self.clock)
        awg_channel = 0
        for plan in self.plans:
            mine = self.address in plan.nodes
            if not mine and plan.station != self.address:
                continue
            keys = None
            if curve is not None:
                identity, peer_keys = curve
                keys = CurveKeys(identity.public, identity.secret,
                                 {n: peer_keys[n] for n in plan.nodes if n in peer_keys})
            if not mine:
                endpoint = ZmqHeraldEndpoint(self.address, plan.name, context=context, curve=keys,
                                             connect=dict(plan.herald_endpoints))
                endpoint.attach(self.loop)
                tagger = node.instruments[plan.tagger.split("/", 1)[1]]
                if record is not None:
                    tagger = RecordingTagger(tagger, plan.tagger, record)
                tagger.start_stream([1, 2, 3, 4, 5])
                self.stations[plan.name] = StationLink(
                    plan, BsaStationRuntime(self.loop, plan.params, tagger, endpoint), endpoint)
                self.sync.add_station(plan.name, endpoint, plan.nodes)
                continue
            i = plan.params.index_of(self.address)
            partner = plan.params.partner(i)
            endpoint = ZmqHeraldEndpoint(self.address, plan.name, context=context, curve=keys,
                                         bind=plan.herald_endpoints[self.address])
            endpoint.attach(self.loop)
            self.sync.add_end(plan.name, endpoint, plan.station)
            qnic_addr = plan.params.ends[i].qnic
            qnic = node.qnics[qnic_addr]
            executor = node.executor
            if executor is None:
                raise ConfigError(f"{self.address} ends memory link {plan.name} but has no QNIC",
                                  field=f"{self.address}.qnics")
            if qnic_addr not in self.pools:
                self.pools[qnic_addr] = CommQubitPool(
                    qnic, self.hw.clock, held=lambda ex=executor: ex.held_qubits() | self._held(),
                    free_at_ps=executor.free_at_ps)
            end = EndLink(plan, None, None, DemandCounter(), endpoint)
            end.runtime = LinkEndRuntime(self.hw, plan.params, i, qnic, self.pools[qnic_addr], endpoint,
                                         on_pair_ready=lambda ev, e=end: self._ready(e, ev),
                                         qubits=plan.shares[self.address],
                                         fidelity_estimate=plan.fidelity, clock=self.clock)
            awg_channel += 1
            end.schedule = self._awg_schedule(end, partner, awg_channel)
            self.ends[plan.name] = end
        if self._routes:
            self.world.marker_listeners.append(self._marker_edge)

    # -- attempts -------------------------------------------------------------------------------
    def _awg_schedule(self, end: EndLink, partner: str, channel: int):
        """A bus trigger per grid cycle plays a burst of ``n`` slot waveforms; each burst's marker
        edge starts one emission (as in the virtual testbed). The schedule runs on the hardware
        loop, so the trigger, the edges and the emissions carry the exact slot times."""
        from timing.schedule import AttemptSchedule, AwgMarkerTrigger, ScheduleConfig

        from ..experiments.memory_links import arm_burst

        cfg = self.node.config
        awg_name = instrument_of(cfg, InstrumentKind.AWG)
        awg = self.node.instruments[awg_name]
        if channel > awg.num_channels:
            raise ConfigError(f"{self.address}'s AWG {awg_name} has {awg.num_channels} channel(s) "
                              f"for {channel} links", field=f"{self.address}.instruments.{awg_name}",
                              expected="one AWG channel per memory link")
        params = end.plan.params
        cycle, share = end.plan.grid()
        samples = next((s for s in _SLOT_SAMPLES if params.period_ps % s == 0
                        and params.period_ps // s >= 1e12 / _MAX_SAMPLE_RATE_HZ), None)
        if samples is None:
            raise ConfigError(f"attempt period of link {end.plan.name} ({params.period_ps} ps) is no "
                              f"whole number of AWG samples", field=f"{params.where}.attempts.period_ns",
                              expected="a period of a whole number of microseconds")
        markers = np.zeros(samples, np.uint8)
        markers[:_MARKER_SAMPLES] = 1
        awg.upload_waveform(channel, _ATTEMPT_WAVEFORM, np.zeros(samples),
                            samples * 1e12 / params.period_ps, markers)
        awg.set_output(channel, True)
        trigger = AwgMarkerTrigger(awg, channel, _ATTEMPT_WAVEFORM)
        awg.configure_burst(channel, share, trigger_source="BUS")
        awg.run()
        self._routes[(self.node.qualified(awg_name), channel)] = end
        offset = end.runtime.action_offset_ps
        limit = self.physics.max_pairs_per_link
        ex = self.node.executor
        runtime = end.runtime
        schedule = AttemptSchedule(
            self.hw, end.plan.name, ScheduleConfig(params.start_ps, cycle * params.period_ps,
                                                   params.window_ps),
            trigger, end.demand, gate=lambda m: runtime.can_attempt() and ex.pairs_with(partner) < limit
            and not self.sync.paused(end.plan.name),
            to_loop_time=lambda t: t + offset, from_loop_time=lambda t: t - offset)
        schedule.on_attempt(lambda m, t: arm_burst(end.armed, m, cycle, share))
        return schedule

    def _marker_edge(self, awg: str, channel: int, marker: int, t_ps: int) -> None:
        end = self._routes.get((awg, channel))
        if end is None or marker != 1:
            return
        runtime = end.runtime
        k = runtime.attempt_at_or_after(t_ps)
        if k in end.armed and runtime.action_time_ps(k) == t_ps:
            end.armed.discard(k)
            try:
                runtime.attempt(k)
            except QubitRoleError:
                return               # no free communication qubit for this slot: no emission

    # -- stations ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the stations' tagger reads (ends attempt once connections raise their demand)
        and the clock sync."""
        for st in self.stations.values():
            self._read(st)
        self.sync.start()

    def _read(self, st: StationLink) -> None:
        retry = st.runtime.heralder.retry
        try:
            st.runtime.heralder.read()
        finally:
            # a tagger outage ends no station: it reads again after the backoff until it answers
            st.timer = self.loop.call_later(retry.delay_ps if retry.down else
                                            int(round(self.physics.station_read_us * US)), self._read, st)

    # -- pairs ------------------------------------------------------------------------------------
    def _ready(self, end: EndLink, ev: PairReady) -> None:
        end.pairs_ready += 1
        end.herald_latency_ps.append(self.loop.now_ps() - (ev.created_mono_ps if ev.created_mono_ps
                                                           is not None else ev.created_ps))
        if self.record is not None:
            self.record.event(self.loop.now_ps(), "link.pair", self.address, link=end.plan.name,
                              qubit=str(ev.qubit), name=str(ev.name), bell_state=ev.bell_state.value,
                              attempt=ev.attempt_id)
        if self._on_pair_ready is not None:
            self._on_pair_ready(ev)
        else:
            self.node.executor.on_pair_ready(ev)

    # -- demand and routing -------------------------------------------------------------------------
    def follow_connections(self) -> None:
        """Raise this node's demand on a link while a connection through it is established."""
        manager = self.node.manager
        if manager is None:
            return
        counted: set[str] = set()

        def on_outcome(outcome) -> None:
            conn = manager.connections.get(outcome.conn_id)
            if conn is None:
                return
            if outcome.established and outcome.conn_id not in counted:
                counted.add(outcome.conn_id)
                for nb in conn.neighbours():
                    self.demand(nb, +1)
            elif not outcome.established and outcome.conn_id in counted:
                counted.discard(outcome.conn_id)
                for nb in conn.neighbours():
                    self.demand(nb, -1)

        manager.on_outcome.append(on_outcome)

    def demand(self, neighbour: str, delta: int) -> None:
        for end in self.ends.values():
            if neighbour in end.plan.nodes:
                if delta > 0:
                    end.demand.add(delta)
                else:
                    end.demand.release(-delta)

    def use_link_budget_for_routing(self) -> None:
        """Every link's budget (success probability × attempt cadence) as routing and planning
        prior: each node knows every link from the testbed's YAML."""
        manager = self.node.manager
        if manager is None:
            return

        def figures(neighbour: str) -> LinkFigures:
            for plan in self.plans:
                if self.address in plan.nodes and neighbour in plan.nodes:
                    n = tuple(len(plan.shares[x]) for x in plan.nodes)
                    rate = plan.params.pair_rate_hz(success_probability(plan, self.physics), n)
                    return LinkFigures(rate, plan.fidelity, 0)
            return LinkFigures(0.0, 0.0, 0)

        manager.link_figures = figures

    # -- stopping ---------------------------------------------------------------------------------
    def stop_attempts(self) -> None:
        for end in self.ends.values():
            end.demand.release(end.demand.value)

    def pending(self) -> int:
        """Communication qubits still waiting for a herald."""
        return sum(len(p.pending) for p in self.pools.values())

    def close(self) -> None:
        self.stop_attempts()
        self.sync.stop()
        for st in self.stations.values():
            if st.timer is not None:
                st.timer.cancel()
                st.timer = None
        if self._marker_edge in self.world.marker_listeners:
            self.world.marker_listeners.remove(self._marker_edge)
        for part in [*self.ends.values(), *self.stations.values()]:
            part.endpoint.close()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, end in self.ends.items():
            lat = end.herald_latency_ps.mean_ps()
            out[name] = {"attempts": end.runtime.attempt_count, "pairs_ready": end.pairs_ready,
                         "vetoed": end.schedule.vetoed,
                         "herald_latency_us_mean": lat / 1e6 if lat is not None else None}
        for name, st in self.stations.items():
            out[name] = {"heralds": st.heralds(), "reported": {o.name: n for o, n in
                                                               st.runtime.heralder.reported.items()}}
        return out


__all__ = ["EndLink", "LinkPlan", "NodeLinks", "StationLink", "build_world_links", "plan_links",
           "qubit_shares", "sim_physics", "success_probability"]
