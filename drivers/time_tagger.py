"""Time tagger interface: channels, input settings, tag streaming and counting.

Tags are streamed as :class:`TagBatch` objects: parallel numpy arrays of channel numbers and int64
picosecond timestamps, sorted by time within a batch, plus the overflow flag a real tagger raises
when its buffer overran (tags were lost somewhere in the batch).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field

import numpy as np

from .instrument import Instrument


@dataclass(slots=True)
class TagBatch:
    channels: np.ndarray  # int32, one entry per tag
    timestamps_ps: np.ndarray  # int64, one entry per tag, non-decreasing
    overflow: bool = False
    missed_events: int = 0
    markers: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.timestamps_ps.shape[0])

    @classmethod
    def empty(cls) -> "TagBatch":
        return cls(np.empty(0, np.int32), np.empty(0, np.int64))


class TimeTagger(Instrument):
    kind = "time_tagger"

    @property
    @abstractmethod
    def channels(self) -> list[int]: ...

    @abstractmethod
    def set_trigger_level_v(self, channel: int, volts: float) -> None: ...

    @abstractmethod
    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None: ...

    @abstractmethod
    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None: ...

    @abstractmethod
    def start_stream(self, channels: list[int]) -> None:
        """Start streaming tags from ``channels``."""

    @abstractmethod
    def read_stream(self) -> TagBatch:
        """Every tag recorded since the last read (possibly empty)."""

    @abstractmethod
    def stop_stream(self) -> None: ...

    @abstractmethod
    def count_rates_hz(self, channels: list[int], duration_ps: int) -> dict[int, float]:
        """Count each channel for ``duration_ps`` and return rates in Hz."""
