"""Prometheus metrics of a running testbed (``qnode testbed ... --metrics-port PORT``) or of one
node process (``qnode run ... --metrics-port PORT``; ``qnode testbed --processes --metrics-port
BASE`` gives the i-th node of the testbed BASE + i).

RFC 9340 asks that a quantum network be easy to monitor. Every node exports, with ``node`` (and
``link``, ``qnic``, ``instrument`` ...) labels:

=========================================  ==========================================================
``qnode_link_attempts_total``              attempts an end made on a link (counter)
``qnode_link_heralds_total``               heralded pairs a BSA station announced (counter)
``qnode_link_pairs_total``                 heralded pairs bound at an end (counter)
``qnode_link_attempt_rate_hz`` etc.        the same per simulated second over the last refresh
``qnode_link_success_probability``         heralds per joint attempt so far
``qnode_herald_latency_seconds``           emission to PairReady at the end (histogram)
``qnode_fidelity_estimate``                executor's estimate of delivered pairs (last refresh)
``qnode_fidelity_exact``                   simulator's exact fidelity of end-to-end pairs (sim only)
``qnode_qnic_qubits_occupied``             qubits held (RuleSets, application, awaiting a herald)
``qnode_qnic_qubits_total``                qubits of the QNIC
``qnode_ruleset_stage_pairs``              pairs in each Stage of each installed RuleSet
``qnode_ruleset_events_total``             executor counters (firings, delivered, freed, ...)
``qnode_instrument_up``                    1 while the instrument is open and answers
``qnode_control_peer_up``                  1 while the control link hears the peer
``qnode_sim_time_seconds``                 the loop's clock: simulated time of the testbed, or the
                                           (testbed) wall clock in a node process
``qnode_loop_events_total``                discrete events the loop processed
``qnode_clock_sync_offset_seconds``        station clock minus node clock, per link end (node process)
``qnode_clock_sync_uncertainty_seconds``   its stated uncertainty (3 sigma + asymmetry bound)
``qnode_clock_sync_drift_ppm``             station clock's rate against the node's
``qnode_clock_sync_delay_seconds``         one-way herald-link delay the sync measured
``qnode_clock_sync_exchanges_total``       sync exchanges completed
``qnode_clock_faults_total``               clock jumps and drifts beyond tolerance the sync saw
=========================================  ==========================================================

In a node process a link's counters are this node's share: attempts and pairs at an end, heralds
at a station; ``qnode_link_success_probability`` needs both ends' attempts and is only exported
where one process sees both (``qnode testbed`` on the virtual clock).

The exporter is refreshed between the runner's slices (or on the node's status tick), from the
loop's thread (the HTTP server runs in its own thread and only reads the registry, which
prometheus-client makes thread-safe).
"""

from __future__ import annotations

from collections import Counter as _Tally
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from .recent import LatencyLog
from .units import S

_LATENCY_BUCKETS = (5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2, 0.1, 1.0)


class TestbedMetrics:
    """The metrics of one testbed run; ``port`` None keeps them in the registry only (tests)."""

    __test__ = False   # not a pytest class

    def __init__(self, port: int | None = None, addr: str = "127.0.0.1") -> None:
        r = self.registry = CollectorRegistry()
        self.attempts = Counter("qnode_link_attempts", "Attempts an end made on a link", ["node", "link"], registry=r)
        self.heralds = Counter("qnode_link_heralds", "Heralded pairs a station announced", ["node", "link"], registry=r)
        self.pairs = Counter("qnode_link_pairs", "Heralded pairs bound at an end", ["node", "link"], registry=r)
        self.attempt_rate = Gauge("qnode_link_attempt_rate_hz", "Attempts per simulated second",
                                  ["node", "link"], registry=r)
        self.herald_rate = Gauge("qnode_link_herald_rate_hz", "Heralds per simulated second",
                                 ["node", "link"], registry=r)
        self.pair_rate = Gauge("qnode_link_pair_rate_hz", "Bound pairs per simulated second",
                               ["node", "link"], registry=r)
        self.success = Gauge("qnode_link_success_probability", "Heralds per joint attempt", ["link"], registry=r)
        self.latency = Histogram("qnode_herald_latency_seconds", "Emission to PairReady at the end",
                                 ["link"], buckets=_LATENCY_BUCKETS, registry=r)
        self.fidelity_estimate = Gauge("qnode_fidelity_estimate", "Estimated fidelity of pairs delivered",
                                       ["node"], registry=r)
        self.fidelity_exact = Gauge("qnode_fidelity_exact", "Exact fidelity of end-to-end pairs (simulator)",
                                    ["connection"], registry=r)
        self.e2e_pairs = Gauge("qnode_e2e_pairs", "End-to-end pairs delivered to both ends", registry=r)
        self.occupied = Gauge("qnode_qnic_qubits_occupied", "Qubits held", ["node", "qnic", "by"], registry=r)
        self.qubits = Gauge("qnode_qnic_qubits_total", "Qubits of the QNIC", ["node", "qnic"], registry=r)
        self.stage_pairs = Gauge("qnode_ruleset_stage_pairs", "Pairs in a Stage of an installed RuleSet",
                                 ["node", "ruleset", "stage"], registry=r)
        self.executor_events = Counter("qnode_ruleset_events", "RuleSet executor counters",
                                       ["node", "counter"], registry=r)
        self.instrument_up = Gauge("qnode_instrument_up", "Instrument open and answering",
                                   ["node", "instrument", "kind"], registry=r)
        self.peer_up = Gauge("qnode_control_peer_up", "Control link hears the peer", ["node", "peer"], registry=r)
        self.sim_time = Gauge("qnode_sim_time_seconds", "Simulated time of the testbed", registry=r)
        self.loop_events = Counter("qnode_loop_events", "Discrete events the loop processed", registry=r)
        sync = ["node", "link", "station"]
        self.sync_offset = Gauge("qnode_clock_sync_offset_seconds", "Station clock minus node clock",
                                 sync, registry=r)
        self.sync_uncertainty = Gauge("qnode_clock_sync_uncertainty_seconds",
                                      "Stated uncertainty of the clock offset", sync, registry=r)
        self.sync_drift = Gauge("qnode_clock_sync_drift_ppm", "Station clock rate against the node's",
                                sync, registry=r)
        self.sync_delay = Gauge("qnode_clock_sync_delay_seconds", "One-way herald-link delay", sync,
                                registry=r)
        self.sync_exchanges = Counter("qnode_clock_sync_exchanges", "Clock-sync exchanges completed",
                                      sync, registry=r)
        self.clock_faults = Counter("qnode_clock_faults", "Clock jumps and drifts beyond tolerance",
                                    ["node", "link", "kind"], registry=r)
        self._seen: dict[tuple, float] = {}
        self._latency_seen: dict[tuple[str, str], int] = {}
        self._delivered_seen: dict[str, int] = {}
        self._last_t: int | None = None
        self.server = None
        self.port = port
        if port is not None:
            self.server, self._thread = start_http_server(port, addr=addr, registry=r)

    # -- refresh --------------------------------------------------------------------------------
    def _bump(self, counter: Counter, labels: tuple, total: float) -> float:
        """Increase ``counter`` to ``total``; returns the increase."""
        key = (counter._name, labels)
        delta = total - self._seen.get(key, 0.0)
        if delta > 0:
            (counter.labels(*labels) if labels else counter).inc(delta)
            self._seen[key] = total
        return max(delta, 0.0)

    def _tick(self, now: int, events: int) -> float | None:
        """Clock and event count; returns the seconds since the last refresh (None the first time)."""
        dt_s = (now - self._last_t) / S if self._last_t is not None and now > self._last_t else None
        self._last_t = now
        self.sim_time.set(now / S)
        self._bump(self.loop_events, (), events)
        return dt_s

    def _node(self, address: str, node) -> None:
        """One node's instruments, control peers, RuleSets, QNICs and delivered fidelity."""
        for name, inst in node.instruments.items():
            kind = node.config.instrument(name).kind.value
            self.instrument_up.labels(address, name, kind).set(1.0 if _answers(inst) else 0.0)
        for peer, status in node.control.status().items():
            self.peer_up.labels(address, peer).set(1.0 if status.up else 0.0)
        ex = node.executor
        if ex is None:
            return
        for counter, total in ex.stats.items():
            self._bump(self.executor_events, (address, counter), total)
        held = ex.held_qubits()
        for q in node.config.qnics:
            self.qubits.labels(address, str(q.address)).set(q.qubits)
            self.occupied.labels(address, str(q.address), "rulesets").set(
                sum(1 for x in held if x.qnic == q.address))
        for rs_id, inst in ex.installed.items():
            tally = _Tally(p.stage for p in inst.pairs.values())
            for si, stage in enumerate(inst.rs.stages):
                self.stage_pairs.labels(address, rs_id, stage.name).set(tally.get(si, 0))
        delivered = [d for d in node.delivered.since(self._delivered_seen.get(address, 0))
                     if hasattr(d, "fidelity_estimate")]
        self._delivered_seen[address] = len(node.delivered)
        if delivered:
            self.fidelity_estimate.labels(address).set(
                sum(d.fidelity_estimate for d in delivered) / len(delivered))

    def _link_end(self, node: str, link: str, attempts: int, pairs: int,
                  latencies_ps: LatencyLog | None, dt_s: float | None) -> None:
        d_att = self._bump(self.attempts, (node, link), attempts)
        d_pair = self._bump(self.pairs, (node, link), pairs)
        if dt_s:
            self.attempt_rate.labels(node, link).set(d_att / dt_s)
            self.pair_rate.labels(node, link).set(d_pair / dt_s)
        if latencies_ps is None:
            return
        seen = self._latency_seen.get((node, link), 0)
        for lat in latencies_ps.since(seen):
            self.latency.labels(link).observe(lat / S)
        self._latency_seen[(node, link)] = len(latencies_ps)

    def _station(self, station: str, link: str, heralds: int, dt_s: float | None) -> None:
        delta = self._bump(self.heralds, (station, link), heralds)
        if dt_s:
            self.herald_rate.labels(station, link).set(delta / dt_s)

    def update(self, testbed, experiment=None) -> None:
        """Every node of a testbed running in this process (``qnode testbed``)."""
        dt_s = self._tick(testbed.now_ps(), testbed.loop.events_processed)
        figures: dict[str, Any] = experiment.metrics() if experiment is not None else {}
        for address, node in testbed.nodes.items():
            self._node(address, node)
        for (address, qnic), pool in figures.get("pools", {}).items():
            self.occupied.labels(address, str(qnic), "awaiting_herald").set(len(pool.pending))
        for name, run in figures.get("links", {}).items():
            self._station(run.station, name, run.heralds(), dt_s)
            joint = run.joint_attempts()
            if joint:
                self.success.labels(name).set(run.heralds() / joint)
            # Both ends' latencies are in one list here: observed once, under the first end.
            first = True
            for node_name, end in run.ends.items():
                self._link_end(node_name, name, end.attempt_count, run.pairs_ready.get(node_name, 0),
                               run.herald_latency_ps if first else None, dt_s)
                first = False
        if "e2e_pairs" in figures:
            self.e2e_pairs.set(figures["e2e_pairs"])
        exact = figures.get("fidelity_exact")
        if exact:
            self.fidelity_exact.labels(figures.get("connection", "e2e")).set(sum(exact) / len(exact))

    def update_node_process(self, lab) -> None:
        """One node in its own process (``qnode run``: a :class:`~qnode_fw.testbed.lab.LabNode`):
        the node, its share of the herald links and their clock sync."""
        from .testbed.herald_sync import clock_sync_of

        address = lab.node.address
        dt_s = self._tick(lab.loop.now_ps(), lab.loop.events_processed)
        self._node(address, lab.node)
        links = getattr(lab.role, "links", None)
        if links is not None:
            for name, end in links.ends.items():
                self._link_end(address, name, end.runtime.attempt_count, end.pairs_ready,
                               end.herald_latency_ps, dt_s)
            for name, st in links.stations.items():
                self._station(address, name, st.heralds(), dt_s)
            for qnic, pool in links.pools.items():
                self.occupied.labels(address, str(qnic), "awaiting_herald").set(len(pool.pending))
        sync = clock_sync_of(lab)
        if sync is not None:
            self._clock_sync(address, sync)

    def _clock_sync(self, address: str, sync) -> None:
        for link, st in sync.status().items():
            labels = (address, link, st.station)
            self._bump(self.sync_exchanges, labels, st.exchanges)
            if st.offset_us is not None:
                self.sync_offset.labels(*labels).set(st.offset_us * 1e-6)
                self.sync_uncertainty.labels(*labels).set(st.uncertainty_us * 1e-6)
                self.sync_drift.labels(*labels).set(st.drift_ppm)
                self.sync_delay.labels(*labels).set(st.delay_us * 1e-6)
        kinds = _Tally((f.kind, link) for link, c in sync.clients.items() for f in c.faults)
        for (kind, link), n in kinds.items():
            self._bump(self.clock_faults, (address, link, kind), n)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _answers(instrument) -> bool:
    try:
        instrument.identify()
    except Exception:     # an instrument that cannot identify itself is down, whatever the reason
        return False
    return True
