"""Heralded memory links on a virtual testbed, from the testbed's YAML: the physical path of every
``both_endpoints`` link, run by the timing layer at every node.

For each link ``a``–``b`` through BSA station ``s`` (each end's fibre to the station is half the
link's ``fibre_km``; the attempt period and window come from the link's ``attempts:``):

1. **attempts** – each end runs an :class:`~timing.schedule.AttemptSchedule` while the node's
   demand for the link is positive (connections through it) and it holds fewer than
   ``max_pairs_per_link`` pairs with the partner. Both ends attempt in the link's common grid
   (the first ``n`` slots of every cycle of ``c`` slots, see :meth:`MemoryLinks._grid`), each
   with a free communication qubit (:class:`~timing.comm_qubits.CommQubitPool`: not waiting for
   a herald, not held by the RuleSet executor or the application, not busy with a gate);
2. **trigger** – once per cycle the schedule bus-triggers the node's AWG
   (:class:`~timing.schedule.AwgMarkerTrigger`, one AWG channel per link), which plays a burst
   of ``n`` slot waveforms; each marker edge starts the emission of a free communication qubit
   (:meth:`~timing.link_end.LinkEndRuntime.attempt`);
3. **photons** – the simulated World's memory link (:func:`sim_backend.link_schemes.build_sim_link`)
   sends both photons through their fibres to the station's linear-optics BSA, writes sync and
   click tags into the station's time tagger, and sets the memories' joint state;
4. **herald** – the station (:class:`~timing.link_end.BsaStationRuntime`) reads its tagger every
   ``station_read_us``, decodes Ψ±/failure per attempt and sends herald frames to both ends over the link's
   in-process herald link (fibre delay);
5. **binding** – each end's :class:`~timing.binding.PairBinder` binds the herald to the qubit that
   emitted in that attempt and raises ``PairReady`` into the node's RuleSet executor.

A QNIC serving several links gives each a share of its communication qubits (in the order the
node file lists the links), since a photon leaves through the transceiver of the qubit that emits
it. Nothing here decides which pairs to keep: the RuleSets do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from ..addresses import QubitAddress
from ..config.node import InstrumentKind, LinkScheme as ConfigScheme
from ..errors import ConfigError, QubitRoleError
from ..events import PairReady
from ..routing import LinkFigures
from ..units import NS, US, fibre_delay_ps
from .base import Params, RunContext

#: AWG waveform of one attempt slot at 1 GS/s, marker 1 high for its first four samples.
_ATTEMPT_WAVEFORM = "attempt"
_MARKER_SAMPLES = 4
_SAMPLE_RATE_HZ = 1e9


class DetectorSettings(Params):
    efficiency: float = Field(0.9, ge=0, le=1)
    dark_count_rate_hz: float = Field(100.0, ge=0)
    dead_time_ns: float = Field(20.0, ge=0)
    jitter_fwhm_ps: float = Field(15.0, ge=0)


class LinkPhysics(Params):
    """Simulated photonics of every memory link, and how the link layer runs it."""

    #: Fraction of emitted photons that enter the fibre (emission into the mode, coupling).
    collection_efficiency: float = Field(0.3, gt=0, le=1)
    attenuation_db_per_km: float = Field(0.2, ge=0)
    detector: DetectorSettings = DetectorSettings()
    #: The BSA station reads its tagger this often (us); a herald leaves at most this plus
    #: ``decode_us`` after its photons arrived, and the link layer keeps the qubit that long.
    station_read_us: float = Field(10.0, gt=0)
    decode_us: float = Field(1.0, gt=0)
    #: An end attempts on a link only while it holds fewer pairs than this with that partner
    #: (with r purification rounds, 2^r + 2 lets the next round's pairs come while the last
    #: kept pair waits for its swap).
    max_pairs_per_link: int = Field(2, ge=1)


@dataclass
class LinkRun:
    """One link's parts, for statistics and metrics."""

    name: str
    params: object                       # timing.schemes.LinkSchemeParams
    station: str
    sim: object                          # the World's MemoryLink
    station_runtime: object              # BsaStationRuntime
    ends: dict[str, object] = field(default_factory=dict)       # node -> LinkEndRuntime
    schedules: dict[str, object] = field(default_factory=dict)  # node -> AttemptSchedule
    demand: dict[str, object] = field(default_factory=dict)     # node -> DemandCounter
    qubits: dict[str, tuple[int, ...]] = field(default_factory=dict)
    eta: tuple[float, float] = (0.0, 0.0)
    pairs_ready: dict[str, int] = field(default_factory=dict)
    herald_latency_ps: list[int] = field(default_factory=list)
    read_timer: object = None
    last_slot_ps: int = -(1 << 62)       # slot time of the latest attempt made at either end
    logged_heralds: int = 0

    @property
    def success_probability(self) -> float:
        """½·η_a·η_b: the linear-optics BSA's Ψ± heralds (dark counts neglected)."""
        return 0.5 * self.eta[0] * self.eta[1]

    def joint_attempts(self) -> int:
        """Attempts in which both ends emitted (only those can herald a pair)."""
        a, b = (set(k for k, _t, _q in e.attempts) for e in self.ends.values())
        return len(a & b)

    def heralds(self) -> int:
        return len([s for s in self.station_runtime.sent if s[1].bell_state is not None])


class MemoryLinks:
    """Every ``both_endpoints`` link of a started :class:`~qnode_fw.testbed.virtual.VirtualTestbed`
    (see the module docstring). ``on_pair_ready(node, ready)`` overrides what happens to a
    heralded pair (default: the node's RuleSet executor takes it); ``held(node)`` lists qubits the
    application holds."""

    def __init__(self, ctx: RunContext, physics: LinkPhysics, *,
                 held: Callable[[str], set[QubitAddress]] | None = None,
                 on_pair_ready: Callable[[str, PairReady], None] | None = None,
                 on_station_tags: Callable[[str, object], None] | None = None,
                 record_tags: bool = True) -> None:
        from sim_backend.link_schemes import SimLinkPhysics, build_sim_link
        from sim_backend.physics.detector import DetectorParams
        from timing.comm_qubits import CommQubitPool
        from timing.herald_link import InProcessHeraldLink
        from timing.link_end import BsaStationRuntime, LinkEndRuntime
        from timing.schedule import DemandCounter
        from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

        self.ctx = ctx
        self.physics = physics
        self.tb = ctx.testbed
        self.loop = ctx.loop
        self._held = held or (lambda node: set())
        self._on_pair_ready = on_pair_ready
        self.links: dict[str, LinkRun] = {}
        self.pools: dict[tuple[str, int], object] = {}
        self._marker_routes: dict[tuple[str, int], tuple[LinkRun, str, set[int]]] = {}
        cfg = self.tb.config
        now = self.loop.now_ps()
        det = physics.detector
        detector = DetectorParams(det.efficiency, det.dark_count_rate_hz, int(det.dead_time_ns * NS),
                                  det.jitter_fwhm_ps)
        shares = self._shares = self._qubit_shares()
        awg_channels: dict[str, int] = {}
        for a, b in cfg.quantum_links():
            la, lb = cfg.node(a).link_to(b), cfg.node(b).link_to(a)
            if la is None or lb is None or la.scheme is not ConfigScheme.BOTH_ENDPOINTS:
                continue
            station = la.station
            period = int(round(la.attempts.period_ns * NS))
            window = int(round(la.attempts.window_ns * NS))
            d = fibre_delay_ps(la.fibre_km / 2)
            # the first slot leaves time for both photons to be emitted after now
            start = (-(-(now + 2 * d + period) // period)) * period
            name = f"{a}-{b}"
            params = LinkSchemeParams(name, LinkScheme.BOTH_ENDPOINTS, station,
                                      (LinkEndParams(a, la.qnic, la.fibre_km / 2),
                                       LinkEndParams(b, lb.qnic, lb.fibre_km / 2)),
                                      period_ps=period, start_ps=start, window_ps=window,
                                      herald_delay_ps=int(round((physics.station_read_us
                                                                 + physics.decode_us) * US)),
                                      where=f"{a}.links[{b}]")
            station_node = self.tb.nodes[station]
            tagger_name = self._instrument(station_node, InstrumentKind.TIME_TAGGER)
            tagger = station_node.instruments[tagger_name]
            qualified_tagger = station_node.qualified(tagger_name)
            sim_physics = SimLinkPhysics(collection_efficiency=physics.collection_efficiency,
                                         detector=detector, link_fidelity=la.fidelity,
                                         attenuation_db_per_km=physics.attenuation_db_per_km)
            sim = build_sim_link(ctx.world, params, sim_physics, taggers={station: qualified_tagger},
                                 qubits={a: shares[(a, b)], b: shares[(b, a)]})
            tagger.start_stream([1, 2, 3, 4, 5])
            record = ctx.record if record_tags else None
            read = (_TaggerTap(tagger, qualified_tagger, record, name, on_station_tags)
                    if (record is not None or on_station_tags is not None) else tagger)
            herald = InProcessHeraldLink(self.loop, name)
            for i, node in enumerate(params.nodes):
                herald.set_delay(station, node, params.delay_ps(i))
            runtime = BsaStationRuntime(self.loop, params, read, herald.endpoint(station))
            run = LinkRun(name, params, station, sim, runtime)
            run.eta = tuple(sim.eta(i, ctx.world) * physics.detector.efficiency for i in (0, 1))
            for i, node_name in enumerate(params.nodes):
                node = self.tb.nodes[node_name]
                if node.executor is None:
                    raise ConfigError(f"{node_name} ends memory link {name} but has no QNIC",
                                      field=f"{node_name}.qnics")
                qnic_addr = params.ends[i].qnic
                key = (node_name, qnic_addr)
                if key not in self.pools:
                    ex = node.executor
                    self.pools[key] = CommQubitPool(
                        node.qnics[qnic_addr], self.loop.clock,
                        held=lambda ex=ex, n=node_name: ex.held_qubits() | self._held(n),
                        free_at_ps=ex.free_at_ps)
                partner = params.partner(i)
                end = LinkEndRuntime(self.loop, params, i, node.qnics[qnic_addr], self.pools[key],
                                     herald.endpoint(node_name),
                                     on_pair_ready=lambda ev, n=node_name, r=run: self._ready(n, r, ev),
                                     qubits=shares[(node_name, partner)],
                                     fidelity_estimate=la.fidelity)
                run.ends[node_name] = end
                run.qubits[node_name] = shares[(node_name, partner)]
                run.pairs_ready[node_name] = 0
                demand = DemandCounter()
                run.demand[node_name] = demand
                channel = awg_channels.get(node_name, 0) + 1
                awg_channels[node_name] = channel
                run.schedules[node_name] = self._awg_schedule(node, run, end, demand, partner, channel)
            self._read_station(run)
            self.links[name] = run
        if self._marker_routes:
            ctx.world.marker_listeners.append(self._marker_edge)

    # -- building -----------------------------------------------------------------------------
    def _qubit_shares(self) -> dict[tuple[str, str], tuple[int, ...]]:
        """(node, neighbour) -> the communication qubits of the link's QNIC this link may use."""
        shares: dict[tuple[str, str], tuple[int, ...]] = {}
        for node in self.tb.nodes.values():
            by_qnic: dict[int, list[str]] = {}
            for link in node.config.links:
                if link.scheme is ConfigScheme.BOTH_ENDPOINTS:
                    by_qnic.setdefault(link.qnic, []).append(link.neighbour)
            for qnic_addr, neighbours in by_qnic.items():
                q = node.config.qnic(qnic_addr)
                comm = list(q.communication_qubits if q.communication_qubits is not None else range(q.qubits))
                per = len(comm) // len(neighbours)
                if per == 0:
                    raise ConfigError(f"QNIC {qnic_addr} of {node.address} has {len(comm)} "
                                      f"communication qubit(s) for {len(neighbours)} links",
                                      field=f"{node.address}.qnics[{qnic_addr}].communication_qubits",
                                      expected="at least one per link using the QNIC")
                for k, nb in enumerate(neighbours):
                    shares[(node.address, nb)] = tuple(comm[k * per:(k + 1) * per])
        return shares

    @staticmethod
    def _instrument(node, kind: InstrumentKind) -> str:
        for inst in node.config.instruments:
            if inst.kind is kind:
                return inst.name
        raise ConfigError(f"{node.address} has no {kind.value} instrument",
                          field=f"{node.address}.instruments", expected=f"a {kind.value}")

    def _grid(self, run: LinkRun) -> tuple[int, int]:
        """The link's common attempt grid: in every cycle of ``c`` slots (the slots one attempt
        keeps a communication qubit busy, the longer of the two ends) the first ``n`` slots, ``n``
        the fewer communication qubits of the two ends.

        Both ends derive it from the link's parameters alone, so they act in the same slots
        whenever they start and whatever each holds: an end that acted whenever it had a free
        qubit would settle into its own rhythm, out of step with its partner's, and every attempt
        would be one-sided."""
        a, b = run.params.nodes
        cycle = max(run.params.slots_per_attempt(i) for i in (0, 1))
        share = min(len(self._shares[(a, b)]), len(self._shares[(b, a)]))
        return cycle, min(share, cycle)

    def _awg_schedule(self, node, run: LinkRun, end, demand, partner: str, channel: int):
        """One schedule event per grid cycle: a bus trigger plays an AWG burst of ``n`` attempt
        waveforms one slot apart, and each burst's marker edge starts one emission."""
        from timing.schedule import AttemptSchedule, AwgMarkerTrigger, ScheduleConfig

        awg_name = self._instrument(node, InstrumentKind.AWG)
        awg = node.instruments[awg_name]
        if channel > awg.num_channels:
            raise ConfigError(f"{node.address}'s AWG {awg_name} has {awg.num_channels} channel(s) "
                              f"for {channel} links", field=f"{node.address}.instruments.{awg_name}",
                              expected="one AWG channel per memory link")
        params = run.params
        cycle, share = self._grid(run)
        samples = max(_MARKER_SAMPLES + 1, int(round(params.period_ps * _SAMPLE_RATE_HZ * 1e-12)))
        markers = np.zeros(samples, np.uint8)
        markers[:_MARKER_SAMPLES] = 1
        awg.upload_waveform(channel, _ATTEMPT_WAVEFORM, np.zeros(samples), _SAMPLE_RATE_HZ, markers)
        awg.set_output(channel, True)
        trigger = AwgMarkerTrigger(awg, channel, _ATTEMPT_WAVEFORM)
        awg.configure_burst(channel, share, trigger_source="BUS")
        awg.run()
        armed: set[int] = set()
        self._marker_routes[(node.qualified(awg_name), channel)] = (run, node.address, armed)
        offset = end.action_offset_ps
        limit = self.physics.max_pairs_per_link
        ex = node.executor
        schedule = AttemptSchedule(
            self.loop, run.name, ScheduleConfig(params.start_ps, cycle * params.period_ps, params.window_ps),
            trigger, demand, gate=lambda m: end.can_attempt() and ex.pairs_with(partner) < limit,
            to_loop_time=lambda t: t + offset, from_loop_time=lambda t: t - offset)
        schedule.on_attempt(lambda m, t: armed.update(range(m * cycle, m * cycle + share)))
        return schedule

    def _marker_edge(self, awg: str, channel: int, marker: int, t_ps: int) -> None:
        """The AWG marker cabled to the emitter's trigger input: emit for the armed slot whose
        action time this edge is (an edge at another time, from a burst another link of the same
        AWG triggered, finds no armed slot)."""
        route = self._marker_routes.get((awg, channel))
        if route is None or marker != 1:
            return
        run, node, armed = route
        end = run.ends[node]
        k = end.attempt_at_or_after(t_ps)
        if k in armed and end.action_time_ps(k) == t_ps:
            armed.discard(k)
            try:
                end.attempt(k)
            except QubitRoleError:
                return              # no free communication qubit for this slot: no emission
            run.last_slot_ps = max(run.last_slot_ps, run.params.slot_time_ps(k))

    # -- running ------------------------------------------------------------------------------
    def _read_station(self, run: LinkRun) -> None:
        """Read the BSA tagger every ``station_read_us`` (not every slot: one read per slot of a
        MHz schedule would cost far more than the physics); each read decides every attempt
        whose window has closed."""
        # Nothing can be undecided when the last attempt's photons arrived two reads ago.
        if self.loop.now_ps() <= run.last_slot_ps + 2 * int(round(self.physics.station_read_us * US)):
            run.station_runtime.heralder.read()
        run.read_timer = self.loop.call_later(int(round(self.physics.station_read_us * US)),
                                              self._read_station, run)

    def _ready(self, node: str, run: LinkRun, ev: PairReady) -> None:
        run.pairs_ready[node] += 1
        run.herald_latency_ps.append(self.loop.now_ps() - ev.created_ps)
        self.ctx.log("link.pair", node, link=run.name, qubit=str(ev.qubit), name=str(ev.name),
                     bell_state=ev.bell_state.value, attempt=ev.attempt_id)
        if self._on_pair_ready is not None:
            self._on_pair_ready(node, ev)
        else:
            self.tb.nodes[node].executor.on_pair_ready(ev)

    def follow_connections(self) -> None:
        """Raise each node's demand on a link while a connection through that link is active."""
        counted: set[tuple[str, str]] = set()
        for address, node in self.tb.nodes.items():
            if node.manager is None:
                continue

            def on_outcome(outcome, address=address, node=node):
                conn = node.manager.connections.get(outcome.conn_id)
                if conn is None:
                    return
                key = (address, outcome.conn_id)
                if outcome.established and key not in counted:
                    counted.add(key)
                    for nb in conn.neighbours():
                        self.demand(address, nb, +1)
                elif not outcome.established and key in counted:
                    counted.discard(key)
                    for nb in conn.neighbours():
                        self.demand(address, nb, -1)
            node.manager.on_outcome.append(on_outcome)

    def demand(self, node: str, neighbour: str, delta: int) -> None:
        for run in self.links.values():
            if node in run.demand and neighbour in run.params.nodes:
                if delta > 0:
                    run.demand[node].add(delta)
                else:
                    run.demand[node].release(-delta)

    def link_figures(self, node: str) -> Callable[[str], LinkFigures]:
        """The link budget as the routing and planning prior: heralded pairs per second from the
        success probability and the attempt cadence, at the configured link fidelity."""
        def figures(neighbour: str) -> LinkFigures:
            for run in self.links.values():
                if node in run.params.nodes and neighbour in run.params.nodes:
                    n = tuple(len(run.qubits[x]) for x in run.params.nodes)
                    rate = run.params.pair_rate_hz(run.success_probability, n)
                    fidelity = self.tb.nodes[node].config.link_to(neighbour).fidelity
                    return LinkFigures(rate, fidelity, 0)
            return LinkFigures(0.0, 0.0, 0)
        return figures

    def use_link_budget_for_routing(self) -> None:
        for address, node in self.tb.nodes.items():
            if node.manager is not None:
                node.manager.link_figures = self.link_figures(address)

    def log_heralds(self) -> None:
        """One ``station.heralds`` event per station with the heralds sent since the last call
        (the run record's view of the stations, one line per refresh, not per attempt)."""
        for run in self.links.values():
            sent = run.station_runtime.sent
            new = sent[run.logged_heralds:]
            run.logged_heralds = len(sent)
            ok = [h for h in new if h[1].bell_state is not None]
            if ok:
                self.ctx.log("station.heralds", run.station, link=run.name, heralds=len(ok),
                             failures=len(new) - len(ok), last_ps=int(ok[-1][2]))

    def pending(self) -> int:
        """Communication qubits still waiting for a herald."""
        return sum(len(p.pending) for p in self.pools.values())

    def stop(self) -> None:
        for run in self.links.values():
            for d in run.demand.values():
                d.release(d.value)

    def stop_stations(self) -> None:
        for run in self.links.values():
            if run.read_timer is not None:
                run.read_timer.cancel()
                run.read_timer = None

    def expected_rate_hz(self, run: LinkRun) -> float:
        n = tuple(len(run.qubits[x]) for x in run.params.nodes)
        return run.params.pair_rate_hz(run.success_probability, n)


class _TaggerTap:
    """A time tagger whose every read also goes to the run record and to an observer (``fn(link,
    batch)``); all other calls pass through."""

    def __init__(self, tagger, name: str, record, link: str,
                 observer: Callable[[str, object], None] | None) -> None:
        self._tagger = tagger
        self._name = name
        self._record = record
        self._link = link
        self._observer = observer

    def read_stream(self):
        batch = self._tagger.read_stream()
        if len(batch):
            if self._record is not None:
                self._record.tags(self._name, batch.channels, batch.timestamps_ps)
            if self._observer is not None:
                self._observer(self._link, batch)
        return batch

    def __getattr__(self, item):
        return getattr(self._tagger, item)


def fibre_transmission(km: float, db_per_km: float) -> float:
    return 10 ** (-db_per_km * km / 10)


__all__ = ["DetectorSettings", "LinkPhysics", "LinkRun", "MemoryLinks", "fibre_transmission"]
