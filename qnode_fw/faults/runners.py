"""A fault plan in a testbed run: what each runner hands :func:`~.apply.apply_fault_plan`, the
link layer's side of a node crash, the instrument-failure policy and the run record's fault part.

* :func:`run_fault_plan` - the plan a run uses: the experiment YAML's ``faults:`` with ``qnode
  testbed --fault`` over it (:meth:`FaultPlan.with_overrides`).
* :func:`virtual_fault_targets` - the virtual testbed: every node's control link, the herald
  endpoints of the experiment's memory links, every instrument and QNIC keyed ``(node, name)``,
  every node's PC clock and clock sync, and :meth:`VirtualTestbed.crash` /
  :meth:`~VirtualTestbed.restart`, with the link layer of a crashed node stopped (attempts,
  emissions waiting for a herald, station reads) and an experiment that has
  ``follow_crashes(testbed)`` (the repeater chain) following the crash and restart of a node
  that hosts its application; any other experiment's application node is refused.
* :func:`node_fault_targets` - one node process (``qnode run --experiment``, processes mode): its
  own control link, its herald endpoints, instruments, PC clock and clock sync, ``only_node`` its
  address.
* :class:`InstrumentFailures` - an :class:`~qnode_fw.errors.InstrumentError` that escapes the
  node software into the event loop is a failed instrument: it is named (``node/instrument``)
  and recorded, and the experiment's ``on_instrument_failure`` says whether the run stops there
  or goes on without the part that called it.
* :class:`FaultLog` - copies what was injected and what failed into the run record as it
  happens, and gives the summary's ``faults`` section.

Times in a plan (``at_s``, ``crash_at_s``) count from the experiment's start: in virtual mode
when it is set up (the control links are up), in a node process when its part starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, InstrumentError
from ..logs import event
from ..rng import RandomStreams
from .apply import AppliedFaults, FaultTargets
from .plan import FaultPlan, parse_fault_string

log = logging.getLogger(__name__)

POLICIES = ("stop", "continue")


def run_fault_plan(experiment_plan: FaultPlan | None, fault_string: str | None) -> FaultPlan | None:
    """The experiment's plan with ``--fault`` over it; None when there is nothing to inject."""
    plan = experiment_plan
    if fault_string:
        override = parse_fault_string(fault_string)
        plan = override if plan is None else plan.with_overrides(override)
    if plan is None or plan.empty:
        return None
    return plan


def check_plan_for_runner(plan: FaultPlan, file: str, addresses: list[str], *,
                          processes: bool) -> None:
    """Refuse, before anything starts, what this runner cannot inject: a node the testbed has
    not. Clock faults run in both modes, on each node's PC clock (a SimulatedClock over the
    loop's). Node crashes in processes mode are checked by the processes runner (they need the
    experiment's ``on_peer_failure: continue``)."""
    for kind, entries in (("instruments", plan.instruments), ("nodes", plan.nodes),
                          ("clocks", plan.clocks)):
        for i, entry in enumerate(entries):
            if entry.node is not None and entry.node not in addresses:
                raise ConfigError(f"no node {entry.node!r} in this testbed", file=file,
                                  field=f"faults.{kind}[{i}].node",
                                  expected="one of " + ", ".join(addresses))


# -- what a runner can fault -------------------------------------------------------------------


def instruments_by_key(node: Any) -> dict[tuple[str, str], Any]:
    """A node's instruments and QNICs keyed ``(node, name)``; a simulated QNIC is ``qnicN``."""
    out: dict[tuple[str, str], Any] = {(node.address, name): inst
                                       for name, inst in node.instruments.items()}
    for address, qnic in node.qnics.items():
        if not any(qnic is inst for inst in node.instruments.values()):
            out[(node.address, f"qnic{address}")] = qnic
    return out


def instrument_names(nodes: dict[str, Any]) -> dict[str, str]:
    """Resource string -> ``node/name`` of every instrument, to name the one an error came from."""
    out: dict[str, str] = {}
    for node in nodes.values():
        for (address, name), inst in instruments_by_key(node).items():
            resource = getattr(inst, "resource", None)
            if isinstance(resource, str):
                out[resource] = f"{address}/{name}"
    return out


def virtual_fault_targets(plan: FaultPlan, testbed: Any, experiment: Any, streams: RandomStreams,
                          origin_ps: int) -> FaultTargets:
    """Everything of a started :class:`~qnode_fw.testbed.virtual.VirtualTestbed` (with
    ``experiment`` set up) that ``plan`` can act on."""
    follow = getattr(experiment, "follow_crashes", None)
    for i, crash in enumerate(plan.nodes):
        node = testbed.nodes.get(crash.node)
        if node is not None and node.delivery_listeners and follow is None:
            # The application runs in the runner's process beside the node: unless the
            # experiment makes it die and start again with the node, it would outlive the crash
            # holding halves whose qubits were re-initialised.
            raise ConfigError(f"node {crash.node} hosts the {experiment.kind} experiment's "
                              "application, which cannot follow a crash in the virtual testbed",
                              field=f"faults.nodes[{i}].node",
                              expected="a node without the application (or run --processes)")
    links = _memory_links(experiment)
    endpoints: list[Any] = []
    syncs: list[Any] = list(links.syncs.values()) if links is not None else []
    if links is not None:
        for run in links.links.values():
            station = [run.station_runtime.endpoint] if run.station_runtime is not None else []
            for ep in [*station, *(end.endpoint for end in run.ends.values())]:
                if not any(ep is e for e in endpoints):
                    endpoints.append(ep)
        _follow_crashes(testbed, links)
    if plan.nodes and follow is not None:
        follow(testbed)       # after the link layer's own hooks: the application's halves
    if plan.herald.active and not endpoints:
        # Said, not silently skipped: this experiment's links have no herald frames to fault.
        event(log, logging.WARNING, "faults.herald-unused",
              reason="the experiment runs no herald link", plan=plan.herald.model_dump(exclude_defaults=True))
    instruments: dict[tuple[str, str], Any] = {}
    for node in testbed.nodes.values():
        instruments.update(instruments_by_key(node))
    return FaultTargets(testbed.loop, streams,
                        control_links={a: n.control for a, n in testbed.nodes.items()},
                        herald_endpoints=endpoints, instruments=instruments,
                        clocks=dict(testbed.clocks), clock_syncs=syncs,
                        crash=testbed.crash, restart=testbed.restart,
                        nodes=list(testbed.nodes), origin_ps=origin_ps)


def _memory_links(experiment: Any) -> Any:
    from ..experiments.memory_links import MemoryLinks

    links = getattr(experiment, "links", None)
    return links if isinstance(links, MemoryLinks) else None


def _follow_crashes(testbed: Any, links: Any) -> None:
    """A crashed node's link layer dies with it: no more attempts (its connections are gone, so
    is its demand), its emissions waiting for a herald are forgotten, a station reads nothing
    (its tagger's buffer is lost), its clock sync stops. A restarted node attempts again once a
    connection asks, and syncs afresh."""
    dead: set[str] = set()

    def crashed(address: str) -> None:
        dead.add(address)
        for run in links.links.values():
            if address in run.ends:
                demand = run.demand[address]
                demand.release(demand.value)
                _forget_emissions(run.ends[address].binder)
            if run.station == address and run.station_runtime is not None:
                # (an at_source link's station is its receiving end, handled above)
                _silence_station(run.station_runtime.heralder, address, dead)
        sync = links.syncs.get(address)
        if sync is not None:
            sync.halt()      # its clock sync dies with the process: no requests, no answers

    def restarted(address: str) -> None:
        dead.discard(address)
        sync = links.syncs.get(address)
        if sync is not None:
            sync.resume()

    testbed.on_crash.append(crashed)
    testbed.on_restart.append(restarted)


def _forget_emissions(binder: Any) -> None:
    # The process that knew which qubit emitted in which attempt is gone: a herald for those
    # attempts binds nothing, and the qubits go back to the pool re-initialised.
    for attempt in list(binder._pending):
        emission = binder._pending.pop(attempt)
        binder._by_qubit.pop(emission.qubit, None)
        binder.release(emission.qubit)


def _silence_station(heralder: Any, address: str, dead: set[str]) -> None:
    if "read" in vars(heralder):
        return
    read = heralder.read

    def read_unless_dead(*args: Any, **kwargs: Any) -> Any:
        if address in dead:
            heralder.tagger.read_stream()      # what piles up in the tagger while nobody reads
            return None
        return read(*args, **kwargs)

    heralder.read = read_unless_dead


def node_fault_targets(lab: Any, role: Any, streams: RandomStreams, origin_ps: int) -> FaultTargets:
    """One node process's share (processes mode): ``lab`` a running
    :class:`~qnode_fw.testbed.lab.LabNode`, ``role`` its started experiment role."""
    node = lab.node
    endpoints: list[Any] = []
    clocks: dict[str, Any] = {}
    syncs: list[Any] = []
    links = getattr(role, "links", None)
    if links is not None:
        endpoints = [part.endpoint for part in [*links.ends.values(), *links.stations.values()]]
        clocks, syncs = {node.address: links.clock}, [links.sync]
    return FaultTargets(lab.loop, streams, control_links={node.address: node.control},
                        herald_endpoints=endpoints, instruments=instruments_by_key(node),
                        clocks=clocks, clock_syncs=syncs,
                        nodes=list(lab.testbed.config.addresses), only_node=node.address,
                        origin_ps=origin_ps)


# -- a dead instrument -----------------------------------------------------------------------------


@dataclass
class InstrumentFailure:
    """The first error of one instrument, and how many followed."""

    instrument: str          # node/name
    resource: str
    command: str | None
    message: str
    t_ps: int
    count: int = 1
    #: outages that ended (the loop that called it got an answer again), failed retries in them,
    #: and their summed downtime (timing.recovery)
    recoveries: int = 0
    retries: int = 0
    downtime_ps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"instrument": self.instrument, "resource": self.resource, "command": self.command,
                "message": self.message, "t_ps": self.t_ps, "count": self.count,
                "recoveries": self.recoveries, "retries": self.retries,
                "downtime_us": self.downtime_ps / 1e6}


class InstrumentFailures:
    """Catches an :class:`InstrumentError` escaping the event loop, names the instrument and
    applies the policy: ``stop`` sets :attr:`stop_reason` (the runner ends the run),
    ``continue`` runs on. Either way the loop is resumed, so whatever the runner does next
    (running on, or draining and closing) is not cut short by the same dead instrument.

    An error from a link-layer loop that retries through the outage
    (:class:`~timing.recovery.InstrumentRetry`) comes once per outage and carries the retry as
    ``retrying``: when the instrument answers again, :meth:`recovered` logs
    ``instrument.recovered`` (``on_recovery`` gets its fields) and counts it on the failure."""

    def __init__(self, policy: str, names: dict[str, str], now_ps: Callable[[], int],
                 on_failure: Callable[[InstrumentFailure], None] | None = None,
                 on_recovery: Callable[[dict[str, Any]], None] | None = None) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"unknown instrument failure policy {policy!r}",
                              field="on_instrument_failure", expected=" or ".join(POLICIES))
        self.policy = policy
        self.names = names
        self.now_ps = now_ps
        self.on_failure = on_failure
        self.on_recovery = on_recovery
        self.failures: dict[str, InstrumentFailure] = {}
        self.stop_reason: str | None = None

    def seen(self, exc: InstrumentError) -> InstrumentFailure:
        retry = getattr(exc, "retrying", None)
        if retry is not None and self.recovered not in retry.listeners:
            retry.listeners.append(self.recovered)
        name = self.names.get(exc.resource, exc.resource)
        failure = self.failures.get(name)
        if failure is not None:
            failure.count += 1
            return failure
        failure = self.failures[name] = InstrumentFailure(
            name, exc.resource, exc.command, str(exc), self.now_ps())
        event(log, logging.ERROR, "instrument.failed", instrument=name, command=exc.command,
              policy=self.policy, error=exc)
        if self.policy == "stop" and self.stop_reason is None:
            self.stop_reason = f"instrument {name} failed: {exc}"
        if self.on_failure is not None:
            self.on_failure(failure)
        return failure

    def recovered(self, recovery: Any) -> None:
        """A loop's instrument answers again (a :class:`~timing.recovery.Recovery`)."""
        name = self.names.get(recovery.resource, recovery.resource)
        failure = self.failures.get(name)
        if failure is not None:
            failure.recoveries += 1
            failure.retries += recovery.retries
            failure.downtime_ps += recovery.downtime_ps
        fields = {"instrument": name, "part": recovery.part, "command": recovery.command,
                  "downtime_us": recovery.downtime_ps / 1e6, "retries": recovery.retries}
        event(log, logging.WARNING, "instrument.recovered", **fields)
        if self.on_recovery is not None:
            self.on_recovery(fields)

    def guard_run_until(self, loop: Any) -> None:
        """Make ``loop.run_until`` (on this instance) survive instrument errors."""
        inner = loop.run_until

        def run_until(until_ps: int) -> None:
            while True:
                try:
                    inner(until_ps)
                    return
                except InstrumentError as exc:
                    self.seen(exc)

        loop.run_until = run_until

    def guard_run_forever(self, loop: Any, stop: Callable[[str], None]) -> None:
        """The same for a wall-clock node loop; ``stop(reason)`` ends the node under ``stop``."""
        inner = loop.run_forever

        def run_forever() -> None:
            while True:
                try:
                    inner()
                    return
                except InstrumentError as exc:
                    self.seen(exc)
                    if self.stop_reason is not None:
                        stop(self.stop_reason)

        loop.run_forever = run_forever

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.failures.values()]


# -- the record ----------------------------------------------------------------------------------


class FaultLog:
    """Copies newly injected faults into ``record`` (``fault.injected`` events) on each
    :meth:`flush`; :meth:`summary` is the summary's ``faults`` section."""

    def __init__(self, plan: FaultPlan, applied: AppliedFaults, record: Any,
                 failures: InstrumentFailures | None = None, node: str | None = None) -> None:
        self.plan = plan
        self.applied = applied
        self.record = record
        self.failures = failures
        self.node = node
        self._written = 0
        self._detected = 0

    def flush(self) -> None:
        new = self.applied.log[self._written:]
        self._written = len(self.applied.log)
        seen = self.applied.clock_faults[self._detected:]
        self._detected = len(self.applied.clock_faults)
        if self.record is None:
            return
        for e in new:
            self.record.event(e.t_ps, "fault.injected", self.node, kind=e.kind, target=e.target,
                              detail=e.detail)
        for c in seen:
            self.record.event(c.t_ps, "clock.fault", c.node,
                              **{k: v for k, v in c.to_dict().items() if k not in ("t_ps", "node")})

    def summary(self) -> dict[str, Any]:
        self.flush()
        out = {"plan": self.plan.model_dump(mode="json", exclude_defaults=True),
               **self.applied.summary()}
        if self.failures is not None:
            out["instrument_failures"] = self.failures.to_list()
            out["on_instrument_failure"] = self.failures.policy
        return out


__all__ = ["FaultLog", "check_plan_for_runner", "InstrumentFailure", "InstrumentFailures", "instrument_names",
           "instruments_by_key", "node_fault_targets", "run_fault_plan", "virtual_fault_targets"]
