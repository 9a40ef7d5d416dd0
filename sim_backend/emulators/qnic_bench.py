"""An emulated QNIC bench: what the cables of a lab carry between an AWG emulator and the fake
Swabian tagger, with a few toy qubits at the end of the AWG's outputs.

It exists so the QNIC lab binding (:mod:`drivers.qnic_lab`) can be tested end to end with real
drivers over real sockets: the binding sends SCPI to the AWG emulator, each bus trigger reaches
:meth:`QnicBench.on_trigger` with the waveform each channel plays, and the bench

* puts one reference tag per triggered channel on the tagger input that channel's marker (sync)
  output is wired to, at the trigger time (the AWG starts every burst with a sync edge);
* applies the waveform's meaning to the toy qubits (which waveform means what is the bench's
  wiring table, written by the test, independently of the binding file);
* for a readout waveform, measures the toy qubit in Z and puts detector clicks on the tagger:
  ``bright_counts`` for outcome 0, ``dark_counts`` for outcome 1, or exactly the click offsets a
  test scripted.

The toy qubits are a state vector (qubit 0 the most significant bit), ideal and noiseless: they
make an interface's promises checkable (init gives 0, X then measure gives 1, a Bell pair's
outcomes agree), they are not a physical model; :mod:`sim_backend.qnic` is.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..quantum.operators import GATES

#: Time between two triggers on the bench's clock; long enough for any readout window.
TRIGGER_PERIOD_PS = 100_000_000  # 100 us


@dataclass(frozen=True, slots=True)
class Action:
    """What a waveform does to the toy qubits: ``init``, ``gate`` (with ``gate`` set), ``emit``,
    ``absorb``, ``move`` (qubits = source, destination) or ``readout``."""

    kind: str
    qubits: tuple[int, ...]
    gate: str | None = None


class ToyQubits:
    """An n-qubit state vector with reset, gates and Z measurement."""

    def __init__(self, num_qubits: int, rng: np.random.Generator) -> None:
        self.n = num_qubits
        self.rng = rng
        self.state = np.zeros(2 ** num_qubits, complex)
        self.state[0] = 1.0

    def _tensor(self) -> np.ndarray:
        return self.state.reshape((2,) * self.n)

    def apply(self, unitary: np.ndarray, qubits: tuple[int, ...]) -> None:
        k = len(qubits)
        psi = np.moveaxis(self._tensor(), qubits, range(k))
        psi = (unitary @ psi.reshape(2 ** k, -1)).reshape(psi.shape)
        self.state = np.moveaxis(psi, range(k), qubits).reshape(-1)

    def measure(self, q: int) -> int:
        psi = np.moveaxis(self._tensor(), q, 0)
        p1 = float(np.sum(np.abs(psi[1]) ** 2))
        outcome = int(self.rng.random() < p1)
        psi = psi.copy()
        psi[1 - outcome] = 0.0
        psi /= np.linalg.norm(psi)
        self.state = np.moveaxis(psi, 0, q).reshape(-1)
        return outcome

    def reset(self, q: int) -> None:
        if self.measure(q):
            self.apply(GATES["X"], (q,))


class QnicBench:
    """Wires an AWG emulator's triggers to a fake Swabian tagger through toy qubits.

    ``tagger`` is the fake module's tagger object (``SwabianTagger.tagger``); ``actions`` maps
    waveform names to :class:`Action`; ``marker_inputs`` maps AWG channel -> tagger input of its
    marker cable; ``detector_input`` is the readout detector's tagger input; clicks of a readout
    start ``click_start_ps`` after the reference and are ``click_spacing_ps`` apart.
    """

    def __init__(self, tagger, *, num_qubits: int, actions: dict[str, Action],
                 marker_inputs: dict[int, int], detector_input: int, click_start_ps: int,
                 click_spacing_ps: int = 10_000, bright_counts: int = 5, dark_counts: int = 0,
                 seed: int = 1) -> None:
        self.tagger = tagger
        self.qubits = ToyQubits(num_qubits, np.random.default_rng(seed))
        self.actions = dict(actions)
        self.marker_inputs = dict(marker_inputs)
        self.detector_input = detector_input
        self.click_start_ps = click_start_ps
        self.click_spacing_ps = click_spacing_ps
        self.bright_counts = bright_counts
        self.dark_counts = dark_counts
        self.now_ps = 0
        #: Every trigger as the {channel: waveform} it played, in order.
        self.played: list[dict[int, str]] = []
        #: Outcomes of the toy qubits' readouts, in order: (qubit, outcome).
        self.readouts: list[tuple[int, int]] = []
        self._scripted: deque[list[int]] = deque()
        self._lock = threading.Lock()

    def attach(self, awg_emulator) -> "QnicBench":
        awg_emulator.trigger_listeners.append(self.on_trigger)
        return self

    def script_clicks(self, offsets_ps: list[int]) -> None:
        """The next readout puts clicks at exactly these offsets from its reference tag."""
        with self._lock:
            self._scripted.append(list(offsets_ps))

    def on_trigger(self, playing: dict[int, str]) -> None:
        with self._lock:
            self.now_ps += TRIGGER_PERIOD_PS
            t0 = self.now_ps
            self.played.append(dict(playing))
            channels: list[int] = []
            times: list[int] = []
            for ch in sorted(playing):
                if ch in self.marker_inputs:
                    channels.append(self.marker_inputs[ch])
                    times.append(t0)
            for ch in sorted(playing):
                action = self.actions.get(playing[ch])
                if action is None:
                    continue
                for offset in self._act(action):
                    channels.append(self.detector_input)
                    times.append(t0 + offset)
            order = np.argsort(times, kind="stable")
            self.tagger._inject_tags(np.asarray(channels)[order], np.asarray(times)[order])

    def _act(self, action: Action) -> list[int]:
        """Apply ``action``; returns the detector click offsets it causes."""
        q = self.qubits
        if action.kind == "init":
            q.reset(action.qubits[0])
        elif action.kind == "gate":
            q.apply(GATES[action.gate], action.qubits)
        elif action.kind in ("emit", "absorb"):
            # the photon carries the entanglement away (or an unknown one arrives): locally a
            # random basis state remains
            q.reset(action.qubits[0])
            if q.rng.random() < 0.5:
                q.apply(GATES["X"], action.qubits[:1])
        elif action.kind == "move":
            source, destination = action.qubits
            q.reset(destination)
            q.apply(GATES["CNOT"], (source, destination))
            q.apply(GATES["CNOT"], (destination, source))
            q.reset(source)
        elif action.kind == "readout":
            outcome = q.measure(action.qubits[0])
            self.readouts.append((action.qubits[0], outcome))
            if self._scripted:
                return self._scripted.popleft()
            n = self.bright_counts if outcome == 0 else self.dark_counts
            return [self.click_start_ps + k * self.click_spacing_ps for k in range(n)]
        else:
            raise ValueError(f"unknown bench action {action.kind!r}")
        return []
