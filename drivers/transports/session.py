"""A session with one instrument: the lock, the typed errors and the bounded-backoff reconnect.

pyvisa sessions (and most serial/socket protocols) are not thread-safe, so every exchange runs
under the instrument's lock. The lock is re-entrant so that a driver can hold it across a
compound exchange (a setting followed by ``SYST:ERR?``) while the single exchanges inside take
it again.

After a timeout or a lost connection the transport is closed: a late reply must never be read as
the answer to the next command. The next exchange reopens it, retrying with exponentially growing
pauses up to a bounded number of attempts; the command that was in flight is not repeated
(whether it took effect is unknown, so the caller decides).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from qnode_fw.errors import InstrumentDisconnected, InstrumentTimeout

from .base import Transport, TransportSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    attempts: int = 5
    initial_s: float = 0.05
    max_s: float = 2.0

    def delays(self) -> list[float]:
        return [min(self.initial_s * 2 ** k, self.max_s) for k in range(self.attempts - 1)]


def make_transport(kind: str, resource: str, settings: TransportSettings) -> Transport:
    """The transport named by a driver's ``transport`` (``visa``, ``serial``, ``tcp``, ``zmq``)."""
    if kind == "visa":
        from .visa import VisaTransport
        return VisaTransport(resource, settings)
    if kind == "serial":
        from .serial_port import SerialTransport
        return SerialTransport(resource, settings)
    if kind == "tcp":
        from .tcp import TcpTransport
        return TcpTransport(resource, settings)
    if kind == "zmq":
        from .zmq_req import ZmqReqTransport
        return ZmqReqTransport(resource, settings)
    raise ValueError(f"unknown transport {kind!r} (expected visa, serial, tcp or zmq)")


class Session:
    def __init__(self, transport: Transport, *, backoff: Backoff = Backoff(),
                 sleep: Callable[[float], None] = time.sleep, encoding: str = "ascii") -> None:
        self.transport = transport
        self.resource = transport.resource
        self.backoff = backoff
        self.lock = threading.RLock()
        self.encoding = encoding
        self.last_command: str | None = None
        self.reconnects = 0
        self._sleep = sleep
        self._open = False
        self._ever_opened = False

    # -- connection management ------------------------------------------------------------
    def _ensure_open(self, command: str | None) -> None:
        if self._open:
            return
        delays = self.backoff.delays()
        last: Exception | None = None
        for attempt in range(self.backoff.attempts):
            try:
                self.transport.open()
            except (ConnectionError, TimeoutError, OSError) as exc:
                last = exc
                self.transport.close()
                if attempt < len(delays):
                    log.warning("%s: connect attempt %d failed (%s); retrying in %.3f s",
                                self.resource, attempt + 1, exc, delays[attempt])
                    self._sleep(delays[attempt])
                continue
            if self._ever_opened:
                self.reconnects += 1
                log.warning("%s: reconnected after a lost connection", self.resource)
            self._open = self._ever_opened = True
            return
        raise InstrumentDisconnected(
            f"cannot connect after {self.backoff.attempts} attempts: {last}",
            resource=self.resource, command=command)

    def connect(self) -> None:
        with self.lock:
            self._ensure_open(None)

    def close(self) -> None:
        with self.lock:
            self.transport.close()
            self._open = False

    def _fail(self, exc: Exception, command: str | None):
        self.transport.close()
        self._open = False
        if isinstance(exc, TimeoutError):
            return InstrumentTimeout(f"timed out after {self.transport.settings.timeout_s} s: {exc}",
                                     resource=self.resource, command=command)
        return InstrumentDisconnected(f"connection lost: {exc}", resource=self.resource, command=command)

    def _run(self, command: str | None, action: Callable[[], bytes | None]):
        with self.lock:
            self._ensure_open(command)
            try:
                return action()
            except (TimeoutError, ConnectionError, OSError) as exc:
                raise self._fail(exc, command) from exc

    # -- exchanges ------------------------------------------------------------------------
    def write(self, command: str) -> None:
        """Send one text command followed by the write termination."""
        self.last_command = command
        data = command.encode(self.encoding) + self.transport.settings.write_termination
        self._run(command, lambda: self.transport.write(data))

    def write_raw(self, data: bytes, label: str) -> None:
        """Send bytes exactly as given; ``label`` names the command in errors."""
        self.last_command = label
        self._run(label, lambda: self.transport.write(data))

    def read(self, label: str | None = None) -> str:
        raw = self._run(label or self.last_command, self.transport.read_message)
        return raw.decode(self.encoding, "replace")

    def read_exact(self, count: int, label: str | None = None) -> bytes:
        return self._run(label or self.last_command, lambda: self.transport.read_exact(count))

    def query(self, command: str) -> str:
        with self.lock:
            self.write(command)
            return self.read(command)

    def unread(self) -> bytes:
        with self.lock:
            return self.transport.unread() if self._open else b""
