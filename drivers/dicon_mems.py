"""DiCon MEMS 1xN fibre switch: RS-232 at 115200 baud, commands ended by CR.

The module acknowledges every command with a newline before anything else ("echo"); a query then
answers one CRLF-terminated line. ``I1 <ch>`` selects output ``ch`` (0 parks the mirror, no output),
``I1?`` reads it back. There is no error queue, so every switch is verified by reading it back.
"""

from __future__ import annotations

from qnode_fw.errors import InstrumentError

from .optical_switch import OpticalSwitch
from .registry import register_driver
from .scpi import TextInstrument
from .switch_common import check_ports


@register_driver(kind="optical_switch", model="dicon_mems_1xn", transport="serial",
                 description="DiCon MEMS 1xN fibre-optic switch module (RS-232 ASCII)")
class DiconMems(TextInstrument, OpticalSwitch):
    transport = "serial"
    write_termination = b"\r"
    read_termination = b"\r\n"
    error_query = None
    default_options = {"baudrate": 115200}

    @property
    def num_inputs(self) -> int:
        return 1

    @property
    def num_outputs(self) -> int:
        return int(self.options.get("channels", 16))

    def _echo(self, command: str) -> None:
        echo = self.session.read_exact(1, command)
        if echo != b"\n":
            raise InstrumentError(f"expected the newline echo, got {echo!r}", resource=self.resource,
                                  command=command)

    def _command(self, command: str) -> None:
        with self.session.lock:
            self.session.write(command)
            self._echo(command)

    def query(self, command: str) -> str:
        with self.session.lock:
            self.session.write(command)
            self._echo(command)
            reply = self.session.read(command)
        if reply.strip().upper().startswith("ERR"):
            raise InstrumentError(f"instrument replied {reply.strip()!r}", resource=self.resource,
                                  command=command)
        return reply

    def identify(self) -> str:
        return self.query("ID?").strip()

    def _select(self, channel: int) -> None:
        command = f"I1 {channel}"
        with self.session.lock:
            self._command(command)
            actual = self.parse(self.query("I1?"), int, "I1?")
        if actual != channel:
            raise InstrumentError(f"switch reports channel {actual} after {command!r}",
                                  resource=self.resource, command=command)

    def _size(self) -> tuple[int, int]:
        return self.num_inputs, self.num_outputs

    def connect(self, input_port: int, output_port: int) -> None:
        check_ports(self.limits, self.resource, f"I1 {output_port}", input_port, output_port,
                    self._size)
        self._select(output_port)

    def disconnect(self, input_port: int) -> None:
        check_ports(self.limits, self.resource, "I1 0", input_port, None, self._size)
        self._select(0)

    def connections(self) -> dict[int, int]:
        channel = self.parse(self.query("I1?"), int, "I1?")
        return {1: channel} if channel else {}
