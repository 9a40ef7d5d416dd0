"""Simulated time tagger: reads its stream from the World up to the node clock's now; count rates
and coincidences are measured over the next ``duration_ps`` of that stream without consuming it."""

from __future__ import annotations

import numpy as np

from drivers.coincidences import checked_groups, count_coincidences
from drivers.time_tagger import TagBatch, TimeTagger
from qnode_fw.errors import InstrumentError

from ..physics.tagger import TaggerParams
from .common import dataclass_from_options, limits_of, world_from_context


class SimTimeTagger(TimeTagger):
    """Simulated time tagger (channels, input delays, jitter, bin, FIFO/stream-buffer overflow)."""

    model = "sim"
    measures_coincidences = True

    def __init__(self, name: str, world, clock, params: TaggerParams | None = None, limits=None) -> None:
        super().__init__(name, f"sim://tagger/{name}")
        self.world = world
        self.clock = clock
        self.limits = limits
        self.stream = world.taggers.get(name) or world.add_tagger(name, params)
        self.trigger_levels_v: dict[int, float] = {}
        self.streaming = False

    @classmethod
    def from_config(cls, spec, context):
        world = world_from_context(spec, context)
        options = dict(spec.options)
        delays = options.pop("input_delays_ps", {})
        params = dataclass_from_options(TaggerParams, options, f"instruments.{spec.name}.options")
        tagger = cls(spec.name, world, world.clock, params, limits_of(spec))
        for ch, d in delays.items():
            tagger.set_input_delay_ps(int(ch), int(d))
        return tagger

    def identify(self) -> str:
        return f"qnode-fw,SimTimeTagger,{self.name},sim"

    @property
    def channels(self) -> list[int]:
        return list(self.stream.params.channels)

    def _check(self, channel: int, command: str) -> int:
        if int(channel) not in self.stream.params.channels:
            raise InstrumentError(f"channel {channel} does not exist ({self.channels})",
                                  resource=self.resource, command=command)
        return int(channel)

    def set_trigger_level_v(self, channel, volts) -> None:
        command = f"setTriggerLevel({channel}, {volts})"
        ch = self._check(channel, command)
        if self.limits is not None:
            self.limits.check("trigger_level_v", volts, resource=self.resource, command=command)
        self.trigger_levels_v[ch] = float(volts)

    def set_input_delay_ps(self, channel, delay_ps) -> None:
        ch = self._check(channel, f"setInputDelay({channel}, {delay_ps})")
        self.world.advance(self.clock.now_ps())  # tags already generated keep the old delay
        self.stream.input_delays_ps[ch] = int(delay_ps)

    def set_dead_time_ps(self, channel, dead_time_ps) -> None:
        ch = self._check(channel, f"setDeadtime({channel}, {dead_time_ps})")
        self.stream.dead_times_ps[ch] = int(dead_time_ps)

    def start_stream(self, channels) -> None:
        for ch in channels:
            self._check(ch, f"TimeTagStream({list(channels)})")
        self.world.advance(self.clock.now_ps())
        self.stream.read(self.clock.now_ps())  # discard what came before the stream started
        self.stream.enabled = set(int(c) for c in channels)
        self.streaming = True

    def read_stream(self) -> TagBatch:
        if not self.streaming:
            raise InstrumentError("no stream running", resource=self.resource, command="getData()")
        now = self.clock.now_ps()
        self.world.advance(now)
        return self.stream.read(now)

    def stop_stream(self) -> None:
        self.world.advance(self.clock.now_ps())
        self.streaming = False
        self.stream.enabled = set()
        self.stream.clear()

    def _ahead(self, channels, duration_ps: int) -> tuple[np.ndarray, np.ndarray]:
        """The tags of ``channels`` in [now, now + duration_ps), in stream order: the physics is
        generated ahead (it is causal), the tags stay in the stream for a later read, and nobody's
        clock moves."""
        now = self.clock.now_ps()
        previous = set(self.stream.enabled)
        self.world.advance(now)
        self.stream.enabled = previous | set(int(c) for c in channels)
        self.world.advance(now + int(duration_ps))
        ch, t = self.stream.peek()
        self.stream.enabled = previous
        keep = (t >= now) & (t < now + duration_ps) & np.isin(ch, list(channels))
        ch, t = ch[keep], t[keep]
        order = np.argsort(t, kind="stable")      # the buffer is unsorted; a stream is not
        return ch[order], t[order]

    def count_rates_hz(self, channels, duration_ps) -> dict[int, float]:
        """Rates over the next ``duration_ps`` (see :meth:`_ahead`)."""
        for ch in channels:
            self._check(ch, f"Countrate({list(channels)})")
        if duration_ps <= 0:
            raise InstrumentError("duration must be positive", resource=self.resource, command="Countrate")
        ch, _t = self._ahead(channels, duration_ps)
        seconds = duration_ps * 1e-12
        return {int(c): float(np.count_nonzero(ch == c) / seconds) for c in channels}

    def coincidence_rates_hz(self, groups, window_ps, duration_ps) -> dict[tuple[int, ...], float]:
        """Coincidences per group over the next ``duration_ps`` with the Swabian ``Coincidences``
        rule (:mod:`drivers.coincidences`: a tag that finds every other channel of its group within
        ``window_ps`` before it), on the same tags :meth:`count_rates_hz` would count."""
        command = f"Coincidences({[list(g) for g in groups]}, {window_ps})"
        groups = checked_groups(groups, self.channels, window_ps, duration_ps,
                                resource=self.resource, command=command)
        ch, t = self._ahead(sorted({c for g in groups for c in g}), int(duration_ps))
        counts = count_coincidences(ch, t, groups, int(window_ps))
        seconds = duration_ps * 1e-12
        return {g: n / seconds for g, n in counts.items()}
