"""The node YAML: one node PC, its QNICs, instruments, quantum links and control endpoint.

A node file (``configs/nodes/*.yaml``) looks like::

    address: B
    role: REP1
    control: {endpoint: "tcp://127.0.0.1:5602", key_file: keys/B.key_secret}
    qnics:
      - {address: 0, kind: emitter, qubits: 4, communication_qubits: [0, 1]}
    instruments:
      - {name: awg1, kind: awg, model: keysight_33500, resource: "TCPIP::10.0.0.5::5025::SOCKET",
         limits: {amplitude_vpp: [0, 2]}}
    links:
      - {neighbour: A, fibre_km: 2.0, station: bsa-AB, qnic: 0, scheme: both_endpoints,
         herald_endpoint: "tcp://127.0.0.1:5701"}

Every model forbids unknown keys: a misspelt key is an error, never silently ignored.
"""

from __future__ import annotations

import enum
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Role(str, enum.Enum):
    """Node roles of the QRNA paper and RFC 9340."""

    MEAS = "MEAS"   # end node that measures its photons/qubits at once (QKD, CHSH)
    COMP = "COMP"   # end node with memories that hands pairs to an application
    SNSR = "SNSR"   # sensor end node
    REP1 = "REP1"   # repeater: swaps (and purifies) between its links
    RTR = "RTR"     # router: a repeater joining more than two links
    BSA = "BSA"     # Bell-state-analyser station in the middle of a link
    EPPS = "EPPS"   # entangled-photon-pair-source station in the middle of a link

    @property
    def is_station(self) -> bool:
        return self in (Role.BSA, Role.EPPS)


class QnicKind(str, enum.Enum):
    """QuISP's QNIC types: an emitter (E) sends photons entangled with its memory, a receiver
    (R) absorbs them, a passive receiver (RP) heralds through an EPPS."""

    EMITTER = "emitter"
    RECEIVER = "receiver"
    PASSIVE_RECEIVER = "passive_receiver"


class InstrumentKind(str, enum.Enum):
    AWG = "awg"
    TIME_TAGGER = "time_tagger"
    OPTICAL_SWITCH = "optical_switch"
    PAIR_SOURCE = "pair_source"
    QNIC = "qnic"


class LinkScheme(str, enum.Enum):
    """RFC 9340 §4.4.1's three heralded link architectures."""

    BOTH_ENDPOINTS = "both_endpoints"     # both nodes emit, a BSA station heralds
    MIDPOINT_SOURCE = "midpoint_source"   # an EPPS station between them, each node heralds
    AT_SOURCE = "at_source"               # one node emits, the other absorbs and heralds


class MemoryConfig(Strict):
    """Memory figures of a simulated QNIC (real QNICs measure theirs). Unset fields keep the
    simulated backend's defaults (an NV centre; sources in docs/physics.md)."""

    communication_t1_ms: float | None = Field(None, gt=0)
    communication_t2_ms: float | None = Field(None, gt=0)
    storage_t1_ms: float | None = Field(None, gt=0)
    storage_t2_ms: float | None = Field(None, gt=0)
    single_qubit_gate_error: float | None = Field(None, ge=0, le=1)
    two_qubit_gate_error: float | None = Field(None, ge=0, le=1)
    measurement_error: float | None = Field(None, ge=0, le=1)
    move_error: float | None = Field(None, ge=0, le=1)

    def as_params(self) -> dict[str, float]:
        """The set fields as ``sim_backend.memory_params.MemoryParams`` keyword arguments."""
        out: dict[str, float] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if name.endswith("_ms"):
                out[name.removesuffix("_ms") + "_ps"] = float(value) * 1e9
            else:
                out[name] = float(value)
        return out


class QnicConfig(Strict):
    address: int = Field(ge=0)
    kind: QnicKind = QnicKind.EMITTER
    qubits: int = Field(gt=0, le=1024)
    #: Indices of qubits that can emit (RFC 9340 §5.4.3); the rest are storage. Default: all.
    communication_qubits: list[int] | None = None
    #: The instrument (kind qnic) that realises this QNIC; ``None`` = the simulated QNIC.
    instrument: str | None = None
    memory: MemoryConfig = MemoryConfig()


# VISA resource grammar (VPP-4.3): the forms labs use, optionally followed by ``|library``
# (``@py``, ``@sim`` or ``defs.yaml@sim``) to pick the VISA backend.
_VISA = re.compile(
    r"^(?:TCPIP\d*::[^:\s]+(?:::[^:\s]+)?::INSTR"
    r"|TCPIP\d*::[^:\s]+::\d+::SOCKET"
    r"|USB\d*::(?:0x[0-9A-Fa-f]+|\d+)::(?:0x[0-9A-Fa-f]+|\d+)::[^:\s]+(?:::\d+)?::(?:INSTR|RAW)"
    r"|ASRL(?:\d+|/dev/\S+|COM\d+)::INSTR"
    r"|GPIB\d*::\d+(?:::\d+)?::INSTR)(?:\|\S+)?$", re.IGNORECASE)
_TCP = re.compile(r"^(?:TCPIP\d*::[^:\s]+::\d+::SOCKET|(?:tcpip://)?[^:\s]+:\d{1,5})$", re.IGNORECASE)
_ZMQ = re.compile(r"^tcp://[^:\s]+:\d{1,5}$")
_ENDPOINT = re.compile(r"^(?:tcp://[^:\s]+:\d{1,5}|inproc://\S+|ipc://\S+)$")

RESOURCE_FORMS = {
    "visa": (_VISA, "a VISA resource such as TCPIP::host::INSTR, TCPIP::host::5025::SOCKET, "
                    "USB0::0x0957::0x2807::SERIAL::INSTR or ASRL/dev/ttyUSB0::INSTR"),
    "tcp": (_TCP, "TCPIP::host::port::SOCKET or host:port"),
    "zmq": (_ZMQ, "tcp://host:port"),
}


def resource_problem(transport: str, resource: str) -> str | None:
    """Why ``resource`` cannot be a resource of ``transport``, or None if it can."""
    if transport in RESOURCE_FORMS:
        pattern, expected = RESOURCE_FORMS[transport]
        return None if pattern.match(resource) else expected
    if transport == "serial":
        return None if resource.strip() else "a serial port (/dev/ttyUSB0, COM3) or a pyserial URL"
    return None


class InstrumentConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: InstrumentKind
    model: str
    #: Transport resource (VISA string, host:port, tcp://..., serial port or URL), or ``sim``.
    resource: str = "sim"
    #: Safety limits, ``name: [low, high]``; enforced by the driver before anything is sent.
    limits: dict[str, tuple[float, float]] = {}
    options: dict[str, Any] = {}

    @field_validator("limits")
    @classmethod
    def _ordered(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for key, (lo, hi) in v.items():
            if lo > hi:
                raise ValueError(f"limit {key!r} has low {lo} above high {hi}")
        return v

    @property
    def simulated(self) -> bool:
        return self.model == "sim" or self.resource == "sim"


class AttemptConfig(Strict):
    """The link's attempt schedule."""

    period_ns: float = Field(1000.0, gt=0)
    window_ns: float = Field(5.0, gt=0)


class LinkConfig(Strict):
    neighbour: str = Field(pattern=NAME_PATTERN)
    fibre_km: float = Field(ge=0, le=1000)
    scheme: LinkScheme = LinkScheme.BOTH_ENDPOINTS
    #: The BSA (both_endpoints) or EPPS (midpoint_source) station node; none for at_source.
    station: str | None = Field(None, pattern=NAME_PATTERN)
    #: The QNIC (by address) whose qubits this link entangles.
    qnic: int = Field(0, ge=0)
    #: This node's end of the link's dedicated herald link (its own socket, not the control one).
    herald_endpoint: str | None = None
    attempts: AttemptConfig = AttemptConfig()
    #: Fidelity of a freshly heralded pair (simulated links; real links measure it).
    fidelity: float = Field(0.97, gt=0.25, le=1.0)

    @field_validator("herald_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is not None and not _ENDPOINT.match(v):
            raise ValueError(f"herald endpoint {v!r} is not a ZeroMQ endpoint (tcp://host:port)")
        return v


class ControlConfig(Strict):
    endpoint: str
    #: CurveZMQ secret key file (``qnode keys generate``); ``None`` runs without encryption,
    #: which only the in-process virtual testbed allows.
    key_file: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not _ENDPOINT.match(v):
            raise ValueError(f"control endpoint {v!r} is not a ZeroMQ endpoint (tcp://host:port)")
        return v


class CalibrationConfig(Strict):
    """Measured corrections a calibration run writes back (``qnode testbed`` link calibration,
    ``qnode hil``) for node files to ``include:``."""

    written_by: str = ""                  # the run or bench report that measured these
    #: Time-tagger input delays, instrument name -> channel -> delay in ps.
    input_delays_ps: dict[str, dict[int, int]] = {}
    #: Crystal phase-matching optimum, pair-source instrument name -> temperature in deg C.
    crystal_temperature_c: dict[str, float] = {}


class CalibrationFile(Strict):
    calibration: CalibrationConfig


class NodeConfig(Strict):
    address: str = Field(pattern=NAME_PATTERN)
    role: Role
    control: ControlConfig
    description: str = ""
    qnics: list[QnicConfig] = []
    instruments: list[InstrumentConfig] = []
    links: list[LinkConfig] = []
    calibration: CalibrationConfig | None = None

    def qnic(self, address: int) -> QnicConfig | None:
        return next((q for q in self.qnics if q.address == address), None)

    def instrument(self, name: str) -> InstrumentConfig | None:
        return next((i for i in self.instruments if i.name == name), None)

    def link_to(self, neighbour: str) -> LinkConfig | None:
        return next((l for l in self.links if l.neighbour == neighbour), None)
