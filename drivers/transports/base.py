"""What every byte transport offers. Transports raise the builtin ``TimeoutError`` and
``ConnectionError``; the :class:`~drivers.transports.session.Session` turns those into typed
instrument errors that name the resource and the command."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TransportSettings:
    timeout_s: float = 2.0
    write_termination: bytes = b"\n"
    read_termination: bytes = b"\n"
    options: dict = field(default_factory=dict)  # transport specific (baudrate, visa_library)


class Transport(ABC):
    """A connection carrying messages to and from one instrument."""

    def __init__(self, resource: str, settings: TransportSettings) -> None:
        self.resource = resource
        self.settings = settings

    @abstractmethod
    def open(self) -> None:
        """Connect; raises ``ConnectionError`` or ``TimeoutError``."""

    @abstractmethod
    def close(self) -> None:
        """Disconnect; safe to call twice."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` exactly as given (terminations are added by the caller)."""

    @abstractmethod
    def read_message(self) -> bytes:
        """One reply without its read termination."""

    @abstractmethod
    def read_exact(self, count: int) -> bytes:
        """Exactly ``count`` bytes (binary protocols)."""

    def unread(self) -> bytes:
        """Bytes received but not yet consumed (used to check that nothing was left over)."""
        return b""


class StreamTransport(Transport):
    """A byte-stream transport (serial port, TCP socket): replies are cut out of a receive buffer
    that :meth:`_fill` tops up, one chunk per call, before ``deadline`` (``time.monotonic``)."""

    def __init__(self, resource: str, settings: TransportSettings) -> None:
        super().__init__(resource, settings)
        self._buffer = bytearray()

    @abstractmethod
    def _fill(self, deadline: float) -> None:
        """Append at least one byte to ``self._buffer``, or raise ``TimeoutError`` once
        ``deadline`` has passed / ``ConnectionError`` when the line is gone."""

    def read_message(self) -> bytes:
        term = self.settings.read_termination
        deadline = time.monotonic() + self.settings.timeout_s
        while (index := self._buffer.find(term)) < 0:
            self._fill(deadline)
        message = bytes(self._buffer[:index])
        del self._buffer[: index + len(term)]
        return message

    def read_exact(self, count: int) -> bytes:
        deadline = time.monotonic() + self.settings.timeout_s
        while len(self._buffer) < count:
            self._fill(deadline)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data
