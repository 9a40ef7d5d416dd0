"""ZeroMQ REQ transport (ID Quantique ID900/ID1000: SCPI strings, one reply per request).

A REQ socket that timed out cannot send again (strict send/receive alternation), so after a
timeout the session closes it and opens a fresh one, the "lazy pirate" pattern from the ZeroMQ
guide. Each request gets one reply; a setting command's reply is normally empty.
"""

from __future__ import annotations

import zmq

from .base import Transport, TransportSettings

_CONTEXT: zmq.Context | None = None


def _context() -> zmq.Context:
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = zmq.Context.instance()
    return _CONTEXT


class ZmqReqTransport(Transport):
    def __init__(self, resource: str, settings: TransportSettings) -> None:
        super().__init__(resource, settings)
        if not resource.startswith("tcp://"):
            raise ValueError(f"not a ZeroMQ endpoint (expected tcp://host:port): {resource!r}")
        self._sock: zmq.Socket | None = None
        self._replies: list[bytes] = []

    def open(self) -> None:
        self._replies.clear()
        sock = _context().socket(zmq.REQ)
        timeout_ms = max(1, int(self.settings.timeout_s * 1000))
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
        sock.connect(self.resource)
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def write(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionError("not connected")
        try:
            self._sock.send(data.removesuffix(self.settings.write_termination))
            self._replies.append(self._sock.recv())
        except zmq.Again as exc:
            raise TimeoutError("no reply within the timeout") from exc
        except zmq.ZMQError as exc:
            raise ConnectionError(f"ZeroMQ error: {exc}") from exc

    def read_message(self) -> bytes:
        if not self._replies:
            raise TimeoutError("no reply pending")
        return self._replies.pop(0).removesuffix(self.settings.read_termination)

    def read_exact(self, count: int) -> bytes:
        reply = self.read_message()
        if len(reply) != count:
            raise TimeoutError(f"expected {count} bytes, got {len(reply)}")
        return reply

    def unread(self) -> bytes:
        return b"".join(self._replies)
