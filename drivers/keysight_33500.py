"""Keysight (Agilent) 33500B / 33600A waveform generators: SCPI over VISA.

Arbitrary waveforms go up as IEEE 488.2 binary blocks of little-endian float32 (``FORM:BORD
SWAP``); every setting is followed by ``SYST:ERR?`` so a refused setting raises at once, naming
the command. Markers: the instrument has one sync/marker output per channel whose edge is placed
at a sample (``SOUR<n>:MARK:POIN``); the first sample with marker bit 0 set is used.
"""

from __future__ import annotations

import numpy as np

from .awg import AWG
from .awg_common import checked_channel, checked_name, checked_samples
from .registry import register_driver
from .scpi import Control, TextInstrument, ieee_block

_TRIGGER_SOURCES = {"BUS": "BUS", "EXT": "EXT", "IMM": "IMM"}


@register_driver(kind="awg", model="keysight_33500b", transport="visa",
                 description="Keysight 33500B/33600A function/arbitrary waveform generator (SCPI)")
class Keysight33500(TextInstrument, AWG):
    transport = "visa"
    amplitude = Control("SOUR{ch}:VOLT?", "SOUR{ch}:VOLT {value}", limit="amplitude_vpp",
                        bounds=(0.001, 10.0), doc="peak-to-peak amplitude into the set load, V")
    offset = Control("SOUR{ch}:VOLT:OFFS?", "SOUR{ch}:VOLT:OFFS {value}", limit="offset_v",
                     bounds=(-5.0, 5.0), doc="DC offset, V")
    output = Control("OUTP{ch}?", "OUTP{ch} {value}", choices={True: "ON", False: "OFF"})
    sample_rate = Control(None, "SOUR{ch}:FUNC:ARB:SRAT {value}", limit="sample_rate_hz",
                          bounds=(1e-6, 250e6), value_format="{:.10g}")
    burst_cycles = Control(None, "SOUR{ch}:BURS:NCYC {value}", bounds=(1, 1e8), value_format="{:.0f}")
    trigger_source = Control(None, "TRIG{ch}:SOUR {value}", choices=_TRIGGER_SOURCES)

    @property
    def num_channels(self) -> int:
        return int(self.options.get("channels", 2))

    def _ch(self, channel: int, command: str) -> int:
        return checked_channel(channel, self.num_channels, resource=self.resource, command=command)

    def upload_waveform(self, channel, name, samples, sample_rate_hz, markers=None) -> None:
        command = f"SOUR{channel}:DATA:ARB {name},#..."
        ch = self._ch(channel, command)
        checked_name(name, resource=self.resource, command=command, max_len=12)
        data = checked_samples(samples, resource=self.resource, command=command)
        rate_command = self.sample_rate.control.encode(self, sample_rate_hz, ch)
        with self.session.lock:
            self.write("FORM:BORD SWAP")
            self.session.write_raw(f"SOUR{ch}:DATA:ARB {name},".encode() + ieee_block(data.tobytes())
                                   + self.write_termination, label=command)
            self.check_errors(command)
            self.write("*WAI", check=False)
            self.write(rate_command)
            if markers is not None:
                marked = np.flatnonzero(np.asarray(markers, np.uint8) & 1)
                if marked.size:
                    self.write(f"SOUR{ch}:MARK:POIN {int(marked[0])}")

    def select_waveform(self, channel, name) -> None:
        ch = self._ch(channel, f"SOUR{channel}:FUNC:ARB {name}")
        with self.session.lock:
            self.write(f"SOUR{ch}:FUNC:ARB {name}")
            self.write(f"SOUR{ch}:FUNC ARB")
            self._selected = getattr(self, "_selected", set()) | {ch}

    def set_amplitude_vpp(self, channel, vpp) -> None:
        self.amplitude[self._ch(channel, f"SOUR{channel}:VOLT {vpp}")] = vpp

    def set_offset_v(self, channel, volts) -> None:
        self.offset[self._ch(channel, f"SOUR{channel}:VOLT:OFFS {volts}")] = volts

    def configure_burst(self, channel, cycles, trigger_source="BUS") -> None:
        ch = self._ch(channel, f"SOUR{channel}:BURS:NCYC {cycles}")
        # Encode everything first so that a bad argument sends nothing at all.
        commands = [f"SOUR{ch}:BURS:MODE TRIG", self.burst_cycles.control.encode(self, cycles, ch),
                    self.trigger_source.control.encode(self, trigger_source, ch), f"SOUR{ch}:BURS:STAT ON"]
        with self.session.lock:
            for command in commands:
                self.write(command)

    def trigger(self) -> None:
        self.write("*TRG")

    def set_output(self, channel, on) -> None:
        self.output[self._ch(channel, f"OUTP{channel}")] = bool(on)

    def run(self) -> None:
        with self.session.lock:
            for ch in sorted(getattr(self, "_selected", set()) or range(1, self.num_channels + 1)):
                self.output[ch] = True

    def stop(self) -> None:
        with self.session.lock:
            self.write("ABOR")
            for ch in range(1, self.num_channels + 1):
                self.output[ch] = False
