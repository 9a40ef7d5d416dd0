"""VISA transport through pyvisa with the pure-Python pyvisa-py backend (no vendor VISA needed).

``options.visa_library`` selects another backend; ``path/to/definitions.yaml@sim`` uses
pyvisa-sim. The same can be written into the resource string alone as
``<VISA resource>|<library>`` (``USB0::0x1313::0x804A::M001::INSTR|configs/emulators/thorlabs.yaml@sim``)
so a node YAML points a driver at an emulator with one field.
"""

from __future__ import annotations

import socket

import pyvisa
from pyvisa import constants, errors as visa_errors

from .base import Transport, TransportSettings

_MANAGERS: dict[str, pyvisa.ResourceManager] = {}


def split_visa_resource(resource: str, options: dict) -> tuple[str, str]:
    name, sep, library = resource.partition("|")
    return name, (library if sep else options.get("visa_library", "@py"))


def _manager(library: str) -> pyvisa.ResourceManager:
    if library not in _MANAGERS:
        _MANAGERS[library] = pyvisa.ResourceManager(library)
    return _MANAGERS[library]


def _disable_nagle(inst) -> None:
    """Turn TCP_NODELAY on for a pyvisa-py socket session.

    VISA makes VI_ATTR_TCPIP_NODELAY true by default; pyvisa-py (0.8) leaves Nagle's algorithm on
    and wires that attribute's setter to a function that refuses it, so the socket is reached
    directly. Without this a setting followed by its ``SYST:ERR?`` waits for the instrument's
    delayed ACK (about 40 ms on Linux). Other VISA libraries honour the VISA default themselves.
    """
    session = getattr(inst.visalib, "sessions", {}).get(inst.session)
    sock = getattr(session, "interface", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class VisaTransport(Transport):
    def __init__(self, resource: str, settings: TransportSettings) -> None:
        super().__init__(resource, settings)
        self.visa_name, self.library = split_visa_resource(resource, settings.options)
        self._inst = None

    def open(self) -> None:
        try:
            inst = _manager(self.library).open_resource(self.visa_name)
        except visa_errors.VisaIOError as exc:
            raise ConnectionError(f"cannot open {self.visa_name}: {exc.description}") from exc
        except OSError as exc:
            raise ConnectionError(f"cannot open {self.visa_name}: {exc}") from exc
        inst.timeout = max(1, int(self.settings.timeout_s * 1000))
        inst.read_termination = self.settings.read_termination.decode()
        inst.write_termination = ""  # the session adds terminations so written bytes are exact
        if self.visa_name.upper().endswith("::SOCKET"):
            _disable_nagle(inst)
        self._inst = inst

    def close(self) -> None:
        if self._inst is not None:
            try:
                self._inst.close()
            except (visa_errors.VisaIOError, OSError):
                pass
            finally:
                self._inst = None

    def _require(self):
        if self._inst is None:
            raise ConnectionError("not connected")
        return self._inst

    @staticmethod
    def _translate(exc: visa_errors.VisaIOError) -> Exception:
        if exc.error_code == constants.StatusCode.error_timeout:
            return TimeoutError(exc.description)
        return ConnectionError(exc.description)

    def write(self, data: bytes) -> None:
        try:
            self._require().write_raw(data)
        except visa_errors.VisaIOError as exc:
            raise self._translate(exc) from exc
        except OSError as exc:
            raise ConnectionError(f"write failed: {exc}") from exc

    def read_message(self) -> bytes:
        try:
            raw = self._require().read_raw()
        except visa_errors.VisaIOError as exc:
            raise self._translate(exc) from exc
        except OSError as exc:
            raise ConnectionError(f"read failed: {exc}") from exc
        return raw.removesuffix(self.settings.read_termination)

    def read_exact(self, count: int) -> bytes:
        try:
            return self._require().read_bytes(count)
        except visa_errors.VisaIOError as exc:
            raise self._translate(exc) from exc
