"""Photon-pair source emulator: a Qubitekk-style SPDC module (serial, CRLF lines).

Setting commands start with ``:`` and are silent; queries answer one CRLF line; anything not
understood answers ``ERR <reason>``. Temperatures are integer counts (``counts_per_c`` per degree).
The Thorlabs ITC4001/TED4015 pair is plain SCPI and is emulated by pyvisa-sim
(configs/emulators/thorlabs_itc4001_ted4015.yaml).
"""

from __future__ import annotations

import re

from .base import Fault, TcpEmulator, split_terminated


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
