"""Optical switch: routing with insertion loss, and a switching time during which no light passes.

The model keeps the switch's command history, so the route a photon sees is decided by the time
the photon reaches the switch, not by when the simulation happens to process it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class SwitchParams:
    """Defaults: a MEMS fibre switch (insertion loss ~1 dB, switching ~10 ms); see docs/physics.md."""

    num_inputs: int = 1
    num_outputs: int = 4
    insertion_loss_db: float = 1.0
    switching_time_ps: int = 10 * 10**9

    @property
    def transmission(self) -> float:
        return 10.0 ** (-self.insertion_loss_db / 10.0)


@dataclass
class SwitchModel:
    params: SwitchParams
    #: per input: list of (time_ps, output) commands; output 0 = disconnected
    history: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def command(self, time_ps: int, input_port: int, output_port: int) -> None:
        entries = self.history.setdefault(input_port, [(-(2**62), 0)])
        if time_ps < entries[-1][0]:
            raise ValueError(f"switch command at {time_ps} ps is earlier than the last one at {entries[-1][0]} ps")
        entries.append((int(time_ps), int(output_port)))

    def current(self, input_port: int) -> int:
        return self.history.get(input_port, [(0, 0)])[-1][1]

    def route(self, input_port: int, times_ps: np.ndarray) -> np.ndarray:
        """Output port (0 = no light: disconnected or switching) for photons reaching
        ``input_port`` at ``times_ps``."""
        t = np.asarray(times_ps, dtype=np.int64)
        entries = self.history.get(input_port)
        if not entries:
            return np.zeros(t.shape, np.int64)
        starts = np.array([e[0] for e in entries], dtype=np.int64)
        outputs = np.array([e[1] for e in entries], dtype=np.int64)
        i = np.searchsorted(starts, t, side="right") - 1
        out = outputs[np.clip(i, 0, None)]
        # a command that changed the route blocks light for the switching time
        changed = np.r_[False, outputs[1:] != outputs[:-1]]
        switching = changed[i] & (t < starts[i] + self.params.switching_time_ps)
        return np.where(switching | (i < 0), 0, out)
