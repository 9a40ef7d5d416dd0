"""Optical fibre: attenuation in dB/km and group delay (qnode_fw.units, about 4.9 us/km)."""

from __future__ import annotations

from dataclasses import dataclass

from qnode_fw.units import FIBRE_DELAY_PS_PER_KM


@dataclass(frozen=True, slots=True)
class Fibre:
    """``length_km`` of fibre losing ``attenuation_db_per_km`` (0.2 dB/km: SMF-28 at 1550 nm)."""

    length_km: float = 0.0
    attenuation_db_per_km: float = 0.2
    delay_ps_per_km: int = FIBRE_DELAY_PS_PER_KM

    def __post_init__(self) -> None:
        if self.length_km < 0 or self.attenuation_db_per_km < 0:
            raise ValueError(f"fibre length and attenuation must be non-negative, got "
                             f"{self.length_km} km, {self.attenuation_db_per_km} dB/km")

    @property
    def loss_db(self) -> float:
        return self.length_km * self.attenuation_db_per_km

    @property
    def transmission(self) -> float:
        return 10.0 ** (-self.loss_db / 10.0)

    @property
    def delay_ps(self) -> int:
        return int(round(self.length_km * self.delay_ps_per_km))


def db_to_transmission(loss_db: float) -> float:
    return 10.0 ** (-loss_db / 10.0)
