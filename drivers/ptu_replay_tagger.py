"""A time tagger that replays a PicoQuant PTU T2 file (MultiHarp, HydraHarp, TimeHarp 260).

``resource`` is the file path. Each :meth:`read_stream` returns the next chunk
(``options.records_per_read`` records, default 1 Mi) restricted to the streamed channels, with the
configured input delays and dead times applied as a real tagger would. Trigger levels are
recorded (the file was taken with whatever levels the lab used). The sync input is channel 0.
Count rates and coincidence rates are taken over the first ``duration_ps`` of the file;
coincidences follow :mod:`drivers.coincidences` (Swabian ``Coincidences`` semantics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qnode_fw.errors import InstrumentError
from timing.ptu import PtuT2Reader

from .coincidences import checked_groups, count_coincidences
from .limits import SafetyLimits
from .registry import register_driver
from .time_tagger import TagBatch, TimeTagger


def apply_dead_time(channels: np.ndarray, times: np.ndarray, dead_ps: dict[int, int],
                    last: dict[int, int]) -> np.ndarray:
    """Mask of tags that survive each channel's dead time; ``last`` carries state across chunks."""
    keep = np.ones(times.size, bool)
    for c, dead in dead_ps.items():
        if dead <= 0:
            continue
        idx = np.flatnonzero(channels == c)
        prev = last.get(c, -(1 << 62))
        for i in idx:  # sequential by nature: whether a tag survives depends on the last survivor
            if times[i] - prev < dead:
                keep[i] = False
            else:
                prev = int(times[i])
        last[c] = prev
    return keep


@register_driver(kind="time_tagger", model="ptu_replay", transport="file",
                 description="Replays a PicoQuant PTU T2 file as a time tagger")
class PtuReplayTagger(TimeTagger):
    streams_tags = True
    measures_coincidences = True

    def __init__(self, name: str, resource: str, limits: SafetyLimits | None = None,
                 options: dict | None = None) -> None:
        super().__init__(name, resource)
        self.limits = limits or SafetyLimits()
        self.options = dict(options or {})
        self.reader = PtuT2Reader(Path(resource))
        self._delays: dict[int, int] = {}
        self._dead: dict[int, int] = {}
        self.trigger_levels_v: dict[int, float] = {}
        self._chunks = None
        self._stream_channels: list[int] = []
        self._last: dict[int, int] = {}

    @classmethod
    def from_config(cls, spec, context=None):
        return cls(spec.name, spec.resource, SafetyLimits(spec.limits), dict(spec.options))

    def identify(self) -> str:
        return f"PTU replay {self.resource} ({self.reader.record_type.name}, {self.reader.num_records} records)"

    @property
    def channels(self) -> list[int]:
        return list(range(0, int(self.options.get("inputs", 4)) + 1))

    def _check_channel(self, channel: int, command: str) -> None:
        if channel not in self.channels:
            raise InstrumentError(f"channel {channel} does not exist; nothing was set",
                                  resource=self.resource, command=command)

    def set_trigger_level_v(self, channel: int, volts: float) -> None:
        command = f"trigger_level({channel}, {volts})"
        self._check_channel(channel, command)
        self.limits.check("trigger_level_v", volts, resource=self.resource, command=command)
        self.trigger_levels_v[channel] = float(volts)

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        command = f"input_delay({channel}, {delay_ps})"
        self._check_channel(channel, command)
        self.limits.check("input_delay_ps", delay_ps, resource=self.resource, command=command)
        self._delays[channel] = int(delay_ps)

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        command = f"dead_time({channel}, {dead_time_ps})"
        self._check_channel(channel, command)
        self.limits.check("dead_time_ps", dead_time_ps, resource=self.resource, command=command)
        self._dead[channel] = int(dead_time_ps)

    def _filtered(self, channels: np.ndarray, times: np.ndarray, wanted: list[int],
                  last: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
        sel = np.isin(channels, wanted)
        c, t = channels[sel], times[sel]
        keep = apply_dead_time(c, t, self._dead, last)
        c, t = c[keep], t[keep]
        if self._delays:
            t = t + np.array([self._delays.get(int(x), 0) for x in c], dtype=np.int64)
            order = np.argsort(t, kind="stable")
            c, t = c[order], t[order]
        return c.astype(np.int32), t.astype(np.int64)

    def start_stream(self, channels: list[int]) -> None:
        for c in channels:
            self._check_channel(c, f"start_stream({channels})")
        self._stream_channels = list(channels)
        self._last = {}
        self._chunks = self.reader.iter_chunks(int(self.options.get("records_per_read", 1 << 20)))

    def read_stream(self) -> TagBatch:
        if self._chunks is None:
            raise InstrumentError("read_stream before start_stream", resource=self.resource,
                                  command="read_stream")
        chunk = next(self._chunks, None)
        if chunk is None:
            return TagBatch.empty()
        c, t = self._filtered(chunk.channels, chunk.timestamps_ps, self._stream_channels, self._last)
        return TagBatch(channels=c, timestamps_ps=t,
                        markers={"masks": chunk.marker_masks, "timestamps_ps": chunk.marker_timestamps_ps})

    def stop_stream(self) -> None:
        self._chunks = None

    def _first(self, channels: list[int], duration_ps: int) -> tuple[np.ndarray, np.ndarray]:
        """Tags of ``channels`` in the first ``duration_ps`` of the file (after delays and dead
        time), time-sorted."""
        parts_c, parts_t = [], []
        last: dict[int, int] = {}
        start = None
        for chunk in self.reader.iter_chunks():
            if start is None and chunk.timestamps_ps.size:
                start = int(chunk.timestamps_ps[0])
            if start is None:
                continue
            c, t = self._filtered(chunk.channels, chunk.timestamps_ps, channels, last)
            inside = t < start + duration_ps
            parts_c.append(c[inside])
            parts_t.append(t[inside])
            if chunk.timestamps_ps.size and chunk.timestamps_ps[-1] >= start + duration_ps:
                break
        if not parts_t:
            return np.empty(0, np.int32), np.empty(0, np.int64)
        c, t = np.concatenate(parts_c), np.concatenate(parts_t)
        order = np.argsort(t, kind="stable")  # delays may move tags across a chunk boundary
        return c[order], t[order]

    def count_rates_hz(self, channels: list[int], duration_ps: int) -> dict[int, float]:
        """Rates over the first ``duration_ps`` of the file (after delays and dead time)."""
        for c in channels:
            self._check_channel(c, f"count_rates_hz({channels})")
        if duration_ps <= 0:
            raise InstrumentError("duration must be positive", resource=self.resource,
                                  command=f"count_rates_hz({channels}, {duration_ps})")
        c, _ = self._first(list(channels), duration_ps)
        return {ch: int(np.count_nonzero(c == ch)) / (duration_ps * 1e-12) for ch in channels}

    def coincidence_rates_hz(self, groups, window_ps, duration_ps):
        """Coincidence rates over the first ``duration_ps`` of the file."""
        groups = checked_groups(groups, self.channels, window_ps, duration_ps, resource=self.resource,
                                command=f"coincidence_rates_hz({[list(g) for g in groups]}, {window_ps})")
        c, t = self._first(sorted({ch for g in groups for ch in g}), duration_ps)
        counts = count_coincidences(c, t, groups, int(window_ps))
        return {g: n / (duration_ps * 1e-12) for g, n in counts.items()}
