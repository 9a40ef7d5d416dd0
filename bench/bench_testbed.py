"""Simulated testbed: simulated seconds per wall second, events per second and peak memory for
repeater chains of 2, 4, 8, 16, 32 and 64 nodes, and how the cost grows with N.

Each chain is sim_backend.chain_testbed's assembly, the one the connection tests use: every node
with its control link (in-process, heartbeats every 10 ms to every other node), SimQNIC over the
shared exact quantum registry, RuleSet executor and ConnectionManager, all on one virtual-clock
EventLoop; links herald Werner pairs (F = 0.999) at 2000 pairs/s each. One end-to-end
connection (first node to last, >= 0.6 fidelity, running for the whole run) is set up by the
two-pass QRNA setup and then swaps pairs along the chain.

Every chain size runs in a fresh interpreter so its peak memory is its own (VmHWM of the child).
Baselines, same child, same run:
* speed: the bare EventLoop firing only the chain's link schedule (N - 1 no-op timers at the
  link rate): what a simulated second would cost if protocol and physics were free; the
  reference is real time (1 sim s per wall s), the pace a wall-clock testbed must keep;
* events per second: the bare EventLoop firing as many no-op timer events per simulated second
  as the testbed did, from N self-rescheduling timers (the loop's own cost per event);
* memory: the child's resident set after its imports, before the testbed is built.
The growth fit is a least-squares line through log(wall s per simulated s) against log N; its
baseline is the same fit of events per simulated second, so a ratio near 1 says the cost per
event is flat and the growth is the number of events.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from qnode_fw.benchmarks import Figure, Reference

SIZES = (2, 4, 8, 16, 32, 64)
QUICK_SIZES = (2, 4, 8)
LINK_RATE = 2000.0
LINK_FIDELITY = 0.999


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


REAL_TIME = Reference("real_time", 1.0, "a wall-clock testbed runs 1 simulated s per wall s")


def _bare_loop_wall_s(timers: int, period: int, sim_ps: int) -> float:
    """Wall time for the bare loop to run ``timers`` no-op timers of ``period`` over ``sim_ps``."""
    from qnode_fw.clock import VirtualClock
    from qnode_fw.loop import EventLoop

    loop = EventLoop(VirtualClock())

    def tick() -> None:
        loop.call_later(period, tick)

    for i in range(timers):
        loop.call_at(1 + i * period // timers, tick)
    t0 = time.perf_counter()
    loop.run_until(sim_ps)
    wall = time.perf_counter() - t0
    loop.close()
    return wall


def measure_chain(n: int, sim_ms: int) -> dict:
    """Run one chain in this process (the child); the numbers as a dict."""
    from qnode_fw.connection import QoS
    from qnode_fw.units import MS, S
    from sim_backend.chain_testbed import chain, chain_names

    rss_before = _status_kb("VmRSS")
    t_build = time.perf_counter()
    tb = chain(n, rate=LINK_RATE, fidelity=LINK_FIDELITY)
    names = chain_names(n)
    tb.start_links()
    cid = tb.nodes[names[0]].manager.request(names[-1], QoS(10, 0.6, duration_ps=1000 * S))
    build_s = time.perf_counter() - t_build
    e0 = tb.loop.events_processed
    t0 = time.perf_counter()
    tb.run(sim_ms)
    wall = time.perf_counter() - t0
    events = tb.loop.events_processed - e0
    peak = _status_kb("VmHWM")
    heartbeats = sum(s.link.stats.heartbeats_in for s in tb.nodes.values())
    swaps_messages = sum(s.executor.stats["messages_in"] for s in tb.nodes.values())
    delivered = len(tb.fidelities.get(cid, []))
    established = tb.nodes[names[0]].manager.connections.get(cid) is not None
    sim_ps = sim_ms * MS
    bare_wall = _bare_loop_wall_s(n, max(1, n * sim_ps // max(1, events)), sim_ps)
    schedule_wall = _bare_loop_wall_s(n - 1, int(S / LINK_RATE), sim_ps)
    return {"n": n, "sim_s": sim_ms / 1000, "wall_s": wall, "build_s": build_s, "events": events,
            "rss_before_kb": rss_before, "peak_rss_kb": peak, "heartbeats": heartbeats,
            "ruleset_messages": swaps_messages, "pairs_delivered": delivered,
            "established": established, "bare_wall_s": bare_wall,
            "schedule_wall_s": schedule_wall}


def _run_child(n: int, sim_ms: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(n), str(sim_ms)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"chain of {n} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _slope(n: list[int], y: list[float]) -> float:
    return float(np.polyfit(np.log(n), np.log(y), 1)[0])


def run(quick: bool = False) -> list[Figure]:
    sizes = QUICK_SIZES if quick else SIZES
    sim_ms = 50 if quick else 500
    results = [_run_child(n, sim_ms) for n in sizes]
    figures = []
    for r in results:
        n, sim_s, wall = r["n"], r["sim_s"], r["wall_s"]
        speed, schedule_speed = sim_s / wall, sim_s / r["schedule_wall_s"]
        ev_rate, bare_ev_rate = r["events"] / wall, r["events"] / r["bare_wall_s"]
        hb_share = r["heartbeats"] / r["events"] if r["events"] else 0.0
        what = (f"{n}-node chain, {sim_s * 1000:.0f} ms simulated, {r['events']} events "
                f"({hb_share:.0%} heartbeat deliveries), {r['pairs_delivered']} end-to-end pairs "
                f"delivered, connection {'established' if r['established'] else 'NOT established'}")
        figures.append(Figure(f"testbed_chain{n}_sim_speed", round(speed, 4), "sim s / wall s",
                              "bare_event_loop_link_schedule_only", round(schedule_speed, 3), what,
                              (REAL_TIME,)))
        figures.append(Figure(f"testbed_chain{n}_events_per_s", round(ev_rate), "events/s",
                              "bare_event_loop_same_event_count", round(bare_ev_rate),
                              f"{n}-node chain; build {r['build_s'] * 1000:.0f} ms, not timed"))
        figures.append(Figure(f"testbed_chain{n}_peak_rss", round(r["peak_rss_kb"] / 1024, 1), "MB",
                              "rss_after_imports", round(r["rss_before_kb"] / 1024, 1),
                              f"{n}-node chain: VmHWM of a fresh interpreter that ran it"))
    ns = [r["n"] for r in results]
    cost = [r["wall_s"] / r["sim_s"] for r in results]
    ev_per_sim = [r["events"] / r["sim_s"] for r in results]
    b_cost, b_events = _slope(ns, cost), _slope(ns, ev_per_sim)
    c2, c1, c0 = np.polyfit(ns, cost, 2)
    per_event_us = [1e6 * r["wall_s"] / r["events"] for r in results]
    figures.append(Figure(
        "testbed_cost_growth_exponent", round(b_cost, 3), "d log(wall s per sim s) / d log N",
        "testbed_event_growth_exponent", round(b_events, 3),
        f"fit over N = {', '.join(map(str, ns))}; quadratic fit wall s per sim s = "
        f"{c0:.3g} + {c1:.3g} N + {c2:.3g} N^2; wall per event {per_event_us[0]:.1f} us at "
        f"N={ns[0]}, {per_event_us[-1]:.1f} us at N={ns[-1]}"))
    return figures


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        print(json.dumps(measure_chain(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        for fig in run(quick="--quick" in sys.argv):
            print(json.dumps(fig.to_json()))
