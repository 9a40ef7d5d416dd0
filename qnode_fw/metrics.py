"""Prometheus metrics of a running testbed (``qnode testbed ... --metrics-port PORT``).

RFC 9340 asks that a quantum network be easy to monitor. Every node of the testbed exports, with
``node`` (and ``link``, ``qnic``, ``instrument`` ...) labels:

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
``qnode_sim_time_seconds``                 simulated time of the testbed
``qnode_loop_events_total``                discrete events the loop processed
=========================================  ==========================================================

The exporter is refreshed between the runner's slices, from the loop's thread (the HTTP server
runs in its own thread and only reads the registry, which prometheus-client makes thread-safe).
"""

from __future__ import annotations

from collections import Counter as _Tally
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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
        self._seen: dict[tuple, float] = {}
        self._latency_seen: dict[str, int] = {}
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

    def update(self, testbed, experiment=None) -> None:
        now = testbed.now_ps()
        dt_s = (now - self._last_t) / S if self._last_t is not None and now > self._last_t else None
        self._last_t = now
        self.sim_time.set(now / S)
        self._bump(self.loop_events, (), testbed.loop.events_processed)
        figures: dict[str, Any] = experiment.metrics() if experiment is not None else {}
        for address, node in testbed.nodes.items():
            for name, inst in node.instruments.items():
                kind = node.config.instrument(name).kind.value
                self.instrument_up.labels(address, name, kind).set(1.0 if _answers(inst) else 0.0)
            for peer, status in node.control.status().items():
                self.peer_up.labels(address, peer).set(1.0 if status.up else 0.0)
            ex = node.executor
            if ex is None:
                continue
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
            delivered = [d for d in node.delivered[self._delivered_seen.get(address, 0):]
                         if hasattr(d, "fidelity_estimate")]
            self._delivered_seen[address] = len(node.delivered)
            if delivered:
                self.fidelity_estimate.labels(address).set(
                    sum(d.fidelity_estimate for d in delivered) / len(delivered))
        for (address, qnic), pool in figures.get("pools", {}).items():
            self.occupied.labels(address, str(qnic), "awaiting_herald").set(len(pool.pending))
        for name, run in figures.get("links", {}).items():
            station_delta = self._bump(self.heralds, (run.station, name), run.heralds())
            if dt_s:
                self.herald_rate.labels(run.station, name).set(station_delta / dt_s)
            joint = run.joint_attempts()
            if joint:
                self.success.labels(name).set(run.heralds() / joint)
            for node_name, end in run.ends.items():
                d_att = self._bump(self.attempts, (node_name, name), len(end.attempts))
                d_pair = self._bump(self.pairs, (node_name, name), run.pairs_ready.get(node_name, 0))
                if dt_s:
                    self.attempt_rate.labels(node_name, name).set(d_att / dt_s)
                    self.pair_rate.labels(node_name, name).set(d_pair / dt_s)
            seen = self._latency_seen.get(name, 0)
            for lat in run.herald_latency_ps[seen:]:
                self.latency.labels(name).observe(lat / S)
            self._latency_seen[name] = len(run.herald_latency_ps)
        if "e2e_pairs" in figures:
            self.e2e_pairs.set(figures["e2e_pairs"])
        exact = figures.get("fidelity_exact")
        if exact:
            self.fidelity_exact.labels(figures.get("connection", "e2e")).set(sum(exact) / len(exact))

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
