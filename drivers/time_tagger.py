"""Time tagger interface: channels, input settings, tag streaming, count rates and coincidences.

Tags are streamed as :class:`TagBatch` objects: parallel numpy arrays of channel numbers and int64
picosecond timestamps, sorted by time within a batch, plus the overflow flag a real tagger raises
when its buffer overran (tags were lost somewhere in the batch).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from qnode_fw.errors import InstrumentError

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
    #: Whether :meth:`start_stream`/:meth:`read_stream` deliver tags (some drivers only count).
    streams_tags: ClassVar[bool] = True
    #: Whether :meth:`coincidence_rates_hz` is available on this driver.
    measures_coincidences: ClassVar[bool] = False

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

    def coincidence_rates_hz(self, groups: list[tuple[int, ...]], window_ps: int,
                             duration_ps: int) -> dict[tuple[int, ...], float]:
        """Count each coincidence group for ``duration_ps`` and return rates in Hz, keyed by the
        group as a tuple. A group's coincidence is a tag that finds every other channel of the
        group within ``window_ps`` before it (Swabian ``Coincidences`` semantics, see
        :mod:`drivers.coincidences`). Drivers that cannot measure coincidences keep this default,
        which refuses."""
        raise InstrumentError(f"{self.model} tagger does not measure coincidences",
                              resource=self.resource, command=f"coincidences {list(groups)}")
