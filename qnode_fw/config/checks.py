"""Checks that need more than one field: within a node file, and across the files of a testbed.

The pydantic models check each value on its own (types, ranges, patterns). What is left is
here: references (a link's QNIC, a QNIC's instrument, a link's station and neighbour), uniqueness
(addresses, endpoints), symmetry (both ends of a link declare it alike) and each instrument's
resource against the transport of its driver. Every error points at the exact field.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .node import (InstrumentKind, LinkConfig, LinkScheme, NodeConfig, QnicKind, Role,
                   resource_problem)
from .source import Document

if TYPE_CHECKING:
    from .testbed import TestbedConfig

#: Fibre lengths the two ends give for one link may differ by this much (rounding in a file).
FIBRE_TOLERANCE_KM = 1e-6


def check_node(doc: Document, cfg: NodeConfig) -> list[ConfigError]:
    errors: list[ConfigError] = []
    seen_qnic: dict[int, int] = {}
    for i, q in enumerate(cfg.qnics):
        if q.address in seen_qnic:
            errors.append(doc.error(("qnics", i, "address"), f"QNIC address {q.address} is declared "
                                    f"twice (also qnics[{seen_qnic[q.address]}])",
                                    expected="a unique QNIC address per node"))
        seen_qnic.setdefault(q.address, i)
        for j, idx in enumerate(q.communication_qubits or []):
            if not 0 <= idx < q.qubits:
                errors.append(doc.error(("qnics", i, "communication_qubits", j),
                                        f"qubit index {idx} is out of range for QNIC {q.address} "
                                        f"with {q.qubits} qubits",
                                        expected=f"an index in 0..{q.qubits - 1}"))
        if q.instrument is not None:
            inst = cfg.instrument(q.instrument)
            if inst is None:
                errors.append(doc.error(("qnics", i, "instrument"), f"instrument {q.instrument!r} "
                                        "is not declared in instruments", expected=_names(cfg)))
            elif inst.kind is not InstrumentKind.QNIC:
                errors.append(doc.error(("qnics", i, "instrument"), f"instrument {q.instrument!r} "
                                        f"is a {inst.kind.value}, not a qnic", expected="a qnic instrument"))
    seen_inst: dict[str, int] = {}
    for i, inst in enumerate(cfg.instruments):
        if inst.name in seen_inst:
            errors.append(doc.error(("instruments", i, "name"), f"instrument name {inst.name!r} is "
                                    f"used twice (also instruments[{seen_inst[inst.name]}])",
                                    expected="a unique name per node"))
        seen_inst.setdefault(inst.name, i)
        errors.extend(_check_instrument(doc, i, inst.kind.value, inst.model, inst.resource))
    # A MEAS node without QNICs measures its photons directly (analysers and detectors, no
    # memory): its links name no QNIC of its own.
    photonic_meas = cfg.role is Role.MEAS and not cfg.qnics
    for i, link in enumerate(cfg.links):
        if cfg.qnic(link.qnic) is None and not cfg.role.is_station and not photonic_meas:
            declared = ", ".join(str(q.address) for q in cfg.qnics) or "none declared"
            errors.append(doc.error(("links", i, "qnic"), f"QNIC {link.qnic} is referenced but not "
                                    "declared in qnics", expected=f"a declared QNIC address ({declared})"))
        if link.neighbour == cfg.address:
            errors.append(doc.error(("links", i, "neighbour"), "a node cannot link to itself",
                                    expected="another node's address"))
        if link.scheme is not LinkScheme.AT_SOURCE and link.station is None:
            station = "BSA" if link.scheme is LinkScheme.BOTH_ENDPOINTS else "EPPS"
            errors.append(doc.error(("links", i, "station"), f"a {link.scheme.value} link needs "
                                    f"its {station} station", expected=f"the {station} node's address"))
        errors.extend(_check_link_parts(doc, cfg, i, link))
    errors.extend(_check_transceiver(doc, cfg))
    if cfg.calibration is not None:
        for section in ("input_delays_ps", "crystal_temperature_c"):
            for name in getattr(cfg.calibration, section):
                if cfg.instrument(name) is None:
                    errors.append(doc.error(("calibration", section, name), f"calibration names "
                                            f"instrument {name!r}, which this node does not declare",
                                            expected=_names(cfg)))
    return errors


def _check_link_parts(doc: Document, cfg: NodeConfig, i: int, link: LinkConfig) -> list[ConfigError]:
    """One link's herald timing, switch port and herald tagger, within its node file."""
    errors: list[ConfigError] = []
    at = link.attempts
    if at.guard_ns is not None and at.guard_ns < at.window_ns:
        errors.append(doc.error(("links", i, "attempts", "guard_ns"), f"guard {at.guard_ns} ns is "
                                f"shorter than the detection window {at.window_ns} ns",
                                expected=f"at least the window ({at.window_ns} ns)"))
    if at.herald_delay_ns is not None and at.herald_delay_ns <= at.window_ns / 2:
        errors.append(doc.error(("links", i, "attempts", "herald_delay_ns"), f"herald delay "
                                f"{at.herald_delay_ns} ns does not exceed half the window: the "
                                "window has to close before the herald leaves",
                                expected=f"more than {at.window_ns / 2} ns"))
    if link.switch is not None:
        inst = cfg.instrument(link.switch.instrument)
        if inst is None:
            errors.append(doc.error(("links", i, "switch", "instrument"), f"switch "
                                    f"{link.switch.instrument!r} is not declared in instruments",
                                    expected=_names(cfg)))
        elif inst.kind is not InstrumentKind.OPTICAL_SWITCH:
            errors.append(doc.error(("links", i, "switch", "instrument"), f"instrument "
                                    f"{link.switch.instrument!r} is a {inst.kind.value}, not an "
                                    "optical_switch", expected="an optical_switch instrument"))
        else:
            size = _switch_size(inst)
            for port, n in (("input", size[0]), ("output", size[1])):
                value = getattr(link.switch, port)
                if n is not None and value > n:
                    errors.append(doc.error(("links", i, "switch", port), f"{port} {value} is beyond "
                                            f"the {n} {port}s of switch {inst.name}",
                                            expected=f"a port in 1..{n}"))
        if link.scheme is LinkScheme.MIDPOINT_SOURCE:
            errors.append(doc.error(("links", i, "switch"), "a receiving end behind an optical "
                                    "switch is not modelled (midpoint_source ends absorb)",
                                    expected="no switch: on a midpoint_source link"))
    if link.herald_tagger is not None:
        inst = cfg.instrument(link.herald_tagger)
        if inst is None or inst.kind is not InstrumentKind.TIME_TAGGER:
            what = "is not declared in instruments" if inst is None else f"is a {inst.kind.value}"
            errors.append(doc.error(("links", i, "herald_tagger"), f"herald tagger "
                                    f"{link.herald_tagger!r} {what}", expected="a time_tagger instrument"))
    return errors


def _switch_size(inst) -> tuple[int | None, int | None]:
    """(inputs, outputs) of a simulated switch from its options (the simulator's defaults, 1x4,
    when unset); unknown for a real switch until it is opened."""
    if not inst.simulated:
        return None, None
    return int(inst.options.get("num_inputs", 1)), int(inst.options.get("num_outputs", 4))


def _check_transceiver(doc: Document, cfg: NodeConfig) -> list[ConfigError]:
    """The transceiver block against the switch and the links it serves; links sharing a switch
    input without a transceiver to say how."""
    errors: list[ConfigError] = []
    t = cfg.transceiver
    served: set[str] = set()
    if t is not None:
        inst = cfg.instrument(t.switch)
        if inst is None or inst.kind is not InstrumentKind.OPTICAL_SWITCH:
            what = "is not declared in instruments" if inst is None else f"is a {inst.kind.value}"
            errors.append(doc.error(("transceiver", "switch"), f"switch {t.switch!r} {what}",
                                    expected="an optical_switch instrument of this node"))
        elif t.switching_time_us is None and not inst.simulated:
            errors.append(doc.error(("transceiver", "switching_time_us"), f"switch {t.switch} is a "
                                    "real instrument: its switching time must be given",
                                    expected="the datasheet switching time in us"))
        elif t.switching_time_us is not None and inst.simulated and "switching_time_ps" in inst.options:
            own = float(inst.options["switching_time_ps"]) / 1e6
            if t.switching_time_us < own:
                errors.append(doc.error(("transceiver", "switching_time_us"), f"{t.switching_time_us} "
                                        f"us is shorter than switch {t.switch}'s own switching time "
                                        f"({own} us): photons would meet a moving switch",
                                        expected=f"at least {own} us"))
        inputs, outputs, qnics = set(), {}, set()
        for k, nb in enumerate(t.order):
            link = cfg.link_to(nb)
            if nb in served:
                errors.append(doc.error(("transceiver", "order", k), f"link to {nb} is listed twice",
                                        expected="each link once"))
                continue
            served.add(nb)
            if link is None:
                errors.append(doc.error(("transceiver", "order", k), f"no link to {nb!r}",
                                        expected="one of " + (", ".join(l.neighbour for l in cfg.links)
                                                              or "this node's links")))
                continue
            j = cfg.links.index(link)
            if link.switch is None or link.switch.instrument != t.switch:
                errors.append(doc.error(("links", j, "switch"), f"link to {nb} is served by the "
                                        f"transceiver behind switch {t.switch} but names no port "
                                        "of it", expected=f"switch: {{instrument: {t.switch}, "
                                        "input: N, output: M}"))
                continue
            inputs.add(link.switch.input)
            if link.switch.output in outputs:
                errors.append(doc.error(("links", j, "switch", "output"), f"output "
                                        f"{link.switch.output} also serves the link to "
                                        f"{outputs[link.switch.output]}", expected="one output per link"))
            outputs.setdefault(link.switch.output, nb)
            qnics.add(link.qnic)
        if len(inputs) > 1:
            errors.append(doc.error(("transceiver", "order"), f"the transceiver's links use inputs "
                                    f"{sorted(inputs)} of switch {t.switch}",
                                    expected="one input: the transceiver's fibre"))
        if len(qnics) > 1:
            errors.append(doc.error(("transceiver", "order"), f"the transceiver's links use QNICs "
                                    f"{sorted(qnics)}", expected="one QNIC: the transceiver's qubits"))
        if len(qnics) == 1 and cfg.buffered_neighbour() is not None:
            (address,) = qnics
            q = cfg.qnic(address)
            comm = cfg.communication_qubits(address)
            if q is not None and q.qubits <= len(comm):
                errors.append(doc.error(("transceiver", "order"), f"QNIC {address} has "
                                        f"{len(comm)} communication qubit(s) for {len(t.order)} "
                                        "links and no storage qubit to move a pair into",
                                        expected="a storage qubit (qubits beyond communication_qubits)"))
    # links that share a switch input without a transceiver to share it
    owners: dict[tuple[str, int], int] = {}
    for j, link in enumerate(cfg.links):
        if link.switch is None or link.neighbour in served:
            continue
        key = (link.switch.instrument, link.switch.input)
        if key in owners:
            errors.append(doc.error(("links", j, "switch"), f"input {key[1]} of switch {key[0]} "
                                    f"also serves the link to {cfg.links[owners[key]].neighbour}, "
                                    "and no transceiver: block says how they share it",
                                    expected="a transceiver: block ordering these links"))
        owners.setdefault(key, j)
        if t is not None and key[0] == t.switch:
            errors.append(doc.error(("links", j, "switch"), f"link to {link.neighbour} uses switch "
                                    f"{t.switch}, but the transceiver's order does not list it",
                                    expected=f"{link.neighbour} in transceiver.order"))
    return errors


def link_station(cfg: "TestbedConfig", node: NodeConfig, link: LinkConfig) -> str | None:
    """The station of ``node``'s ``link``: the BSA or EPPS as written, or for ``at_source`` the
    receiving end: as written, else the end whose link QNIC has kind ``receiver`` (None when
    that does not decide it)."""
    if link.scheme is not LinkScheme.AT_SOURCE or link.station is not None:
        return link.station
    try:
        other = cfg.node(link.neighbour)
    except KeyError:
        return None
    back = other.link_to(node.address)
    if back is None:
        return None
    if back.station is not None:
        return back.station
    receiving = [n.address for n, l in ((node, link), (other, back))
                 if (q := n.qnic(l.qnic)) is not None and q.kind is QnicKind.RECEIVER]
    return receiving[0] if len(receiving) == 1 else None


#: The QNIC kinds that can serve each end's role (QuISP's E, R, RP).
_EMITS = {QnicKind.EMITTER}
_ABSORBS = {QnicKind.RECEIVER, QnicKind.PASSIVE_RECEIVER}


def _check_link_ends(nd: Document, j: int, n: NodeConfig, link: LinkConfig, other: NodeConfig,
                     back: LinkConfig, station: str | None, node_docs: dict[str, Document],
                     tb: "TestbedConfig") -> list[ConfigError]:
    """Scheme-specific checks of one link end (reported from the lower address's file, once)."""
    errors: list[ConfigError] = []
    if link.scheme is LinkScheme.AT_SOURCE:
        ends = (n.address, other.address)
        if station is None:
            kinds = {a: (q.kind.value if (q := x.qnic(l.qnic)) is not None else "none")
                     for a, x, l in ((n.address, n, link), (other.address, other, back))}
            errors.append(nd.error(("links", j, "station"), f"at_source link {n.address}-"
                                   f"{other.address}: cannot tell which end receives (QNIC kinds "
                                   f"{kinds})", expected="station: the receiving end, or exactly "
                                   "one end's link QNIC of kind receiver"))
            return errors
        if station not in ends:
            errors.append(nd.error(("links", j, "station"), f"an at_source link is heralded by its "
                                   f"receiving end: station {station!r} is not {ends[0]} or {ends[1]}",
                                   expected=f"{ends[0]} or {ends[1]}"))
            return errors
    for x, l in ((n, link), (other, back)):
        if not x.qnics:
            continue               # a photonic MEAS node: no memory, nothing to emit or absorb
        xd = node_docs[x.address]
        k = x.links.index(l)
        q = x.qnic(l.qnic)
        if q is None:
            continue               # reported by check_node
        absorbs = (link.scheme is LinkScheme.MIDPOINT_SOURCE
                   or (link.scheme is LinkScheme.AT_SOURCE and x.address == station))
        allowed = _ABSORBS if absorbs else _EMITS
        if q.kind not in allowed:
            role = "absorbs" if absorbs else "emits"
            errors.append(xd.error(("links", k, "qnic"), f"{x.address} {role} on its "
                                   f"{link.scheme.value} link to {l.neighbour}, but QNIC {q.address} "
                                   f"has kind {q.kind.value}", expected="a QNIC of kind "
                                   + " or ".join(sorted(a.value for a in allowed))))
        if absorbs and l.switch is not None and link.scheme is LinkScheme.AT_SOURCE:
            errors.append(xd.error(("links", k, "switch"), "a receiving end behind an optical "
                                   "switch is not modelled (the at_source receiver absorbs)",
                                   expected="no switch: at the receiving end"))
        if absorbs:
            errors.extend(_herald_tagger_problem(xd, k, x, l, tb))
    return errors


def _herald_tagger_problem(doc: Document, k: int, node: NodeConfig, link: LinkConfig,
                           tb: "TestbedConfig") -> list[ConfigError]:
    """A receiving end reads its own herald detector: one time tagger per receiving link."""
    if link.herald_tagger is not None:
        mine = link.herald_tagger
    else:
        taggers = [i.name for i in node.instruments if i.kind is InstrumentKind.TIME_TAGGER]
        if len(taggers) != 1:
            what = "no time tagger" if not taggers else f"time taggers {taggers}"
            return [doc.error(("links", k, "herald_tagger"), f"{node.address} absorbs on its "
                              f"{link.scheme.value} link to {link.neighbour} and has {what}",
                              expected="herald_tagger: the tagger of this link's herald detector")]
        mine = taggers[0]
    for other in node.links:
        if other is link or other.neighbour == link.neighbour:
            continue
        theirs = other.herald_tagger
        if theirs is None:
            taggers = [i.name for i in node.instruments if i.kind is InstrumentKind.TIME_TAGGER]
            theirs = taggers[0] if len(taggers) == 1 else None
        absorbs_too = other.scheme is LinkScheme.MIDPOINT_SOURCE or (
            other.scheme is LinkScheme.AT_SOURCE and link_station(tb, node, other) == node.address)
        if absorbs_too and theirs == mine:
            return [doc.error(("links", k, "herald_tagger"), f"tagger {mine} also reads the herald "
                              f"detector of the link to {other.neighbour}",
                              expected="a time tagger per receiving link")]
    return []


def _names(cfg: NodeConfig) -> str:
    return "one of " + ", ".join(i.name for i in cfg.instruments) if cfg.instruments else "none declared"


def _check_instrument(doc: Document, i: int, kind: str, model: str, resource: str) -> list[ConfigError]:
    if model == "sim":
        return []
    from drivers.registry import driver_for   # the driver list is only needed for real models

    try:
        info = driver_for(kind, model)
    except ConfigError as exc:
        return [doc.error(("instruments", i, "model"), exc.message, expected=exc.expected)]
    if resource == "sim":
        return [doc.error(("instruments", i, "resource"), f"model {model!r} is a real driver and "
                          "needs a resource", expected=f"a {info.transport} resource, or model: sim")]
    problem = resource_problem(info.transport, resource)
    if problem is not None:
        return [doc.error(("instruments", i, "resource"), f"malformed {info.transport} resource "
                          f"{resource!r} for driver {model}", expected=problem)]
    return []


def check_testbed(doc: Document, node_docs: list[Document], tb: "TestbedConfig",
                  base: Path) -> list[ConfigError]:
    errors: list[ConfigError] = []
    by_address: dict[str, int] = {}
    endpoints: dict[str, tuple[int, tuple]] = {}
    for i, (nd, n) in enumerate(zip(node_docs, tb.nodes)):
        if n.address in by_address:
            errors.append(nd.error(("address",), f"duplicate node address {n.address!r} "
                                   f"(also nodes[{by_address[n.address]}], {node_docs[by_address[n.address]].file})",
                                   expected="a unique address per node"))
        by_address.setdefault(n.address, i)
        owned = [(n.control.endpoint, ("control", "endpoint"))]
        owned += [(l.herald_endpoint, ("links", j, "herald_endpoint"))
                  for j, l in enumerate(n.links) if l.herald_endpoint]
        for ep, field in owned:
            if not ep.startswith("tcp://"):
                continue
            if ep in endpoints and endpoints[ep][0] != i:
                other = tb.nodes[endpoints[ep][0]].address
                errors.append(nd.error(field, f"endpoint {ep} is already used by node {other}",
                                       expected="a host:port no other node or link binds"))
            endpoints.setdefault(ep, (i, field))
    nodes = {n.address: n for n in tb.nodes}
    for i, (nd, n) in enumerate(zip(node_docs, tb.nodes)):
        for j, link in enumerate(n.links):
            other = nodes.get(link.neighbour)
            if other is None:
                errors.append(nd.error(("links", j, "neighbour"), f"link to unknown node "
                                       f"{link.neighbour!r}", expected="one of " + ", ".join(nodes)))
                continue
            back = other.link_to(n.address)
            if back is None:
                errors.append(nd.error(("links", j, "neighbour"), f"asymmetric link: {n.address} "
                                       f"links to {link.neighbour}, but {link.neighbour} has no link "
                                       f"back to {n.address}", expected=f"a matching link in "
                                       f"{node_docs[by_address[other.address]].file}"))
                continue
            if n.address < other.address:     # report each mismatch once
                pairs = [(("fibre_km",), link.fibre_km, back.fibre_km),
                         (("scheme",), link.scheme, back.scheme),
                         (("station",), link.station, back.station),
                         (("fidelity",), link.fidelity, back.fidelity)]
                pairs += [(("attempts", f), getattr(link.attempts, f), getattr(back.attempts, f))
                          for f in type(link.attempts).model_fields]
                pairs += _sim_pairs(link, back)
                for field, mine, theirs in pairs:
                    same = (abs(mine - theirs) <= FIBRE_TOLERANCE_KM if field == ("fibre_km",)
                            else mine == theirs)
                    if not same:
                        name = ".".join(field)
                        errors.append(nd.error(("links", j) + field, f"asymmetric link "
                                               f"{n.address}-{other.address}: {name} is "
                                               f"{_show(mine)} here but {_show(theirs)} at "
                                               f"{other.address}", expected="the same value at both ends"))
                if link.scheme == back.scheme and link.station == back.station:
                    errors.extend(_check_link_ends(nd, j, n, link, other, back,
                                                   link_station(tb, n, link),
                                                   dict(zip((x.address for x in tb.nodes), node_docs)), tb))
            if link.station is not None and link.scheme is not LinkScheme.AT_SOURCE:
                station = nodes.get(link.station)
                want = Role.BSA if link.scheme is LinkScheme.BOTH_ENDPOINTS else Role.EPPS
                if station is None:
                    errors.append(nd.error(("links", j, "station"), f"station {link.station!r} is "
                                           "not a node of this testbed", expected=f"a {want.value} node"))
                elif station.role is not want:
                    errors.append(nd.error(("links", j, "station"), f"station {link.station!r} has "
                                           f"role {station.role.value}", expected=f"a {want.value} "
                                           f"node for a {link.scheme.value} link"))
    if tb.topology is not None:
        declared = {tuple(sorted(p)) for p in tb.quantum_links()}
        for k, (a, b) in enumerate(tb.topology):
            for end in (a, b):
                if end not in nodes:
                    errors.append(doc.error(("topology", k), f"topology names unknown node {end!r}",
                                            expected="one of " + ", ".join(nodes)))
            if a in nodes and b in nodes and tuple(sorted((a, b))) not in declared:
                errors.append(doc.error(("topology", k), f"topology lists {a}-{b} but neither node "
                                        "file declares that link", expected="a link in both node files"))
        listed = {tuple(sorted(p)) for p in tb.topology}
        for a, b in declared - listed:
            errors.append(doc.error(("topology",), f"link {a}-{b} is declared by the nodes but missing "
                                    "from topology", expected="every link listed"))
    if tb.keys_dir is not None:
        keys = base / tb.keys_dir
        if not keys.is_dir():
            errors.append(doc.error(("keys_dir",), f"keys directory {tb.keys_dir} not found "
                                    f"(looked in {keys})", expected="a directory made by "
                                    "qnode keys generate"))
        else:
            for i, (nd, n) in enumerate(zip(node_docs, tb.nodes)):
                if not (keys / f"{n.address}.key").is_file():
                    errors.append(doc.error(("keys_dir",), f"no public key {n.address}.key in "
                                            f"{tb.keys_dir}", expected="a key per node "
                                            "(qnode keys generate DIR --testbed FILE)"))
    return errors


def _sim_pairs(link: LinkConfig, back: LinkConfig) -> list[tuple[tuple[str, ...], object, object]]:
    """Simulated-photonics fields written at both ends (either end may write one alone)."""
    out: list[tuple[tuple[str, ...], object, object]] = []
    if link.sim is None or back.sim is None:
        return out
    for f in type(link.sim).model_fields:
        if f == "detector":
            continue
        mine, theirs = getattr(link.sim, f), getattr(back.sim, f)
        if mine is not None and theirs is not None:
            out.append((("sim", f), mine, theirs))
    if link.sim.detector is not None and back.sim.detector is not None:
        for f in type(link.sim.detector).model_fields:
            mine, theirs = getattr(link.sim.detector, f), getattr(back.sim.detector, f)
            if mine is not None and theirs is not None:
                out.append((("sim", "detector", f), mine, theirs))
    return out


def _show(value: object) -> str:
    return value.value if hasattr(value, "value") else repr(value)
