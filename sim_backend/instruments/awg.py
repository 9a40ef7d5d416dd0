"""Simulated AWG: waveforms and marker bits per channel; a trigger plays the burst and every
rising marker edge becomes an event on the clock (tagged where the World cables it, and delivered
to the World's marker listeners on the event loop)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from drivers.awg import AWG
from drivers.awg_common import checked_channel, checked_name, checked_samples
from qnode_fw.errors import InstrumentError

from .common import limits_of, world_from_context

#: Bursts :attr:`SimAWG.played` keeps: the latest ones, to look at what the AWG just did.
PLAYED_LOG_SIZE = 256


@dataclass
class _Waveform:
    samples: np.ndarray
    sample_rate_hz: float
    markers: np.ndarray | None


@dataclass
class _Channel:
    selected: str | None = None
    amplitude_vpp: float = 0.1
    offset_v: float = 0.0
    cycles: int = 1
    trigger_source: str = "BUS"
    output: bool = False


class SimAWG(AWG):
    """Simulated arbitrary waveform generator (markers drive trigger events on the loop clock)."""

    model = "sim"

    def __init__(self, name: str, world, clock, *, num_channels: int = 2, limits=None,
                 trigger_latency_ps: int = 0) -> None:
        super().__init__(name, f"sim://awg/{name}")
        self.world = world
        self.clock = clock
        self.limits = limits
        self._num_channels = int(num_channels)
        self.trigger_latency_ps = int(trigger_latency_ps)
        self._waveforms: dict[str, _Waveform] = {}
        self._channels = {ch: _Channel() for ch in range(1, self._num_channels + 1)}
        self.running = False
        #: (time_ps, channel, marker, edge times) of the latest PLAYED_LOG_SIZE bursts (a node
        #: triggers one per attempt cycle for as long as it runs); :attr:`bursts` counts them all
        self.played: deque[tuple[int, int, int, np.ndarray]] = deque(maxlen=PLAYED_LOG_SIZE)
        self.bursts = 0

    @classmethod
    def from_config(cls, spec, context):
        world = world_from_context(spec, context)
        return cls(spec.name, world, world.clock, num_channels=int(spec.options.get("channels", 2)),
                   limits=limits_of(spec), trigger_latency_ps=int(spec.options.get("trigger_latency_ps", 0)))

    def identify(self) -> str:
        return f"qnode-fw,SimAWG,{self.name},sim"

    @property
    def num_channels(self) -> int:
        return self._num_channels

    def _ch(self, channel: int, command: str) -> _Channel:
        return self._channels[checked_channel(channel, self._num_channels, resource=self.resource, command=command)]

    def upload_waveform(self, channel, name, samples, sample_rate_hz, markers=None) -> None:
        command = f"upload {channel} {name}"
        self._ch(channel, command)
        checked_name(name, resource=self.resource, command=command)
        data = checked_samples(samples, resource=self.resource, command=command)
        if sample_rate_hz <= 0:
            raise InstrumentError("sample rate must be positive", resource=self.resource, command=command)
        m = None
        if markers is not None:
            m = np.asarray(markers, np.uint8)
            if m.shape != data.shape:
                raise InstrumentError(f"{m.size} marker values for {data.size} samples",
                                      resource=self.resource, command=command)
        self._waveforms[name] = _Waveform(data, float(sample_rate_hz), m)

    def select_waveform(self, channel, name) -> None:
        command = f"select {channel} {name}"
        ch = self._ch(channel, command)
        if name not in self._waveforms:
            raise InstrumentError(f"no waveform named {name!r}", resource=self.resource, command=command)
        ch.selected = name

    def set_amplitude_vpp(self, channel, vpp) -> None:
        command = f"amplitude {channel} {vpp}"
        ch = self._ch(channel, command)
        if self.limits is not None:
            self.limits.check("amplitude_vpp", vpp, resource=self.resource, command=command)
        ch.amplitude_vpp = float(vpp)

    def set_offset_v(self, channel, volts) -> None:
        command = f"offset {channel} {volts}"
        ch = self._ch(channel, command)
        if self.limits is not None:
            self.limits.check("offset_v", volts, resource=self.resource, command=command)
        ch.offset_v = float(volts)

    def configure_burst(self, channel, cycles, trigger_source="BUS") -> None:
        command = f"burst {channel} {cycles} {trigger_source}"
        ch = self._ch(channel, command)
        if int(cycles) < 1 or trigger_source not in ("BUS", "EXT", "IMM"):
            raise InstrumentError("burst needs cycles >= 1 and trigger source BUS, EXT or IMM",
                                  resource=self.resource, command=command)
        ch.cycles, ch.trigger_source = int(cycles), trigger_source

    def set_output(self, channel, on) -> None:
        self._ch(channel, f"output {channel} {on}").output = bool(on)

    def run(self) -> None:
        self.running = True
        # free-running (IMM) channels play their burst once at run
        self._play(lambda ch: ch.trigger_source == "IMM")

    def stop(self) -> None:
        self.running = False

    def trigger(self) -> None:
        """Software trigger: BUS-triggered channels play now (plus the trigger latency)."""
        self._play(lambda ch: ch.trigger_source == "BUS")

    def external_trigger(self, time_ps: int | None = None) -> None:
        """An edge on the trigger input (from another instrument's marker)."""
        self._play(lambda ch: ch.trigger_source == "EXT", time_ps)

    def _play(self, which, time_ps: int | None = None) -> None:
        if not self.running:
            return
        start = (self.clock.now_ps() if time_ps is None else int(time_ps)) + self.trigger_latency_ps
        for number, ch in self._channels.items():
            if not (ch.output and ch.selected and which(ch)):
                continue
            wf = self._waveforms[ch.selected]
            if wf.markers is None:
                continue
            n = wf.samples.size
            dt_ps = 1e12 / wf.sample_rate_hz
            for marker, bit in ((1, 1), (2, 2)):
                on = (wf.markers & bit) != 0
                rising = np.flatnonzero(on & ~np.r_[False, on[:-1]])
                if rising.size == 0:
                    continue
                index = (np.arange(ch.cycles)[:, None] * n + rising[None, :]).ravel()
                times = start + np.rint(index * dt_ps).astype(np.int64)
                self.played.append((start, number, marker, times))
                self.bursts += 1
                self.world.marker_edges(self.name, number, marker, times)
