"""Tektronix AWG70000 / AWG5200 arbitrary waveform generators: SCPI over VISA (TCP socket 4000 or
VXI-11).

Waveforms live in the waveform list: ``WLISt:WAVeform:NEW "name",N`` then ``WLISt:WAVeform:DATA
"name",0,N,#<block>`` with little-endian float32 samples, and marker bytes with
``WLISt:WAVeform:MARKer:DATA`` (bit 6 = marker 1, bit 7 = marker 2; the interface's bit 0/1 are
shifted there). A channel plays a list entry after ``SOURce<n>:CASSet:WAVeform``. Long operations
are fenced with ``*OPC?``; every setting is followed by ``SYSTem:ERRor?``.
"""

from __future__ import annotations

import numpy as np

from qnode_fw.errors import InstrumentError

from .awg import AWG
from .awg_common import checked_channel, checked_name, checked_samples
from .registry import register_driver
from .scpi import Control, TextInstrument, ieee_block

# The trigger input a channel waits on: the bus trigger is a software A-trigger (TRIG:IMM ATR).
_TRIGGER_INPUTS = {"BUS": "ATR", "EXT": "ATR"}


@register_driver(kind="awg", model="tektronix_awg70k", transport="visa",
                 description="Tektronix AWG70000/AWG5200 arbitrary waveform generator (SCPI)")
class TektronixAWG70k(TextInstrument, AWG):
    transport = "visa"
    default_timeout_s = 10.0  # waveform list operations on long records take seconds
    amplitude = Control("SOUR{ch}:VOLT?", "SOUR{ch}:VOLT {value}", limit="amplitude_vpp",
                        bounds=(0.25, 0.5), doc="direct-output amplitude, Vpp (AWG70002A: 0.25-0.5)")
    offset = Control("SOUR{ch}:VOLT:OFFS?", "SOUR{ch}:VOLT:OFFS {value}", limit="offset_v",
                     bounds=(-2.0, 2.0))
    output = Control("OUTP{ch}:STAT?", "OUTP{ch}:STAT {value}", choices={True: "ON", False: "OFF"})
    sample_rate = Control("CLOC:SRAT?", "CLOC:SRAT {value}", limit="sample_rate_hz",
                          bounds=(1.49e3, 25e9), value_format="{:.10g}")

    @property
    def num_channels(self) -> int:
        return int(self.options.get("channels", 2))

    def _ch(self, channel: int, command: str) -> int:
        return checked_channel(channel, self.num_channels, resource=self.resource, command=command)

    def wait_complete(self, command: str) -> None:
        reply = self.query("*OPC?")
        if reply.strip() != "1":
            raise InstrumentError(f"*OPC? answered {reply!r}, expected '1'", resource=self.resource,
                                  command=command)

    def upload_waveform(self, channel, name, samples, sample_rate_hz, markers=None) -> None:
        command = f'WLIS:WAV:DATA "{name}"'
        self._ch(channel, command)
        checked_name(name, resource=self.resource, command=command)
        data = checked_samples(samples, resource=self.resource, command=command)
        marker_bytes = None
        if markers is not None:
            bits = np.asarray(markers, dtype=np.uint8)
            if bits.shape != data.shape or np.any(bits > 3):
                raise InstrumentError("markers must be one value 0..3 per sample; nothing was sent",
                                      resource=self.resource, command=command)
            marker_bytes = ((bits & 1) << 6 | (bits & 2) << 6).astype(np.uint8)
        rate_command = type(self).sample_rate.encode(self, sample_rate_hz, None)
        n = data.size
        with self.session.lock:
            self.write(f'WLIS:WAV:NEW "{name}",{n}')
            self.session.write_raw(f'WLIS:WAV:DATA "{name}",0,{n},'.encode() + ieee_block(data.tobytes())
                                   + self.write_termination, label=command)
            self.check_errors(command)
            if marker_bytes is not None:
                label = f'WLIS:WAV:MARK:DATA "{name}"'
                self.session.write_raw(f'WLIS:WAV:MARK:DATA "{name}",0,{n},'.encode()
                                       + ieee_block(marker_bytes.tobytes()) + self.write_termination,
                                       label=label)
                self.check_errors(label)
            self.write(rate_command)
            self.wait_complete(command)

    def select_waveform(self, channel, name) -> None:
        command = f'SOUR{channel}:CASS:WAV "{name}"'
        ch = self._ch(channel, command)
        checked_name(name, resource=self.resource, command=command)
        self.write(f'SOUR{ch}:CASS:WAV "{name}"')

    def set_amplitude_vpp(self, channel, vpp) -> None:
        self.amplitude[self._ch(channel, f"SOUR{channel}:VOLT {vpp}")] = vpp

    def set_offset_v(self, channel, volts) -> None:
        self.offset[self._ch(channel, f"SOUR{channel}:VOLT:OFFS {volts}")] = volts

    def configure_burst(self, channel, cycles, trigger_source="BUS") -> None:
        command = f"SOUR{channel}:RMOD TRIG"
        ch = self._ch(channel, command)
        if trigger_source == "IMM":
            self.write(f"SOUR{ch}:RMOD CONT")
            return
        if trigger_source not in _TRIGGER_INPUTS:
            raise InstrumentError(f"trigger source {trigger_source!r} is not BUS, EXT or IMM; nothing "
                                  "was sent", resource=self.resource, command=command)
        if int(cycles) != 1:
            raise InstrumentError("in waveform (non-sequence) mode the AWG70000 plays one cycle per "
                                  "trigger; build a sequence for repeats. Nothing was sent",
                                  resource=self.resource, command=command)
        with self.session.lock:
            self.write(f"SOUR{ch}:RMOD TRIG")
            self.write(f"SOUR{ch}:TINP {_TRIGGER_INPUTS[trigger_source]}")

    def trigger(self) -> None:
        self.write("TRIG:IMM ATR")

    def set_output(self, channel, on) -> None:
        self.output[self._ch(channel, f"OUTP{channel}:STAT")] = bool(on)

    def run(self) -> None:
        with self.session.lock:
            self.write("AWGC:RUN")
            self.wait_complete("AWGC:RUN")

    def stop(self) -> None:
        self.write("AWGC:STOP")

    def is_running(self) -> bool:
        # AWGC:RST? answers 0 stopped, 1 waiting for trigger, 2 running.
        return self.parse(self.query("AWGC:RST?"), int, "AWGC:RST?") != 0
