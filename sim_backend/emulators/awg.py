"""AWG protocol emulators: Keysight 33500B/33600A and Tektronix AWG70000 (SCPI over TCP sockets,
with IEEE 488.2 binary blocks and an error queue)."""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from .base import ScpiEmulator


def _block(raw: bytes) -> bytes:
    digits = int(raw[1:2])
    length = int(raw[2:2 + digits])
    return raw[2 + digits:2 + digits + length]


class Keysight33500Emulator(ScpiEmulator):
    idn = "Agilent Technologies,33522B,MY00000001,5.02-1.19-2.00-52-00"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, channels: int = 2) -> None:
        super().__init__(host, port)
        self.byte_order = "NORM"
        self.arbs: dict[int, dict[str, np.ndarray]] = {c: {} for c in range(1, channels + 1)}
        self.state = {c: {"VOLT": 0.1, "VOLT:OFFS": 0.0, "OUTP": "0", "FUNC": "SIN", "FUNC:ARB": "",
                          "SRAT": 4e4, "BURS:NCYC": 1, "BURS:STAT": "0", "BURS:MODE": "TRIG",
                          "TRIG:SOUR": "IMM", "MARK:POIN": 0} for c in range(1, channels + 1)}
        self.triggers = 0
        #: Called on each bus trigger with {channel: waveform} of the channels it starts (what a
        #: lab's cables carry on: tests wire these to a tagger, see qnic_bench).
        self.trigger_listeners: list[Callable[[dict[int, str]], None]] = []
        self.on(r"\*IDN\?", lambda m: self.idn)
        self.on(r"\*WAI", lambda m: None)
        self.on(r"\*TRG", self._trg)
        self.on(r"FORM:BORD (SWAP|NORM)", self._bord)
        self.on(r"SOUR(\d):DATA:ARB (\w+),(#.*)", self._arb)
        self.on(r"SOUR(\d):DATA:VOL:CLE", lambda m: self.arbs[int(m[1])].clear())
        self.on(r"SOUR(\d):FUNC:ARB (\w+)", self._select)
        self.on(r"SOUR(\d):FUNC:ARB:SRAT ([-+.\dE]+)", lambda m: self._set(m, "SRAT", float(m[2])))
        self.on(r"SOUR(\d):FUNC (SIN|SQU|ARB|DC)", lambda m: self._set(m, "FUNC", m[2].decode()))
        self.on(r"SOUR(\d):VOLT ([-+.\dE]+)", lambda m: self._set(m, "VOLT", float(m[2])))
        self.on(r"SOUR(\d):VOLT\?", lambda m: f"{self.state[int(m[1])]['VOLT']:+.8E}")
        self.on(r"SOUR(\d):VOLT:OFFS ([-+.\dE]+)", lambda m: self._set(m, "VOLT:OFFS", float(m[2])))
        self.on(r"SOUR(\d):VOLT:OFFS\?", lambda m: f"{self.state[int(m[1])]['VOLT:OFFS']:+.8E}")
        self.on(r"SOUR(\d):BURS:MODE (TRIG|GAT)", lambda m: self._set(m, "BURS:MODE", m[2].decode()))
        self.on(r"SOUR(\d):BURS:NCYC (\d+)", lambda m: self._set(m, "BURS:NCYC", int(m[2])))
        self.on(r"SOUR(\d):BURS:STAT (ON|OFF)", lambda m: self._set(m, "BURS:STAT", "1" if m[2] == b"ON" else "0"))
        self.on(r"SOUR(\d):MARK:POIN (\d+)", lambda m: self._set(m, "MARK:POIN", int(m[2])))
        self.on(r"TRIG(\d):SOUR (BUS|EXT|IMM)", lambda m: self._set(m, "TRIG:SOUR", m[2].decode()))
        self.on(r"OUTP(\d) (ON|OFF)", lambda m: self._set(m, "OUTP", "1" if m[2] == b"ON" else "0"))
        self.on(r"OUTP(\d)\?", lambda m: self.state[int(m[1])]["OUTP"])
        self.on(r"ABOR", lambda m: None)

    def _set(self, m: re.Match, key: str, value) -> None:
        channel = int(m[1])
        if channel not in self.state:
            self.error_queue.append('-114,"Header suffix out of range"')
            return None
        self.state[channel][key] = value
        return None

    def _bord(self, m: re.Match) -> None:
        self.byte_order = m[1].decode()

    def _trg(self, m: re.Match) -> None:
        self.triggers += 1
        # A bus trigger starts one burst on every channel that is armed for it with its output on.
        playing = {c: s["FUNC:ARB"] for c, s in self.state.items()
                   if s["OUTP"] == "1" and s["BURS:STAT"] == "1" and s["TRIG:SOUR"] == "BUS"
                   and s["FUNC"] == "ARB"}
        for listener in self.trigger_listeners:
            listener(playing)

    def _arb(self, m: re.Match) -> None:
        payload = _block(m[3])
        if len(payload) % 4 or len(payload) < 32:
            self.error_queue.append('-221,"Settings conflict; arb too short or not float32"')
            return None
        samples = np.frombuffer(payload, "<f4" if self.byte_order == "SWAP" else ">f4")
        if np.any(np.abs(samples) > 1.0):
            self.error_queue.append('-222,"Data out of range"')
            return None
        self.arbs[int(m[1])][m[2].decode()] = samples.copy()

    def _select(self, m: re.Match) -> None:
        channel, name = int(m[1]), m[2].decode()
        if name not in self.arbs[channel]:
            self.error_queue.append('+786,"Arb waveform not found"')
            return None
        self.state[channel]["FUNC:ARB"] = name


class TektronixAWG70kEmulator(ScpiEmulator):
    idn = "TEKTRONIX,AWG70002A,B010000,FV:6.0.0242.0"
    no_error = '0,"No error"'

    def __init__(self, host: str = "127.0.0.1", port: int = 0, channels: int = 2) -> None:
        super().__init__(host, port)
        self.waveforms: dict[str, np.ndarray] = {}
        self.markers: dict[str, np.ndarray] = {}
        self.state = {c: {"CASS": "", "VOLT": 0.5, "OFFS": 0.0, "OUTP": "0", "RMOD": "CONT", "TINP": "ATR"}
                      for c in range(1, channels + 1)}
        self.sample_rate = 25e9
        self.running = False
        self.triggers = 0
        #: As on the Keysight emulator: {channel: waveform} started by each A trigger.
        self.trigger_listeners: list[Callable[[dict[int, str]], None]] = []
        self.on(r"\*IDN\?", lambda m: self.idn)
        self.on(r"\*OPC\?", lambda m: "1")
        self.on(r'WLIS:WAV:NEW "(\w+)",(\d+)', self._new)
        self.on(r'WLIS:WAV:DEL "(\w+)"', lambda m: self.waveforms.pop(m[1].decode(), None) and None)
        self.on(r'WLIS:WAV:DATA "(\w+)",(\d+),(\d+),(#.*)', self._data)
        self.on(r'WLIS:WAV:MARK:DATA "(\w+)",(\d+),(\d+),(#.*)', self._marker)
        self.on(r'SOUR(\d):CASS:WAV "(\w+)"', self._cass)
        self.on(r"SOUR(\d):CASS\?", lambda m: f'"{self.state[int(m[1])]["CASS"]}"')
        self.on(r"SOUR(\d):VOLT ([-+.\dE]+)", lambda m: self._set(m, "VOLT", float(m[2])))
        self.on(r"SOUR(\d):VOLT\?", lambda m: f"{self.state[int(m[1])]['VOLT']:.6g}")
        self.on(r"SOUR(\d):VOLT:OFFS ([-+.\dE]+)", lambda m: self._set(m, "OFFS", float(m[2])))
        self.on(r"SOUR(\d):VOLT:OFFS\?", lambda m: f"{self.state[int(m[1])]['OFFS']:.6g}")
        self.on(r"SOUR(\d):RMOD (CONT|TRIG)", lambda m: self._set(m, "RMOD", m[2].decode()))
        self.on(r"SOUR(\d):TINP (ATR|BTR|ITR)", lambda m: self._set(m, "TINP", m[2].decode()))
        self.on(r"OUTP(\d):STAT (ON|OFF)", lambda m: self._set(m, "OUTP", "1" if m[2] == b"ON" else "0"))
        self.on(r"OUTP(\d):STAT\?", lambda m: self.state[int(m[1])]["OUTP"])
        self.on(r"CLOC:SRAT ([-+.\dE]+)", self._srat)
        self.on(r"TRIG:IMM (ATR|BTR)", self._trig)
        self.on(r"AWGC:RUN", lambda m: setattr(self, "running", True))
        self.on(r"AWGC:STOP", lambda m: setattr(self, "running", False))
        self.on(r"AWGC:RST\?", lambda m: "2" if self.running else "0")

    def _set(self, m: re.Match, key: str, value) -> None:
        self.state[int(m[1])][key] = value

    def _srat(self, m: re.Match) -> None:
        rate = float(m[1])
        if not 1.49e3 <= rate <= 25e9:
            self.error_queue.append('-222,"Data out of range"')
            return None
        self.sample_rate = rate

    def _trig(self, m: re.Match) -> None:
        self.triggers += 1
        if not self.running:
            return
        playing = {c: s["CASS"] for c, s in self.state.items()
                   if s["OUTP"] == "1" and s["RMOD"] == "TRIG" and s["TINP"] == m[1].decode()}
        for listener in self.trigger_listeners:
            listener(playing)

    def _new(self, m: re.Match) -> None:
        name = m[1].decode()
        if name in self.waveforms:
            self.error_queue.append('-224,"Illegal parameter value; waveform exists"')
            return None
        self.waveforms[name] = np.zeros(int(m[2]), np.float32)
        self.markers[name] = np.zeros(int(m[2]), np.uint8)

    def _data(self, m: re.Match) -> None:
        name, start, size = m[1].decode(), int(m[2]), int(m[3])
        payload = _block(m[4])
        if name not in self.waveforms or len(payload) != 4 * size or start + size > self.waveforms[name].size:
            self.error_queue.append('-224,"Illegal parameter value"')
            return None
        self.waveforms[name][start:start + size] = np.frombuffer(payload, "<f4")

    def _marker(self, m: re.Match) -> None:
        name, start, size = m[1].decode(), int(m[2]), int(m[3])
        payload = _block(m[4])
        if name not in self.markers or len(payload) != size:
            self.error_queue.append('-224,"Illegal parameter value"')
            return None
        self.markers[name][start:start + size] = np.frombuffer(payload, np.uint8)

    def _cass(self, m: re.Match) -> None:
        name = m[2].decode()
        if name not in self.waveforms:
            self.error_queue.append('-224,"Illegal parameter value; no such waveform"')
            return None
        self.state[int(m[1])]["CASS"] = name
