"""ID Quantique ID900/ID1000 emulator: SCPI strings over ZeroMQ on TCP (the instrument is a REP
server on port 5555). A ROUTER socket stands in for REP so the emulator can also stay silent
(a lost request) or answer with garbage. Settings answer an empty message; errors answer text
containing ``SCPI_ERR_``. Counters count a configured rate per input over the integration time.
"""

from __future__ import annotations

import re
import threading

import zmq

from .base import ExchangeLog, Fault


class IdqTimeControllerEmulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, inputs: int = 4,
                 rates_hz: dict[int, float] | None = None) -> None:
        self.log = ExchangeLog()
        self.faults: list[Fault] = []
        self.inputs = inputs
        self.rates_hz = rates_hz or {i: 1000.0 * i for i in range(1, inputs + 1)}
        self.state = {i: {"ENAB": "OFF", "THRE": 0.0, "MODE": "ACCU", "INTE": 1000, "DELAY": 0, "DEAD": 0}
                      for i in range(1, inputs + 1)}
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if port:
            self._sock.bind(f"tcp://{host}:{port}")
            self.port = port
        else:
            self.port = self._sock.bind_to_random_port(f"tcp://{host}")
        self.endpoint = f"tcp://{host}:{self.port}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> "IdqTimeControllerEmulator":
        self._thread = threading.Thread(target=self._serve, name="IdqEmulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._sock.close(linger=0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def inject(self, pattern: str, action: str, reply: bytes = b"", message: str = "") -> None:
        with self._lock:
            self.faults.append(Fault(pattern, action, reply, message))

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            identity, empty, message = self._sock.recv_multipart()
            self.log.add("rx", message, 1)
            with self._lock:
                fault = next((f for f in self.faults if f.matches(message)), None)
                if fault is not None:
                    self.faults.remove(fault)
            if fault is None:
                reply = self.respond(message.decode("ascii", "replace").strip())
            elif fault.action in ("silent", "drop"):
                continue
            elif fault.action == "garbage":
                reply = fault.reply
            else:
                reply = (fault.message or "SCPI_ERR_EXECUTION_ERROR").encode()
            self.log.add("tx", reply, 1)
            self._sock.send_multipart([identity, empty, reply])

    def respond(self, text: str) -> bytes:
        if text == "*IDN?":
            return b"ID Quantique,ID900,00000001,6.4"
        patterns = [
            (r"INPU(\d):ENAB (ON|OFF)", lambda m, s: s.__setitem__("ENAB", m[2])),
            (r"INPU(\d):THRE ([-+.\dE]+)", self._threshold),
            (r"INPU(\d):THRE\?", lambda m, s: f"{s['THRE']:.3f}"),
            (r"INPU(\d):COUN:MODE (CYCLE|ACCU)", lambda m, s: s.__setitem__("MODE", m[2])),
            (r"INPU(\d):COUN:INTE (\d+)", lambda m, s: s.__setitem__("INTE", int(m[2]))),
            (r"INPU(\d):COUN\?", lambda m, s: str(int(round(self.rates_hz.get(int(m[1]), 0.0)
                                                          * s["INTE"] * 1e-3)))),
            (r"INPU(\d):DEAD (\d+)PS", lambda m, s: s.__setitem__("DEAD", int(m[2]))),
            (r"DELA(\d):LINK INPU(\d)", self._link),
            (r"DELA(\d):VALU (\d+)", lambda m, s: s.__setitem__("DELAY", int(m[2]))),
        ]
        for pattern, handler in patterns:
            match = re.fullmatch(pattern, text, re.IGNORECASE)
            if match:
                channel = int(match[1])
                if channel not in self.state:
                    return b"SCPI_ERR_CHANNEL_OUT_OF_RANGE"
                reply = handler(match, self.state[channel])
                return (reply or "").encode()
        return b"SCPI_ERR_UNKNOWN_COMMAND"

    def _threshold(self, m: re.Match, s: dict) -> str | None:
        value = float(m[2])
        if not -2.0 <= value <= 2.0:
            return "SCPI_ERR_PARAMETER_OUT_OF_RANGE"
        s["THRE"] = value
        return None

    def _link(self, m: re.Match, s: dict) -> str | None:
        return None if m[1] == m[2] else "SCPI_ERR_INVALID_LINK"
