"""Link cost for qDijkstra: seconds per Bell pair at an index fidelity.

QRNA's link cost is "seconds per Bell pair of some index fidelity F". A link that delivers Werner
pairs of fidelity ``F`` at ``rate`` pairs/s is first brought up to the index fidelity by rounds of
BBPSSW purification (two pairs in, one out with probability ``p(F)``), so each round divides the
rate by ``2 / p``. The cost is ``1 / rate_after`` seconds; a link that cannot reach the index
fidelity within ``max_rounds`` (or has F ≤ 1/2, where purification cannot help) costs infinity.
This is what makes a fast, noisy link lose to a slower, clean one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def bbpssw(f: float) -> tuple[float, float]:
    """One BBPSSW round on two Werner pairs of fidelity ``f``: (success probability, new fidelity)."""
    e = (1.0 - f) / 3.0
    p = f * f + 2.0 * f * e + 5.0 * e * e
    return p, (f * f + e * e) / p


def werner_swap(f1: float, f2: float) -> float:
    """Fidelity after swapping two Werner pairs: F1 F2 + (1 - F1)(1 - F2) / 3."""
    return f1 * f2 + (1.0 - f1) * (1.0 - f2) / 3.0


@dataclass(frozen=True, slots=True)
class Purified:
    rounds: int
    fidelity: float
    rate: float          # pairs/s after purification


def purify_to(fidelity: float, rate: float, target: float, max_rounds: int = 4) -> Purified | None:
    """Fewest BBPSSW rounds lifting ``fidelity`` to ``target``; None if not within ``max_rounds``."""
    f, r = fidelity, rate
    for rounds in range(max_rounds + 1):
        if f >= target:
            return Purified(rounds, f, r)
        if f <= 0.5:
            return None
        p, f = bbpssw(f)
        r = r * p / 2.0
    return None


def seconds_per_pair(fidelity: float, rate: float, index_fidelity: float,
                     max_rounds: int = 4) -> float:
    """The qDijkstra cost of one link (seconds per Bell pair at ``index_fidelity``)."""
    if rate <= 0:
        return math.inf
    got = purify_to(fidelity, rate, index_fidelity, max_rounds)
    return math.inf if got is None else 1.0 / got.rate
