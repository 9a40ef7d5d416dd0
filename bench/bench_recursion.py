"""QRNA recursion: what presenting a network as one virtual link costs, against the flat chain over
the same five nodes.

Recursive: A - X1 ~ X3 - B (sim_backend.chain_testbed.border_chain): network X1-X2-X3 behind
border routers X1 and X3, served as one virtual link; the outer setup waits at X1 for the inner
two-pass setup across the network, and the inner connection's pairs feed the outer RuleSets.
Baseline, same run, same links and nodes: the flat 5-node chain A-X1-X2-X3-B, one two-pass setup
and one RuleSet per node. Links: A-X1 and X3-B 2000 pairs/s at F = 0.96, inside the network
3000 pairs/s at F = 0.98; memories T2 = 1 s; the network promises F >= 0.9 (no inner
purification needed), so both deliver the same Werner closed form and differ in timing only.
Both hold the same qubits: one per link side (a border router's virtual side is the inner
connection's qubit), buffer-space multiplexing.

Figures (all on the virtual clock except the wall-clock speed):
* setup latency: request to established at the Initiator (virtual ms); the recursive setup adds
  the inner round trip X1 -> X3 -> X1 before the outer request goes on;
* delivered end-to-end pairs per simulated second, over a connection of a fixed duration;
* mean delivered fidelity, with the Werner closed form as a reference;
* simulated seconds per wall second of the whole assembly.
"""

from __future__ import annotations

import json
import sys
import time

from qnode_fw.benchmarks import Figure, Reference

OUTER = (2000.0, 0.96)
INNER = (3000.0, 0.98)
PROMISE = 0.9


def _closed_form() -> float:
    from qnode_fw.routing import werner_swap

    return werner_swap(werner_swap(OUTER[1], werner_swap(INNER[1], INNER[1])), OUTER[1])


def _testbed(recursive: bool):
    from sim_backend.chain_testbed import BORDER_CHAIN_INNER, LinkSpec, SimTestbed, border_chain

    outer, inner = LinkSpec(*OUTER), LinkSpec(*INNER)
    if not recursive:
        return SimTestbed({("A", "X1"): outer, ("X1", "X2"): inner, ("X2", "X3"): inner,
                           ("X3", "B"): outer})
    tb = border_chain(inner, outer, PROMISE)
    vl = tb.advertise(["X1", "X2", "X3"], PROMISE)
    tb.nodes["A"].manager.routes = tb.outer_routes("A", BORDER_CHAIN_INNER, vl)
    return tb


def measure(recursive: bool, sim_ms: int) -> dict:
    from qnode_fw.connection import QoS
    from qnode_fw.units import MS

    tb = _testbed(recursive)
    tb.start_links()
    established: list[int] = []
    start_ps = tb.loop.now_ps()
    tb.nodes["A"].manager.on_outcome.append(
        lambda o: established.append(tb.loop.now_ps()) if o.established else None)
    cid = tb.nodes["A"].manager.request("B", QoS(5, 0.8, duration_ps=sim_ms * MS))
    t0 = time.perf_counter()
    tb.run(sim_ms + 50)
    wall = time.perf_counter() - t0
    fids = tb.fidelities.get(cid, [])
    if not established or not fids:
        raise RuntimeError(f"{'recursive' if recursive else 'flat'} connection delivered nothing: "
                           f"{tb.nodes['A'].manager.outcomes.get(cid)}")
    return {"setup_ms": (established[0] - start_ps) / MS, "pairs": len(fids),
            "rate": len(fids) / (sim_ms / 1000), "fidelity": sum(fids) / len(fids),
            "sim_s": (sim_ms + 50) / 1000, "wall_s": wall,
            "path": list(tb.nodes["A"].manager.connections[cid].path)}


def run(quick: bool = False) -> list[Figure]:
    sim_ms = 200 if quick else 2000
    rec, flat = measure(True, sim_ms), measure(False, sim_ms)
    closed = Reference("werner_closed_form", round(_closed_form(), 6),
                       "Werner swap over the four links, no memory decay")
    where = (f"A-X1~X3-B (network X1-X2-X3 as one virtual link) vs flat A-X1-X2-X3-B; links "
             f"{OUTER[0]:g}/s F={OUTER[1]} outside, {INNER[0]:g}/s F={INNER[1]} inside")
    return [
        Figure("recursion_setup_latency", round(rec["setup_ms"], 3), "virtual ms",
               "flat_chain_setup_latency", round(flat["setup_ms"], 3),
               f"{where}; control delay 20 us per message"),
        Figure("recursion_delivered_rate", round(rec["rate"], 1), "pairs/s (virtual)",
               "flat_chain_delivered_rate", round(flat["rate"], 1),
               f"{where}; {rec['pairs']} and {flat['pairs']} pairs in {sim_ms} ms"),
        Figure("recursion_delivered_fidelity", round(rec["fidelity"], 5), "fidelity",
               "flat_chain_delivered_fidelity", round(flat["fidelity"], 5),
               f"{where}; mean over delivered pairs (T2 = 1 s)", (closed,)),
        Figure("recursion_sim_speed", round(rec["sim_s"] / rec["wall_s"], 3), "sim s / wall s",
               "flat_chain_sim_speed", round(flat["sim_s"] / flat["wall_s"], 3),
               f"{where}; whole assembly on one virtual-clock loop"),
    ]


if __name__ == "__main__":
    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
