"""Serial transport through pyserial's ``serial_for_url``.

The resource is anything ``serial_for_url`` accepts: ``/dev/ttyUSB0``, ``COM3``,
``socket://127.0.0.1:7000`` (how tests reach an emulator), ``rfc2217://host:port``. Line settings
come from the driver (``baudrate`` etc.) and may be overridden in the instrument's YAML options.
"""

from __future__ import annotations

import time

import serial

from .base import StreamTransport, TransportSettings

_SERIAL_KEYS = ("baudrate", "bytesize", "parity", "stopbits", "xonxoff", "rtscts")


class SerialTransport(StreamTransport):
    def __init__(self, resource: str, settings: TransportSettings) -> None:
        super().__init__(resource, settings)
        self._port: serial.SerialBase | None = None

    def open(self) -> None:
        self._buffer.clear()
        kwargs = {k: v for k, v in self.settings.options.items() if k in _SERIAL_KEYS}
        try:
            self._port = serial.serial_for_url(self.resource, timeout=self.settings.timeout_s,
                                               write_timeout=self.settings.timeout_s, **kwargs)
        except serial.SerialException as exc:
            raise ConnectionError(f"cannot open {self.resource}: {exc}") from exc

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    def _require(self) -> serial.SerialBase:
        if self._port is None:
            raise ConnectionError("not connected")
        return self._port

    def write(self, data: bytes) -> None:
        port = self._require()
        try:
            port.write(data)
            port.flush()
        except serial.SerialTimeoutException as exc:
            raise TimeoutError("write timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise ConnectionError(f"write failed: {exc}") from exc

    def _fill(self, deadline: float) -> None:
        port = self._require()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply within the timeout")
        port.timeout = remaining
        try:
            chunk = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise ConnectionError(f"read failed: {exc}") from exc
        if not chunk:
            raise TimeoutError("no complete reply within the timeout")
        self._buffer.extend(chunk)

    def unread(self) -> bytes:
        port = self._port
        if port is not None:
            try:
                waiting = port.in_waiting
                if waiting:
                    self._buffer.extend(port.read(waiting))
            except (serial.SerialException, OSError):
                pass
        return bytes(self._buffer)
