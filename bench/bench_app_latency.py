"""Application latency on the 3-node chain in processes mode: from the physics making an
end-to-end pair possible to the application at the initiator holding it, minus the physics; the
software overhead in microseconds.

The run is ``qnode testbed configs/testbeds/chain-3node-processes.yaml --processes --experiment
configs/experiments/chain3-swap-processes.yaml``: A, bsa-AB, B, bsa-BC and C each in its own OS
process (``qnode run``), the simulated physics in the World server, everything over ZeroMQ on
loopback on the wall clock. Per end-to-end pair, from the two ends' run records:

* **end-to-end**: delivery at A minus the later of the two link pairs' detection times (the
  photons' clicks at the BSAs, which name the link pairs), minus the physics after them (B's Bell
  measurement and A's Pauli correction, from the QNIC's operation times). What remains is the
  station's tagger polling and decoding, the World's horizon wait, the herald frames, binding,
  the RuleSet executors at B and A, the swap result over the control link and the application
  hand-over. Fibre flights are not subtracted: on loopback nothing waits for them.
* **swap to delivery**: delivery at A minus B's swap (the end-to-end pair's name is ``<B, swap
  time>``) minus B's Bell measurement and A's correction: the swap result over the control link,
  A's executor and the hand-over, and A's own herald where it is still on its way when B swaps
  (each node hears its herald from its own station process).
* **connection setup**: the application's request to the connection's establishment at A (two
  passes A -> B -> C -> B -> A).

* **World round trip**: how long a node waits for the World server's answer (B's measurements in
  the swap, the stations' tagger reads): part of every figure above, and the simulation's part -
  on a lab node the QNIC and tagger are local.

Baseline, same run: the raw ZeroMQ one-way latency (DEALER -> ROUTER, TCP loopback, 56-byte
messages, one at a time), the floor of any message between two of these processes; four of them
for the setup's four hops, two for a round trip. Reference: the fibre delay of the chain's 5 km.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from qnode_fw.benchmarks import Figure, Reference
from qnode_fw.units import fibre_delay_ps

ROOT = Path(__file__).resolve().parents[1]
TESTBED = ROOT / "configs" / "testbeds" / "chain-3node-processes.yaml"
EXPERIMENT = ROOT / "configs" / "experiments" / "chain3-swap-processes.yaml"
CHAIN_FIBRE = Reference("fibre_delay_5km_A_to_C", fibre_delay_ps(5.0) / 1e6,
                        "4.897 us/km, the chain's 2 km + 3 km")


def _raw_one_way_us(n: int) -> list[float]:
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:0")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
    payload = b"h" * 56
    dealer.send(payload)
    router.recv_multipart()                   # connected
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        dealer.send(payload)
        router.recv_multipart()
        out.append((time.perf_counter_ns() - t0) / 1000)
    dealer.close(0)
    router.close(0)
    ctx.term()
    return out


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _chain(duration_s: float) -> dict:
    from qnode_fw.config import load_testbed
    from qnode_fw.testbed.node_experiment import read_halves
    from qnode_fw.testbed.processes import ProcessesTestbed

    with tempfile.TemporaryDirectory() as out:
        tb = ProcessesTestbed(load_testbed(TESTBED), out_dir=out, experiment=EXPERIMENT)
        try:
            tb.start()
            tb.run_for(duration_s)
        finally:
            result = tb.stop()
        a = read_halves(result.run_dir, "A")
        durations = result.details["nodes"]["A"]["durations_ps"]
        physics_ps = durations["bsm"] + max(durations["X"], durations["Z"])
        return {"e2e_us": result.details.get("e2e_software_overhead_us", []),
                "swap_us": ((a["t_ps"] - a["name_ps"] - physics_ps) / 1e6).tolist(),
                "setup_us": result.details.get("setup_ms", float("nan")) * 1000,
                "pairs": result.summary["pairs_delivered"], "failures": result.failures,
                "run_s": result.run_time_s, "wall_s": result.wall_time_s,
                "herald_us": result.details["nodes"]["A"]["links"]["A-B"]["herald_latency_us_mean"],
                "world_call_us": {n: (f.get("world_calls") or {}).get("mean_wait_us")
                                  for n, f in result.details["nodes"].items()},
                "horizon_waits": result.world.get("horizon_waits", 0),
                "horizon_wait_ms_mean": (result.world.get("horizon_wait_ns", 0)
                                         / max(1, result.world.get("horizon_waits", 0)) / 1e6)}


def run(quick: bool = False) -> list[Figure]:
    n_raw = 300 if quick else 3000
    raw = _raw_one_way_us(n_raw)
    chain = _chain(4.0 if quick else 10.0)
    raw50, raw99 = statistics.median(raw), _pct(raw, 0.99)
    e2e, swap = chain["e2e_us"], chain["swap_us"]
    what = (f"3-node chain, 5 node processes + World server on loopback, {chain['run_s']:.1f} s run "
            f"({chain['wall_s']:.0f} s with start-up), {chain['pairs']} end-to-end pairs"
            + (f"; failures: {'; '.join(chain['failures'])}" if chain["failures"] else ""))
    herald = (f"herald path (emission to PairReady at A) {chain['herald_us'] or float('nan'):.0f} us "
              f"mean, of which the BSA's 5 ms tagger polling and {chain['horizon_wait_ms_mean']:.2f} "
              f"ms mean horizon wait per read ({chain['horizon_waits']} waits)")
    return [
        Figure("app_latency_e2e_software_p50", round(float(np.median(e2e)) if e2e else float("nan"), 1),
               "us", "raw_zmq_one_way_latency_p50", round(raw50, 1),
               f"{what}; delivery at A minus the later link click minus B's BSM and A's correction; "
               f"{herald}", (CHAIN_FIBRE,)),
        Figure("app_latency_e2e_software_p99", round(_pct(e2e, 0.99), 1), "us",
               "raw_zmq_one_way_latency_p99", round(raw99, 1), what, (CHAIN_FIBRE,)),
        Figure("app_latency_swap_to_delivery_p50", round(float(np.median(swap)) if swap else float("nan"), 1),
               "us", "raw_zmq_one_way_latency_p50", round(raw50, 1),
               "B's swap to delivery at A minus B's BSM and A's correction: SwapResult over the "
               "control link, A's executor, the hand-over, and A's herald if it came after B's"),
        Figure("app_latency_swap_to_delivery_p99", round(_pct(swap, 0.99), 1), "us",
               "raw_zmq_one_way_latency_p99", round(raw99, 1), "as the p50"),
        Figure("app_world_round_trip_mean_at_B", round(chain["world_call_us"].get("B") or float("nan"), 1),
               "us", "raw_zmq_round_trip_p50", round(2 * raw50, 1),
               "one request to the World server and its reply as B's swap waits for it (its two "
               "measurements); a lab node's QNIC is local, so this part of the overheads above is "
               "the simulation's. Per node: " + ", ".join(
                   f"{n} {v:.0f} us" for n, v in chain["world_call_us"].items() if v is not None)),
        Figure("app_connection_setup", round(chain["setup_us"], 1), "us",
               "raw_zmq_4_one_way_hops_p50", round(4 * raw50, 1),
               "request to establishment at A: two passes A->B->C->B->A with hop reports, planning "
               "and RuleSet installation, one connection per run"),
    ]


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
