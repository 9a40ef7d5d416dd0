"""Plain TCP socket transport (raw SCPI on port 5025 style, Polatis).

Resource forms: ``TCPIP::host::port::SOCKET`` (the VISA spelling, so a node YAML can use one
notation for every socket instrument) or ``host:port``.
"""

from __future__ import annotations

import re
import socket
import time

from .base import StreamTransport, TransportSettings

_VISA_SOCKET = re.compile(r"^TCPIP\d*::([^:]+)::(\d+)::SOCKET$", re.IGNORECASE)


def parse_tcp_resource(resource: str) -> tuple[str, int]:
    match = _VISA_SOCKET.match(resource)
    if match:
        return match.group(1), int(match.group(2))
    host, sep, port = resource.removeprefix("tcpip://").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a TCP resource (expected TCPIP::host::port::SOCKET or host:port): {resource!r}")
    return host, int(port)


class TcpTransport(StreamTransport):
    def __init__(self, resource: str, settings: TransportSettings) -> None:
        super().__init__(resource, settings)
        self.host, self.port = parse_tcp_resource(resource)
        self._sock: socket.socket | None = None

    def open(self) -> None:
        self._buffer.clear()
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.settings.timeout_s)
        except socket.timeout as exc:
            raise TimeoutError(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionError("not connected")
        return self._sock

    def write(self, data: bytes) -> None:
        sock = self._require()
        try:
            sock.sendall(data)
        except socket.timeout as exc:
            raise TimeoutError("write timed out") from exc
        except OSError as exc:
            raise ConnectionError(f"write failed: {exc}") from exc

    def _fill(self, deadline: float) -> None:
        sock = self._require()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply within the timeout")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout as exc:
            raise TimeoutError("no complete reply within the timeout") from exc
        except OSError as exc:
            raise ConnectionError(f"read failed: {exc}") from exc
        if not chunk:
            raise ConnectionError("connection closed by the instrument")
        self._buffer.extend(chunk)

    def unread(self) -> bytes:
        sock = self._sock
        if sock is not None:
            sock.setblocking(False)
            try:
                while chunk := sock.recv(65536):
                    self._buffer.extend(chunk)
            except (BlockingIOError, OSError):
                pass
            finally:
                sock.setblocking(True)
        return bytes(self._buffer)
