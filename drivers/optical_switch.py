"""Optical switch interface: ports are numbered from 1; an input is routed to at most one output."""

from __future__ import annotations

from abc import abstractmethod

from .instrument import Instrument


class OpticalSwitch(Instrument):
    kind = "optical_switch"

    @property
    @abstractmethod
    def num_inputs(self) -> int: ...

    @property
    @abstractmethod
    def num_outputs(self) -> int: ...

    @abstractmethod
    def connect(self, input_port: int, output_port: int) -> None:
        """Route ``input_port`` to ``output_port`` (replacing its previous route)."""

    @abstractmethod
    def disconnect(self, input_port: int) -> None: ...

    @abstractmethod
    def connections(self) -> dict[int, int]:
        """Current routes, input port -> output port."""
