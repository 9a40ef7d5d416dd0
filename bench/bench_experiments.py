"""Experiments from YAML on the virtual testbed: what the physical heralding path costs.

* ``experiment_chain3_wall_per_pair``: wall milliseconds per end-to-end pair of
  configs/experiments/chain3-swap.yaml (``make demo``): every attempt through the AWG marker
  burst, simulated photons, the BSA tagger read every 10 us, herald frames and binding, the QRNA
  RuleSets and the application's tomography. Baseline, same run: the connection tests' chain
  (sim_backend.chain_testbed) with the same 3 nodes, links heralding Werner pairs of the same
  fidelity straight into the executors at the rate the physical links reached (Poisson), over the
  same simulated time: the cost of the protocol alone.
* ``experiment_chain3_sim_speed``: simulated seconds per wall second of that experiment, against
  real time (the pace a wall-clock testbed keeps).
* ``experiment_spdc_coincidences_per_wall_s``: coincidences analysed per wall second of
  configs/experiments/spdc-chsh.yaml (switch-selected analysers, 13 settings). Baseline, same run:
  the experiment's own coincidences per simulated second (so the ratio is sim s per wall s).
"""

from __future__ import annotations

import time
from pathlib import Path

from qnode_fw.benchmarks import Figure, Reference
from qnode_fw.units import S

REPO = Path(__file__).resolve().parents[1]


def _chain_experiment(sim_s: float) -> tuple[int, float, float, dict]:
    from qnode_fw.experiments import RunOptions, run_experiment

    t0 = time.perf_counter()
    result = run_experiment(REPO / "configs/experiments/chain3-swap.yaml",
                            options=RunOptions(duration_s=sim_s))
    wall = time.perf_counter() - t0
    d = result.results.details
    return result.summary.pairs_delivered, wall, d["generation_time_s"], d["links"]


def _chain_baseline(sim_s: float, link_rate_hz: float) -> tuple[int, float]:
    from qnode_fw.connection import QoS
    from sim_backend.chain_testbed import chain

    t0 = time.perf_counter()
    tb = chain(3, rate=link_rate_hz, fidelity=0.97)
    tb.start_links()
    cid = tb.nodes["A"].manager.request("C", QoS(10, 0.8, duration_ps=int(10 * S)))
    tb.run(sim_s * 1000)
    wall = time.perf_counter() - t0
    return len(tb.fidelities.get(cid, [])), wall


def _spdc(sim_s: float) -> tuple[int, float, float]:
    from qnode_fw.experiments import RunOptions, run_experiment

    t0 = time.perf_counter()
    result = run_experiment(REPO / "configs/experiments/spdc-chsh.yaml",
                            options=RunOptions(duration_s=sim_s))
    return result.summary.pairs_delivered, time.perf_counter() - t0, result.summary.sim_time_s


def run(quick: bool = False) -> list[Figure]:
    sim_s = 0.01 if quick else 0.06
    pairs, wall, gen_s, links = _chain_experiment(sim_s)
    heralds_per_s = min(link["heralds"] for link in links.values()) / gen_s
    base_pairs, base_wall = _chain_baseline(gen_s, heralds_per_s)
    per_pair = 1000 * wall / max(pairs, 1)
    base_per_pair = 1000 * base_wall / max(base_pairs, 1)
    figures = [
        Figure("experiment_chain3_wall_per_pair", round(per_pair, 2), "wall ms / e2e pair",
               "poisson_links_same_chain_and_rate", round(base_per_pair, 3),
               f"chain3-swap: {pairs} end-to-end pairs in {gen_s * 1000:.0f} ms simulated "
               f"({wall:.1f} s wall, startup included); baseline {base_pairs} pairs from Poisson "
               f"links at {heralds_per_s:.0f} heralds/s"),
        Figure("experiment_chain3_sim_speed", round(gen_s / wall, 5), "sim s / wall s",
               note="the make demo experiment, physical heralding path at every attempt",
               references=(Reference("real_time", 1.0, "a wall-clock testbed runs at 1 sim s / s"),)),
    ]
    spdc_s = 0.26 if quick else 2.0
    coincidences, wall, sim = _spdc(spdc_s)
    figures.append(Figure("experiment_spdc_coincidences_per_wall_s", round(coincidences / wall, 1),
                          "coincidences / wall s", "coincidences_per_simulated_s",
                          round(coincidences / sim, 1),
                          f"spdc-chsh: {coincidences} coincidences, {sim:.2f} s simulated, "
                          f"{wall:.1f} s wall (ratio = sim s per wall s)"))
    return figures


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))

