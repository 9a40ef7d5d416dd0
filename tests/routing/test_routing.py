"""Link cost closed forms, the tomographic fidelity estimate, and qDijkstra's choices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qnode_fw.routing import (LinkMonitor, RouteTable, bbpssw, purify_to, qdijkstra,
                              seconds_per_pair, werner_swap)
from qnode_fw.units import MS, S


def test_bbpssw_and_swap_closed_forms():
    p, f = bbpssw(0.9)
    assert p == pytest.approx(0.8756, abs=1e-4) and f == pytest.approx(0.9264, abs=1e-4)
    assert werner_swap(0.97, 0.97) == pytest.approx(0.97 * 0.97 + 0.03 * 0.03 / 3)


def test_cost_is_seconds_per_pair_after_purifying_to_the_index_fidelity():
    assert seconds_per_pair(0.95, 100.0, 0.9) == pytest.approx(0.01)
    p, _ = bbpssw(0.88)
    assert seconds_per_pair(0.88, 100.0, 0.9) == pytest.approx(1 / (100.0 * p / 2))
    assert purify_to(0.88, 100.0, 0.9).rounds == 1
    assert math.isinf(seconds_per_pair(0.5, 1e6, 0.9))      # purification cannot lift F = 1/2
    assert math.isinf(seconds_per_pair(0.95, 0.0, 0.9))


def test_monitor_fidelity_from_sacrificed_werner_pairs_and_rate_of_kept_pairs():
    rng = np.random.default_rng(3)
    mon = LinkMonitor("A-B", sacrifice_fraction=0.2, window_ps=1 * S, rng=np.random.default_rng(4))
    f_true = 0.9
    # Werner state: each basis correlation is ±1 with <XX> = <ZZ> = -<YY> = (4F - 1) / 3
    w = (4 * f_true - 1) / 3
    kept = 0
    for i in range(20000):
        basis = mon.sacrifice()
        if basis is None:
            mon.record_kept(i * 100 * 1_000_000)     # one pair per 100 µs
            kept += 1
            continue
        want_same = (rng.random() < (1 + w) / 2)
        same = want_same if basis != "Y" else not want_same
        mon.record_tomography(basis, 0, 0 if same else 1)
    assert abs(mon.fidelity() - f_true) < 0.01
    assert 0.18 < 1 - kept / 20000 < 0.22
    rate = mon.rate(20000 * 100 * 1_000_000)
    assert rate == pytest.approx(10_000 * kept / 20000, rel=0.05)


def test_qdijkstra_ties_break_by_hops_then_names_and_down_links_are_avoided():
    costs = {("A", "B"): 1.0, ("B", "D"): 1.0, ("A", "C"): 1.0, ("C", "D"): 1.0,
             ("A", "E"): 0.5, ("E", "F"): 0.5, ("F", "D"): 1.0}
    assert qdijkstra(costs, "A", "D").path == ("A", "B", "D")      # 2 hops beats 3 at equal cost
    assert qdijkstra(costs, "A", "D", down=[("B", "A")]).path == ("A", "C", "D")
    assert qdijkstra(costs, "A", "Z") is None
    rt = RouteTable("A", costs)
    changes = []
    rt.on_change.append(lambda dst, old, new: changes.append((dst, old.path, new.path)))
    assert rt.route("D").path == ("A", "B", "D")
    rt.link_down("B", "D")
    assert changes == [("D", ("A", "B", "D"), ("A", "C", "D"))]
    rt.link_up("B", "D")
    assert rt.route("D").path == ("A", "B", "D")
