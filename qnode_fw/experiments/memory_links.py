"""Heralded memory links on a virtual testbed, from the testbed's YAML: the physical path of every
memory link, whatever its scheme, run by the timing layer at every node.

:mod:`.link_specs` joins both ends' ``links:`` entries into one
:class:`~qnode_fw.experiments.link_specs.LinkSpec` per link (the timing layer's
:class:`~timing.schemes.LinkSchemeParams`, the simulated photonics, heralding taggers, switch
ports, communication-qubit shares) and each node's ``transceiver:`` into a
:class:`~qnode_fw.experiments.link_specs.TransceiverSpec`. For each link ``a``–``b``:

1. **attempts** – each end acts while the node's demand for the link is positive (connections
   through it) and it holds fewer than ``max_pairs_per_link`` pairs with the partner, with a free
   communication qubit (:class:`~timing.comm_qubits.CommQubitPool`). Both ends act in the link's
   common grid (the first ``n`` slots of every cycle of ``c`` slots, :meth:`LinkSpec.grid`);
2. **trigger** – an emitting end's schedule bus-triggers the node's AWG once per cycle
   (:class:`~timing.schedule.AwgMarkerTrigger`, one AWG channel per emitting link), whose burst's
   marker edges start the emissions; a receiving end arms its communication qubit from its
   schedule (``QNIC.absorb``); an EPPS station pumps its source in the grid's slots; a switched
   transceiver (:class:`~timing.switched.SwitchedTransceiver`) attempts on the link its switch
   points at, in that link's grid slots;
3. **photons** – the simulated World's link of the scheme
   (:func:`sim_backend.link_schemes.build_sim_link`) writes sync and click tags into each
   heralding detector's tagger (the BSA station's, or each receiving end's transducer herald
   detector) and sets the memories' joint state;
4. **herald** – a BSA station (:class:`~timing.link_end.BsaStationRuntime`) reads its tagger every
   ``station_read_us`` (or, with ``herald_delay_ns``, in every slot) and sends Ψ±/failure to both
   ends; a receiving end reads its own detector at each armed attempt and sends its outcome to the
   other end (:class:`~timing.link_end.LinkEndRuntime`), all over the link's in-process herald
   link (fibre delay);
5. **binding** – each end's :class:`~timing.binding.PairBinder` binds the outcome to the qubit that
   acted in that attempt and raises ``PairReady`` into the node's RuleSet executor.
6. **clock sync** – over each ``both_endpoints`` link's herald link, each end runs a clock-sync
   client towards the station and the station answers (:class:`~qnode_fw.testbed.herald_sync.
   HeraldClockSync` per node, :data:`~qnode_fw.testbed.herald_sync.VIRTUAL_SYNC_SETTINGS`), each
   on its node's PC clock (``VirtualTestbed.clocks``), which also stamps the emissions; an end
   pauses its attempts on a link while its sync re-converges from a clock jump.

A QNIC serving several links gives each a share of its communication qubits (in the order the
node file lists the links); the links of a transceiver share its whole part. Nothing here decides
which pairs to keep: the RuleSets do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field

from ..addresses import QubitAddress
from ..config.node import InstrumentKind
from ..errors import ConfigError, QubitRoleError
from ..events import PairReady
from ..recent import LatencyLog
from ..records.tagger_tap import RecordingTagger
from ..routing import LinkFigures
from ..units import US
from .base import Params, RunContext
from .link_specs import LinkSpec, TransceiverSpec, resolve_links

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
    """Simulated photonics of every memory link (a link's own ``sim:`` in the node YAML wins
    field by field), and how the link layer runs it."""

    #: Fraction of emitted photons that enter the fibre (emission into the mode, coupling).
    collection_efficiency: float = Field(0.3, gt=0, le=1)
    #: A photon reaching a receiving memory is absorbed with this probability (at_source,
    #: midpoint_source).
    transfer_efficiency: float = Field(0.5, gt=0, le=1)
    #: midpoint_source: mean pairs per pump pulse of the thermal source (μ).
    mean_pairs_per_attempt: float = Field(0.1, ge=0)
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


#: one-sided attempts a link remembers while waiting for the other end to act in the same slot
_ACTED_KEPT = 1024


@dataclass
class LinkRun:
    """One link's parts, for statistics and metrics."""

    name: str
    params: object                       # timing.schemes.LinkSchemeParams
    station: str
    sim: object                          # the World's link (MemoryLink, AtSourceLink, MidpointSourceLink)
    station_runtime: object | None       # BsaStationRuntime (both_endpoints), else None
    spec: LinkSpec | None = None
    ends: dict[str, object] = field(default_factory=dict)       # node -> LinkEndRuntime
    schedules: dict[str, object] = field(default_factory=dict)  # node -> AttemptSchedule
    demand: dict[str, object] = field(default_factory=dict)     # node -> DemandCounter
    qubits: dict[str, tuple[int, ...]] = field(default_factory=dict)
    eta: tuple[float, float] = (0.0, 0.0)
    #: heralded success probability per joint attempt by the scheme's closed form, and the
    #: probability that a herald leaves the memories entangled
    p_success: float = 0.0
    p_entangled: float = 0.0
    pairs_ready: dict[str, int] = field(default_factory=dict)
    herald_latency_ps: LatencyLog = field(default_factory=LatencyLog)
    read_timer: object = None
    pump: object = None                  # midpoint_source: the EPPS station's pump schedule
    last_slot_ps: int = -(1 << 62)       # slot time of the latest attempt made at either end
    logged_heralds: int = 0
    logged_failures: int = 0
    #: attempts in which both ends acted, counted as they are made (the ends keep only their
    #: latest attempts); attempt id -> the ends (bit i: end i) that acted in it so far
    joint: int = 0
    first_joint: int | None = None       # ids of the first and the latest joint attempt
    last_joint: int | None = None
    _acted: dict[int, int] = field(default_factory=dict)
    #: attempts bound at either end, and those whose memories the simulator left unentangled
    bound: set[int] = field(default_factory=set)
    false_heralds: set[int] = field(default_factory=set)
    #: share of the slots the link's grid gives its ends, and 1/k for a switched end serving k links
    duty: float = 1.0

    @property
    def scheme(self) -> str:
        return self.params.scheme.value   # type: ignore[attr-defined]

    @property
    def success_probability(self) -> float:
        """Heralded success probability per joint attempt by the scheme's closed form: ½·η_a·η_b
        for both_endpoints (dark counts neglected), the transducer forms otherwise."""
        return self.p_success

    def joint_attempts(self) -> int:
        """Attempts in which both ends acted (only those can herald a pair)."""
        return self.joint

    def acted(self, index: int, attempt_id: int) -> None:
        """End ``index`` made attempt ``attempt_id``."""
        ends = self._acted.pop(attempt_id, 0) | (1 << index)
        if ends == 3:
            self.joint += 1
            if self.first_joint is None:
                self.first_joint = attempt_id
            self.last_joint = max(attempt_id, self.last_joint or attempt_id)
        else:
            self._acted[attempt_id] = ends
            if len(self._acted) > _ACTED_KEPT:
                # both ends act in the same grid slot, within fibre delays of each other: an
                # attempt far behind this one will not be joined any more
                horizon = attempt_id - _ACTED_KEPT // 2
                self._acted = {k: v for k, v in self._acted.items() if k >= horizon}

    def heralds(self) -> int:
        """Successful heralds: Ψ± sent by the BSA, or attempts bound at the ends (at_source: the
        receiver's successes; midpoint_source: both ends absorbed)."""
        if self.station_runtime is not None:
            return self.station_runtime.heralds_sent
        return len(self.bound)


class _GridEnd:
    """A switched link end that acts only in its link's grid slots, where its partner acts too:
    what :class:`~timing.switched.SwitchedTransceiver` sees of a
    :class:`~timing.link_end.LinkEndRuntime`."""

    def __init__(self, end, run: LinkRun, cycle: int, share: int) -> None:
        self.end = end
        self.run = run
        self.cycle = cycle
        self.share = share

    def attempt_at_or_after(self, t_ps: int) -> int:
        k = self.end.attempt_at_or_after(t_ps)
        m, j = divmod(k, self.cycle)
        return k if j < self.share else (m + 1) * self.cycle

    def attempt(self, attempt_id: int) -> int:
        q = self.end.attempt(attempt_id)
        self.run.last_slot_ps = max(self.run.last_slot_ps, self.run.params.slot_time_ps(attempt_id))
        return q

    def __getattr__(self, item):
        return getattr(self.end, item)


@dataclass
class TransceiverRun:
    spec: TransceiverSpec
    transceiver: object                  # timing.switched.SwitchedTransceiver
    switch: object                       # the optical switch driver


class MemoryLinks:
    """Every memory link of a started :class:`~qnode_fw.testbed.virtual.VirtualTestbed`, of any
    scheme (see the module docstring). ``on_pair_ready(node, ready)`` overrides what happens to a
    heralded pair (default: the node's RuleSet executor takes it); ``held(node)`` lists qubits the
    application holds; ``schemes`` limits the links built (config ``LinkScheme`` values)."""

    def __init__(self, ctx: RunContext, physics: LinkPhysics, *,
                 held: Callable[[str], set[QubitAddress]] | None = None,
                 on_pair_ready: Callable[[str, PairReady], None] | None = None,
                 on_station_tags: Callable[[str, object], None] | None = None,
                 record_tags: bool = True, schemes: set | None = None) -> None:
        self.ctx = ctx
        self.physics = physics
        self.tb = ctx.testbed
        self.loop = ctx.loop
        self._held = held or (lambda node: set())
        self._on_pair_ready = on_pair_ready
        self._on_station_tags = on_station_tags
        self._record = ctx.record if record_tags else None
        self.links: dict[str, LinkRun] = {}
        self.pools: dict[tuple[str, int], object] = {}
        self.transceivers: dict[str, TransceiverRun] = {}
        self._marker_routes: dict[tuple[str, int], tuple[LinkRun, str, set[int]]] = {}
        self._awg_channels: dict[str, int] = {}
        #: (node, qubit) -> its latest link pair came from a herald the simulator left unentangled
        self._false_qubits: dict[tuple[str, QubitAddress], bool] = {}
        #: node -> its clock sync over the herald links (step 6 of the module docstring)
        self.syncs: dict[str, object] = {}
        specs, transceivers = resolve_links(self.tb.config, physics, self.loop.now_ps(), schemes)
        switched = {(t.node, name) for t in transceivers.values() for name in t.routes}
        for spec in specs:
            self.links[spec.name] = self._build(spec, switched)
        for t in transceivers.values():
            self.transceivers[t.node] = self._build_transceiver(t)
        if self._marker_routes:
            ctx.world.marker_listeners.append(self._marker_edge)
        for sync in self.syncs.values():
            sync.start()

    # -- building -----------------------------------------------------------------------------
    def _build(self, spec: LinkSpec, switched: set[tuple[str, str]]) -> LinkRun:
        from sim_backend.link_schemes import build_sim_link
        from timing.herald_link import InProcessHeraldLink
        from timing.link_end import BsaStationRuntime, LinkEndRuntime
        from timing.schedule import DemandCounter
        from timing.schemes import LinkScheme

        params = spec.params
        name = spec.name
        scheme = params.scheme
        taggers = {node: self.tb.nodes[node].instruments[t] for node, t in spec.taggers.items()}
        qualified = {node: self.tb.nodes[node].qualified(t) for node, t in spec.taggers.items()}
        switches = {node: (self.tb.nodes[node].qualified(p.instrument), p.input, p.output)
                    for node, p in spec.switches.items()}
        sim = build_sim_link(self.ctx.world, params, spec.physics, taggers=qualified,
                             switches=switches, qubits=spec.shares)
        reads = {}
        for node, tagger in taggers.items():
            tagger.start_stream([1, 2, 3, 4, 5])
            wants_tap = self._record is not None or (self._on_station_tags is not None
                                                     and node == params.station)
            observer = None
            if self._on_station_tags is not None and node == params.station:
                observer = (lambda batch, link=name, fn=self._on_station_tags: fn(link, batch))
            reads[node] = (RecordingTagger(tagger, qualified[node], self._record, observer)
                           if wants_tap else tagger)
        herald = InProcessHeraldLink(self.loop, name)
        a, b = params.nodes
        runtime = None
        if scheme is LinkScheme.BOTH_ENDPOINTS:
            for i, node in enumerate(params.nodes):
                herald.set_delay(params.station, node, params.delay_ps(i))
            runtime = BsaStationRuntime(self.loop, params, reads[params.station],
                                        herald.endpoint(params.station))
            self._sync(params.station).add_station(name, herald.endpoint(params.station), params.nodes)
            for node in params.nodes:
                self._sync(node).add_end(name, herald.endpoint(node), params.station)
        elif scheme is LinkScheme.MIDPOINT_SOURCE:
            herald.set_delay(a, b, params.delay_ps(0) + params.delay_ps(1))
        else:
            herald.set_delay(a, b, params.delay_ps(params.emitter_index))
        run = LinkRun(name, params, params.station, sim, runtime, spec)
        self._closed_forms(run)
        cycle, share = spec.grid()
        for i, node_name in enumerate(params.nodes):
            node = self.tb.nodes[node_name]
            if node.executor is None:
                raise ConfigError(f"{node_name} ends memory link {name} but has no QNIC",
                                  field=f"{node_name}.qnics")
            qnic_addr = params.ends[i].qnic
            partner = params.partner(i)
            # On the common grid an attempt's outcome is known busy_ps after the end acted, or
            # never (the partner did not act in that slot, e.g. while its demand was still zero,
            # and a midpoint_source or at_source partner that did not act sends nothing): give
            # the qubit back before the next grid slot, or the two ends fall out of step.
            expiry = max(params.busy_ps(i) + 1,
                         min(params.binder_expiry_ps(i), cycle * params.period_ps - 1))
            end = LinkEndRuntime(self.loop, params, i, node.qnics[qnic_addr], self._pool(node_name, qnic_addr),
                                 herald.endpoint(node_name),
                                 on_pair_ready=lambda ev, n=node_name, r=run: self._ready(n, r, ev),
                                 tagger=reads.get(node_name) if params.heralds_locally(i) else None,
                                 qubits=spec.shares[node_name], fidelity_estimate=spec.fidelity,
                                 expiry_ps=expiry, clock=self._clock(node_name))
            end.attempt_listeners.append(lambda k, i=i, r=run: r.acted(i, k))
            run.ends[node_name] = end
            run.qubits[node_name] = spec.shares[node_name]
            run.pairs_ready[node_name] = 0
            demand = DemandCounter()
            run.demand[node_name] = demand
            if (node_name, name) in switched:
                continue                       # the transceiver attempts for it
            if params.role(i).value == "emit":
                channel = self._awg_channels.get(node_name, 0) + 1
                self._awg_channels[node_name] = channel
                run.schedules[node_name] = self._awg_schedule(node, run, end, demand, partner, channel)
            else:
                run.schedules[node_name] = self._arming_schedule(node, run, end, demand, partner)
        if scheme is LinkScheme.BOTH_ENDPOINTS:
            if spec.read_every_slot:
                runtime.start()                # reads exactly herald_delay after every slot
            else:
                self._read_station(run)
        elif scheme is LinkScheme.MIDPOINT_SOURCE:
            run.pump = self._pump_schedule(run)
        run.duty = share / cycle
        return run

    def _closed_forms(self, run: LinkRun) -> None:
        from sim_backend.link_schemes import at_source_entangled, dark_probability
        from timing.schemes import LinkScheme

        params, sim, world = run.params, run.sim, self.ctx.world
        det = run.spec.physics.detector
        if params.scheme is LinkScheme.BOTH_ENDPOINTS:
            run.eta = tuple(sim.eta(i, world) * det.efficiency for i in (0, 1))
            run.p_success = run.p_entangled = 0.5 * run.eta[0] * run.eta[1]
        elif params.scheme is LinkScheme.AT_SOURCE:
            eta = sim.eta(world)
            d = dark_probability(det, params.window_ps)
            run.eta = (eta, eta)
            run.p_success = sim.success_probability(world, params.window_ps)
            run.p_entangled = at_source_entangled(eta, det.efficiency, d)
        else:
            run.eta = (sim.eta(0), sim.eta(1))
            run.p_success = sim.success_probability(params.window_ps)
            run.p_entangled = sim.entangled_probability(params.window_ps)

    def _pool(self, node_name: str, qnic_addr: int):
        from timing.comm_qubits import CommQubitPool

        key = (node_name, qnic_addr)
        if key not in self.pools:
            node = self.tb.nodes[node_name]
            ex = node.executor
            self.pools[key] = CommQubitPool(
                node.qnics[qnic_addr], self.loop.clock,
                held=lambda ex=ex, n=node_name: ex.held_qubits() | self._held(n),
                free_at_ps=ex.free_at_ps)
        return self.pools[key]

    @staticmethod
    def _instrument(node, kind: InstrumentKind) -> str:
        for inst in node.config.instruments:
            if inst.kind is kind:
                return inst.name
        raise ConfigError(f"{node.address} has no {kind.value} instrument",
                          field=f"{node.address}.instruments", expected=f"a {kind.value}")

    def _grid(self, run: LinkRun) -> tuple[int, int]:
        """The link's common attempt grid (:meth:`LinkSpec.grid`): in every cycle of ``c`` slots
        (the slots one attempt keeps a communication qubit busy, the longer of the two ends) the
        first ``n`` slots, ``n`` the fewer communication qubits of the two ends.

        Both ends derive it from the link's parameters alone, so they act in the same slots
        whenever they start and whatever each holds: an end that acted whenever it had a free
        qubit would settle into its own rhythm, out of step with its partner's, and every attempt
        would be one-sided."""
        return run.spec.grid()

    def _gate(self, node, end, partner: str) -> Callable[[int], bool]:
        limit = self.physics.max_pairs_per_link
        ex = node.executor
        sync, link = self._sync(node.address), end.params.name
        return lambda m: end.can_attempt() and ex.pairs_with(partner) < limit and not sync.paused(link)

    def _clock(self, node: str):
        """``node``'s PC clock (the loop's on a testbed without node clocks)."""
        return getattr(self.tb, "clocks", {}).get(node, self.loop.clock)

    def _sync(self, node: str):
        from ..testbed.herald_sync import VIRTUAL_SYNC_SETTINGS, HeraldClockSync

        if node not in self.syncs:
            self.syncs[node] = HeraldClockSync(node, self.loop, VIRTUAL_SYNC_SETTINGS,
                                               clock=self._clock(node))
        return self.syncs[node]

    def _awg_schedule(self, node, run: LinkRun, end, demand, partner: str, channel: int):
        """One schedule event per grid cycle: a bus trigger plays an AWG burst of ``n`` attempt
        waveforms one slot apart, and each burst's marker edge starts one emission."""
        from timing.schedule import AttemptSchedule, AwgMarkerTrigger, ScheduleConfig

        awg_name = self._instrument(node, InstrumentKind.AWG)
        awg = node.instruments[awg_name]
        if channel > awg.num_channels:
            raise ConfigError(f"{node.address}'s AWG {awg_name} has {awg.num_channels} channel(s) "
                              f"for {channel} links", field=f"{node.address}.instruments.{awg_name}",
                              expected="one AWG channel per emitting memory link")
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
        schedule = AttemptSchedule(
            self.loop, run.name, ScheduleConfig(params.start_ps, cycle * params.period_ps, params.window_ps),
            trigger, demand, gate=self._gate(node, end, partner),
            to_loop_time=lambda t: t + offset, from_loop_time=lambda t: t - offset)
        schedule.on_attempt(lambda m, t: arm_burst(armed, m, cycle, share))
        return schedule

    def _arming_schedule(self, node, run: LinkRun, end, demand, partner: str):
        """A receiving end: once per grid cycle arm a free communication qubit in each of the
        cycle's ``n`` slots (the QNIC's absorb, at the slot's action time)."""
        from timing.schedule import AttemptSchedule, CallbackTrigger, ScheduleConfig

        params = run.params
        cycle, share = self._grid(run)
        gate = self._gate(node, end, partner)

        def arm(k: int) -> None:
            if run.demand[node.address].value > 0 and gate(k):
                self._act(run, end, k)

        def cycle_start(m: int, _t: int) -> None:
            self._act(run, end, m * cycle)
            for j in range(1, share):
                self.loop.call_at(end.action_time_ps(m * cycle + j), arm, m * cycle + j)

        offset = end.action_offset_ps
        return AttemptSchedule(
            self.loop, run.name, ScheduleConfig(params.start_ps, cycle * params.period_ps, params.window_ps),
            CallbackTrigger(cycle_start), demand, gate=gate,
            to_loop_time=lambda t: t + offset, from_loop_time=lambda t: t - offset)

    def _pump_schedule(self, run: LinkRun):
        """The EPPS station of a midpoint_source link pumps its source in every grid slot while
        either end wants pairs (in the lab: an AWG trigger of the pump laser)."""
        from timing.schedule import AttemptSchedule, CallbackTrigger, DemandCounter, ScheduleConfig

        params = run.params
        cycle, share = self._grid(run)
        world = self.ctx.world

        def fire(k: int) -> None:
            run.sim.fire_source(k, world)

        def cycle_start(m: int, _t: int) -> None:
            fire(m * cycle)
            for j in range(1, share):
                self.loop.call_at(params.slot_time_ps(m * cycle + j), fire, m * cycle + j)

        on = DemandCounter()
        on.add()
        return AttemptSchedule(
            self.loop, f"{run.name}/pump", ScheduleConfig(params.start_ps, cycle * params.period_ps,
                                                          params.window_ps),
            CallbackTrigger(cycle_start), on,
            gate=lambda m: any(d.value > 0 for d in run.demand.values()))

    def _act(self, run: LinkRun, end, k: int) -> None:
        try:
            end.attempt(k)
        except QubitRoleError:
            return              # no free communication qubit for this slot
        run.last_slot_ps = max(run.last_slot_ps, run.params.slot_time_ps(k))

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
            self._act(run, end, k)

    def _build_transceiver(self, spec: TransceiverSpec) -> TransceiverRun:
        """The node's transceiver behind its optical switch: it attempts on the link the switch
        points at, in that link's grid slots, and turns the switch under its policy (never while
        a photon of its last attempt is in flight, no attempt before the switch has settled)."""
        from timing.switched import SwitchedRoute, SwitchedTransceiver

        node = self.tb.nodes[spec.node]
        switch = node.instruments[spec.switch]
        routes = {}
        for name, output in spec.routes.items():
            run = self.links[name]
            cycle, share = self._grid(run)
            routes[name] = SwitchedRoute(_GridEnd(run.ends[spec.node], run, cycle, share), output)
            run.duty /= len(spec.routes)
        ex = node.executor

        def wants(name: str) -> bool:
            # one pair per link at a time: the buffered RuleSet moves it out of the way, or it
            # stays on its communication qubit until the swap
            run = self.links[name]
            return run.demand[spec.node].value > 0 and ex.pairs_with(spec.partners[name]) == 0

        transceiver = SwitchedTransceiver(self.loop, switch, spec.input, routes,
                                          spec.switching_time_ps, spec.policy, wants)
        transceiver.start()
        return TransceiverRun(spec, transceiver, switch)

    # -- running ------------------------------------------------------------------------------
    def _read_station(self, run: LinkRun) -> None:
        """Read the BSA tagger every ``station_read_us`` (not every slot: one read per slot of a
        MHz schedule would cost far more than the physics); each read decides every attempt
        whose window has closed."""
        every_ps = int(round(self.physics.station_read_us * US))
        retry = run.station_runtime.heralder.retry
        try:
            # Nothing can be undecided when the last attempt's photons arrived two reads ago.
            if retry.down or self.loop.now_ps() <= run.last_slot_ps + 2 * every_ps:
                run.station_runtime.heralder.read()
        finally:
            # a tagger outage ends no station: it reads again after the backoff until it answers
            run.read_timer = self.loop.call_later(retry.delay_ps if retry.down else every_ps,
                                                  self._read_station, run)

    def _ready(self, node: str, run: LinkRun, ev: PairReady) -> None:
        run.pairs_ready[node] += 1
        run.herald_latency_ps.append(self.loop.now_ps() - (ev.created_mono_ps if ev.created_mono_ps
                                                           is not None else ev.created_ps))
        k = ev.attempt_id
        if k not in run.bound:
            # the first end to bind: the other end's qubit still waits, untouched, so the
            # simulator can say whether this herald left the two memories entangled
            run.bound.add(k)
            partner = run.params.partner(run.params.index_of(node))
            theirs = next((q for kk, _t, q in reversed(run.ends[partner].attempts) if kk == k), None)
            if theirs is not None:
                mine_key = run.ends[node].qnic.key(ev.qubit.index)
                their_key = run.ends[partner].qnic.key(theirs)
                if not self.ctx.world.registry.is_entangled_with(mine_key, their_key):
                    run.false_heralds.add(k)
        self._false_qubits[(node, ev.qubit)] = k in run.false_heralds
        self.ctx.log("link.pair", node, link=run.name, qubit=str(ev.qubit), name=str(ev.name),
                     bell_state=ev.bell_state.value, attempt=ev.attempt_id)
        if self._on_pair_ready is not None:
            self._on_pair_ready(node, ev)
        else:
            self.tb.nodes[node].executor.on_pair_ready(ev)
        t = self.transceivers.get(node)
        if t is not None:
            t.transceiver.reevaluate()

    def false_herald(self, node: str, qubit: QubitAddress) -> bool:
        """Did ``node``'s latest link pair on ``qubit`` come from a herald that left the memories
        unentangled (a dark count, or a midpoint source's photons of different pairs)? The
        heralds cannot tell; the simulator can."""
        return self._false_qubits.get((node, qubit), False)

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
        t = self.transceivers.get(node)
        if t is not None:
            t.transceiver.reevaluate()

    def link_figures(self, node: str) -> Callable[[str], LinkFigures]:
        """The link budget as the routing and planning prior: heralded pairs per second from the
        success probability and the attempt cadence (a switched transceiver's share of its
        time included), at the mean fidelity of a heralded pair (false heralds included)."""
        def figures(neighbour: str) -> LinkFigures:
            for run in self.links.values():
                if node in run.params.nodes and neighbour in run.params.nodes:
                    return LinkFigures(self.expected_rate_hz(run), self.expected_fidelity(run), 0)
            return LinkFigures(0.0, 0.0, 0)
        return figures

    def use_link_budget_for_routing(self) -> None:
        for address, node in self.tb.nodes.items():
            if node.manager is not None:
                node.manager.link_figures = self.link_figures(address)

    def log_heralds(self) -> None:
        """One ``station.heralds`` event per link with the heralds since the last call (the run
        record's view of the stations and transducers, one line per refresh, not per attempt)."""
        for run in self.links.values():
            if run.station_runtime is not None:
                rt = run.station_runtime
                ok, failed = rt.heralds_sent - run.logged_heralds, rt.failures_sent - run.logged_failures
                run.logged_heralds, run.logged_failures = rt.heralds_sent, rt.failures_sent
                if ok:
                    self.ctx.log("station.heralds", run.station, link=run.name, heralds=ok,
                                 failures=failed, last_ps=int(rt.last_herald_ps))
            else:
                count = len(run.bound)
                if count > run.logged_heralds:
                    self.ctx.log("station.heralds", run.station, link=run.name,
                                 heralds=count - run.logged_heralds)
                    run.logged_heralds = count

    def pending(self) -> int:
        """Communication qubits still waiting for a herald."""
        return sum(len(p.pending) for p in self.pools.values())

    def stop(self) -> None:
        for run in self.links.values():
            for d in run.demand.values():
                d.release(d.value)

    def stop_stations(self) -> None:
        for sync in self.syncs.values():
            sync.stop()
        for run in self.links.values():
            if run.read_timer is not None:
                run.read_timer.cancel()
                run.read_timer = None
            if run.station_runtime is not None:
                run.station_runtime.stop()
            if run.pump is not None:
                run.pump.demand.release(run.pump.demand.value)
        for t in self.transceivers.values():
            t.transceiver.stop()

    def expected_rate_hz(self, run: LinkRun) -> float:
        """Heralded pairs per second: success probability per joint attempt × the share of the
        slots the link's grid (and a switched transceiver's turns) gives it."""
        return run.p_success * run.duty / (run.params.period_ps * 1e-12)

    def expected_fidelity(self, run: LinkRun) -> float:
        """Mean Bell fidelity of a heralded pair: the link fidelity for an entangled herald, 1/4
        for a false one, ``(P_ent·F + (P − P_ent)/4)/P``."""
        f = run.spec.fidelity
        if run.p_success <= 0:
            return f
        return (run.p_entangled * f + (run.p_success - run.p_entangled) / 4) / run.p_success

    def transceiver_report(self, node: str) -> dict:
        """The switch's own command log checked against the transceiver's attempt windows."""
        from timing.switched import check_switch_log

        t = self.transceivers[node]
        log = getattr(t.switch, "command_log", None)
        out = {"switch": t.spec.switch, "input": t.spec.input, "policy": t.spec.policy.kind.value,
               "order": list(t.spec.policy.order), "buffered": t.spec.buffered,
               "switching_time_us": t.spec.switching_time_ps / US,
               "attempt_windows": len(t.transceiver.windows), "commands": len(t.transceiver.commands)}
        if log is not None:
            out["switch_log_problems"] = check_switch_log(log, t.transceiver.windows, t.spec.routes,
                                                          t.spec.input, t.spec.switching_time_ps)
        return out

    def record_transceivers(self) -> None:
        """The switch command logs and the attempt windows as run-record arrays."""
        record = self.ctx.record
        if record is None:
            return
        for node, t in self.transceivers.items():
            log = getattr(t.switch, "command_log", [])
            record.write_array(f"switch_commands-{node}", np.array(
                [tuple(c) for c in log], dtype=[("t_ps", "<i8"), ("input", "<i4"), ("output", "<i4")]))
            record.write_array(f"attempt_windows-{node}", np.array(
                [(w.link, w.attempt_id, w.start_ps, w.end_ps) for w in t.transceiver.windows],
                dtype=[("link", "U32"), ("attempt_id", "<i8"), ("start_ps", "<i8"), ("end_ps", "<i8")]))


def arm_burst(armed: set[int], m: int, cycle: int, share: int) -> None:
    """Grid cycle ``m``'s burst is about to be triggered: its slots wait for their marker edges.
    Slots of cycles before the last one are forgotten: their burst never played (the AWG failed
    to trigger) or its edges are long past."""
    stale = [k for k in armed if k < (m - 1) * cycle]
    armed.difference_update(stale)
    armed.update(range(m * cycle, m * cycle + share))


def fibre_transmission(km: float, db_per_km: float) -> float:
    return 10 ** (-db_per_km * km / 10)


__all__ = ["DetectorSettings", "LinkPhysics", "LinkRun", "MemoryLinks", "TransceiverRun",
           "arm_burst", "fibre_transmission"]
