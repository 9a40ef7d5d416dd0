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

A link may also give its herald timing (``attempts: {herald_delay_ns, guard_ns}``), its simulated
photonics (``sim:``, merged over the experiment's ``physics:``), the optical switch output in front
of its transceiver (``switch: {instrument, input, output}``) and the time tagger of its heralding
detector (``herald_tagger``); a node whose links share one transceiver through a switch says how
it shares it (``transceiver: {switch, policy, order, dwell_attempts}``). docs/links.md has the
whole picture.

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
    #: Operation durations in µs by name (``init``, ``measure``, ``single_qubit_gate``,
    #: ``two_qubit_gate``, ``emit``, ``absorb``, ``move``, or a gate name); the rest keep the
    #: simulated backend's defaults. The move and the Bell-state measurement set how long a
    #: minimal repeater's transceiver is busy between its turns.
    durations_us: dict[str, float] = {}

    @field_validator("durations_us")
    @classmethod
    def _durations(cls, v: dict[str, float]) -> dict[str, float]:
        for name, us in v.items():
            if not us >= 0:
                raise ValueError(f"duration of {name!r} must be >= 0 us, got {us}")
        return v

    def as_params(self) -> dict[str, Any]:
        """The set fields as ``sim_backend.memory_params.MemoryParams`` keyword arguments."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if name == "durations_us":
                continue
            if name.endswith("_ms"):
                out[name.removesuffix("_ms") + "_ps"] = float(value) * 1e9
            else:
                out[name] = float(value)
        if self.durations_us:
            # MemoryParams takes the whole table; the simulator is only imported when a file
            # changes a duration (validating a node file does not need it).
            from sim_backend.memory_params import MemoryParams

            durations = dict(MemoryParams().durations_ps)
            durations.update({k: int(round(us * 1e6)) for k, us in self.durations_us.items()})
            out["durations_ps"] = durations
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
    """The link's attempt schedule and herald timing (both ends give the same values)."""

    period_ns: float = Field(1000.0, gt=0)
    window_ns: float = Field(5.0, gt=0)
    #: From a photon reaching a heralding detector to its herald frame leaving (tagger read and
    #: decoding); must exceed half the window. Unset: a BSA station reads its tagger every
    #: ``station_read_us`` and the link allows that plus ``decode_us``; a transducer reads at
    #: each armed attempt and the link allows ``decode_us``.
    herald_delay_ns: float | None = Field(None, gt=0)
    #: How long before its photon is due a receiving memory is armed (at least the window).
    #: Unset: 500 ns.
    guard_ns: float | None = Field(None, gt=0)


class SimDetectorConfig(Strict):
    """A simulated heralding detector (the BSA's four, or a receiving end's transducer herald
    detector). Unset fields keep the experiment's ``physics.detector``."""

    efficiency: float | None = Field(None, ge=0, le=1)
    dark_count_rate_hz: float | None = Field(None, ge=0)
    dead_time_ns: float | None = Field(None, ge=0)
    jitter_fwhm_ps: float | None = Field(None, ge=0)


class SimLinkConfig(Strict):
    """The simulated photonics of one link (``sim_backend.link_schemes.SimLinkPhysics``). Either
    end may write it, or both alike; unset fields keep the experiment's ``physics:``. The link's
    ``fidelity`` is the Werner fidelity of an entangled herald."""

    #: Emitted photons that enter the fibre (both_endpoints, at_source: the emitter's), or a
    #: source photon's coupling into its arm (midpoint_source).
    collection_efficiency: float | None = Field(None, gt=0, le=1)
    #: A photon reaching a receiving memory is absorbed with this probability (transducer).
    transfer_efficiency: float | None = Field(None, gt=0, le=1)
    #: midpoint_source: mean pairs per pump pulse of the thermal source (μ).
    mean_pairs_per_attempt: float | None = Field(None, ge=0)
    attenuation_db_per_km: float | None = Field(None, ge=0)
    detector: SimDetectorConfig | None = None


class LinkSwitchConfig(Strict):
    """The optical switch port in front of this end's transceiver for this link."""

    instrument: str = Field(pattern=NAME_PATTERN)
    input: int = Field(1, ge=1)
    output: int = Field(ge=1)


class SwitchPolicyName(str, enum.Enum):
    """How a switched transceiver shares its time (``timing.switched.SwitchPolicyKind``)."""

    PRIORITY = "priority"          # QRNA Figure 2: the first link in order that wants a pair
    ROUND_ROBIN = "round_robin"    # turns of dwell_attempts attempts each


class TransceiverConfig(Strict):
    """One transceiver (a QNIC's communication qubits) behind an optical switch serving several
    links (the QRNA paper's minimal repeater, Figure 2). Each link in ``order`` names its port in
    its own ``switch:``."""

    switch: str = Field(pattern=NAME_PATTERN)
    policy: SwitchPolicyName = SwitchPolicyName.PRIORITY
    #: The links (by neighbour) in priority order; with ``priority`` and fewer communication
    #: qubits than links, pairs with the first are moved into storage (buffered RuleSet).
    order: list[str] = Field(min_length=2)
    dwell_attempts: int = Field(1, ge=1)
    #: How long a route change takes (no attempt on the new route before). Unset: a simulated
    #: switch's own switching time; a real switch needs its datasheet figure here.
    switching_time_us: float | None = Field(None, ge=0)


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
    #: Simulated photonics of this link (merged over the experiment's ``physics:``).
    sim: SimLinkConfig | None = None
    #: The optical switch port this end's transceiver reaches the link through.
    switch: LinkSwitchConfig | None = None
    #: The time tagger of this end's heralding detector (receiving ends of at_source and
    #: midpoint_source links). Unset: the node's only time tagger.
    herald_tagger: str | None = Field(None, pattern=NAME_PATTERN)

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
    #: A transceiver behind an optical switch serving several of the links.
    transceiver: TransceiverConfig | None = None
    calibration: CalibrationConfig | None = None

    def qnic(self, address: int) -> QnicConfig | None:
        return next((q for q in self.qnics if q.address == address), None)

    def instrument(self, name: str) -> InstrumentConfig | None:
        return next((i for i in self.instruments if i.name == name), None)

    def link_to(self, neighbour: str) -> LinkConfig | None:
        return next((l for l in self.links if l.neighbour == neighbour), None)

    def communication_qubits(self, address: int) -> list[int]:
        """QNIC ``address``'s communication qubits (all of its qubits unless it lists them)."""
        q = self.qnic(address)
        if q is None:
            return []
        return list(q.communication_qubits if q.communication_qubits is not None else range(q.qubits))

    def buffered_neighbour(self) -> str | None:
        """The neighbour whose pairs this node moves into storage as they arrive, or None.

        A transceiver under the ``priority`` policy with fewer communication qubits than links
        (the minimal repeater: one transceiver qubit, one buffer qubit) cannot keep a pair per
        link on its communication qubits: it serves the first link of its order, moves that pair
        into storage, then serves the next (``ruleset.builders.buffered_chain_rulesets``)."""
        t = self.transceiver
        if t is None or t.policy is not SwitchPolicyName.PRIORITY:
            return None
        first = self.link_to(t.order[0])
        if first is None:
            return None
        return t.order[0] if len(self.communication_qubits(first.qnic)) < len(t.order) else None
