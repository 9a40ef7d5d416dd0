"""Simulated SPDC pair source: pump laser and crystal oven acting on the World's source model."""

from __future__ import annotations

from drivers.pair_source import PhotonPairSource

from ..physics.spdc import SpdcParams
from .common import dataclass_from_options, limits_of, world_from_context


class SimPairSource(PhotonPairSource):
    """Simulated SPDC source (pulsed/CW, thermal multi-pair statistics, sinc² phase matching)."""

    model = "sim"

    def __init__(self, name: str, world, clock, params: SpdcParams | None = None, limits=None) -> None:
        super().__init__(name, f"sim://source/{name}")
        self.world = world
        self.clock = clock
        self.limits = limits
        self.state = world.sources.get(name) or world.add_source(name, params)

    @classmethod
    def from_config(cls, spec, context):
        world = world_from_context(spec, context)
        params = dataclass_from_options(SpdcParams, dict(spec.options), f"instruments.{spec.name}.options")
        return cls(spec.name, world, world.clock, params, limits_of(spec))

    def identify(self) -> str:
        return f"qnode-fw,SimPairSource,{self.name},sim"

    def _changing(self) -> int:
        now = self.clock.now_ps()
        self.world.advance(now)  # photons generated so far used the old settings
        return now

    def pump_on(self) -> None:
        self._changing()
        self.state.pump_on = True

    def pump_off(self) -> None:
        self._changing()
        self.state.pump_on = False

    def pump_is_on(self) -> bool:
        return self.state.pump_on

    def set_pump_current_ma(self, milliamps) -> None:
        if self.limits is not None:
            self.limits.check("pump_current_ma", milliamps, resource=self.resource, command=f"current {milliamps}")
        self._changing()
        self.state.current_ma = float(milliamps)

    def pump_current_ma(self) -> float:
        return self.state.current_ma

    def set_crystal_temperature_c(self, celsius) -> None:
        if self.limits is not None:
            self.limits.check("crystal_temperature_c", celsius, resource=self.resource,
                              command=f"temperature {celsius}")
        now = self._changing()
        self.state.set_setpoint(now, celsius)

    def crystal_temperature_setpoint_c(self) -> float:
        return self.state.setpoint_c

    def crystal_temperature_c(self) -> float:
        return float(self.state.temperature_c(self.clock.now_ps()))

    def faults(self) -> list[str]:
        return []
