"""Agiltron SelfAlign-style 1xN fibre switch: binary RS-232 frames at 9600 baud.

Set output ``k``: ``01 35 00 <k-1>``; home (no output): ``01 30 00 00``; each answered by
``01 <command> FF FF``. The protocol has no position query, so :meth:`connections` reports the
last acknowledged command (reset to home when the driver opens).
"""

from __future__ import annotations

from qnode_fw.errors import InstrumentError

from .optical_switch import OpticalSwitch
from .registry import register_driver
from .scpi import TextInstrument
from .switch_common import check_ports


@register_driver(kind="optical_switch", model="agiltron_1xn", transport="serial",
                 description="Agiltron SelfAlign 1xN fibre switch (binary RS-232)")
class AgiltronSwitch(TextInstrument, OpticalSwitch):
    transport = "serial"
    error_query = None
    default_options = {"baudrate": 9600}

    @classmethod
    def from_config(cls, spec, context=None):
        inst = super().from_config(spec, context)
        inst._frame(bytes([0x01, 0x30, 0x00, 0x00]))  # home: the position is known from here on
        inst._position = 0
        return inst

    @property
    def num_inputs(self) -> int:
        return 1

    @property
    def num_outputs(self) -> int:
        return int(self.options.get("ports", 8))

    def identify(self) -> str:
        return f"Agiltron 1x{self.num_outputs} at {self.resource}"

    def _frame(self, frame: bytes) -> None:
        label = frame.hex(" ")
        with self.session.lock:
            self.session.write_raw(frame, label)
            ack = self.session.read_exact(4, label)
        if ack != bytes([0x01, frame[1], 0xFF, 0xFF]):
            raise InstrumentError(f"switch answered {ack.hex(' ')}, expected 01 {frame[1]:02x} ff ff",
                                  resource=self.resource, command=label)

    def _size(self) -> tuple[int, int]:
        return self.num_inputs, self.num_outputs

    def connect(self, input_port: int, output_port: int) -> None:
        check_ports(self.limits, self.resource, f"01 35 00 {output_port - 1:02x}", input_port,
                    output_port, self._size)
        self._frame(bytes([0x01, 0x35, 0x00, output_port - 1]))
        self._position = output_port

    def disconnect(self, input_port: int) -> None:
        check_ports(self.limits, self.resource, "01 30 00 00", input_port, None, self._size)
        self._frame(bytes([0x01, 0x30, 0x00, 0x00]))
        self._position = 0

    def connections(self) -> dict[int, int]:
        return {1: self._position} if self._position else {}
