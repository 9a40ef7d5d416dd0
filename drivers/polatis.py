"""Polatis N x M all-optical switch: SCPI over a TCP socket.

Polatis numbers ingress ports 1..N and egress ports N+1..N+M; the interface numbers outputs from 1,
so output ``k`` is Polatis port ``N + k``. The size is read once with ``:OXC:SWIT:SIZE?`` unless
the YAML gives ``options.ingress``/``options.egress``.
"""

from __future__ import annotations

import re

from qnode_fw.errors import InstrumentError

from .optical_switch import OpticalSwitch
from .registry import register_driver
from .scpi import TextInstrument
from .switch_common import check_ports

_STATE = re.compile(r"^\(@([\d,]*)\),\(@([\d,]*)\)$")


@register_driver(kind="optical_switch", model="polatis", transport="tcp",
                 description="Polatis Series 6000/7000 optical matrix switch (SCPI over TCP)")
class Polatis(TextInstrument, OpticalSwitch):
    transport = "tcp"
    error_query = ":SYST:ERR?"

    def _size(self) -> tuple[int, int]:
        if "ingress" in self.options and "egress" in self.options:
            return int(self.options["ingress"]), int(self.options["egress"])
        if not hasattr(self, "_cached_size"):
            reply = self.query(":OXC:SWIT:SIZE?")
            self._cached_size = self.parse(reply, lambda r: tuple(int(x) for x in r.split(",")),
                                           ":OXC:SWIT:SIZE?")
            if len(self._cached_size) != 2:
                raise InstrumentError(f"garbled reply {reply!r}", resource=self.resource,
                                      command=":OXC:SWIT:SIZE?")
        return self._cached_size

    @property
    def num_inputs(self) -> int:
        return self._size()[0]

    @property
    def num_outputs(self) -> int:
        return self._size()[1]

    def connections(self) -> dict[int, int]:
        command = ":OXC:SWIT:CONN:STAT?"
        reply = self.query(command).strip()
        match = _STATE.match(reply)
        if match is None:
            raise InstrumentError(f"garbled reply {reply!r}", resource=self.resource, command=command)
        ins = [int(x) for x in match[1].split(",") if x]
        outs = [int(x) for x in match[2].split(",") if x]
        if len(ins) != len(outs):
            raise InstrumentError(f"garbled reply {reply!r}: unequal port lists", resource=self.resource,
                                  command=command)
        n = self.num_inputs
        return {i: o - n for i, o in zip(ins, outs)}

    def connect(self, input_port: int, output_port: int) -> None:
        command = f":OXC:SWIT:CONN:ADD (@{input_port}),(@N+{output_port})"
        check_ports(self.limits, self.resource, command, input_port, output_port, self._size)
        n = self.num_inputs
        command = f":OXC:SWIT:CONN:ADD (@{input_port}),(@{n + output_port})"
        with self.session.lock:
            current = self.connections()
            if current.get(input_port) == output_port:
                return
            if input_port in current:
                self.write(f":OXC:SWIT:CONN:SUB (@{input_port}),(@{n + current[input_port]})")
            self.write(command)

    def disconnect(self, input_port: int) -> None:
        check_ports(self.limits, self.resource, f":OXC:SWIT:CONN:SUB (@{input_port})", input_port,
                    None, self._size)
        n = self.num_inputs
        with self.session.lock:
            current = self.connections()
            if input_port in current:
                self.write(f":OXC:SWIT:CONN:SUB (@{input_port}),(@{n + current[input_port]})")
