"""Applying a :class:`~qnode_fw.faults.plan.FaultPlan` to the parts of a running testbed.

The testbed runner (or one node process in processes mode) gathers what it has into
:class:`FaultTargets` and calls :func:`apply_fault_plan` once, before the loop runs. Everything a
plan names must exist: an unknown node or instrument is a :class:`~qnode_fw.errors.ConfigError`
naming it, never a fault silently not injected. In processes mode each node process passes only
its own links and instruments and ``only_node`` set to its address; entries for other nodes are
then skipped (their own processes apply them).

Every fault draw comes from named streams of the run's :class:`~qnode_fw.rng.RandomStreams`
(``faults:control:<node>``, ``faults:herald:<node>:<link>``, ``faults:instrument:<target>``), so
the same seed gives the same faults and adding a node changes no other node's draws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..addresses import NodeAddress
from ..errors import ConfigError
from ..logs import event
from ..loop import EventLoop
from ..rng import RandomStreams
from .clocks import DetectedClockFault, apply_clock_fault, check_adjustable
from .instruments import InstrumentFaultShim, arm_emulator
from .messages import MessageFaultStats, TransmitShim, shim_control_link, shim_herald_endpoint
from .plan import FaultPlan, InstrumentFault, seconds_ps

log = logging.getLogger(__name__)


@dataclass
class FaultTargets:
    """What a plan can act on. Keys of ``instruments``/``emulators`` are ``(node, name)``."""

    loop: EventLoop
    streams: RandomStreams
    control_links: Mapping[NodeAddress, Any] = field(default_factory=dict)   # ControlLink
    herald_endpoints: Sequence[Any] = ()                                      # HeraldEndpoint
    instruments: Mapping[tuple[NodeAddress, str], Any] = field(default_factory=dict)
    emulators: Mapping[tuple[NodeAddress, str], Any] = field(default_factory=dict)
    clocks: Mapping[NodeAddress, Any] = field(default_factory=dict)           # SimulatedClock
    #: The nodes' clock sync over the herald links (HeraldClockSync): what they detect is kept.
    clock_syncs: Sequence[Any] = ()
    #: ``crash(node)`` kills the node without a goodbye; ``restart(node)`` starts it afresh.
    crash: Callable[[NodeAddress], None] | None = None
    restart: Callable[[NodeAddress], None] | None = None
    #: The node addresses of the testbed (to tell a typo from another process's node).
    nodes: Sequence[NodeAddress] = ()
    only_node: NodeAddress | None = None
    #: Loop time the plan's ``at_s`` / ``crash_at_s`` count from (the experiment's start).
    origin_ps: int = 0


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """One fault event that happened, for the run record."""

    t_ps: int
    kind: str        # crash, restart, clock, instrument
    target: str
    detail: str


@dataclass
class AppliedFaults:
    """Handle on an applied plan: what was injected so far, and how to take it out again."""

    message_shims: dict[str, TransmitShim] = field(default_factory=dict)
    instrument_shims: dict[str, InstrumentFaultShim] = field(default_factory=dict)
    log: list[InjectedFault] = field(default_factory=list)
    #: clock faults the nodes' clock sync detected (injected or not), in the order seen
    clock_faults: list[DetectedClockFault] = field(default_factory=list)
    _timers: list = field(default_factory=list)
    _watches: list = field(default_factory=list)      # (HeraldClockSync, handler)

    def message_stats(self, plane: str | None = None) -> MessageFaultStats:
        """Totals over every shim, or over one plane (``control`` / ``herald``)."""
        total = MessageFaultStats()
        for label, shim in self.message_shims.items():
            if plane is None or label.startswith(plane + ":"):
                for name in total.__slots__:
                    setattr(total, name, getattr(total, name) + getattr(shim.injector.stats, name))
        return total

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts for a run record."""
        out: dict[str, Any] = {}
        for plane in ("control", "herald"):
            s = self.message_stats(plane)
            out[plane] = {name: getattr(s, name) for name in s.__slots__}
        out["events"] = [{"t_ps": e.t_ps, "kind": e.kind, "target": e.target, "detail": e.detail}
                         for e in self.log]
        out["instrument_faults_fired"] = {k: len(s.fired) for k, s in self.instrument_shims.items()}
        out["clock_faults"] = [c.to_dict() for c in self.clock_faults]
        return out

    def remove(self) -> None:
        """Stop injecting: restore every wrapped sender and instrument, cancel pending faults."""
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        for shim in self.message_shims.values():
            shim.remove()
        for ishim in self.instrument_shims.values():
            ishim.remove()
        for sync, handler in self._watches:
            if handler in sync.on_fault:
                sync.on_fault.remove(handler)
        self._watches.clear()


def apply_fault_plan(plan: FaultPlan, targets: FaultTargets) -> AppliedFaults:
    """Install ``plan`` on ``targets`` and schedule its timed faults on ``targets.loop``."""
    applied = AppliedFaults()
    loop, streams = targets.loop, targets.streams
    if plan.seed is not None:
        streams = RandomStreams(plan.seed)
    known = set(targets.nodes) | set(targets.control_links) | set(targets.clocks) \
        | {n for n, _ in targets.instruments} | {n for n, _ in targets.emulators} \
        | {ep.node for ep in targets.herald_endpoints}

    def mine(node: NodeAddress | None, where: str) -> bool:
        if node is not None and known and node not in known:
            raise ConfigError(f"no node {node!r} in this testbed", field=where,
                              expected="one of " + ", ".join(sorted(known)))
        return targets.only_node is None or node is None or node == targets.only_node

    def at(t_s: float, callback: Callable, *args: Any) -> None:
        when = max(targets.origin_ps + seconds_ps(t_s), loop.now_ps())
        applied._timers.append(loop.call_at(when, callback, *args))

    def record(kind: str, target: str, detail: str) -> None:
        applied.log.append(InjectedFault(loop.now_ps(), kind, target, detail))
        event(log, logging.WARNING, "fault-injected", kind=kind, target=target, detail=detail)

    # -- messages ---------------------------------------------------------------------------------
    if plan.control.active:
        for node, link in targets.control_links.items():
            label = f"control:{node}"
            applied.message_shims[label] = shim_control_link(
                link, plan.control, streams.get(f"faults:{label}"))
    if plan.herald.active:
        for ep in targets.herald_endpoints:
            label = f"herald:{ep.node}:{ep.link_name}"
            applied.message_shims[label] = shim_herald_endpoint(
                ep, plan.herald, streams.get(f"faults:{label}"), loop)

    # -- instruments ------------------------------------------------------------------------------
    for i, fault in enumerate(plan.instruments):
        where = f"faults.instruments[{i}]"
        if not mine(fault.node, f"{where}.node"):
            continue
        if fault.node is None and targets.only_node is not None and not any(
                name == fault.instrument for _, name in (*targets.emulators, *targets.instruments)):
            continue  # processes mode: the node that has this instrument applies it
        arm = _instrument_arm(fault, targets, applied, streams, f"{where}.instrument")

        def fire(fault: InstrumentFault = fault, arm: Callable[[], int] = arm) -> None:
            n = arm()
            record("instrument", fault.target, f"{fault.fault.value} x{n}"
                   + (f" on /{fault.command}/" if fault.command else ""))
            if fault.every_s is not None:
                applied._timers.append(loop.call_later(seconds_ps(fault.every_s), fire))

        at(fault.at_s, fire)

    # -- node crash and restart -------------------------------------------------------------------
    for i, crash in enumerate(plan.nodes):
        if not mine(crash.node, f"faults.nodes[{i}].node"):
            continue
        if targets.crash is None or (crash.restart_after_s is not None and targets.restart is None):
            raise ConfigError("this runner cannot crash or restart nodes",
                              field=f"faults.nodes[{i}]", expected="no node faults here")

        def do_crash(node: NodeAddress = crash.node, back: float | None = crash.restart_after_s) -> None:
            record("crash", node, "process killed without a goodbye")
            targets.crash(node)  # type: ignore[misc]
            if back is not None:
                applied._timers.append(loop.call_later(seconds_ps(back), do_restart, node))

        def do_restart(node: NodeAddress) -> None:
            record("restart", node, "process started again with empty state")
            targets.restart(node)  # type: ignore[misc]

        at(crash.crash_at_s, do_crash)

    # -- clocks -----------------------------------------------------------------------------------
    # What clock sync detects is kept whether the plan injected it or not (a real PC may step).
    for sync in targets.clock_syncs:
        def seen(link: str, fault: Any) -> None:
            applied.clock_faults.append(DetectedClockFault.of(loop.now_ps(), link, fault))

        sync.on_fault.append(seen)
        applied._watches.append((sync, seen))
    if plan.clocks and not any(sync.clients or sync.responders for sync in targets.clock_syncs):
        # Said, not silently skipped: nothing stamps with these clocks or could see them step.
        event(log, logging.WARNING, "faults.clocks-unused",
              reason="the experiment runs no clock sync over a herald link")
    for i, cf in enumerate(plan.clocks):
        if not mine(cf.node, f"faults.clocks[{i}].node"):
            continue
        if cf.node not in targets.clocks:
            raise ConfigError(f"no clock for node {cf.node!r} to fault", field=f"faults.clocks[{i}].node",
                              expected="a node whose clock the runner exposes")
        clock = check_adjustable(targets.clocks[cf.node], cf)

        def step(cf=cf, clock=clock) -> None:
            apply_clock_fault(clock, cf)
            parts = []
            if cf.jump_us is not None:
                parts.append(f"jump {cf.jump_us:+g} us")
            if cf.drift_ppm is not None:
                parts.append(f"drift now {cf.drift_ppm:g} ppm")
            record("clock", cf.node, ", ".join(parts))

        at(cf.at_s, step)
    return applied


def _instrument_arm(fault: InstrumentFault, targets: FaultTargets, applied: AppliedFaults,
                    streams: RandomStreams, where: str) -> Callable[[], int]:
    """How to arm ``fault`` on its target: in its emulator if it has one, else on the driver."""
    matches = [key for key in (*targets.emulators, *targets.instruments)
               if key[1] == fault.instrument and (fault.node is None or key[0] == fault.node)]
    keys = sorted(set(matches))
    if not keys:
        have = sorted({f"{n}/{i}" for n, i in (*targets.emulators, *targets.instruments)})
        raise ConfigError(f"no instrument {fault.target!r} to fault", field=where,
                          expected="one of " + (", ".join(have) or "the nodes' instruments"))
    if len(keys) > 1:
        raise ConfigError(f"instrument name {fault.instrument!r} is on several nodes "
                          f"({', '.join(n for n, _ in keys)}); say which with node:", field=where,
                          expected="node: and instrument:")
    key = keys[0]
    emulator = targets.emulators.get(key)
    if emulator is not None:
        if fault.fault.value == "overflow":
            arm_emulator(emulator, fault)  # raises the ConfigError naming it, at apply time
        return lambda: arm_emulator(emulator, fault)
    label = f"{key[0]}/{key[1]}"
    shim = applied.instrument_shims.get(label)
    if shim is None:
        shim = applied.instrument_shims[label] = InstrumentFaultShim(
            targets.instruments[key], streams.get(f"faults:instrument:{label}"))
    if fault.fault.value == "overflow" and "read_stream" not in shim._wrapped:
        shim.arm(fault)  # raises the ConfigError naming the instrument, at apply time
    return lambda: shim.arm(fault)
