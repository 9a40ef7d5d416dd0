"""Shared machinery: the exchange log, fault injection and a threaded TCP server.

Serial instruments are served over TCP too: pyserial's ``socket://host:port`` URL handler connects
a real :class:`serial.Serial`-compatible port to it, so the driver code path is the same as with a
USB-serial adapter. One client at a time; a new connection replaces the old one (as after a
driver's reconnect).
"""

from __future__ import annotations

import re
import socket
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class Exchange:
    direction: str  # "rx" (emulator received) or "tx" (emulator sent)
    data: bytes
    connection: int  # 1 for the first connection, 2 after a reconnect, ...


class ExchangeLog:
    def __init__(self) -> None:
        self._entries: list[Exchange] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def add(self, direction: str, data: bytes, connection: int) -> None:
        with self._changed:
            self._entries.append(Exchange(direction, bytes(data), connection))
            self._changed.notify_all()

    def entries(self) -> list[Exchange]:
        with self._lock:
            return list(self._entries)

    def pairs(self) -> list[tuple[str, bytes]]:
        return [(e.direction, e.data) for e in self.entries()]

    def received(self) -> list[bytes]:
        return [e.data for e in self.entries() if e.direction == "rx"]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def wait_for(self, count: int, timeout_s: float = 1.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._entries) >= count, timeout_s)


@dataclass(slots=True)
class Fault:
    """What to do instead of answering the next message that matches ``pattern``.

    ``action``: ``"error"`` (the model's error handling with ``message``), ``"silent"`` (no
    reply), ``"garbage"`` (send ``reply`` instead), ``"drop"`` (close the connection).
    """

    pattern: str
    action: str
    reply: bytes = b""
    message: str = ""

    def matches(self, message: bytes) -> bool:
        return re.search(self.pattern.encode(), message) is not None


class TcpEmulator(ABC):
    """Threaded TCP server. Subclasses implement :meth:`split` (framing) and :meth:`respond`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.log = ExchangeLog()
        self.faults: list[Fault] = []
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.05)
        self.host, self.port = self._server.getsockname()[:2]
        self._client: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections = 0
        self._lock = threading.RLock()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "TcpEmulator":
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._server.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def inject(self, pattern: str, action: str, reply: bytes = b"", message: str = "") -> None:
        with self._lock:
            self.faults.append(Fault(pattern, action, reply, message))

    # -- resource strings a node YAML would use -------------------------------------------------
    @property
    def visa_socket_resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    @property
    def serial_url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    # -- protocol hooks -------------------------------------------------------------------------
    @abstractmethod
    def split(self, buffer: bytearray) -> bytes | None:
        """Remove and return one complete message from ``buffer`` (None if incomplete)."""

    @abstractmethod
    def respond(self, message: bytes) -> bytes | None:
        """The reply to ``message`` (None: no reply)."""

    def error_reply(self, message: bytes, fault: Fault) -> bytes | None:
        """How the model reacts to an injected error (default: no reply; error queue models
        override this to queue the error)."""
        return None

    # -- server loop ------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            self.on_connect()
            self._handle(client, self.connections)

    def on_connect(self) -> None:
        """Called for each new connection (an instrument keeps its state across connections)."""

    def _take_fault(self, message: bytes) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(message):
                    self.faults.remove(fault)
                    return fault
        return None

    def _handle(self, client: socket.socket, connection: int) -> None:
        client.settimeout(0.05)
        buffer = bytearray()
        with client:
            while not self._stop.is_set():
                try:
                    chunk = client.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer.extend(chunk)
                while (message := self.split(buffer)) is not None:
                    self.log.add("rx", message, connection)
                    fault = self._take_fault(message)
                    if fault is None:
                        with self._lock:
                            reply = self.respond(message)
                    elif fault.action == "drop":
                        return
                    elif fault.action == "silent":
                        reply = None
                    elif fault.action == "garbage":
                        reply = fault.reply
                    else:
                        with self._lock:
                            reply = self.error_reply(message, fault)
                    if reply:
                        self.log.add("tx", reply, connection)
                        try:
                            client.sendall(reply)
                        except OSError:
                            return


def split_terminated(buffer: bytearray, terminator: bytes, blocks: bool = True) -> bytes | None:
    """Take one ``terminator``-ended message, skipping over IEEE 488.2 ``#<n><len>`` binary blocks
    (whose payload may contain the terminator byte). The terminator is removed."""
    i = 0
    while True:
        end = buffer.find(terminator, i)
        hash_at = buffer.find(b"#", i) if blocks else -1
        if hash_at >= 0 and (end < 0 or hash_at < end) and hash_at + 1 < len(buffer) \
                and chr(buffer[hash_at + 1]) in "123456789" and hash_at > 0 \
                and buffer[hash_at - 1] in b", ":
            digits = buffer[hash_at + 1] - ord("0")
            header_end = hash_at + 2 + digits
            if len(buffer) < header_end:
                return None
            length = int(buffer[hash_at + 2:header_end])
            if len(buffer) < header_end + length:
                return None
            i = header_end + length
            continue
        if end < 0:
            return None
        message = bytes(buffer[:end])
        del buffer[: end + len(terminator)]
        return message


class ScpiEmulator(TcpEmulator):
    """Line-based SCPI with an error queue (``SYST:ERR?`` style).

    Subclasses fill :attr:`handlers`: (regex, function(match) -> reply str or None). An unknown
    header queues ``-113,"Undefined header"`` like a real instrument.
    """

    terminator = b"\n"
    error_query = re.compile(rb"^:?SYST(EM)?:ERR(OR)?(:NEXT)?\?$", re.IGNORECASE)
    no_error = '+0,"No error"'

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.error_queue: list[str] = []
        self.handlers: list[tuple[re.Pattern[bytes], Callable[[re.Match], str | None]]] = []

    def on(self, pattern: str, handler: Callable[[re.Match], str | None]) -> None:
        self.handlers.append((re.compile(pattern.encode(), re.IGNORECASE | re.DOTALL), handler))

    def split(self, buffer: bytearray) -> bytes | None:
        return split_terminated(buffer, self.terminator)

    def respond(self, message: bytes) -> bytes | None:
        # Binary blocks may end in whitespace bytes, so only plain text lines are stripped.
        message = message if b"#" in message else message.strip()
        if self.error_query.match(message):
            text = self.error_queue.pop(0) if self.error_queue else self.no_error
            return text.encode() + self.terminator
        for pattern, handler in self.handlers:
            match = pattern.fullmatch(message)
            if match:
                reply = handler(match)
                return None if reply is None else reply.encode() + self.terminator
        self.error_queue.append('-113,"Undefined header"')
        return None

    def error_reply(self, message: bytes, fault: Fault) -> bytes | None:
        self.error_queue.append(fault.message or '-222,"Data out of range"')
        return None
