"""ID Quantique ID900 / ID1000 time controllers: SCPI strings over ZeroMQ REQ (TCP port 5555).

Every request gets exactly one reply: settings answer an empty message, errors a message
containing ``SCPI_ERR_``. Counting uses the input counters in cycle mode with an integration
time in ms (``INPU<n>:COUN:MODE CYCLE``, ``INPU<n>:COUN:INTE``, ``INPU<n>:COUN?``). Delays are
linked per input (``DELA<n>:LINK INPU<n>``, ``DELA<n>:VALU <ps>``).

Tag streaming on these instruments uses a separate binary stream port whose format we could not
verify; this driver therefore counts but does not stream (``streams_tags = False``).
"""

from __future__ import annotations

import time

from qnode_fw.errors import InstrumentError

from .registry import register_driver
from .scpi import Control, TextInstrument
from .time_tagger import TagBatch, TimeTagger


@register_driver(kind="time_tagger", model="idq_id900", transport="zmq",
                 description="ID Quantique ID900/ID1000 time controller (SCPI over ZeroMQ)")
class IdqId900(TextInstrument, TimeTagger):
    transport = "zmq"
    write_termination = b""
    read_termination = b"\n"
    error_query = None
    streams_tags = False
    threshold = Control("INPU{ch}:THRE?", "INPU{ch}:THRE {value}", limit="trigger_level_v",
                        bounds=(-2.0, 2.0), value_format="{:.3f}")

    def _exchange(self, command: str) -> str:
        """One request and its reply; an error reply raises naming the command."""
        with self.session.lock:
            self.session.write(command)
            reply = self.session.read(command)
        if "SCPI_ERR" in reply or reply.upper().startswith("ERROR"):
            raise InstrumentError(f"instrument replied {reply.strip()!r}", resource=self.resource,
                                  command=command)
        return reply

    def write(self, command: str, check: bool = True) -> None:
        reply = self._exchange(command)
        if reply.strip():
            raise InstrumentError(f"unexpected reply {reply!r} to a setting", resource=self.resource,
                                  command=command)

    def query(self, command: str) -> str:
        return self._exchange(command)

    @property
    def channels(self) -> list[int]:
        return list(range(1, int(self.options.get("inputs", 4)) + 1))

    def _check_channel(self, channel: int, command: str) -> None:
        if channel not in self.channels:
            raise InstrumentError(f"input {channel} does not exist; nothing was sent",
                                  resource=self.resource, command=command)

    def set_trigger_level_v(self, channel: int, volts: float) -> None:
        self._check_channel(channel, f"INPU{channel}:THRE {volts}")
        self.threshold[channel] = volts

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        command = f"DELA{channel}:VALU {delay_ps}"
        self._check_channel(channel, command)
        self.limits.check("input_delay_ps", delay_ps, resource=self.resource, command=command)
        if delay_ps < 0:
            raise InstrumentError("the ID900 delays are non-negative; nothing was sent",
                                  resource=self.resource, command=command)
        with self.session.lock:
            self.write(f"DELA{channel}:LINK INPU{channel}")
            self.write(command)

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        command = f"INPU{channel}:DEAD {int(dead_time_ps)}PS"
        self._check_channel(channel, command)
        self.limits.check("dead_time_ps", dead_time_ps, resource=self.resource, command=command)
        self.write(command)

    def start_stream(self, channels: list[int]) -> None:
        raise InstrumentError("tag streaming is not available through this driver (counting only)",
                              resource=self.resource, command="start_stream")

    def read_stream(self) -> TagBatch:
        raise InstrumentError("tag streaming is not available through this driver (counting only)",
                              resource=self.resource, command="read_stream")

    def stop_stream(self) -> None:
        return None

    def count_rates_hz(self, channels: list[int], duration_ps: int) -> dict[int, float]:
        ms = int(round(duration_ps / 1e9))
        command = f"INPU{channels[0] if channels else 1}:COUN:INTE {ms}"
        if ms < 1:
            raise InstrumentError("the counters integrate whole milliseconds (>= 1 ms); nothing was sent",
                                  resource=self.resource, command=command)
        for c in channels:
            self._check_channel(c, command)
        with self.session.lock:
            for c in channels:
                self.write(f"INPU{c}:ENAB ON")
                self.write(f"INPU{c}:COUN:MODE CYCLE")
                self.write(f"INPU{c}:COUN:INTE {ms}")
            # One full cycle must complete after the change before the counter holds it.
            time.sleep(2 * ms / 1000.0)
            counts = {c: self.parse(self.query(f"INPU{c}:COUN?"), int, f"INPU{c}:COUN?") for c in channels}
        return {c: n / (ms * 1e-3) for c, n in counts.items()}
