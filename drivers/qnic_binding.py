"""The QNIC lab binding file: how each QNIC operation becomes AWG waveforms and each readout
time-tagger counts in a window with a threshold.

A binding file (``configs/qnic_bindings/*.yaml``) looks like::

    qnic_address: 0
    num_qubits: 2
    communication_qubits: [0]          # the rest are storage qubits
    awg: awg0                          # instrument names in the node YAML
    tagger: tagger0
    sample_rate_hz: 1.0e9
    channels:                          # every AWG channel the binding drives
      1: {amplitude_vpp: 0.5}
    waveforms:                         # uploaded once when the QNIC opens
      x_q0:
        channel: 1
        pulses:                        # played back to back
          - {samples: 64, amplitude: 0.8, envelope: gaussian, frequency_hz: 1.0e8, phase_deg: 0}
    operations:
      - {op: init, qubits: [0], play: [init_q0]}
      - {op: X, qubits: [0], play: [x_q0]}
      - {op: CNOT, qubits: [0, 1], play: [[cx_q0, cx_q1]]}    # one trigger, two channels at once
      - {op: measure_X, qubits: [0], play: [h_q0]}             # basis change before the readout
    readout:
      - {qubit: 0, pulse: ro_q0, reference_channel: 1, detector_channels: [2],
         window_start_ps: 100000, window_ps: 3700000, threshold: 2, bright_outcome: 0}

Each ``play`` entry is one AWG trigger; an entry that is a list plays several waveforms (on
different channels) on the same trigger. Channels a step does not name play the channel's idle
waveform (``idle_samples`` zeros, uploaded as ``idle_ch<n>``), because a bus trigger starts every
armed channel at once. ``op`` is ``init``, ``emit``, ``absorb`` (optional: a receiving link end
arms its transducer), ``move`` (qubits ``[source, destination]``, leaving the source
initialised), ``measure_X``/``measure_Y``/``measure_Z`` (what to play before the readout; Z may be
left out), or a gate of :class:`~drivers.qnic.Gate`.

A readout plays ``pulse``, takes the last tag on ``reference_channel`` (the AWG marker output wired
to the tagger) as time zero, counts tags on ``detector_channels`` in ``[window_start_ps,
window_start_ps + window_ps)`` after it, and reports ``bright_outcome`` when the count reaches
``threshold``, the other outcome otherwise.

The model validates each value (pydantic); :func:`check_binding` then checks what spans fields
(names that must exist, qubit ranges, roles, one binding per operation). Every error is a
:class:`~qnode_fw.errors.ConfigError` naming file, line and field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from qnode_fw.config.source import Document, load_document
from qnode_fw.config.validate import parse_model
from qnode_fw.errors import ConfigError, ConfigErrors

from .qnic import Basis, Gate

#: Names an AWG accepts for a stored waveform (the strictest common rule of the AWG drivers).
WAVEFORM_NAME = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"
IDLE_PREFIX = "idle_ch"

#: Operations other than gates, with the number of qubits each takes.
NON_GATE_OPERATIONS = {"init": 1, "emit": 1, "absorb": 1, "move": 2,
                       **{f"measure_{b.value}": 1 for b in Basis}}


def operation_arity(op: str) -> int | None:
    """Qubits ``op`` takes, or None if ``op`` is not an operation name."""
    if op in NON_GATE_OPERATIONS:
        return NON_GATE_OPERATIONS[op]
    if op in Gate.__members__:
        return Gate(op).num_qubits
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pulse(_Strict):
    """``samples`` samples of ``amplitude * envelope * cos(2 pi frequency_hz t + phase)``.

    ``envelope: gaussian`` is centred with sigma = samples/6 (so it starts and ends near zero);
    ``frequency_hz: 0`` gives a baseband pulse (``phase_deg: 180`` flips its sign). ``marker`` sets
    the marker bits (bit 0 = marker 1, bit 1 = marker 2) for the pulse's samples.
    """

    samples: int = Field(gt=0, le=16_000_000)
    amplitude: float = Field(0.0, ge=-1.0, le=1.0)
    envelope: Literal["square", "gaussian"] = "square"
    frequency_hz: float = Field(0.0, ge=0.0)
    phase_deg: float = 0.0
    marker: int = Field(0, ge=0, le=3)


class Waveform(_Strict):
    channel: int = Field(ge=1)
    pulses: list[Pulse] = Field(min_length=1)

    @property
    def num_samples(self) -> int:
        return sum(p.samples for p in self.pulses)

    def samples(self, sample_rate_hz: float) -> np.ndarray:
        """The waveform normalised to [-1, 1]; the carrier phase runs on across pulses."""
        parts = []
        start = 0
        for p in self.pulses:
            n = np.arange(p.samples, dtype=np.float64)
            if p.envelope == "gaussian":
                sigma = p.samples / 6.0
                envelope = np.exp(-0.5 * ((n - (p.samples - 1) / 2.0) / sigma) ** 2)
            else:
                envelope = np.ones(p.samples)
            t = (start + n) / sample_rate_hz
            carrier = np.cos(2.0 * np.pi * p.frequency_hz * t + np.deg2rad(p.phase_deg))
            parts.append(p.amplitude * envelope * carrier)
            start += p.samples
        return np.clip(np.concatenate(parts), -1.0, 1.0)

    def markers(self) -> np.ndarray | None:
        """Per-sample marker bits, or None when no pulse sets a marker."""
        if not any(p.marker for p in self.pulses):
            return None
        return np.concatenate([np.full(p.samples, p.marker, np.uint8) for p in self.pulses])

    def duration_ps(self, sample_rate_hz: float) -> int:
        return int(round(self.num_samples * 1e12 / sample_rate_hz))


class ChannelSettings(_Strict):
    amplitude_vpp: float = Field(gt=0)
    offset_v: float = 0.0


def _as_step(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return value
    raise ValueError("a step is a waveform name or a list of waveform names played together")


#: One trigger: a waveform name, or several names played together on different channels; held
#: as a list of names either way.
Step = Annotated[list[str], BeforeValidator(_as_step)]


class OperationBinding(_Strict):
    op: str
    qubits: list[int] = Field(min_length=1, max_length=2)
    play: list[Step] = []
    #: Overrides the duration computed from the waveforms (e.g. to add a wait after a pulse).
    duration_ps: int | None = Field(None, gt=0)


class ReadoutBinding(_Strict):
    qubit: int = Field(ge=0)
    pulse: str
    reference_channel: int
    detector_channels: list[int] = Field(min_length=1)
    window_start_ps: int = Field(0, ge=0)
    window_ps: int = Field(gt=0)
    threshold: int = Field(ge=1)
    bright_outcome: Literal[0, 1] = 0


class QnicBinding(_Strict):
    qnic_address: int = Field(ge=0)
    num_qubits: int = Field(gt=0, le=64)
    communication_qubits: list[int] | None = None
    awg: str
    tagger: str
    sample_rate_hz: float = Field(gt=0)
    idle_samples: int = Field(8, gt=0)
    channels: dict[int, ChannelSettings] = Field(min_length=1)
    waveforms: dict[str, Waveform] = Field(min_length=1)
    operations: list[OperationBinding] = []
    readout: list[ReadoutBinding] = Field(min_length=1)
    #: Wall-clock wait after a readout trigger before the tag stream is read: the window's length
    #: plus the tagger's stream latency. Zero when the tagger delivers tags at once (emulators).
    settle_s: float = Field(0.0, ge=0)
    #: How long to keep reading the stream for the readout's reference tag before giving up.
    readout_timeout_s: float = Field(1.0, gt=0)

    @property
    def communication(self) -> frozenset[int]:
        if self.communication_qubits is None:
            return frozenset(range(self.num_qubits))
        return frozenset(self.communication_qubits)


def check_binding(doc: Document, b: QnicBinding) -> list[ConfigError]:
    """Checks that span fields; each error names the offending field's file and line."""
    errors: list[ConfigError] = []
    n = b.num_qubits
    qubit_range = f"a qubit index in 0..{n - 1}"
    for j, q in enumerate(b.communication_qubits or []):
        if not 0 <= q < n:
            errors.append(doc.error(("communication_qubits", j), f"qubit {q} is out of range",
                                    expected=qubit_range))
    for name, w in b.waveforms.items():
        if not re.match(WAVEFORM_NAME, name):
            errors.append(doc.error(("waveforms", name), f"waveform name {name!r} is not a valid AWG "
                                    "waveform name", expected="a letter then up to 31 letters, digits or _"))
        elif name.startswith(IDLE_PREFIX):
            errors.append(doc.error(("waveforms", name), f"names starting {IDLE_PREFIX!r} are "
                                    "reserved for the idle waveforms", expected="another name"))
        if w.channel not in b.channels:
            errors.append(doc.error(("waveforms", name, "channel"), f"channel {w.channel} has no "
                                    "settings in channels", expected=f"one of {sorted(b.channels)}"))

    def check_step_names(path: tuple, steps: list[list[str]]) -> None:
        for i, step in enumerate(steps):
            used: dict[int, str] = {}
            for k, name in enumerate(step):
                where = path + ((i, k) if len(step) > 1 else (i,))
                w = b.waveforms.get(name)
                if w is None:
                    errors.append(doc.error(where, f"waveform {name!r} is not defined in waveforms",
                                            expected="a name from waveforms"))
                    continue
                if w.channel in used:
                    errors.append(doc.error(where, f"waveforms {used[w.channel]!r} and {name!r} are "
                                            f"both on channel {w.channel} in one step",
                                            expected="at most one waveform per channel per step"))
                used[w.channel] = name

    seen: dict[tuple[str, tuple[int, ...]], int] = {}
    for i, ob in enumerate(b.operations):
        arity = operation_arity(ob.op)
        if arity is None:
            errors.append(doc.error(("operations", i, "op"), f"unknown operation {ob.op!r}",
                                    expected="init, emit, absorb, move, measure_X/Y/Z or a gate: "
                                             + ", ".join(Gate.__members__)))
            continue
        qubits = tuple(ob.qubits)
        if len(qubits) != arity:
            errors.append(doc.error(("operations", i, "qubits"), f"{ob.op} takes {arity} qubit(s), "
                                    f"got {len(qubits)}", expected=f"{arity} qubit index(es)"))
            continue
        bad = [q for q in qubits if not 0 <= q < n]
        if bad:
            errors.append(doc.error(("operations", i, "qubits"), f"qubit {bad[0]} is out of range",
                                    expected=qubit_range))
            continue
        if len(set(qubits)) != len(qubits):
            errors.append(doc.error(("operations", i, "qubits"), f"{ob.op} needs two different qubits",
                                    expected="two different qubit indices"))
            continue
        if ob.op in ("emit", "absorb") and qubits[0] not in b.communication:
            errors.append(doc.error(("operations", i, "qubits"), f"qubit {qubits[0]} is a storage "
                                    f"qubit and cannot {ob.op}", expected="a communication qubit"))
        if ob.op == "move" and qubits[1] in b.communication:
            errors.append(doc.error(("operations", i, "qubits"), f"move destination {qubits[1]} is "
                                    "not a storage qubit", expected="[communication, storage]"))
        if (ob.op, qubits) in seen:
            errors.append(doc.error(("operations", i), f"{ob.op} on qubits {list(qubits)} is bound "
                                    f"twice (also operations[{seen[(ob.op, qubits)]}])",
                                    expected="one binding per operation and qubits"))
        seen.setdefault((ob.op, qubits), i)
        check_step_names(("operations", i, "play"), ob.play)

    readout_of: dict[int, int] = {}
    for i, rb in enumerate(b.readout):
        if not 0 <= rb.qubit < n:
            errors.append(doc.error(("readout", i, "qubit"), f"qubit {rb.qubit} is out of range",
                                    expected=qubit_range))
        if rb.qubit in readout_of:
            errors.append(doc.error(("readout", i, "qubit"), f"qubit {rb.qubit} has two readouts "
                                    f"(also readout[{readout_of[rb.qubit]}])", expected="one per qubit"))
        readout_of.setdefault(rb.qubit, i)
        if rb.pulse not in b.waveforms:
            errors.append(doc.error(("readout", i, "pulse"), f"waveform {rb.pulse!r} is not defined "
                                    "in waveforms", expected="a name from waveforms"))
        if rb.reference_channel in rb.detector_channels:
            errors.append(doc.error(("readout", i, "detector_channels"), "the reference channel "
                                    f"{rb.reference_channel} is also a detector channel",
                                    expected="detector inputs other than the reference input"))

    for q in range(n):
        if ("init", (q,)) not in seen:
            errors.append(doc.error(("operations",), f"qubit {q} has no init binding",
                                    expected=f"an entry {{op: init, qubits: [{q}], play: [...]}}"))
        if q not in readout_of:
            errors.append(doc.error(("readout",), f"qubit {q} has no readout",
                                    expected=f"an entry {{qubit: {q}, pulse: ..., ...}}"))
        if q in b.communication and ("emit", (q,)) not in seen:
            errors.append(doc.error(("operations",), f"communication qubit {q} has no emit binding",
                                    expected=f"an entry {{op: emit, qubits: [{q}], play: [...]}}"))
    return errors


def parse_binding(doc: Document) -> QnicBinding:
    """Validate a loaded binding document; raises :class:`ConfigErrors` naming file/line/field."""
    binding = parse_model(QnicBinding, doc)
    errors = check_binding(doc, binding)
    if errors:
        raise ConfigErrors(errors)
    return binding


def load_binding(path: str | Path) -> QnicBinding:
    """Load and validate a binding file."""
    return parse_binding(load_document(path))


def binding_from_dict(data: dict[str, Any], file: str = "<binding>") -> QnicBinding:
    """Validate a binding given as plain data (no line numbers: errors name the field only)."""
    return parse_binding(Document(data, file, {}))
