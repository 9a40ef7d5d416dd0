"""From the testbed YAML to the typed description of every memory link and switched transceiver.

Both ends of a link describe it in their node files (``links:``); this module joins the two
entries into one :class:`LinkSpec` the runtime builds from: the timing layer's
:class:`~timing.schemes.LinkSchemeParams` (scheme, station, each end's fibre to the station,
attempt period, window, guard and herald delay), the simulated photonics
(:class:`~sim_backend.link_schemes.SimLinkPhysics`: the link's ``sim:`` over the experiment's
``physics:``), the time tagger of every heralding detector, the switch port in front of an
emitting end, and the communication qubits each end gives the link. A node's ``transceiver:``
becomes a :class:`TransceiverSpec`.

Rules (docs/links.md):

* **stations.** ``both_endpoints`` and ``midpoint_source`` links have their BSA or EPPS in the
  middle (each end's fibre to it is half the link's ``fibre_km``). An ``at_source`` link's
  station is its receiving end (:func:`~qnode_fw.config.checks.link_station`); the emitter's
  photon crosses the whole ``fibre_km``.
* **communication qubits.** A QNIC's communication qubits are split evenly, in the order the node
  lists its links, among the links that use the QNIC; the links a transceiver serves count as one
  and share its whole part (one photon leaves through the switch at a time).
* **herald delay.** ``attempts.herald_delay_ns`` when given (a BSA station then reads its tagger
  in every slot, exactly that long after the photons); otherwise a BSA reads every
  ``station_read_us`` and the link allows that plus ``decode_us``, and a transducer (which reads
  at each armed attempt) ``decode_us``.
* Only links whose two ends have QNICs are memory links (a photonic MEAS end measures at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config.checks import link_station
from ..config.node import InstrumentKind, LinkConfig, LinkScheme as ConfigScheme, NodeConfig
from ..config.testbed import TestbedConfig
from ..errors import ConfigError
from ..units import NS, US

if TYPE_CHECKING:
    from .memory_links import LinkPhysics


@dataclass(frozen=True)
class SwitchPort:
    """An optical switch port (node-local instrument name) in front of an emitting end."""

    instrument: str
    input: int
    output: int


@dataclass(frozen=True)
class LinkSpec:
    """One memory link as the runtime builds it."""

    name: str
    params: object                              # timing.schemes.LinkSchemeParams
    physics: object                             # sim_backend.link_schemes.SimLinkPhysics
    fidelity: float
    #: node -> the (node-local) time tagger of its heralding detector: the BSA station's, or
    #: each receiving end's transducer herald detector
    taggers: dict[str, str]
    #: emitting node -> the switch port its transceiver reaches this link through
    switches: dict[str, SwitchPort]
    #: node -> the communication qubits it gives this link
    shares: dict[str, tuple[int, ...]]
    #: the BSA station reads in every slot at exactly the herald delay (herald_delay_ns given)
    read_every_slot: bool = False

    @property
    def scheme(self) -> ConfigScheme:
        return ConfigScheme(self.params.scheme.value)   # type: ignore[attr-defined]

    @property
    def nodes(self) -> tuple[str, str]:
        return self.params.nodes                        # type: ignore[attr-defined]

    def grid(self) -> tuple[int, int]:
        """The link's common attempt grid ``(c, n)``: in every cycle of ``c`` slots (the longer
        busy time of the two ends) the first ``n`` (the fewer communication qubits)."""
        p = self.params
        cycle = max(p.slots_per_attempt(i) for i in (0, 1))   # type: ignore[attr-defined]
        share = min(len(self.shares[n]) for n in self.nodes)
        return cycle, min(share, cycle)


@dataclass(frozen=True)
class TransceiverSpec:
    """A node's transceiver behind an optical switch (``transceiver:`` in its node file)."""

    node: str
    switch: str                                 # node-local instrument name
    input: int
    policy: object                              # timing.switched.SwitchPolicy (of link names)
    #: link name -> switch output
    routes: dict[str, int]
    #: link name -> neighbour
    partners: dict[str, str]
    switching_time_ps: int
    #: the neighbour whose pairs the node moves into storage (buffered RuleSet), or None
    buffered: str | None = None
    qnic: int = 0
    qubits: tuple[int, ...] = field(default_factory=tuple)


def link_name(a: str, b: str) -> str:
    return f"{a}-{b}"


def is_memory_link(cfg: TestbedConfig, a: str, b: str) -> bool:
    """Both ends hold memories (a photonic MEAS node measures its photons at once)."""
    return bool(cfg.node(a).qnics) and bool(cfg.node(b).qnics)


def resolve_links(cfg: TestbedConfig, physics: "LinkPhysics", now_ps: int,
                  schemes: set[ConfigScheme] | None = None,
                  ) -> tuple[list[LinkSpec], dict[str, TransceiverSpec]]:
    """Every memory link of the testbed (of ``schemes``, default all) whose first attempt slot
    leaves every end time to act after ``now_ps``, and every node's transceiver."""
    from sim_backend.link_schemes import SimLinkPhysics
    from sim_backend.physics.detector import DetectorParams
    from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

    shares = qubit_shares(cfg)
    specs: list[LinkSpec] = []
    for a, b in cfg.quantum_links():
        if not is_memory_link(cfg, a, b):
            continue
        na, nb = cfg.node(a), cfg.node(b)
        la, lb = na.link_to(b), nb.link_to(a)
        if la is None or lb is None or (schemes is not None and la.scheme not in schemes):
            continue
        name = link_name(a, b)
        where = f"{a}.links[{b}]"
        station = link_station(cfg, na, la)
        if station is None:
            raise ConfigError(f"link {name} has no station", field=f"{where}.station",
                              expected="a BSA or EPPS node, or the receiving end of an at_source link")
        scheme = LinkScheme(la.scheme.value)
        half = 1.0 if scheme is LinkScheme.AT_SOURCE else 0.5
        ends = (LinkEndParams(a, la.qnic, la.fibre_km * half), LinkEndParams(b, lb.qnic, lb.fibre_km * half))
        at = la.attempts
        period = int(round(at.period_ns * NS))
        window = int(round(at.window_ns * NS))
        herald_delay = _herald_delay_ps(la, scheme is LinkScheme.BOTH_ENDPOINTS, physics)
        timing: dict = {"window_ps": window, "herald_delay_ps": herald_delay, "where": where}
        if at.guard_ns is not None:
            timing["guard_ps"] = int(round(at.guard_ns * NS))
        probe = LinkSchemeParams(name, scheme, station, ends, period_ps=period, **timing)
        # the first slot leaves time for every end's action (and both photons) after now
        lead = max(max(2 * probe.delay_ps(i), -probe.action_offset_ps(i)) for i in (0, 1))
        start = (-(-(now_ps + lead + period) // period)) * period
        params = LinkSchemeParams(name, scheme, station, ends, period_ps=period, start_ps=start,
                                  **timing)
        sim = _merged_sim(la, lb, physics, SimLinkPhysics, DetectorParams)
        taggers: dict[str, str] = {}
        if scheme is LinkScheme.BOTH_ENDPOINTS:
            taggers[station] = _only_instrument(cfg.node(station), InstrumentKind.TIME_TAGGER,
                                                f"link {name}", f"{station}.instruments")
        for i, (node, link) in enumerate(((na, la), (nb, lb))):
            if params.heralds_locally(i):
                taggers[node.address] = (link.herald_tagger or
                                         _only_instrument(node, InstrumentKind.TIME_TAGGER, f"link {name}",
                                                          f"{node.address}.links[{link.neighbour}].herald_tagger"))
        switches = {node.address: SwitchPort(link.switch.instrument, link.switch.input, link.switch.output)
                    for i, (node, link) in enumerate(((na, la), (nb, lb)))
                    if link.switch is not None and not params.heralds_locally(i)}
        specs.append(LinkSpec(name, params, sim, la.fidelity, taggers, switches,
                              {a: shares[(a, b)], b: shares[(b, a)]},
                              read_every_slot=at.herald_delay_ns is not None))
    return specs, transceivers(cfg, {s.name: s for s in specs})


def transceivers(cfg: TestbedConfig, specs: dict[str, LinkSpec]) -> dict[str, TransceiverSpec]:
    from timing.switched import SwitchPolicy, SwitchPolicyKind

    out: dict[str, TransceiverSpec] = {}
    for node in cfg.nodes:
        t = node.transceiver
        if t is None:
            continue
        names = [link_name(*sorted((node.address, nb))) for nb in t.order]
        missing = [n for n in names if n not in specs]
        if missing:
            continue        # not memory links of this run (another scheme, or no QNIC)
        links = [node.link_to(nb) for nb in t.order]
        switch = node.instrument(t.switch)
        if t.switching_time_us is not None:
            switching = int(round(t.switching_time_us * US))
        else:
            from sim_backend.physics.switch import SwitchParams

            switching = int(switch.options.get("switching_time_ps", SwitchParams().switching_time_ps))  # type: ignore[union-attr]
        policy = SwitchPolicy(tuple(names), SwitchPolicyKind(t.policy.value), t.dwell_attempts)
        first = links[0]
        out[node.address] = TransceiverSpec(
            node.address, t.switch, first.switch.input, policy,    # type: ignore[union-attr]
            {n: l.switch.output for n, l in zip(names, links)},    # type: ignore[union-attr]
            dict(zip(names, t.order)), switching, node.buffered_neighbour(), first.qnic,
            specs[names[0]].shares[node.address])
    return out


def qubit_shares(cfg: TestbedConfig) -> dict[tuple[str, str], tuple[int, ...]]:
    """(node, neighbour) -> the communication qubits of the link's QNIC that link may use."""
    shares: dict[tuple[str, str], tuple[int, ...]] = {}
    for node in cfg.nodes:
        served = set(node.transceiver.order) if node.transceiver is not None else set()
        # consumers per QNIC in link order; the transceiver's links are one consumer
        by_qnic: dict[int, list[tuple[str, ...]]] = {}
        for link in node.links:
            if not is_memory_link(cfg, node.address, link.neighbour):
                continue
            group = tuple(node.transceiver.order) if link.neighbour in served else (link.neighbour,)  # type: ignore[union-attr]
            if group not in by_qnic.setdefault(link.qnic, []):
                by_qnic[link.qnic].append(group)
        for qnic_addr, groups in by_qnic.items():
            comm = node.communication_qubits(qnic_addr)
            per = len(comm) // len(groups)
            if per == 0:
                raise ConfigError(f"QNIC {qnic_addr} of {node.address} has {len(comm)} "
                                  f"communication qubit(s) for {len(groups)} links",
                                  field=f"{node.address}.qnics[{qnic_addr}].communication_qubits",
                                  expected="at least one per link using the QNIC (or a "
                                           "transceiver: behind a switch)")
            for k, group in enumerate(groups):
                for nb in group:
                    shares[(node.address, nb)] = tuple(comm[k * per:(k + 1) * per])
    return shares


def _herald_delay_ps(link: LinkConfig, bsa: bool, physics: "LinkPhysics") -> int:
    if link.attempts.herald_delay_ns is not None:
        return int(round(link.attempts.herald_delay_ns * NS))
    if bsa:
        return int(round((physics.station_read_us + physics.decode_us) * US))
    return int(round(physics.decode_us * US))


def _merged_sim(la: LinkConfig, lb: LinkConfig, physics: "LinkPhysics", sim_cls, detector_cls):
    """The link's ``sim:`` (either end, or both alike) over the experiment's ``physics:``."""
    values = {"collection_efficiency": physics.collection_efficiency,
              "transfer_efficiency": physics.transfer_efficiency,
              "mean_pairs_per_attempt": physics.mean_pairs_per_attempt,
              "attenuation_db_per_km": physics.attenuation_db_per_km}
    det = physics.detector.model_dump()
    for link in (la, lb):
        if link.sim is None:
            continue
        values.update({k: v for k, v in link.sim.model_dump(exclude={"detector"}).items()
                       if v is not None})
        if link.sim.detector is not None:
            det.update(link.sim.detector.model_dump(exclude_none=True))
    detector = detector_cls(det["efficiency"], det["dark_count_rate_hz"],
                            int(round(det["dead_time_ns"] * NS)), det["jitter_fwhm_ps"])
    return sim_cls(detector=detector, link_fidelity=la.fidelity, **values)


def _only_instrument(node: NodeConfig, kind: InstrumentKind, what: str, field: str) -> str:
    names = [i.name for i in node.instruments if i.kind is kind]
    if len(names) != 1:
        raise ConfigError(f"{node.address} has {len(names)} {kind.value} instruments for {what}",
                          field=field, expected=f"exactly one {kind.value} (or herald_tagger naming "
                          "it, at a receiving end)")
    return names[0]


__all__ = ["LinkSpec", "SwitchPort", "TransceiverSpec", "is_memory_link", "link_name",
           "qubit_shares", "resolve_links", "transceivers"]
