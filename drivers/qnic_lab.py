"""The QNIC lab binding: the QNIC interface realised on an AWG and a time tagger, as a binding
file (:mod:`drivers.qnic_binding`) describes.

Opening the QNIC uploads every waveform of the binding to the AWG (plus one idle waveform per
channel), sets each channel's amplitude and offset, arms every channel for one burst per bus
trigger, switches the outputs on, starts the AWG and starts the tagger streaming the readout
channels. From then on:

* an operation (init, a gate, emit, move, the basis change of a measurement) plays its steps: for
  each step, select on every bound channel the step's waveform or that channel's idle waveform
  (only where the selection changes) and send one bus trigger;
* a readout discards the tags streamed so far, plays its pulse, waits ``settle_s``, then reads the
  stream until it holds a tag on the reference channel, takes the last such tag as time zero, and
  counts detector tags in the window; the count against the threshold gives the outcome.

The AWG and tagger are other instruments of the node, found by name in
``DriverContext.instruments`` (open them first); they keep their own locks, safety limits and
error checks. Node YAML::

    - {name: qnic0, kind: qnic, model: lab_binding, resource: configs/qnic_bindings/nv_two_qubit.yaml}
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from qnode_fw.errors import ConfigError, InstrumentError, InstrumentTimeout, QubitRoleError

from .awg import AWG
from .qnic import QNIC, Basis, Gate, QubitRole
from .qnic_binding import IDLE_PREFIX, QnicBinding, ReadoutBinding, load_binding
from .registry import register_driver
from .time_tagger import TimeTagger

log = logging.getLogger(__name__)

_POLL_S = 0.001  # between stream reads while waiting for a readout's reference tag


@dataclass(frozen=True, slots=True)
class ReadoutResult:
    """One readout: the counts in the window, the threshold they were held against, the outcome,
    and the reference tag's time (tagger clock, ps)."""

    qubit: int
    counts: int
    threshold: int
    outcome: int
    reference_ps: int


@register_driver(kind="qnic", model="lab_binding", transport="binding",
                 description="QNIC on an AWG and a time tagger, bound by a YAML file")
class LabQNIC(QNIC):
    def __init__(self, name: str, resource: str, binding: QnicBinding, awg: AWG, tagger: TimeTagger) -> None:
        super().__init__(name, resource)
        self.binding = binding
        self.awg = awg
        self.tagger = tagger
        self._lock = threading.RLock()
        self._ops = {(ob.op, tuple(ob.qubits)): ob for ob in binding.operations}
        self._readouts = {rb.qubit: rb for rb in binding.readout}
        self._selected: dict[int, str] = {}
        self.last_readout: ReadoutResult | None = None
        #: Every operation as (operation, qubits...), in order: what was played on the AWG.
        self.operation_log: list[tuple] = []
        self._setup()

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, spec, context=None):
        binding = load_binding(spec.resource)
        instruments = dict(getattr(context, "instruments", None) or {})
        awg = cls._instrument(spec.resource, instruments, binding.awg, "awg", AWG)
        tagger = cls._instrument(spec.resource, instruments, binding.tagger, "tagger", TimeTagger)
        return cls(spec.name, spec.resource, binding, awg, tagger)

    @staticmethod
    def _instrument(file: str, instruments: dict, name: str, field: str, interface: type):
        inst = instruments.get(name)
        if not isinstance(inst, interface):
            found = "is not open" if inst is None else f"is a {inst.kind}, not a {interface.kind}"
            candidates = sorted(n for n, i in instruments.items() if isinstance(i, interface))
            raise ConfigError(f"instrument {name!r} {found}", file=file, field=field,
                              expected=f"the name of a {interface.kind} instrument opened before the QNIC"
                                       + (f" ({', '.join(candidates)})" if candidates else ""))
        return inst

    def _setup(self) -> None:
        b = self.binding
        if not getattr(self.tagger, "streams_tags", True):
            raise ConfigError(f"tagger {b.tagger!r} ({self.tagger.model}) cannot stream tags, which "
                              "readout windows need", file=self.resource, field="tagger",
                              expected="a streaming time tagger")
        missing = sorted(c for c in b.channels if not 1 <= c <= self.awg.num_channels)
        if missing:
            raise ConfigError(f"AWG {b.awg!r} has channels 1..{self.awg.num_channels}, not {missing[0]}",
                              file=self.resource, field="channels")
        inputs = sorted({rb.reference_channel for rb in b.readout}
                        | {c for rb in b.readout for c in rb.detector_channels})
        absent = [c for c in inputs if c not in self.tagger.channels]
        if absent:
            raise ConfigError(f"tagger {b.tagger!r} has no input {absent[0]}", file=self.resource,
                              field="readout", expected=f"inputs among {self.tagger.channels}")
        idle = np.zeros(b.idle_samples)
        for ch in sorted(b.channels):
            self.awg.upload_waveform(ch, f"{IDLE_PREFIX}{ch}", idle, b.sample_rate_hz)
        for name, w in b.waveforms.items():
            self.awg.upload_waveform(w.channel, name, w.samples(b.sample_rate_hz), b.sample_rate_hz,
                                     markers=w.markers())
        for ch, settings in sorted(b.channels.items()):
            self.awg.select_waveform(ch, f"{IDLE_PREFIX}{ch}")
            self._selected[ch] = f"{IDLE_PREFIX}{ch}"
            self.awg.set_amplitude_vpp(ch, settings.amplitude_vpp)
            self.awg.set_offset_v(ch, settings.offset_v)
            self.awg.configure_burst(ch, 1, "BUS")
            self.awg.set_output(ch, True)
        self.awg.run()
        self.tagger.start_stream(inputs)

    # -- identity -----------------------------------------------------------------------------
    def identify(self) -> str:
        return f"qnode-fw,LabQNIC,{self.resource},awg={self.binding.awg},tagger={self.binding.tagger}"

    @property
    def qnic_address(self) -> int:
        return self.binding.qnic_address

    @property
    def num_qubits(self) -> int:
        return self.binding.num_qubits

    def role(self, index: int) -> QubitRole:
        self._check_index(index, "role")
        return QubitRole.COMMUNICATION if index in self.binding.communication else QubitRole.STORAGE

    # -- playing --------------------------------------------------------------------------------
    def _play(self, op: str, qubits: tuple[int, ...], command: str) -> None:
        binding = self._ops.get((op, qubits))
        if binding is None and op == Gate.CZ.value:
            binding = self._ops.get((op, qubits[::-1]))  # CZ is symmetric in its qubits
        if binding is None:
            raise InstrumentError(f"the binding has no {op} on qubits {list(qubits)}; nothing was sent",
                                  resource=self.resource, command=command)
        for step in binding.play:
            self._trigger_step(step)

    def _trigger_step(self, names: list[str]) -> None:
        wanted = {ch: f"{IDLE_PREFIX}{ch}" for ch in self.binding.channels}
        for name in names:
            wanted[self.binding.waveforms[name].channel] = name
        for ch, name in sorted(wanted.items()):
            if self._selected.get(ch) != name:
                self._selected.pop(ch, None)  # unknown until the AWG has accepted the selection
                self.awg.select_waveform(ch, name)
                self._selected[ch] = name
        self.awg.trigger()

    # -- operations -----------------------------------------------------------------------------
    def init(self, index: int) -> None:
        self._check_index(index, "init")
        with self._lock:
            self._play("init", (index,), f"init {index}")
            self.operation_log.append(("init", index))

    def gate(self, gate: Gate, *indices: int) -> None:
        gate, command = self._checked_gate(gate, indices)
        with self._lock:
            self._play(gate.value, tuple(int(i) for i in indices), command)
            self.operation_log.append((gate.value, *indices))

    def measure(self, index: int, basis: Basis = Basis.Z) -> int:
        basis = Basis(basis)
        command = f"measure_{basis.value} {index}"
        self._check_index(index, command)
        with self._lock:
            op = f"measure_{basis.value}"
            if (op, (index,)) in self._ops or basis is not Basis.Z:
                self._play(op, (index,), command)
            self.operation_log.append((op, index))
            return self.readout(index).outcome

    def readout(self, index: int) -> ReadoutResult:
        """Play the readout pulse of qubit ``index`` and threshold the counts in its window."""
        self._check_index(index, f"readout {index}")
        rb = self._readouts[index]
        with self._lock:
            self.tagger.read_stream()  # what came before belongs to earlier operations
            self._trigger_step([rb.pulse])
            if self.binding.settle_s:
                time.sleep(self.binding.settle_s)
            channels, times = self._collect_until_reference(rb, index)
            reference = int(times[channels == rb.reference_channel][-1])
            start = reference + rb.window_start_ps
            inside = np.isin(channels, rb.detector_channels) & (times >= start) & (times < start + rb.window_ps)
            counts = int(np.count_nonzero(inside))
            bright = counts >= rb.threshold
            outcome = rb.bright_outcome if bright else 1 - rb.bright_outcome
            result = ReadoutResult(index, counts, rb.threshold, outcome, reference)
            self.last_readout = result
            self.operation_log.append(("readout", index, counts, outcome))
            return result

    def _collect_until_reference(self, rb: ReadoutBinding, index: int) -> tuple[np.ndarray, np.ndarray]:
        deadline = time.monotonic() + self.binding.readout_timeout_s
        chans: list[np.ndarray] = []
        times: list[np.ndarray] = []
        while True:
            batch = self.tagger.read_stream()
            if batch.overflow:
                raise InstrumentError(f"the tagger lost tags during the readout of qubit {index} "
                                      f"({batch.missed_events} missed); the count would be wrong",
                                      resource=self.tagger.resource, command=f"readout {index}")
            chans.append(batch.channels)
            times.append(batch.timestamps_ps)
            if np.any(batch.channels == rb.reference_channel):
                return np.concatenate(chans), np.concatenate(times)
            if time.monotonic() >= deadline:
                raise InstrumentTimeout(f"no reference tag on input {rb.reference_channel} within "
                                        f"{self.binding.readout_timeout_s} s of the readout pulse "
                                        f"{rb.pulse!r} (is the AWG marker wired to it?)",
                                        resource=self.tagger.resource, command=f"readout {index}")
            time.sleep(_POLL_S)

    def emit(self, index: int, attempt_id: int) -> None:
        self._photon_operation("emit", index, attempt_id)

    def absorb(self, index: int, attempt_id: int) -> None:
        """Plays the binding's ``absorb`` sequence; without one the QNIC has no absorbing
        transducer and refuses as the interface's default does."""
        if not any(op == "absorb" for op, _ in self._ops):
            super().absorb(index, attempt_id)
        self._photon_operation("absorb", index, attempt_id)

    def _photon_operation(self, operation: str, index: int, attempt_id: int) -> None:
        command = f"{operation} {index} {attempt_id}"
        self._check_index(index, command)
        if index not in self.binding.communication:
            raise QubitRoleError(f"qubit {index} is a storage qubit and cannot {operation}",
                                 resource=self.resource, command=command)
        with self._lock:
            self._play(operation, (index,), command)
            self.operation_log.append((operation, index, attempt_id))

    def move(self, source: int, destination: int) -> None:
        command = f"move {source} {destination}"
        self._check_index(source, command)
        self._check_index(destination, command)
        if source == destination:
            raise InstrumentError("move needs two different qubits", resource=self.resource, command=command)
        if destination in self.binding.communication:
            raise QubitRoleError(f"move destination {destination} is not a storage qubit",
                                 resource=self.resource, command=command)
        with self._lock:
            self._play("move", (source, destination), command)
            self.operation_log.append(("move", source, destination))

    # -- durations ------------------------------------------------------------------------------
    def _step_ps(self, names: list[str]) -> int:
        rate = self.binding.sample_rate_hz
        return max(self.binding.waveforms[n].duration_ps(rate) for n in names)

    def _binding_ps(self, op: str, qubits: tuple[int, ...]) -> int:
        ob = self._ops.get((op, qubits))
        if ob is None:
            return 0
        if ob.duration_ps is not None:
            return ob.duration_ps
        return sum(self._step_ps(step) for step in ob.play)

    def _readout_ps(self, index: int) -> int:
        rb = self._readouts[index]
        pulse = self.binding.waveforms[rb.pulse].duration_ps(self.binding.sample_rate_hz)
        return max(pulse, rb.window_start_ps + rb.window_ps)

    def duration_ps(self, operation: str) -> int:
        """The longest binding of ``operation`` over all qubits (the executor's schedule must hold
        for whichever qubits it uses). ``measure`` covers every basis; ``measure_X`` one basis;
        each includes the readout."""
        op = str(getattr(operation, "value", operation))
        n = self.binding.num_qubits
        if op in ("measure", "readout") or op in (f"measure_{b.value}" for b in Basis):
            bases = [b.value for b in Basis] if op == "measure" else [op.removeprefix("measure_")]
            pre = 0 if op == "readout" else max(
                self._binding_ps(f"measure_{b}", (q,)) for b in bases for q in range(n))
            return pre + max(self._readout_ps(q) for q in range(n))
        candidates = [self._binding_ps(o, q) for (o, q) in self._ops if o == op]
        if not candidates:
            raise InstrumentError(f"the binding has no operation {operation!r}", resource=self.resource,
                                  command=f"duration {operation}")
        return max(candidates)

    # -- closing --------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the tag stream and the AWG (outputs off). The AWG and tagger stay open: they are
        the node's instruments and the node closes them."""
        for action in (self.tagger.stop_stream, self.awg.stop):
            try:
                action()
            except InstrumentError as exc:
                log.warning("%s: while closing: %s", self.resource, exc)
