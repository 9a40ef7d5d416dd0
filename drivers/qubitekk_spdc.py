"""Qubitekk-style SPDC pair-source module: pump laser and crystal oven on one serial port
(115200 baud, CRLF).

Pump: ``:PLON``/``:PLOF``, ``PLST?``, ``:PLDC <mA>`` (20-120 mA), ``PLID?``. Oven: ``:SETT <counts>``,
``SETP?``, ``TEMP?``; faults ``FAUL?``. Setting commands are silent and the module has no error
queue, so every setting is read back; an ``ERR ...`` line where a value was expected raises.
Temperatures are integer counts; ``options.temperature_counts_per_c`` (default 1000) converts.
"""

from __future__ import annotations

from qnode_fw.errors import InstrumentError

from .pair_source import PhotonPairSource
from .registry import register_driver
from .scpi import TextInstrument


@register_driver(kind="pair_source", model="qubitekk_spdc", transport="serial",
                 description="Qubitekk-style SPDC entangled-pair source module (serial ASCII)")
class QubitekkSpdc(TextInstrument, PhotonPairSource):
    transport = "serial"
    write_termination = b"\r\n"
    read_termination = b"\r\n"
    error_query = None
    default_options = {"baudrate": 115200}
    PUMP_RANGE_MA = (20.0, 120.0)
    COUNTS_RANGE = (10000, 50000)

    @property
    def counts_per_c(self) -> float:
        return float(self.options.get("temperature_counts_per_c", 1000))

    def query(self, command: str) -> str:
        reply = super().query(command).strip()
        if reply.upper().startswith("ERR"):
            raise InstrumentError(f"instrument replied {reply!r}", resource=self.resource, command=command)
        return reply

    def _verify(self, command: str, query: str, expected, cast) -> None:
        # A rejected setting answers "ERR ..." (which the read-back then consumes and raises on).
        # The read-back's own answer still follows it; read it too, or every later exchange
        # would read the answer to the one before.
        reply = self.session.query(query).strip()
        if reply.upper().startswith("ERR"):
            try:
                self.session.read(query)
            except InstrumentError:
                pass  # a timeout closed the session: nothing stale can be read after it
            raise InstrumentError(f"instrument replied {reply!r}", resource=self.resource,
                                  command=command)
        actual = self.parse(reply, cast, query)
        if actual != expected:
            raise InstrumentError(f"{query} reads {actual!r} after the setting, expected {expected!r}",
                                  resource=self.resource, command=command)

    def pump_on(self) -> None:
        with self.session.lock:
            self.write(":PLON", check=False)
            self._verify(":PLON", "PLST?", 1, int)

    def pump_off(self) -> None:
        with self.session.lock:
            self.write(":PLOF", check=False)
            self._verify(":PLOF", "PLST?", 0, int)

    def pump_is_on(self) -> bool:
        return self.parse(self.query("PLST?"), int, "PLST?") == 1

    def set_pump_current_ma(self, milliamps: float) -> None:
        command = f":PLDC {milliamps:.2f}"
        self.limits.check("pump_current_ma", milliamps, resource=self.resource, command=command)
        low, high = self.PUMP_RANGE_MA
        if not low <= milliamps <= high:
            raise InstrumentError(f"pump current {milliamps} mA outside the module's {low}-{high} mA; "
                                  "nothing was sent", resource=self.resource, command=command)
        with self.session.lock:
            self.write(command, check=False)
            self._verify(command, "PLID?", round(float(milliamps), 2), lambda r: round(float(r), 2))

    def pump_current_ma(self) -> float:
        return self.parse(self.query("PLID?"), float, "PLID?")

    def set_crystal_temperature_c(self, celsius: float) -> None:
        counts = int(round(celsius * self.counts_per_c))
        command = f":SETT {counts}"
        self.limits.check("crystal_temperature_c", celsius, resource=self.resource, command=command)
        if not self.COUNTS_RANGE[0] <= counts <= self.COUNTS_RANGE[1]:
            raise InstrumentError(f"setpoint {celsius} C is outside the module's range; nothing was sent",
                                  resource=self.resource, command=command)
        with self.session.lock:
            self.write(command, check=False)
            self._verify(command, "SETP?", counts, int)

    def crystal_temperature_setpoint_c(self) -> float:
        return self.parse(self.query("SETP?"), int, "SETP?") / self.counts_per_c

    def crystal_temperature_c(self) -> float:
        return self.parse(self.query("TEMP?"), int, "TEMP?") / self.counts_per_c

    def faults(self) -> list[str]:
        reply = self.query("FAUL?")
        if reply in ("0", "", "NONE"):
            return []
        return [f.strip() for f in reply.split(",") if f.strip()]
