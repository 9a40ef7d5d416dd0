"""Time tagger: input delays, timing jitter, bin resolution, a finite FIFO drained at the transfer
rate (hardware overflow) and a finite host stream buffer (missed events).

Defaults: a Swabian Time Tagger Ultra-class instrument (1 ps bins, 8 ps RMS jitter, ~80 Mtags/s
sustained over USB 3); see docs/physics.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from drivers.time_tagger import TagBatch

from .deadtime import dead_time_mask


@dataclass(frozen=True, slots=True)
class TaggerParams:
    channels: tuple[int, ...] = tuple(range(1, 9))
    bin_ps: int = 1
    jitter_rms_ps: float = 8.0
    transfer_rate_tags_per_s: float = 80e6
    fifo_tags: int = 64 * 1024 * 1024 // 8  # on-board buffer (tags) that absorbs bursts
    stream_buffer_tags: int = 10_000_000  # host-side TimeTagStream n_max_events


@numba.njit(cache=True)
def _fifo_mask(times: np.ndarray, capacity: float, rate_per_ps: float, state: np.ndarray) -> np.ndarray:
    keep = np.ones(times.shape[0], np.bool_)
    level = state[0]
    last = state[1] if state[1] > -1e300 else (times[0] if times.shape[0] else 0.0)
    for i in range(times.shape[0]):
        level = max(0.0, level - (times[i] - last) * rate_per_ps)
        last = times[i]
        if level + 1.0 > capacity:
            keep[i] = False
        else:
            level += 1.0
    state[0] = level
    state[1] = last
    return keep


def new_fifo_state() -> np.ndarray:
    """(fill level in tags, time of the last tag in ps) carried from one read to the next."""
    return np.array([0.0, -np.inf])


def fifo_mask(times_ps: np.ndarray, capacity_tags: int, rate_tags_per_s: float,
              state: np.ndarray | None = None) -> np.ndarray:
    """Tags a FIFO of ``capacity_tags`` drained at ``rate_tags_per_s`` keeps (Lindley recursion);
    ``state`` (from :func:`new_fifo_state`) carries the fill level across calls."""
    t = np.ascontiguousarray(times_ps, dtype=np.int64)
    state = new_fifo_state() if state is None else state
    if t.size == 0:
        return np.ones(0, bool)
    return _fifo_mask(t, float(capacity_tags), rate_tags_per_s * 1e-12, state)


@dataclass
class TagStream:
    """Tags written by the physics (any order), read back sorted up to a time."""

    params: TaggerParams
    input_delays_ps: dict[int, int] = field(default_factory=dict)
    enabled: set[int] = field(default_factory=set)
    dead_times_ps: dict[int, int] = field(default_factory=dict)
    _fifo: np.ndarray = field(default_factory=new_fifo_state)
    _channels: list[np.ndarray] = field(default_factory=list)
    _times: list[np.ndarray] = field(default_factory=list)
    _missed: int = 0
    _overflow: bool = False
    tags_written: int = 0

    def write(self, channel: int, times_ps: np.ndarray, rng: np.random.Generator) -> None:
        """Signal edges at ``times_ps`` (ps, physical arrival at the input) on ``channel``."""
        if channel not in self.enabled or len(times_ps) == 0:
            return
        t = np.asarray(times_ps, dtype=np.int64) + int(self.input_delays_ps.get(channel, 0))
        if self.params.jitter_rms_ps > 0:
            t = t + np.rint(rng.normal(0.0, self.params.jitter_rms_ps, t.size)).astype(np.int64)
        if self.params.bin_ps > 1:
            t = (t // self.params.bin_ps) * self.params.bin_ps
        dead = self.dead_times_ps.get(channel, 0)
        if dead > 0:
            t = np.sort(t)
            t = t[dead_time_mask(t, dead)]
        self._times.append(t)
        self._channels.append(np.full(t.size, channel, np.int32))

    def read(self, until_ps: int) -> TagBatch:
        """Every tag with timestamp < ``until_ps``, sorted; later tags stay buffered."""
        if not self._times:
            batch = TagBatch.empty()
            batch.overflow, batch.missed_events = self._overflow, self._missed
            self._overflow, self._missed = False, 0
            return batch
        t = np.concatenate(self._times)
        c = np.concatenate(self._channels)
        order = np.argsort(t, kind="stable")
        t, c = t[order], c[order]
        cut = int(np.searchsorted(t, until_ps, side="left"))
        self._times = [t[cut:]] if cut < t.size else []
        self._channels = [c[cut:]] if cut < t.size else []
        t, c = t[:cut], c[:cut]
        keep = fifo_mask(t, self.params.fifo_tags, self.params.transfer_rate_tags_per_s, self._fifo)
        missed = int(t.size - keep.sum())
        if missed:
            t, c = t[keep], c[keep]
        if t.size > self.params.stream_buffer_tags:
            missed += t.size - self.params.stream_buffer_tags
            t, c = t[: self.params.stream_buffer_tags], c[: self.params.stream_buffer_tags]
        missed += self._missed
        overflow = self._overflow or missed > 0
        self._missed, self._overflow = 0, False
        self.tags_written += int(t.size)
        return TagBatch(c, t, overflow=overflow, missed_events=missed)

    def peek(self) -> tuple[np.ndarray, np.ndarray]:
        """(channels, timestamps) of everything buffered, unsorted, without consuming it."""
        if not self._times:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        return np.concatenate(self._channels), np.concatenate(self._times)

    def clear(self) -> None:
        self._times, self._channels = [], []
