"""The virtual clock: one timeline shared by many nodes, deterministic for a seed.

10^6 timers across 3 nodes, each node scheduling its next timer from its own random stream (and
some timers cancelled, some at equal times), fire in the same order for the same seed and in a
different order for another seed. The timers-per-second figure is measured by ``qnode bench``
(bench/bench_runtime.py), not asserted here.
"""

from __future__ import annotations

import numpy as np

from qnode_fw.clock import VirtualClock
from qnode_fw.config import load_testbed
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.testbed import VirtualTestbed
from qnode_fw.units import MS

TOTAL_TIMERS = 1_000_000
NODES = ("A", "B", "C")


def fire_order(seed: int, total: int = TOTAL_TIMERS) -> tuple[np.ndarray, np.ndarray, int]:
    loop = EventLoop(VirtualClock())
    streams = RandomStreams(seed)
    per_node = total // len(NODES)
    order_node = np.empty(per_node * len(NODES), dtype=np.int8)
    order_time = np.empty(per_node * len(NODES), dtype=np.int64)
    fired = 0

    def make_node(k: int, name: str):
        # Delays on a coarse grid so timers of different nodes often fall at the same time:
        # the tie-break (scheduling order) is part of what must be deterministic.
        delays = streams.get(f"node:{name}/timers").integers(1, 50, size=per_node) * 1000
        cancel = streams.get(f"node:{name}/cancel").random(per_node) < 0.01
        state = {"i": 0}

        def fire() -> None:
            nonlocal fired
            order_node[fired] = k
            order_time[fired] = loop.now_ps()
            fired += 1
            i = state["i"] = state["i"] + 1
            if i < per_node:
                if cancel[i]:
                    # a cancelled timer never fires; its replacement does
                    loop.call_later(int(delays[i]) // 2, lambda: None).cancel()
                loop.call_later(int(delays[i]), fire)

        loop.call_later(int(delays[0]), fire)

    for k, name in enumerate(NODES):
        make_node(k, name)
    loop.run_until_idle()
    return order_node[:fired], order_time[:fired], fired


def test_a_million_timers_fire_in_the_same_order_for_the_same_seed():
    nodes1, times1, n1 = fire_order(seed=5)
    nodes2, times2, n2 = fire_order(seed=5)
    assert n1 == n2 == (TOTAL_TIMERS // 3) * 3
    assert np.array_equal(nodes1, nodes2) and np.array_equal(times1, times2)
    assert np.all(np.diff(times1) >= 0)                      # time never runs backwards
    assert set(np.unique(nodes1)) == {0, 1, 2}
    # Another seed, another order (a prefix is plenty to show it).
    nodes3, times3, n3 = fire_order(seed=6, total=30_000)
    assert not (np.array_equal(nodes1[:n3], nodes3) and np.array_equal(times1[:n3], times3))


def test_equal_times_fire_in_scheduling_order():
    loop = EventLoop(VirtualClock())
    seen: list[str] = []
    for name in "CAB":
        loop.call_at(1000, seen.append, name)
    loop.call_at(999, seen.append, "first")
    loop.run_until_idle()
    assert seen == ["first", "C", "A", "B"]
    assert loop.now_ps() == 1000


def test_whole_testbed_run_is_deterministic_for_a_seed():
    loaded = load_testbed("configs/testbeds/chain-3node-sim.yaml")

    def run(seed: int):
        tb = VirtualTestbed(loaded, seed=seed)
        tb.start()
        tb.run_for(500 * MS)
        out = (tb.loop.events_processed, {a: s.to_dict() for a, s in tb.status().items()})
        tb.stop()
        return out

    assert run(3) == run(3)
