"""Photon-pair source emulators.

A Qubitekk-style SPDC module (serial, CRLF lines): setting commands start with ``:`` and are
silent; queries answer one CRLF line; anything not understood answers ``ERR <reason>``.
Temperatures are integer counts (``counts_per_c`` per degree).

The Thorlabs ITC4001 (pump laser current) and TED4015 (crystal oven) are plain SCPI with an error
queue. pyvisa-sim serves them from configs/emulators/thorlabs_itc4001_ted4015.yaml, which suffices
for behaviour; :class:`ThorlabsItc4001Emulator` and :class:`ThorlabsTed4015Emulator` serve the
same command set over a socket (``TCPIP::host::port::SOCKET``) so tests also see every byte and can
inject faults. Both reject out-of-range values with ``-222,"Data out of range"`` as the real
controllers' error queues do (reply formats unverified; see docs/drivers.md).
"""

from __future__ import annotations

import re

from .base import Fault, ScpiEmulator, TcpEmulator, split_terminated


class QubitekkSpdcEmulator(TcpEmulator):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, counts_per_c: int = 1000) -> None:
        super().__init__(host, port)
        self.counts_per_c = counts_per_c
        self.setpoint = 25 * counts_per_c
        self.temperature = 25 * counts_per_c
        self.pump_on = False
        self.pump_ma = 20.0
        self.fault = "0"

    def split(self, buffer: bytearray) -> bytes | None:
        return split_terminated(buffer, b"\r\n", blocks=False)

    def respond(self, message: bytes) -> bytes | None:
        text = message.decode("ascii", "replace").strip()
        if text == "*IDN?":
            return b"Qubitekk,QES2.0,SN0001,2.3\r\n"
        if text == "TEMP?":
            return f"{self.temperature}\r\n".encode()
        if text == "SETP?":
            return f"{self.setpoint}\r\n".encode()
        if text == "PLST?":
            return b"1\r\n" if self.pump_on else b"0\r\n"
        if text == "PLID?":
            return f"{self.pump_ma:.2f}\r\n".encode()
        if text == "FAUL?":
            return f"{self.fault}\r\n".encode()
        if text == ":PLON":
            self.pump_on = True
            return None
        if text == ":PLOF":
            self.pump_on = False
            return None
        if match := re.fullmatch(r":SETT (\d+)", text):
            value = int(match[1])
            if 10000 <= value <= 50000:
                self.setpoint = value
                self.temperature = value  # the emulated oven settles at once
                return None
            return b"ERR setpoint out of range\r\n"
        if match := re.fullmatch(r":PLDC ([\d.]+)", text):
            value = float(match[1])
            if 20 <= value <= 120:
                self.pump_ma = value
                return None
            return b"ERR current out of range\r\n"
        return b"ERR unknown command\r\n"

    def error_reply(self, message: bytes, fault: Fault) -> bytes | None:
        return f"ERR {fault.message or 'hardware fault'}\r\n".encode()


class _ThorlabsController(ScpiEmulator):
    def _float(self, value: bytes, low: float, high: float) -> float | None:
        number = float(value)
        if not low <= number <= high:
            self.error_queue.append('-222,"Data out of range"')
            return None
        return number

    def _output(self, m: re.Match) -> None:
        self.output_on = m[1] in (b"1", b"ON")


class ThorlabsItc4001Emulator(_ThorlabsController):
    """ITC4001 laser-diode controller: currents in amperes, limit 0.4 A."""

    idn = "Thorlabs,ITC4001,M00000001,1.8.0/1.5.0/1.1.0"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.current_a = 0.0
        self.output_on = False
        self.interlock_open = False
        self.on(r"\*IDN\?", lambda m: self.idn)
        self.on(r"SOUR:CURR:LEV:AMPL ([-+.\dE]+)", self._set_current)
        self.on(r"SOUR:CURR:LEV:AMPL\?", lambda m: f"{self.current_a:.6E}")
        self.on(r"MEAS:CURR\?", lambda m: f"{self.current_a if self.output_on else 0.0:.6E}")
        self.on(r"OUTP (0|1|ON|OFF)", self._output)
        self.on(r"OUTP\?", lambda m: "1" if self.output_on else "0")
        self.on(r"OUTP:PROT:INTL:TRIP\?", lambda m: "1" if self.interlock_open else "0")
        self.on(r"OUTP:PROT:KEYL:TRIP\?", lambda m: "0")

    def _set_current(self, m: re.Match) -> None:
        value = self._float(m[1], 0.0, 0.4)
        if value is not None:
            self.current_a = value


class ThorlabsTed4015Emulator(_ThorlabsController):
    """TED4015 TEC controller: temperatures in degrees C once ``UNIT:TEMP C`` was sent."""

    idn = "Thorlabs,TED4015,M00000002,1.6.0"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.setpoint_c = 25.0
        self.unit = "K"
        self.output_on = False
        self.on(r"\*IDN\?", lambda m: self.idn)
        self.on(r"UNIT:TEMP (C|K|F)", lambda m: setattr(self, "unit", m[1].decode()))
        self.on(r"SOUR:TEMP ([-+.\dE]+)", self._set_temperature)
        self.on(r"SOUR:TEMP\?", lambda m: f"{self.setpoint_c:.6E}")
        self.on(r"MEAS:TEMP\?", lambda m: f"{self.setpoint_c:.6E}")  # the emulated oven settles at once
        self.on(r"OUTP (0|1|ON|OFF)", self._output)
        self.on(r"OUTP\?", lambda m: "1" if self.output_on else "0")
        self.on(r"OUTP:PROT:TRIP\?", lambda m: "0")

    def _set_temperature(self, m: re.Match) -> None:
        if self.unit != "C":
            self.error_queue.append('-221,"Settings conflict; temperature unit is not C"')
            return None
        value = self._float(m[1], -45.0, 145.0)
        if value is not None:
            self.setpoint_c = value
