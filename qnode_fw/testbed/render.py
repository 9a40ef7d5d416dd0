"""The topology and per-node status of a testbed as text, for people at a terminal."""

from __future__ import annotations

from ..config.testbed import TestbedConfig
from ..node import NodeStatus
from ..units import fibre_delay_ps


def topology_lines(tb: TestbedConfig) -> list[str]:
    """One line per node (role, QNICs, instruments) and one per quantum link."""
    lines = [f"testbed {tb.name}: {len(tb.nodes)} nodes, {len(tb.quantum_links())} quantum links"]
    for n in tb.nodes:
        qnics = ", ".join(f"QNIC {q.address} ({q.kind.value}, {q.qubits} qubits)" for q in n.qnics)
        insts = ", ".join(f"{i.name}={i.kind.value}:{i.model}" for i in n.instruments)
        lines.append(f"  {n.address:<10} {n.role.value:<5} {qnics or 'no QNIC'}"
                     + (f"; {insts}" if insts else ""))
    for a, b in tb.quantum_links():
        link = tb.node(a).link_to(b)
        assert link is not None
        via = f" via {link.station}" if link.station else ""
        lines.append(f"  {a} <-> {b}: {link.fibre_km:g} km{via}, {link.scheme.value}, "
                     f"fibre delay {fibre_delay_ps(link.fibre_km) / 1e6:.1f} us")
    return lines


def status_lines(statuses: dict[str, NodeStatus]) -> list[str]:
    lines = [f"  {'node':<10} {'role':<5} {'peers up':>9} {'qubits held':>12} {'rulesets':>9}  components"]
    for address, st in statuses.items():
        up = sum(1 for ok, _ in st.peers.values() if ok)
        lines.append(f"  {address:<10} {st.role:<5} {up:>4}/{len(st.peers):<4} "
                     f"{st.qubits_held:>5}/{st.qubits_total:<6} {st.connections:>9}  "
                     f"{','.join(st.running)}")
        for peer, (ok, reason) in st.peers.items():
            if not ok:
                lines.append(f"  {'':<10} peer {peer} down: {reason}")
    return lines
