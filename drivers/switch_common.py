"""Port checks shared by the optical switch drivers (safety limits ``input_port``/``output_port``
from the YAML, then the switch's own size), applied before anything is sent."""

from __future__ import annotations

from qnode_fw.errors import InstrumentError

from typing import Callable

from .limits import SafetyLimits


def check_ports(limits: SafetyLimits, resource: str, command: str, input_port: int | None,
                output_port: int | None, size: Callable[[], tuple[int, int]]) -> None:
    """Safety limits first (they need no exchange), then the size (which may be queried)."""
    if input_port is not None:
        limits.check("input_port", input_port, resource=resource, command=command)
    if output_port is not None:
        limits.check("output_port", output_port, resource=resource, command=command)
    num_inputs, num_outputs = size()
    if input_port is not None:
        if not 1 <= input_port <= num_inputs:
            raise InstrumentError(f"input port {input_port} does not exist (1..{num_inputs}); nothing "
                                  "was sent", resource=resource, command=command)
    if output_port is not None:
        if not 1 <= output_port <= num_outputs:
            raise InstrumentError(f"output port {output_port} does not exist (1..{num_outputs}); "
                                  "nothing was sent", resource=resource, command=command)
