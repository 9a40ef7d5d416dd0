"""Parameters of a simulated quantum memory (QNIC): coherence, errors and operation durations.

Defaults describe a nitrogen-vacancy (NV) node: an electron spin as communication qubit and a
13C nuclear spin as storage. Sources are listed in docs/physics.md ("QNIC memories"). Every field
carries its unit in its name; times are integer (or infinite) picoseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qnode_fw.units import MS, NS, S, US

from .quantum.noise import Decoherence


def _default_durations() -> dict[str, int]:
    return {
        "init": 2 * US,  # electron initialisation (QuTech link-layer simulation)
        "measure": 3_700 * NS,  # electron readout 3.7 us (same source)
        "single_qubit_gate": 5 * NS,  # electron microwave rotation
        "two_qubit_gate": 500 * US,  # electron-carbon gate (same source)
        "emit": 3 * US,  # spin-photon entangling sequence incl. re-initialisation (assumed)
        "absorb": 1 * US,  # arming a transducer-coupled memory to absorb (assumed)
        "move": 1_310 * US,  # carbon init 310 us + two electron-carbon gates
    }


@dataclass(frozen=True)
class MemoryParams:
    """Noise and timing of one simulated QNIC.

    ``*_t1_ps``/``*_t2_ps``: amplitude-damping and total-coherence times of communication and
    storage qubits. ``single_qubit_gate_error`` / ``two_qubit_gate_error``: depolarising
    probability after each gate. ``measurement_error``: probability that a readout reports the
    wrong outcome. ``move_error``: depolarising probability on the destination after a move.
    ``durations_ps``: per operation (``init``, ``measure``, ``single_qubit_gate``,
    ``two_qubit_gate``, ``emit``, ``absorb``, ``move``, or a gate name overriding its class).
    """

    communication_t1_ps: float = 3600 * S
    communication_t2_ps: float = 1 * S
    storage_t1_ps: float = 3600 * S
    storage_t2_ps: float = 13 * MS
    single_qubit_gate_error: float = 0.001
    two_qubit_gate_error: float = 0.01
    measurement_error: float = 0.02
    move_error: float = 0.02
    durations_ps: dict[str, int] = field(default_factory=_default_durations)

    def __post_init__(self) -> None:
        for name in ("single_qubit_gate_error", "two_qubit_gate_error", "measurement_error", "move_error"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        # validates T2 <= 2 T1
        self.communication_decoherence()
        self.storage_decoherence()

    @classmethod
    def ideal(cls) -> "MemoryParams":
        """No decoherence and no errors (durations kept): for protocol-logic tests."""
        return cls(math.inf, math.inf, math.inf, math.inf, 0.0, 0.0, 0.0, 0.0)

    def communication_decoherence(self) -> Decoherence:
        return Decoherence(self.communication_t1_ps, self.communication_t2_ps)

    def storage_decoherence(self) -> Decoherence:
        return Decoherence(self.storage_t1_ps, self.storage_t2_ps)
