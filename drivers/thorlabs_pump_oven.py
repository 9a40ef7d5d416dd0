"""A photon-pair source built from two Thorlabs controllers over USBTMC (VISA):
an ITC4001 laser-diode controller driving the pump laser and a TED4015 TEC controller holding the
crystal temperature.

``resource`` is the ITC4001, ``options.oven_resource`` the TED4015. Currents go to the ITC in
amperes (``SOUR:CURR:LEV:AMPL``); the interface takes mA. Every setting is followed by
``SYST:ERR?`` on the instrument it went to.
"""

from __future__ import annotations

from qnode_fw.errors import ConfigError

from .limits import SafetyLimits
from .pair_source import PhotonPairSource
from .registry import register_driver
from .scpi import Control, Measurement, TextInstrument


class ITC4001(TextInstrument):
    transport = "visa"
    current_a = Control("SOUR:CURR:LEV:AMPL?", "SOUR:CURR:LEV:AMPL {value}", bounds=(0.0, 0.4))
    output = Control("OUTP?", "OUTP {value}", choices={True: "1", False: "0"})
    measured_current_a = Measurement("MEAS:CURR?")
    interlock_tripped = Measurement("OUTP:PROT:INTL:TRIP?", cast=lambda r: int(r) == 1)
    keylock_tripped = Measurement("OUTP:PROT:KEYL:TRIP?", cast=lambda r: int(r) == 1)


class TED4015(TextInstrument):
    transport = "visa"
    setpoint_c = Control("SOUR:TEMP?", "SOUR:TEMP {value}", limit="crystal_temperature_c",
                         bounds=(-45.0, 145.0))
    output = Control("OUTP?", "OUTP {value}", choices={True: "1", False: "0"})
    temperature_c = Measurement("MEAS:TEMP?")
    protection_tripped = Measurement("OUTP:PROT:TRIP?", cast=lambda r: int(r) == 1)


@register_driver(kind="pair_source", model="thorlabs_itc4001_ted4015", transport="visa",
                 description="Pump laser on a Thorlabs ITC4001 plus crystal oven on a TED4015 (SCPI/USBTMC)")
class ThorlabsPumpOven(PhotonPairSource):
    def __init__(self, name: str, resource: str, pump: ITC4001, oven: TED4015, limits: SafetyLimits) -> None:
        super().__init__(name, resource)
        self.pump, self.oven, self.limits = pump, oven, limits

    @classmethod
    def from_config(cls, spec, context=None):
        oven_resource = spec.options.get("oven_resource")
        if not oven_resource:
            raise ConfigError("the TED4015 oven needs options.oven_resource", field=f"{spec.name}.options")
        limits = SafetyLimits(spec.limits)
        pump = ITC4001(spec.name + ".pump", spec.resource, ITC4001.open_session(spec.resource, spec.options),
                       limits, spec.options)
        oven = TED4015(spec.name + ".oven", oven_resource, TED4015.open_session(oven_resource, spec.options),
                       limits, spec.options)
        pump.session.connect()
        oven.session.connect()
        oven.write("UNIT:TEMP C")
        return cls(spec.name, spec.resource, pump, oven, limits)

    def identify(self) -> str:
        return f"{self.pump.identify()} + {self.oven.identify()}"

    def pump_on(self) -> None:
        self.pump.output = True

    def pump_off(self) -> None:
        self.pump.output = False

    def pump_is_on(self) -> bool:
        return self.pump.output

    def set_pump_current_ma(self, milliamps: float) -> None:
        self.limits.check("pump_current_ma", milliamps, resource=self.pump.resource,
                          command=f"SOUR:CURR:LEV:AMPL {milliamps / 1000:g}")
        self.pump.current_a = milliamps / 1000.0

    def pump_current_ma(self) -> float:
        return self.pump.current_a * 1000.0

    def set_crystal_temperature_c(self, celsius: float) -> None:
        self.oven.setpoint_c = celsius

    def crystal_temperature_setpoint_c(self) -> float:
        return self.oven.setpoint_c

    def crystal_temperature_c(self) -> float:
        return self.oven.temperature_c

    def faults(self) -> list[str]:
        found = []
        if self.pump.interlock_tripped:
            found.append("pump interlock open")
        if self.pump.keylock_tripped:
            found.append("pump key lock")
        if self.oven.protection_tripped:
            found.append("oven protection tripped")
        return found

    def close(self) -> None:
        self.pump.close()
        self.oven.close()
