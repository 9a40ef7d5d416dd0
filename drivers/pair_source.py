"""Photon-pair source interface: the pump laser plus the nonlinear crystal's temperature."""

from __future__ import annotations

from abc import abstractmethod

from .instrument import Instrument


class PhotonPairSource(Instrument):
    kind = "pair_source"

    @abstractmethod
    def pump_on(self) -> None: ...

    @abstractmethod
    def pump_off(self) -> None: ...

    @abstractmethod
    def pump_is_on(self) -> bool: ...

    @abstractmethod
    def set_pump_current_ma(self, milliamps: float) -> None: ...

    @abstractmethod
    def pump_current_ma(self) -> float: ...

    @abstractmethod
    def set_crystal_temperature_c(self, celsius: float) -> None: ...

    @abstractmethod
    def crystal_temperature_setpoint_c(self) -> float: ...

    @abstractmethod
    def crystal_temperature_c(self) -> float:
        """Measured crystal temperature."""

    @abstractmethod
    def faults(self) -> list[str]:
        """Active fault conditions; empty when healthy."""
