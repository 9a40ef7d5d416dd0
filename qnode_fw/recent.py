"""A series that grows for as long as a node runs (every pair delivered, every herald's latency),
kept as its latest entries plus the totals readers need.

A node runs for days; a list of every pair it delivered or every herald latency it measured grows
by megabytes an hour (the soak run, docs/faults.md). What reads such a series reads either the
latest entries (a look at what just happened), the entries added since it last looked (the
metrics exporter, at every refresh, which looks far more often than :data:`DEFAULT_SIZE` entries
arrive), or a total: the count, and for a numeric series the mean.

* :class:`RecentLog` - the latest ``size`` entries (iteration, ``[-1]``), :meth:`since` for a
  reader that remembers how many it had seen, and ``len()``: how many were ever appended.
* :class:`LatencyLog` - the same for numbers, with the running sum and :meth:`mean`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

#: Entries kept: seconds of delivered pairs or heralds at the rates a testbed runs, many more than
#: arrive between two refreshes of the metrics exporter.
DEFAULT_SIZE = 256


class RecentLog(Generic[T]):
    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"a recent log keeps at least one entry, not {size}")
        self._recent: deque[T] = deque(maxlen=size)
        self._count = 0

    def append(self, entry: T) -> None:
        self._recent.append(entry)
        self._count += 1

    def __len__(self) -> int:
        """Entries ever appended (not only those kept)."""
        return self._count

    def __iter__(self) -> Iterator[T]:
        """The entries kept, oldest first."""
        return iter(self._recent)

    def __getitem__(self, index: int) -> T:
        """An entry kept: ``[-1]`` is the latest."""
        return self._recent[index]

    @property
    def kept(self) -> int:
        return len(self._recent)

    def since(self, seen: int) -> list[T]:
        """The entries appended after the first ``seen`` (a reader's ``len()`` when it last
        looked); those that dropped out of the window before it looked again are gone."""
        new = self._count - seen
        if new <= 0:
            return []
        new = min(new, len(self._recent))
        return list(self._recent)[-new:]


class LatencyLog(RecentLog[int]):
    """Picosecond durations: the latest kept, with their count and sum over the whole run."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        super().__init__(size)
        self.sum_ps = 0

    def append(self, entry: int) -> None:
        super().append(entry)
        self.sum_ps += int(entry)

    def mean_ps(self) -> float | None:
        return self.sum_ps / len(self) if len(self) else None


__all__ = ["DEFAULT_SIZE", "LatencyLog", "RecentLog"]
