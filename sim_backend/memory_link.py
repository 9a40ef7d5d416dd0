"""A memory-memory link heralded "at both end points" (RFC 9340 §4.4.1): both nodes emit a photon
entangled with a communication qubit, the photons meet in a linear-optics Bell-state analyser (BSA)
station, and the station's time tagger records the clicks. The simulation never hands out heralds:
the timing layer decodes them from the tag stream.

Per attempt (both ends call ``SimQNIC.emit(index, attempt_id)``) the link samples photon
transmission (collection, fibre, switch, detector efficiency), the Bell outcome the photons are
projected on, the detector clicks (plus dark counts around the attempt window, Gaussian jitter and
dead time), writes the attempt's sync-marker tag and the clicks into the station's tagger stream,
and sets the two memories' joint state in the quantum registry: the projected Bell state with
white noise of the configured fidelity. Photons that arrive more than ``max_arrival_mismatch_ps``
apart do not interfere: each click then only collapses its own memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from qnode_fw.bell import BellState
from qnode_fw.errors import QubitRoleError

from timing.detection import ChannelMap

from .physics import bsa
from .physics.detector import DetectorParams, detect
from .physics.fibre import Fibre
from .qnic import Emission
from .quantum.operators import werner_state
from .quantum.registry import QubitKey


#: Attempts a link's :attr:`~MemoryLink.record` keeps: the latest, to look at; the counters beside
#: it hold the run's totals (a link resolves an attempt every few microseconds for days).
RECORD_SIZE = 1024

#: The BSA station's tagger channels: one map, the timing layer's, so the simulated station wires
#: its detectors exactly where the herald detector looks for them.
BsaChannels = ChannelMap


@dataclass(frozen=True)
class LinkEnd:
    """One end of a memory link: the node's QNIC, the fibre to the BSA, the fraction of emitted
    photons that enter that fibre (``collection_efficiency``), the switch output that selects
    this link when the QNIC's transceiver sits behind an optical switch, and which communication
    qubits are optically coupled to this fibre (``qubits``; None: all of them). A QNIC with one
    transceiver per link lists a different qubit for each link."""

    node: str
    qnic: int
    fibre: Fibre
    collection_efficiency: float = 0.1
    switch: tuple[str, int, int] | None = None  # (switch name, input port, output port)
    qubits: tuple[int, ...] | None = None

    def holds(self, key: QubitKey) -> bool:
        return (self.node == key.node and self.qnic == key.qnic
                and (self.qubits is None or key.index in self.qubits))


@dataclass
class MemoryLink:
    name: str
    ends: tuple[LinkEnd, LinkEnd]
    tagger: str
    channels: BsaChannels = field(default_factory=BsaChannels)
    detectors: tuple[DetectorParams, ...] = field(default_factory=lambda: (DetectorParams(),) * 4)
    link_fidelity: float = 0.95  # Werner fidelity of a genuine herald's memory pair to its Bell state
    sync_delay_ps: int = 0
    dark_span_ps: int = 20_000  # darks are drawn in ± this around each attempt's arrival time
    max_arrival_mismatch_ps: int = 100
    pairing_tolerance_ps: int = 0
    pending: dict[int, list[Emission | None]] = field(default_factory=dict)
    attempts: int = 0
    #: the latest attempts resolved: (attempt_id, projected Bell outcome or None, photons arrived
    #: a, b); the totals are :attr:`attempts`, :attr:`joint_attempts` (both ends emitted) and
    #: :attr:`outcomes` (Bell outcome projected on, ``none`` without interference)
    record: deque[tuple[int, BellState | None, bool, bool]] = field(
        default_factory=lambda: deque(maxlen=RECORD_SIZE))
    joint_attempts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    last_click: dict[int, int] = field(default_factory=dict)
    _eta: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.detectors) != 4:
            raise ValueError(f"a BSA has 4 detectors, got {len(self.detectors)}")
        if not 0.0 <= self.link_fidelity <= 1.0:
            raise ValueError(f"link fidelity must be in [0, 1], got {self.link_fidelity}")
        span = 2 * self.dark_span_ps * 1e-12
        self._dark_mean = np.array([d.dark_count_rate_hz * span for d in self.detectors])

    def end_index(self, key: QubitKey) -> int | None:
        for i, end in enumerate(self.ends):
            if end.holds(key):
                return i
        return None

    def eta(self, side: int, world) -> float:
        """Probability that the photon of ``side`` reaches the BSA's beam splitter."""
        if self._eta is None:
            self._eta = (self._eta_uncached(0, world), self._eta_uncached(1, world))
        return self._eta[side]

    def _eta_uncached(self, side: int, world) -> float:
        end = self.ends[side]
        t = end.collection_efficiency * end.fibre.transmission
        if end.switch is not None:
            t *= world.switches[end.switch[0]].params.transmission
        return t

    def add_emission(self, side: int, emission: Emission, world) -> None:
        if emission.absorb:
            raise QubitRoleError(f"link {self.name} is heralded at both end points: both ends emit, "
                                 f"none absorbs", resource=f"sim://link/{self.name}",
                                 command=f"absorb {emission.key.index} {emission.attempt_id}")
        slot = self.pending.setdefault(emission.attempt_id, [None, None])
        slot[side] = emission
        if slot[0] is not None and slot[1] is not None:
            del self.pending[emission.attempt_id]
            self.resolve(emission.attempt_id, slot, world)

    def flush(self, now_ps: int, world) -> None:
        """Resolve attempts that only one end emitted, once the partner can no longer show up."""
        for attempt_id in [a for a, s in self.pending.items()
                           if min(e.time_ps for e in s if e is not None) + self.pairing_tolerance_ps < now_ps]:
            self.resolve(attempt_id, self.pending.pop(attempt_id), world)

    def resolve(self, attempt_id: int, emissions: list[Emission | None], world) -> None:
        rng = world.link_rng(self.name)
        self.attempts += 1
        present = [e for e in emissions if e is not None]
        t_ref = min(e.time_ps for e in present)
        stream = world.taggers[self.tagger]
        trng = world.tagger_rng(self.tagger)
        stream.write(self.channels.sync, np.array([t_ref + self.sync_delay_ps]), trng)
        arrivals = [None if e is None else e.time_ps + self.ends[i].fibre.delay_ps for i, e in enumerate(emissions)]
        arrived = [e is not None and rng.random() < self.eta(i, world) for i, e in enumerate(emissions)]
        photon_detector: list[list[int]] = [[], []]  # detector index per photon of each side
        outcome = None
        interfering = (arrived[0] and arrived[1]
                       and abs(arrivals[0] - arrivals[1]) <= self.max_arrival_mismatch_ps)
        if interfering:
            outcome, (da, db) = bsa.sample_two_photon_paths(rng)
            photon_detector = [[da], [db]]
            keys = [emissions[0].key, emissions[1].key]
            world.registry.set_state(keys, werner_state(self.link_fidelity, outcome),
                                     at_ps=max(e.time_ps for e in present))
        else:
            for side in (0, 1):
                if arrived[side]:
                    photon_detector[side] = [int(rng.integers(4))]
        # clicks: each photon detected with its detector's efficiency; a detected photon that did
        # not interfere collapses its own memory to the polarisation it was found in
        clicks: dict[int, list[int]] = {d: [] for d in range(4)}
        for side in (0, 1):
            for d in photon_detector[side]:
                if rng.random() < self.detectors[d].efficiency:
                    clicks[d].append(arrivals[side])
                    if not interfering:
                        state = np.zeros((2, 2), complex)
                        state[bsa.POLARIZATION[d], bsa.POLARIZATION[d]] = 1.0
                        world.registry.set_state([emissions[side].key], state, at_ps=emissions[side].time_ps)
        known = [a for a in arrivals if a is not None]
        centre = sum(known) // len(known)
        n_dark = rng.poisson(self._dark_mean)
        for d in range(4):
            if not clicks[d] and not n_dark[d]:
                continue
            channel = self.channels.detectors[d]
            # Attempts can resolve out of time order (emissions from separate node processes
            # reach a World server in any order): only an earlier click's dead time applies.
            previous = self.last_click.get(d)
            if previous is not None and previous >= centre - self.dark_span_ps:
                previous = None
            t = detect(np.array(clicks[d], np.int64), centre - self.dark_span_ps, centre + self.dark_span_ps,
                       self.detectors[d], rng, apply_efficiency=False,
                       previous_click_ps=previous, n_dark=int(n_dark[d]))
            if t.size:
                self.last_click[d] = max(int(t[-1]), self.last_click.get(d, int(t[-1])))
                stream.write(channel, t, trng)
        self.record.append((attempt_id, outcome, arrived[0], arrived[1]))
        self.joint_attempts += len(present) == 2
        key = "none" if outcome is None else outcome.value
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    @property
    def interfered(self) -> int:
        """Attempts whose photons were projected on a Bell state, over the run."""
        return sum(n for k, n in self.outcomes.items() if k != "none")
