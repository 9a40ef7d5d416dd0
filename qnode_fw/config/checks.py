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
from .node import InstrumentKind, LinkScheme, NodeConfig, Role, resource_problem
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
    if cfg.calibration is not None:
        for section in ("input_delays_ps", "crystal_temperature_c"):
            for name in getattr(cfg.calibration, section):
                if cfg.instrument(name) is None:
                    errors.append(doc.error(("calibration", section, name), f"calibration names "
                                            f"instrument {name!r}, which this node does not declare",
                                            expected=_names(cfg)))
    return errors


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
                for field, mine, theirs in (("fibre_km", link.fibre_km, back.fibre_km),
                                            ("scheme", link.scheme, back.scheme),
                                            ("station", link.station, back.station)):
                    same = (abs(mine - theirs) <= FIBRE_TOLERANCE_KM if field == "fibre_km"
                            else mine == theirs)
                    if not same:
                        errors.append(nd.error(("links", j, field), f"asymmetric link "
                                               f"{n.address}-{other.address}: {field} is "
                                               f"{_show(mine)} here but {_show(theirs)} at "
                                               f"{other.address}", expected="the same value at both ends"))
            if link.station is not None:
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


def _show(value: object) -> str:
    return value.value if hasattr(value, "value") else repr(value)
