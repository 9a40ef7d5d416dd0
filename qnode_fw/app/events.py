"""What an application receives from its quantum socket.

* :class:`DeliveredPair` – a COMP or SNSR end node gets one half of an end-to-end Bell pair, held
  on a physical qubit until the application measures or releases it.
* :class:`MeasuredOutcome` – a MEAS end node whose RuleSet measures the qubit gets the outcome
  instead of the qubit (RFC 9340 §4.2: measure-directly nodes).
* :class:`DetectionBatch` – a photonic MEAS node (analysers and detectors behind an optical
  switch, no memory) gets its detections, one batch per analyser setting and read.
* :class:`ConnectionEvent` – the connection behind the socket was established or closed (with
  the reason and the node that stated it).

Every event carries a timestamp in integer picoseconds on the node's clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..addresses import NodeAddress, PairName, QubitAddress
from ..bell import BellState


@dataclass(frozen=True, slots=True)
class DeliveredPair:
    """One half of an end-to-end Bell pair on ``qubit``.

    ``name`` is the pair's name (the node and time of its last swap or herald) and is the same at
    both ends; ``bell_state`` is the state the pair is in (the RuleSets correct every pair to Φ+);
    ``fidelity_estimate`` the executor's estimate (link figures through the Werner swap and
    purification formulas); ``timestamp_ps`` when the pair was handed over; ``created_ps`` when
    its oldest component was heralded.
    """

    name: PairName
    partner: NodeAddress
    qubit: QubitAddress
    bell_state: BellState
    fidelity_estimate: float
    timestamp_ps: int
    created_ps: int
    connection: str


@dataclass(frozen=True, slots=True)
class MeasuredOutcome:
    """The outcome of a measurement a RuleSet made on the application's behalf."""

    name: PairName | None
    partner: NodeAddress
    basis: str
    outcome: int
    timestamp_ps: int
    connection: str


@dataclass(frozen=True)
class DetectionBatch:
    """Detections of a photonic MEAS node while one analyser was selected.

    ``setting`` is the switch output (analyser) in use, ``basis`` its label (an angle in degrees or
    ``circular``), ``outcome`` 0/1 per detection (which of the analyser's two detectors clicked)
    and ``timestamp_ps`` the tagger's timestamps (sorted).
    """

    node: NodeAddress
    setting: int
    basis: str
    outcome: np.ndarray
    timestamp_ps: np.ndarray
    start_ps: int
    end_ps: int

    def __len__(self) -> int:
        return int(self.timestamp_ps.shape[0])


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    connection: str
    established: bool
    reason: str | None
    detail: str
    stated_by: str
    timestamp_ps: int


AppEvent = DeliveredPair | MeasuredOutcome | DetectionBatch | ConnectionEvent
