"""Simulated-backend speed: SPDC tags generated per second, and simulated seconds per wall second
for a 3-node memory chain.

* SPDC link: a pulsed source (80 MHz, μ = 0.05) into two fibre arms and SNSPDs, read by the
  simulated tagger in 10 ms reads. Baseline, same run: plain numpy producing the same number of
  sorted int64 tag times (uniform draws + sort), the floor cost of any sorted tag stream.
* Memory chain A — B — C: two heralded links (2 km to each BSA), attempts every 20 µs on both
  links from SimQNIC.emit on the event loop, the BSA tag streams decoded by the timing layer's
  HeraldDetector every 1 ms, and an entanglement swap with gates and measurements at B whenever
  both links hold a pair. Baseline, same run: the same attempt schedule on the bare EventLoop with
  no physics (the loop's own cost per simulated second).
"""

from __future__ import annotations

import time

import numpy as np

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.bell import BellState
from qnode_fw.benchmarks import Figure
from qnode_fw.clock import VirtualClock
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, NS, US
from sim_backend.memory_link import LinkEnd, MemoryLink
from sim_backend.physics.fibre import Fibre
from sim_backend.physics.spdc import SpdcParams
from sim_backend.spdc_link import Analyser, Arm, SpdcLink
from sim_backend.world import World
from timing.detection import DetectorConfig, HeraldDetector


def _spdc(sim_ms: int) -> tuple[int, float]:
    clock = VirtualClock()
    streams = RandomStreams(1)
    world = World(clock, streams)
    ctx = DriverContext(clock=clock, streams=streams, world=world)
    params = SpdcParams(repetition_rate_hz=80e6, pair_rate_per_mw_hz=4e6 / 1.0, pump_threshold_ma=0.0,
                        pump_slope_mw_per_ma=0.1, oven_time_constant_ps=0, phase_matching_temperature_c=30.0)
    world.add_source("src", params)
    src = open_instrument(InstrumentSpec("src", "pair_source", "sim", "sim"), ctx)
    tt = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), ctx)
    world.add_spdc_link(SpdcLink("l", "src", (Arm(Fibre(1.0), {1: Analyser("tt", (1,))}),
                                              Arm(Fibre(1.0), {1: Analyser("tt", (2,))}))))
    src.set_crystal_temperature_c(30.0)
    src.set_pump_current_ma(10.0)  # μ = 4e6 / 80e6 = 0.05
    src.pump_on()
    tt.start_stream([1, 2])
    tags = 0
    t0 = time.perf_counter()
    for step in range(1, sim_ms // 10 + 1):
        clock.advance_to(step * 10 * MS)
        tags += len(tt.read_stream())
    return tags, time.perf_counter() - t0


def _numpy_baseline(n_tags: int, span_ps: int) -> float:
    rng = np.random.default_rng(2)
    t0 = time.perf_counter()
    for _ in range(10):
        t = np.sort(rng.integers(0, span_ps, n_tags // 10, dtype=np.int64))
        np.ones(t.size, np.int32)
    return time.perf_counter() - t0


def _chain(sim_ms: int, physics: bool) -> tuple[float, dict]:
    period = 20 * US
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(3)
    world = World(clock, streams, loop)
    ctx = DriverContext(clock=clock, loop=loop, streams=streams, world=world)
    stats = {"heralds": 0, "swaps": 0}
    if physics:
        q = {n: open_instrument(InstrumentSpec(f"q{n}", "qnic", "sim", "sim",
                                               options={"node": n[0], "qnic_address": int(n[1]), "num_qubits": 1}), ctx)
             for n in ("A0", "B0", "B1", "C0")}
        fibre = Fibre(2.0)
        taggers, detectors = {}, {}
        for link, (x, y) in {"AB": ("A0", "B0"), "BC": ("B1", "C0")}.items():
            taggers[link] = open_instrument(InstrumentSpec(f"tt{link}", "time_tagger", "sim", "sim"), ctx)
            world.add_memory_link(MemoryLink(link, (LinkEnd(x[0], int(x[1]), fibre, 0.3),
                                                    LinkEnd(y[0], int(y[1]), fibre, 0.3)),
                                             f"tt{link}", sync_delay_ps=fibre.delay_ps - 2 * NS))
            taggers[link].start_stream([1, 2, 3, 4, 5])
            detectors[link] = HeraldDetector(DetectorConfig(1 * NS, 2 * NS, attempt_start_ps=fibre.delay_ps - 2 * NS,
                                                            attempt_period_ps=period))
        held = {"AB": None, "BC": None}
        rng = streams.get("bench/swap")
    attempt = [0]

    def attempt_both():
        k = attempt[0]
        attempt[0] += 1
        if physics:
            for link, (x, y) in {"AB": ("A0", "B0"), "BC": ("B1", "C0")}.items():
                if held[link] is None:
                    q[x].emit(0, k)
                    q[y].emit(0, k)
        loop.call_later(period, attempt_both)

    def poll():
        if physics:
            for link in ("AB", "BC"):
                for h in detectors[link].push(taggers[link].read_stream()):
                    if h.outcome.bell_state is not None and held[link] is None:
                        held[link] = h.outcome.bell_state
                        stats["heralds"] += 1
            if held["AB"] is not None and held["BC"] is not None:
                reg = world.registry
                b0, b1 = q["B0"].key(0), q["B1"].key(0)
                reg.apply("CNOT", [b0, b1])
                reg.apply("H", [b0])
                reg.measure(b0, "Z", rng)
                reg.measure(b1, "Z", rng)
                stats["swaps"] += 1
                stats.setdefault("fid", []).append(reg.bell_fidelity(q["A0"].key(0), q["C0"].key(0),
                                                                     BellState.PHI_PLUS))
                held["AB"] = held["BC"] = None
        loop.call_later(1 * MS, poll)

    loop.call_soon(attempt_both)
    loop.call_soon(poll)
    t0 = time.perf_counter()
    loop.run_until(sim_ms * MS)
    return time.perf_counter() - t0, stats


def run(quick: bool = False) -> list[Figure]:
    results = []
    sim_ms = 100 if quick else 1000
    _spdc(10)  # numba compile / cache load off the clock
    tags, wall = _spdc(sim_ms)
    base = _numpy_baseline(tags, sim_ms * MS)
    rate, base_rate = tags / wall / 1e6, tags / base / 1e6
    results.append(Figure("sim_spdc_tags_per_second", round(rate, 2), "Mtags/s",
                          "numpy_sorted_uniform_tags", round(base_rate, 2),
                          f"pulsed SPDC 80 MHz, mu=0.05, two 1 km arms, SNSPDs; {tags} tags in "
                          f"{sim_ms} ms simulated, 10 ms tagger reads"))
    chain_ms = 20 if quick else 200
    wall, stats = _chain(chain_ms, True)
    wall0, _ = _chain(chain_ms, False)
    ratio = (chain_ms / 1000) / wall
    base = (chain_ms / 1000) / wall0
    results.append(Figure("sim_memory_chain_speed", round(ratio, 4), "sim s / wall s",
                          "bare_event_loop_same_schedule", round(base, 3),
                          f"3-node chain, 2 links x 2 km, attempt every 20 us per link, herald decode "
                          f"every 1 ms, swaps at B: {stats['heralds']} heralds, {stats['swaps']} swaps "
                          f"in {chain_ms} ms simulated"))
    return results


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
