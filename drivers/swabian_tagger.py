"""Swabian Instruments Time Tagger (20, Ultra, X) through the vendor's Python module.

The module is ``TimeTagger`` (or ``Swabian.TimeTagger`` in newer releases); ``options.module``
names another module with the same API, which is how CI runs this driver against
:mod:`sim_backend.emulators.fake_timetagger`. ``resource`` is the tagger's serial number (empty:
the first one found). Vendor exceptions are raised as :class:`InstrumentError` naming the call.

Counting and coincidences run the vendor's measurements for a fixed time (``startFor``) and wait
for them with a timeout (the duration plus ``options.timeout_s``); a wait that runs out raises
:class:`InstrumentTimeout`. Coincidence groups are the vendor's ``Coincidences`` virtual
channels, counted by a ``Countrate`` on those channels. Arrays the module returns are checked for
consistent lengths before use.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from qnode_fw.errors import ConfigError, InstrumentError, InstrumentTimeout

from .coincidences import checked_groups
from .limits import SafetyLimits
from .registry import register_driver
from .time_tagger import TagBatch, TimeTagger

_TIME_TAG = 0  # TagType.TimeTag
_MISSED_EVENTS = 4  # TagType.MissedEvents


def _vendor_module(name: str | None) -> Any:
    candidates = [name] if name else ["TimeTagger", "Swabian.TimeTagger"]
    for candidate in candidates:
        try:
            return importlib.import_module(candidate)
        except ModuleNotFoundError:
            continue
    raise ConfigError(f"the Swabian Time Tagger module is not installed (tried {', '.join(candidates)})",
                      field="options.module", expected="TimeTagger installed, or options.module")


@register_driver(kind="time_tagger", model="swabian", transport="vendor",
                 description="Swabian Instruments Time Tagger 20/Ultra/X (vendor Python module)")
class SwabianTagger(TimeTagger):
    streams_tags = True
    measures_coincidences = True

    def __init__(self, name: str, resource: str, module: Any, limits: SafetyLimits,
                 options: dict | None = None) -> None:
        super().__init__(name, resource)
        self.module = module
        self.limits = limits
        self.options = dict(options or {})
        self.tagger = self._call("createTimeTagger", module.createTimeTagger, resource)
        self._stream = None

    @classmethod
    def from_config(cls, spec, context=None):
        return cls(spec.name, spec.resource, _vendor_module(spec.options.get("module")),
                   SafetyLimits(spec.limits), dict(spec.options))

    def _call(self, label: str, fn, *args):
        try:
            return fn(*args)
        except (RuntimeError, ValueError, TypeError) as exc:
            call = f"{label}({', '.join(map(repr, args))})"
            raise InstrumentError(f"Time Tagger refused: {exc}", resource=self.resource, command=call) from None

    def identify(self) -> str:
        return f"Swabian {self.tagger.getModel()} {self.tagger.getSerial()}"

    @property
    def channels(self) -> list[int]:
        return [int(c) for c in self.tagger.getChannelList()]

    def _check_channel(self, channel: int, call: str) -> None:
        if channel not in self.channels:
            raise InstrumentError(f"channel {channel} does not exist; nothing was sent",
                                  resource=self.resource, command=call)

    def set_trigger_level_v(self, channel: int, volts: float) -> None:
        call = f"setTriggerLevel({channel}, {volts!r})"
        self._check_channel(channel, call)
        self.limits.check("trigger_level_v", volts, resource=self.resource, command=call)
        self._call("setTriggerLevel", self.tagger.setTriggerLevel, channel, float(volts))

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        call = f"setInputDelay({channel}, {delay_ps!r})"
        self._check_channel(channel, call)
        self.limits.check("input_delay_ps", delay_ps, resource=self.resource, command=call)
        self._call("setInputDelay", self.tagger.setInputDelay, channel, int(delay_ps))

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        call = f"setDeadtime({channel}, {dead_time_ps!r})"
        self._check_channel(channel, call)
        self.limits.check("dead_time_ps", dead_time_ps, resource=self.resource, command=call)
        self._call("setDeadtime", self.tagger.setDeadtime, channel, int(dead_time_ps))

    def start_stream(self, channels: list[int]) -> None:
        for c in channels:
            self._check_channel(c, f"TimeTagStream(channels={channels})")
        if self._stream is not None:
            self._stream.stop()
        n_max = int(self.options.get("stream_buffer_events", 1 << 24))
        self._stream = self._call("TimeTagStream", self.module.TimeTagStream, self.tagger, n_max, list(channels))

    def read_stream(self) -> TagBatch:
        if self._stream is None:
            raise InstrumentError("read_stream before start_stream", resource=self.resource,
                                  command="TimeTagStream.getData()")
        buf = self._call("TimeTagStream.getData", self._stream.getData)
        types = np.asarray(buf.getEventTypes())
        chans = np.asarray(buf.getChannels())
        times = np.asarray(buf.getTimestamps())
        missed_per = np.asarray(buf.getMissedEvents())
        if not types.shape == chans.shape == times.shape == missed_per.shape or types.ndim != 1:
            raise InstrumentError(f"garbled stream buffer: {types.size} types, {chans.size} channels, "
                                  f"{times.size} timestamps, {missed_per.size} missed counts",
                                  resource=self.resource, command="TimeTagStream.getData()")
        tags = types == _TIME_TAG
        missed = int(missed_per[types == _MISSED_EVENTS].sum())
        return TagBatch(channels=chans[tags].astype(np.int32), timestamps_ps=times[tags].astype(np.int64),
                        overflow=bool(buf.hasOverflows), missed_events=missed)

    def stop_stream(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    def _rates_for(self, counter, channels: list[int], duration_ps: int, label: str) -> np.ndarray:
        """Run ``counter`` (a Countrate) for ``duration_ps`` and return its rates, one per channel."""
        timeout_ms = int(duration_ps // 1_000_000_000) + int(float(self.options.get("timeout_s", 2.0)) * 1000)
        self._call(f"{label}.startFor", counter.startFor, int(duration_ps))
        if not self._call(f"{label}.waitUntilFinished", counter.waitUntilFinished, timeout_ms):
            counter.stop()
            raise InstrumentTimeout(f"the measurement did not finish within {timeout_ms} ms",
                                    resource=self.resource, command=f"{label}.waitUntilFinished({timeout_ms})")
        rates = np.asarray(self._call(f"{label}.getData", counter.getData), dtype=np.float64)
        if rates.shape != (len(channels),):
            raise InstrumentError(f"garbled count rates {rates.tolist()!r} for channels {channels}",
                                  resource=self.resource, command=f"{label}.getData()")
        return rates

    def count_rates_hz(self, channels: list[int], duration_ps: int) -> dict[int, float]:
        for c in channels:
            self._check_channel(c, f"Countrate(channels={channels})")
        if duration_ps <= 0:
            raise InstrumentError("duration must be positive", resource=self.resource,
                                  command=f"Countrate.startFor({duration_ps})")
        counter = self._call("Countrate", self.module.Countrate, self.tagger, list(channels))
        rates = self._rates_for(counter, list(channels), duration_ps, "Countrate")
        return {c: float(r) for c, r in zip(channels, rates)}

    def coincidence_rates_hz(self, groups, window_ps, duration_ps):
        command = f"Coincidences({[list(g) for g in groups]}, {window_ps})"
        checked = checked_groups(groups, self.channels, window_ps, duration_ps,
                                 resource=self.resource, command=command)
        coincidences = self._call("Coincidences", self.module.Coincidences, self.tagger,
                                  [list(g) for g in checked], int(window_ps))
        virtual = [int(c) for c in coincidences.getChannels()]
        if len(virtual) != len(checked):
            raise InstrumentError(f"garbled virtual channels {virtual} for {len(checked)} groups",
                                  resource=self.resource, command=f"{command}.getChannels()")
        counter = self._call("Countrate", self.module.Countrate, self.tagger, virtual)
        rates = self._rates_for(counter, virtual, duration_ps, "Countrate")
        return {g: float(r) for g, r in zip(checked, rates)}

    def close(self) -> None:
        if getattr(self, "tagger", None) is not None:
            self.stop_stream()
            self.module.freeTimeTagger(self.tagger)
            self.tagger = None
