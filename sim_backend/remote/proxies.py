"""Driver-interface proxies for simulated instruments that live in the World server.

Each proxy implements its kind's driver interface (:class:`~drivers.qnic.QNIC`,
:class:`~drivers.time_tagger.TimeTagger`, ...) so the node's runtime cannot tell it from the
in-process simulated instrument: same methods, same return types, same typed errors (the server
sends the instrument's :class:`~qnode_fw.errors.InstrumentError` back, resource and command
included). Every operation is stamped with the node's hardware clock
(:class:`~sim_backend.remote.timebase.HardwareClock`).

What never changes after opening (qubit count and roles, operation durations, channel lists, port
counts) comes with the OPENED reply and is answered locally. Only a measurement needs an answer:
emission, absorption, initialisation, gates and moves are casts (no round trip: emissions and
re-initialisations are the per-attempt hot path, gates and moves the swap's and purification's),
so what :class:`~sim_backend.qnic.SimQNIC` would refuse them for (index, arity, role) is checked
here first, with the same errors.
"""

from __future__ import annotations

from typing import Any

from drivers.coincidences import checked_groups
from drivers.optical_switch import OpticalSwitch
from drivers.pair_source import PhotonPairSource
from drivers.qnic import QNIC, Basis, Gate, QubitRole
from drivers.time_tagger import TagBatch, TimeTagger
from qnode_fw.errors import InstrumentError, QubitRoleError

from .protocol import METHODS, Mode


class _Remote:
    """What every proxy shares: its handle in the server and how to reach it."""

    kind: str
    model = "sim"        # a node file asks for model sim; where the instrument lives is not its concern

    def _setup(self, world: Any, handle: int, info: dict[str, Any]) -> None:
        self._world = world
        self._handle = int(handle)
        self._info = info

    def _call(self, method: str, *args: Any) -> Any:
        mode = METHODS[self.kind][method]
        client = self._world.client
        ts = self._world.clock.now_ps()
        if mode is Mode.CAST:
            client.cast(self._handle, method, list(args), ts=ts)
            return None
        return client.call(self._handle, method, list(args), ts=ts, what=f"{self.kind}.{method}")

    def identify(self) -> str:
        return str(self._info["identify"])


class RemoteQNIC(_Remote, QNIC):
    kind = "qnic"

    def __init__(self, name: str, world: Any, handle: int, info: dict[str, Any]) -> None:
        QNIC.__init__(self, name, str(info["resource"]))
        self._setup(world, handle, info)
        self.node = str(info["node"])
        self._communication = frozenset(int(i) for i in info["communication"])
        self._durations = {str(k): int(v) for k, v in info["durations_ps"].items()}

    @property
    def qnic_address(self) -> int:
        return int(self._info["qnic_address"])

    @property
    def num_qubits(self) -> int:
        return int(self._info["num_qubits"])

    def role(self, index: int) -> QubitRole:
        self._check_index(index, "role")
        return QubitRole.COMMUNICATION if int(index) in self._communication else QubitRole.STORAGE

    def init(self, index: int) -> None:
        self._check_index(index, "init")     # a cast: the only refusal is checked here
        self._call("init", int(index))

    def gate(self, gate: Gate, *indices: int) -> None:
        gate, _ = self._checked_gate(gate, indices)
        self._call("gate", gate, *(int(i) for i in indices))

    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        return int(self._call("measure", int(index), Basis(basis)))

    def emit(self, index: int, attempt_id: int) -> None:
        self._photon("emit", index, attempt_id)

    def absorb(self, index: int, attempt_id: int) -> None:
        self._photon("absorb", index, attempt_id)

    def _photon(self, operation: str, index: int, attempt_id: int) -> None:
        command = f"{operation} {index} {attempt_id}"
        self._check_index(index, command)
        if int(index) not in self._communication:
            raise QubitRoleError(f"qubit {index} is a storage qubit and cannot {operation}",
                                 resource=self.resource, command=command)
        self._call(operation, int(index), int(attempt_id))

    def move(self, source: int, destination: int) -> None:
        command = f"move {source} {destination}"
        self._check_index(source, command)
        self._check_index(destination, command)
        if source == destination:
            raise InstrumentError("move needs two different qubits", resource=self.resource, command=command)
        if int(destination) in self._communication:
            raise QubitRoleError(f"move destination {destination} is not a storage qubit",
                                 resource=self.resource, command=command)
        self._call("move", int(source), int(destination))

    def duration_ps(self, operation: str) -> int:
        op = str(getattr(operation, "value", operation))
        if op in self._durations:
            return self._durations[op]
        if op.startswith("measure") and "measure" in self._durations:
            return self._durations["measure"]
        raise InstrumentError(f"unknown operation {operation!r}", resource=self.resource,
                              command=f"duration {operation}")


class RemoteTimeTagger(_Remote, TimeTagger):
    kind = "time_tagger"
    #: The World's simulated tagger counts coincidences (Swabian rule, drivers.coincidences).
    measures_coincidences = True

    def __init__(self, name: str, world: Any, handle: int, info: dict[str, Any]) -> None:
        TimeTagger.__init__(self, name, str(info["resource"]))
        self._setup(world, handle, info)

    @property
    def clock(self):
        """The time base of this tagger's timestamps (the node's hardware clock)."""
        return self._world.clock

    @property
    def channels(self) -> list[int]:
        return [int(c) for c in self._info["channels"]]

    def set_trigger_level_v(self, channel: int, volts: float) -> None:
        self._call("set_trigger_level_v", int(channel), float(volts))

    def set_input_delay_ps(self, channel: int, delay_ps: int) -> None:
        self._call("set_input_delay_ps", int(channel), int(delay_ps))

    def set_dead_time_ps(self, channel: int, dead_time_ps: int) -> None:
        self._call("set_dead_time_ps", int(channel), int(dead_time_ps))

    def start_stream(self, channels: list[int]) -> None:
        self._call("start_stream", [int(c) for c in channels])

    def read_stream(self) -> TagBatch:
        return self._call("read_stream")

    def stop_stream(self) -> None:
        self._call("stop_stream")

    def count_rates_hz(self, channels: list[int], duration_ps: int) -> dict[int, float]:
        rates = self._call("count_rates_hz", [int(c) for c in channels], int(duration_ps))
        return {int(k): float(v) for k, v in rates.items()}

    def coincidence_rates_hz(self, groups, window_ps, duration_ps) -> dict[tuple[int, ...], float]:
        # Checked here first, with the tagger's own errors, so bad groups cost no round trip;
        # they travel as lists and come back as tuple keys (the protocol's key-value maps).
        command = f"Coincidences({[list(g) for g in groups]}, {window_ps})"
        checked = checked_groups(groups, self.channels, window_ps, duration_ps,
                                 resource=self.resource, command=command)
        rates = self._call("coincidence_rates_hz", [list(g) for g in checked],
                           int(window_ps), int(duration_ps))
        return {tuple(int(c) for c in k): float(v) for k, v in rates.items()}


class RemoteOpticalSwitch(_Remote, OpticalSwitch):
    kind = "optical_switch"

    def __init__(self, name: str, world: Any, handle: int, info: dict[str, Any]) -> None:
        OpticalSwitch.__init__(self, name, str(info["resource"]))
        self._setup(world, handle, info)

    @property
    def num_inputs(self) -> int:
        return int(self._info["num_inputs"])

    @property
    def num_outputs(self) -> int:
        return int(self._info["num_outputs"])

    def connect(self, input_port: int, output_port: int) -> None:
        self._call("connect", int(input_port), int(output_port))

    def disconnect(self, input_port: int) -> None:
        self._call("disconnect", int(input_port))

    def connections(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self._call("connections").items()}

    def settled_at_ps(self, input_port: int = 1) -> int:
        return int(self._call("settled_at_ps", int(input_port)))


class RemotePairSource(_Remote, PhotonPairSource):
    kind = "pair_source"

    def __init__(self, name: str, world: Any, handle: int, info: dict[str, Any]) -> None:
        PhotonPairSource.__init__(self, name, str(info["resource"]))
        self._setup(world, handle, info)

    def pump_on(self) -> None:
        self._call("pump_on")

    def pump_off(self) -> None:
        self._call("pump_off")

    def pump_is_on(self) -> bool:
        return bool(self._call("pump_is_on"))

    def set_pump_current_ma(self, milliamps: float) -> None:
        self._call("set_pump_current_ma", float(milliamps))

    def pump_current_ma(self) -> float:
        return float(self._call("pump_current_ma"))

    def set_crystal_temperature_c(self, celsius: float) -> None:
        self._call("set_crystal_temperature_c", float(celsius))

    def crystal_temperature_setpoint_c(self) -> float:
        return float(self._call("crystal_temperature_setpoint_c"))

    def crystal_temperature_c(self) -> float:
        return float(self._call("crystal_temperature_c"))

    def faults(self) -> list[str]:
        return [str(f) for f in self._call("faults")]


PROXIES: dict[str, type] = {"qnic": RemoteQNIC, "time_tagger": RemoteTimeTagger,
                            "optical_switch": RemoteOpticalSwitch, "pair_source": RemotePairSource}

__all__ = ["PROXIES", "RemoteOpticalSwitch", "RemotePairSource", "RemoteQNIC", "RemoteTimeTagger"]
