"""Link monitoring: measured Bell-pair rate and a tomographic fidelity estimate per link.

A configurable fraction of heralded pairs is sacrificed: both ends measure in the same randomly
chosen basis (X, Y or Z) and report the outcome pair. For the target state Φ+ the expectation
values are ⟨XX⟩ = ⟨ZZ⟩ = +1 and ⟨YY⟩ = -1, so ``F = (1 + ⟨XX⟩ - ⟨YY⟩ + ⟨ZZ⟩) / 4`` (exact for
Bell-diagonal states, the Werner model included). The usable rate counts only pairs that were
not sacrificed, over a sliding window. :meth:`LinkMonitor.cost` turns both into the qDijkstra
cost (:func:`~qnode_fw.routing.cost.seconds_per_pair`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..units import S
from .cost import seconds_per_pair


@dataclass(frozen=True, slots=True)
class LinkFigures:
    """What a hop reports about a link in the outbound setup pass."""

    rate: float              # usable Bell pairs per second
    fidelity: float          # estimated fidelity to Φ+
    samples: int             # sacrificed pairs behind the estimate

    def to_wire(self) -> dict:
        return {"rate": self.rate, "fidelity": self.fidelity, "samples": self.samples}

    @classmethod
    def from_wire(cls, d: dict) -> "LinkFigures":
        return cls(float(d["rate"]), float(d["fidelity"]), int(d["samples"]))


class LinkMonitor:
    def __init__(self, link: str, sacrifice_fraction: float = 0.05, window_ps: int = 10 * S,
                 rng: np.random.Generator | None = None, prior_fidelity: float = 0.5) -> None:
        if not 0.0 < sacrifice_fraction < 1.0:
            raise ValueError(f"sacrifice_fraction must be in (0, 1), got {sacrifice_fraction}")
        self.link = link
        self.fraction = sacrifice_fraction
        self.window_ps = window_ps
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.prior = prior_fidelity
        self._kept: deque[int] = deque()
        self._first_ps: int | None = None
        self._sum = {"X": 0, "Y": 0, "Z": 0}
        self._n = {"X": 0, "Y": 0, "Z": 0}

    def sacrifice(self) -> str | None:
        """Decide for the next heralded pair: a basis to measure it in, or None to keep it."""
        if self.rng.random() < self.fraction:
            return "XYZ"[int(self.rng.integers(0, 3))]
        return None

    def record_kept(self, t_ps: int) -> None:
        if self._first_ps is None:
            self._first_ps = t_ps
        self._kept.append(t_ps)
        while self._kept and self._kept[0] < t_ps - self.window_ps:
            self._kept.popleft()

    def record_tomography(self, basis: str, outcome_a: int, outcome_b: int) -> None:
        if basis not in self._sum:
            raise ValueError(f"basis must be X, Y or Z, got {basis!r}")
        self._sum[basis] += 1 if outcome_a == outcome_b else -1
        self._n[basis] += 1

    def fidelity(self) -> float:
        if any(n == 0 for n in self._n.values()):
            return self.prior
        e = {b: self._sum[b] / self._n[b] for b in self._sum}
        return min(1.0, max(0.0, (1.0 + e["X"] - e["Y"] + e["Z"]) / 4.0))

    def rate(self, now_ps: int) -> float:
        if self._first_ps is None:
            return 0.0
        span = min(self.window_ps, now_ps - self._first_ps)
        n = sum(1 for t in self._kept if t >= now_ps - self.window_ps)
        return n * S / span if span > 0 else 0.0

    def figures(self, now_ps: int) -> LinkFigures:
        return LinkFigures(self.rate(now_ps), self.fidelity(), sum(self._n.values()))

    def cost(self, now_ps: int, index_fidelity: float) -> float:
        f = self.figures(now_ps)
        return seconds_per_pair(f.fidelity, f.rate, index_fidelity) if f.rate > 0 else math.inf
