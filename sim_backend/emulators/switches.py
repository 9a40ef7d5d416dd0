"""Optical switch protocol emulators: Polatis (SCPI over TCP), DiCon MEMS 1xN (CR-terminated
serial with a newline echo) and Agiltron (4-byte binary serial frames)."""

from __future__ import annotations

import re

from .base import Fault, ScpiEmulator, TcpEmulator, split_terminated


class PolatisEmulator(ScpiEmulator):
    """N x M switch: ingress ports 1..N, egress ports N+1..N+M."""

    idn = "Polatis,Series 6000,001234,6.7.0"
    no_error = '0,"No error"'

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ingress: int = 16, egress: int = 16) -> None:
        super().__init__(host, port)
        self.ingress, self.egress = ingress, egress
        self.routes: dict[int, int] = {}
        self.on(r"\*IDN\?", lambda m: self.idn)
        self.on(r":OXC:SWIT:SIZE\?", lambda m: f"{self.ingress},{self.egress}")
        self.on(r":OXC:SWIT:CONN:ADD \(@(\d+)\),\(@(\d+)\)", self._add)
        self.on(r":OXC:SWIT:CONN:SUB \(@(\d+)\),\(@(\d+)\)", self._sub)
        self.on(r":OXC:SWIT:CONN:STAT\?", self._state)

    def _ports_ok(self, i: int, o: int) -> bool:
        if 1 <= i <= self.ingress and self.ingress < o <= self.ingress + self.egress:
            return True
        self.error_queue.append('-222,"Data out of range"')
        return False

    def _add(self, m: re.Match) -> None:
        i, o = int(m[1]), int(m[2])
        if not self._ports_ok(i, o):
            return None
        if i in self.routes or o in self.routes.values():
            self.error_queue.append('-221,"Settings conflict; port already connected"')
            return None
        self.routes[i] = o

    def _sub(self, m: re.Match) -> None:
        i, o = int(m[1]), int(m[2])
        if self.routes.get(i) != o:
            self.error_queue.append('-221,"Settings conflict; ports not connected"')
            return None
        del self.routes[i]

    def _state(self, m: re.Match) -> str:
        ins = sorted(self.routes)
        return f"(@{','.join(map(str, ins))}),(@{','.join(str(self.routes[i]) for i in ins)})"


class DiconMemsEmulator(TcpEmulator):
    """1xN MEMS switch. Every command is acknowledged with a newline; queries then answer a line
    ended by CRLF. Channel 0 parks the mirror (no output)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, channels: int = 16) -> None:
        super().__init__(host, port)
        self.channels = channels
        self.channel = 0

    def split(self, buffer: bytearray) -> bytes | None:
        return split_terminated(buffer, b"\r", blocks=False)

    def respond(self, message: bytes) -> bytes | None:
        text = message.decode("ascii", "replace").strip()
        if text == "ID?":
            return b"\nDiCon MEMS 1x16 SN000001\r\n"
        if text == "CF?":
            return f"\n1x{self.channels}\r\n".encode()
        if text == "I1?":
            return f"\n{self.channel}\r\n".encode()
        if match := re.fullmatch(r"I1 (\d+)", text):
            value = int(match[1])
            if value <= self.channels:
                self.channel = value
                return b"\n"
            return b"\nERR\r\n"
        return b"\nERR\r\n"

    def error_reply(self, message: bytes, fault: Fault) -> bytes | None:
        return b"\nERR\r\n"


class AgiltronEmulator(TcpEmulator):
    """Agiltron SelfAlign-style binary switch: 4-byte frames ``01 35 00 <port-1>`` (set),
    ``01 30 00 00`` (home); each acknowledged with ``01 <cmd> FF FF``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ports: int = 8) -> None:
        super().__init__(host, port)
        self.ports = ports
        self.position = 0  # 0 = home (no output)

    def split(self, buffer: bytearray) -> bytes | None:
        if len(buffer) < 4:
            return None
        frame = bytes(buffer[:4])
        del buffer[:4]
        return frame

    def respond(self, message: bytes) -> bytes | None:
        address, command, high, low = message
        if address != 0x01:
            return None
        if command == 0x35 and high == 0 and low < self.ports:
            self.position = low + 1
            return bytes([0x01, 0x35, 0xFF, 0xFF])
        if command == 0x30:
            self.position = 0
            return bytes([0x01, 0x30, 0xFF, 0xFF])
        return bytes([0x01, command, 0xEE, 0xEE])

    def error_reply(self, message: bytes, fault: Fault) -> bytes | None:
        return bytes([0x01, message[1], 0xEE, 0xEE])
