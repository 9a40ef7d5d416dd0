"""The photonics of the three heralded link schemes (RFC 9340 §4.4.1), and their closed forms.

* ``both_endpoints`` is :class:`~sim_backend.memory_link.MemoryLink` (two emitters, a linear-optics
  BSA). Success per attempt ½·η_a·η_b, η = collection · fibre · switch · detector efficiency.
* ``at_source`` is :class:`AtSourceLink`: one end emits a photon entangled with a communication
  qubit; it travels the fibre to the other end, whose armed communication qubit absorbs it through
  a transducer with ``transfer_efficiency``; a herald detector behind the transducer clicks with
  its efficiency (plus dark counts). Success ``1 − (1 − d)(1 − h·η)`` with η = collection · fibre ·
  switch · transfer, h the herald detector's efficiency and d its dark-count probability in the
  window.
* ``midpoint_source`` is :class:`MidpointSourceLink`: an entangled-pair source between the ends
  emits a thermal number of pairs per pump pulse (mean μ); each photon reaches its end's memory
  with η_x = collection · fibre · transfer; a memory takes one of the photons that reach it (the
  first); each end's herald detector reports its own absorption. Success needs both:
  ``A_a·A_b − A_a·B_b·G(q_b) − B_a·A_b·G(q_a) + B_a·B_b·G(q_a·q_b)`` with
  ``A = 1 − (1−d)(1−h)``, ``B = (1−d)·h``, ``q = 1 − η`` and the thermal generating function
  ``G(s) = 1/(1 + μ(1 − s))``. Only when both memories took photons of the *same* pair are they
  entangled: with n pairs that happens with probability ``(1−q_a^n)(1−q_b^n)/n``, which sums to
  ``A_a·A_b/(1+μ)·[ln(1−r·q_a) + ln(1−r·q_b) − ln(1−r) − ln(1−r·q_a·q_b)]``, ``r = μ/(1+μ)``.

An entangled herald leaves the two memories in a Werner state of ``link_fidelity`` to Φ+ (the
transducer schemes herald SUCCESS, no Bell-state information); any other herald leaves them
uncorrelated and maximally mixed (Bell fidelity 1/4), so the mean fidelity of heralded pairs is
``(P_ent·F + (P_success − P_ent)/4) / P_success``.

The simulation never hands out heralds: it writes sync tags (on arming) and herald clicks into the
tagger stream of each heralding detector, and the timing layer decodes them. Attempts are matched
by attempt id; once no missing event of an attempt can still come (``pairing_wait_ps`` after each
event, from the scheme's timeline) the attempt is resolved without it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from qnode_fw.bell import BellState
from qnode_fw.errors import ConfigError, QubitRoleError
from timing.schemes import (TRANSDUCER_CHANNELS, TRANSDUCER_HERALD_CHANNEL, LinkScheme,
                            LinkSchemeParams)

from .memory_link import RECORD_SIZE, LinkEnd, MemoryLink
from .physics.detector import DetectorParams, detect
from .physics.fibre import Fibre
from .qnic import Emission
from .quantum.operators import werner_state
from .quantum.registry import QubitKey

# -- closed forms ----------------------------------------------------------------------------


def dark_probability(detector: DetectorParams, window_ps: int) -> float:
    """At least one dark count in the detection window."""
    return detector.dark_probability(window_ps)


def thermal_generating_function(mu: float, s: float) -> float:
    """E[s^n] for the thermal (single-mode SPDC) pair number of mean μ."""
    return 1.0 / (1.0 + mu * (1.0 - s))


def both_endpoints_success(eta_a: float, eta_b: float) -> float:
    """Linear-optics BSA: both photons detected and the outcome a Ψ (dark counts neglected)."""
    return 0.5 * eta_a * eta_b


def at_source_success(eta: float, herald_efficiency: float, dark: float) -> float:
    return 1.0 - (1.0 - dark) * (1.0 - herald_efficiency * eta)


def at_source_entangled(eta: float, herald_efficiency: float, dark: float) -> float:
    """The photon was absorbed and the end heralded (its own click, or a dark count)."""
    return eta * (1.0 - (1.0 - dark) * (1.0 - herald_efficiency))


def midpoint_success(mu: float, eta: tuple[float, float], herald_efficiency: tuple[float, float],
                     dark: tuple[float, float]) -> float:
    a = [1.0 - (1.0 - d) * (1.0 - h) for h, d in zip(herald_efficiency, dark)]
    b = [(1.0 - d) * h for h, d in zip(herald_efficiency, dark)]
    q = [1.0 - e for e in eta]
    g = lambda s: thermal_generating_function(mu, s)  # noqa: E731
    return a[0] * a[1] - a[0] * b[1] * g(q[1]) - b[0] * a[1] * g(q[0]) + b[0] * b[1] * g(q[0] * q[1])


def midpoint_entangled(mu: float, eta: tuple[float, float], herald_efficiency: tuple[float, float],
                       dark: tuple[float, float]) -> float:
    """Both ends heralded and their memories took photons of the same pair."""
    if mu <= 0:
        return 0.0
    a = [1.0 - (1.0 - d) * (1.0 - h) for h, d in zip(herald_efficiency, dark)]
    r = mu / (1.0 + mu)
    qa, qb = 1.0 - eta[0], 1.0 - eta[1]
    s = math.log1p(-r * qa) + math.log1p(-r * qb) - math.log1p(-r) - math.log1p(-r * qa * qb)
    return a[0] * a[1] * s / (1.0 + mu)


def mean_herald_fidelity(p_success: float, p_entangled: float, link_fidelity: float) -> float:
    return (p_entangled * link_fidelity + (p_success - p_entangled) / 4.0) / p_success


# -- receiving ends ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceiverEnd:
    """An end whose communication qubit absorbs through a transducer with a herald detector.

    ``fibre``: from the source (EPPS or emitter) to this end; ``collection_efficiency``: the
    fraction of the source's photons for this end that enter the fibre (midpoint source only; an
    emitter's collection is on its own :class:`LinkEnd`); ``transfer_efficiency``: photon ->
    memory; ``detector``: the herald detector behind the transducer; ``tagger`` with
    ``channels`` (sync on arming + ``sync_delay_ps``, herald clicks on the herald channel);
    ``arrival_after_arm_ps``: when the photon is due after arming (a photon more than
    ``max_arrival_mismatch_ps`` off misses the memory); dark counts are drawn within
    ``± dark_span_ps`` of that time."""

    node: str
    qnic: int
    fibre: Fibre
    tagger: str
    transfer_efficiency: float = 0.5
    collection_efficiency: float = 1.0
    detector: DetectorParams = field(default_factory=DetectorParams)
    sync_delay_ps: int = 0
    arrival_after_arm_ps: int = 0
    max_arrival_mismatch_ps: int = 1_000
    dark_span_ps: int = 1_000
    qubits: tuple[int, ...] | None = None
    switch: tuple[str, int, int] | None = None  # receivers behind a switch are not modelled

    def holds(self, key: QubitKey) -> bool:
        return (self.node == key.node and self.qnic == key.qnic
                and (self.qubits is None or key.index in self.qubits))


class _TransducerDetector:
    """Writes one armed attempt's sync tag, herald click and dark counts into the end's tagger."""

    def __init__(self) -> None:
        self.last_click: dict[str, int] = {}

    def write(self, world, end: ReceiverEnd, arm_ps: int, photon_ps: int | None,
              absorbed: bool, rng: np.random.Generator) -> bool:
        stream = world.taggers[end.tagger]
        trng = world.tagger_rng(end.tagger)
        stream.write(TRANSDUCER_CHANNELS.sync, np.array([arm_ps + end.sync_delay_ps]), trng)
        clicks = []
        if absorbed and rng.random() < end.detector.efficiency:
            clicks.append(photon_ps)
        due = arm_ps + end.arrival_after_arm_ps
        n_dark = rng.poisson(end.detector.dark_count_rate_hz * 2 * end.dark_span_ps * 1e-12)
        t = detect(np.array(clicks, np.int64), due - end.dark_span_ps, due + end.dark_span_ps,
                   end.detector, rng, apply_efficiency=False,
                   previous_click_ps=self.last_click.get(end.node), n_dark=int(n_dark))
        if t.size:
            self.last_click[end.node] = int(t[-1])
            stream.write(TRANSDUCER_HERALD_CHANNEL, t, trng)
        return bool(clicks)


def _overdue(events: list[Emission | None], wait_ps: tuple[int, int], now_ps: int) -> bool:
    """No missing partner event can still come: every present event's wait has run out."""
    return all(e.time_ps + wait_ps[side] < now_ps for side, e in enumerate(events) if e is not None)


# -- at source ---------------------------------------------------------------------------------


@dataclass
class AtSourceLink:
    """``at_source``: end 0 emits, end 1 absorbs and heralds."""

    name: str
    emitter: LinkEnd
    receiver: ReceiverEnd
    link_fidelity: float = 0.95
    pairing_wait_ps: tuple[int, int] = (0, 0)  # after an end acts, how long its partner may still
    pending: dict[int, list[Emission | None]] = field(default_factory=dict)
    attempts: int = 0
    #: the latest attempts: (attempt id, emitted, armed, absorbed, herald click from the photon)
    record: deque[tuple[int, bool, bool, bool, bool]] = field(
        default_factory=lambda: deque(maxlen=RECORD_SIZE))
    _detector: _TransducerDetector = field(default_factory=_TransducerDetector)

    @property
    def ends(self) -> tuple[LinkEnd, ReceiverEnd]:
        return (self.emitter, self.receiver)

    def end_index(self, key: QubitKey) -> int | None:
        for i, end in enumerate(self.ends):
            if end.holds(key):
                return i
        return None

    def eta(self, world) -> float:
        """Probability that the emitted photon ends up in the receiving memory."""
        t = self.emitter.collection_efficiency * self.emitter.fibre.transmission
        if self.emitter.switch is not None:
            t *= world.switches[self.emitter.switch[0]].params.transmission
        return t * self.receiver.transfer_efficiency

    def success_probability(self, world, window_ps: int) -> float:
        d = dark_probability(self.receiver.detector, window_ps)
        return at_source_success(self.eta(world), self.receiver.detector.efficiency, d)

    def add_emission(self, side: int, emission: Emission, world) -> None:
        if emission.absorb != (side == 1):
            what, who = ("absorb", "emitter") if emission.absorb else ("emit", "receiver")
            raise QubitRoleError(f"link {self.name} is at_source: its {who} "
                                 f"{self.ends[side].node} cannot {what}",
                                 resource=f"sim://link/{self.name}",
                                 command=f"{what} {emission.key.index} {emission.attempt_id}")
        slot = self.pending.setdefault(emission.attempt_id, [None, None])
        slot[side] = emission
        if slot[0] is not None and slot[1] is not None:
            del self.pending[emission.attempt_id]
            self.resolve(emission.attempt_id, slot, world)

    def flush(self, now_ps: int, world) -> None:
        for attempt_id in [a for a, s in self.pending.items() if _overdue(s, self.pairing_wait_ps, now_ps)]:
            self.resolve(attempt_id, self.pending.pop(attempt_id), world)

    def resolve(self, attempt_id: int, events: list[Emission | None], world) -> None:
        rng = world.link_rng(self.name)
        self.attempts += 1
        emitted, armed = events
        absorbed = clicked = False
        if armed is not None:
            photon = None
            if emitted is not None:
                photon = emitted.time_ps + self.emitter.fibre.delay_ps
                due = armed.time_ps + self.receiver.arrival_after_arm_ps
                absorbed = (abs(photon - due) <= self.receiver.max_arrival_mismatch_ps
                            and rng.random() < self.eta(world))
            if absorbed:
                world.registry.set_state([emitted.key, armed.key],
                                         werner_state(self.link_fidelity, BellState.PHI_PLUS),
                                         at_ps=max(emitted.time_ps, armed.time_ps))
            clicked = self._detector.write(world, self.receiver, armed.time_ps, photon, absorbed, rng)
        self.record.append((attempt_id, emitted is not None, armed is not None, absorbed, clicked))


# -- midpoint source ---------------------------------------------------------------------------


@dataclass
class _Shot:
    time_ps: int
    n_pairs: int
    reached: tuple[np.ndarray, np.ndarray]  # pair indices whose photon reaches each memory
    absorbed: list[int | None] = field(default_factory=lambda: [None, None])  # -1: none
    keys: list[QubitKey | None] = field(default_factory=lambda: [None, None])


@dataclass
class MidpointSourceLink:
    """``midpoint_source``: an EPPS pumped once per attempt (:meth:`fire_source`); both ends absorb."""

    name: str
    ends: tuple[ReceiverEnd, ReceiverEnd]
    mean_pairs_per_attempt: float = 0.1
    link_fidelity: float = 0.95
    pairing_wait_ps: tuple[int, int] = (0, 0)  # after an end arms, how long the source may still fire
    shot_life_ps: int = 0  # after the source fired, how long an end may still arm
    shots: dict[int, _Shot] = field(default_factory=dict)
    armed: dict[int, list[Emission | None]] = field(default_factory=dict)
    attempts: int = 0
    #: the latest resolved ends: (attempt id, end, pairs in the pulse, absorbed pair index or -1,
    #: clicked)
    record: deque[tuple[int, int, int, int, bool]] = field(
        default_factory=lambda: deque(maxlen=RECORD_SIZE))
    entangled: int = 0
    _detector: _TransducerDetector = field(default_factory=_TransducerDetector)

    def __post_init__(self) -> None:
        if self.mean_pairs_per_attempt < 0:
            raise ValueError(f"mean pairs per attempt must be >= 0, got {self.mean_pairs_per_attempt}")

    def end_index(self, key: QubitKey) -> int | None:
        for i, end in enumerate(self.ends):
            if end.holds(key):
                return i
        return None

    def eta(self, side: int) -> float:
        end = self.ends[side]
        return end.collection_efficiency * end.fibre.transmission * end.transfer_efficiency

    def success_probability(self, window_ps: int) -> float:
        return midpoint_success(self.mean_pairs_per_attempt, (self.eta(0), self.eta(1)),
                                tuple(e.detector.efficiency for e in self.ends),
                                tuple(dark_probability(e.detector, window_ps) for e in self.ends))

    def entangled_probability(self, window_ps: int) -> float:
        return midpoint_entangled(self.mean_pairs_per_attempt, (self.eta(0), self.eta(1)),
                                  tuple(e.detector.efficiency for e in self.ends),
                                  tuple(dark_probability(e.detector, window_ps) for e in self.ends))

    def fire_source(self, attempt_id: int, world) -> None:
        """The EPPS is pumped for ``attempt_id`` now."""
        rng = world.link_rng(self.name)
        mu = self.mean_pairs_per_attempt
        n = int(rng.geometric(1.0 / (1.0 + mu))) - 1 if mu > 0 else 0
        reached = tuple(np.flatnonzero(rng.random(n) < self.eta(side)) for side in (0, 1))
        shot = _Shot(world.clock.now_ps(), n, reached)  # type: ignore[arg-type]
        self.shots[attempt_id] = shot
        self.attempts += 1
        for side, arm in enumerate(self.armed.pop(attempt_id, [None, None])):
            if arm is not None:
                self._resolve_end(attempt_id, side, arm, shot, world)

    def add_emission(self, side: int, emission: Emission, world) -> None:
        if not emission.absorb:
            raise QubitRoleError(f"link {self.name} is midpoint_source: its ends absorb, "
                                 f"{self.ends[side].node} cannot emit", resource=f"sim://link/{self.name}",
                                 command=f"emit {emission.key.index} {emission.attempt_id}")
        shot = self.shots.get(emission.attempt_id)
        if shot is None:
            self.armed.setdefault(emission.attempt_id, [None, None])[side] = emission
            return
        self._resolve_end(emission.attempt_id, side, emission, shot, world)

    def flush(self, now_ps: int, world) -> None:
        # armed, but the source never fired for that attempt: no photons
        for attempt_id in [a for a, s in self.armed.items() if _overdue(s, self.pairing_wait_ps, now_ps)]:
            for side, arm in enumerate(self.armed.pop(attempt_id)):
                if arm is not None:
                    self._resolve_end(attempt_id, side, arm, None, world)
        # a shot an end never armed for is done once that end could no longer arm
        for attempt_id in [a for a, s in self.shots.items() if s.time_ps + self.shot_life_ps < now_ps]:
            del self.shots[attempt_id]

    def _resolve_end(self, attempt_id: int, side: int, arm: Emission, shot: _Shot | None, world) -> None:
        rng = world.link_rng(self.name)
        end = self.ends[side]
        photon = None
        absorbed = -1
        if shot is not None:
            photon = shot.time_ps + end.fibre.delay_ps
            due = arm.time_ps + end.arrival_after_arm_ps
            reached = shot.reached[side]
            if reached.size and abs(photon - due) <= end.max_arrival_mismatch_ps:
                absorbed = int(reached[rng.integers(reached.size)])
            shot.absorbed[side] = absorbed
            shot.keys[side] = arm.key
        clicked = self._detector.write(world, end, arm.time_ps, photon, absorbed >= 0, rng)
        self.record.append((attempt_id, side, 0 if shot is None else shot.n_pairs, absorbed, clicked))
        if shot is None:
            return
        other = shot.absorbed[1 - side]
        if absorbed >= 0 and other is not None and other == absorbed:
            keys = [shot.keys[0], shot.keys[1]]
            world.registry.set_state(keys, werner_state(self.link_fidelity, BellState.PHI_PLUS),
                                     at_ps=arm.time_ps)
            self.entangled += 1
        if shot.absorbed[0] is not None and shot.absorbed[1] is not None:
            self.shots.pop(attempt_id, None)


# -- building from the link description ---------------------------------------------------------


@dataclass(frozen=True)
class SimLinkPhysics:
    """The simulated physics of one link (the YAML's sim options). Efficiencies are per end where
    the scheme has them; ``collection_efficiency`` is the emitter's (``both_endpoints``,
    ``at_source``) or the source arm's (``midpoint_source``)."""

    collection_efficiency: float = 0.1
    transfer_efficiency: float = 0.5
    detector: DetectorParams = field(default_factory=DetectorParams)
    link_fidelity: float = 0.95
    mean_pairs_per_attempt: float = 0.1
    attenuation_db_per_km: float = 0.2
    max_arrival_mismatch_ps: int = 100


def build_sim_link(world, params: LinkSchemeParams, physics: SimLinkPhysics, *,
                   taggers: Mapping[str, str],
                   switches: Mapping[str, tuple[str, int, int]] | None = None,
                   qubits: Mapping[str, tuple[int, ...]] | None = None):
    """Add the simulated link for ``params`` to ``world`` and return it.

    ``taggers`` names the tagger of every heralding detector by node (the BSA station's, or each
    receiving end's); ``switches`` the optical switch output in front of an emitting end's
    transceiver; ``qubits`` the communication qubits wired to this link per end. Timing (sync tag
    position, when a photon is due after arming, how long an attempt waits for its other end)
    comes from ``params``, so the physics lines up with what the timing layer expects.
    """
    switches = dict(switches or {})
    qubits = dict(qubits or {})
    where = f"{params.where}.{params.name}"

    def tagger_of(node: str) -> str:
        if node not in taggers:
            raise ConfigError(f"no time tagger for the heralding detector at {node}",
                              field=f"{where}.taggers.{node}")
        return taggers[node]

    def fibre(i: int) -> Fibre:
        return Fibre(params.delay_ps(i) / params.delay_ps_per_km, physics.attenuation_db_per_km,
                     params.delay_ps_per_km)

    def receiver(i: int) -> ReceiverEnd:
        node = params.nodes[i]
        if node in switches:
            raise ConfigError("a receiving end behind an optical switch is not modelled",
                              field=f"{where}.switch")
        photon_after_arm = params.photon_offset_ps(i) - params.action_offset_ps(i)
        return ReceiverEnd(node, params.ends[i].qnic, fibre(i), tagger_of(node),
                           physics.transfer_efficiency,
                           physics.collection_efficiency if params.scheme is LinkScheme.MIDPOINT_SOURCE else 1.0,
                           physics.detector, sync_delay_ps=photon_after_arm - params.sync_lead_ps(),
                           arrival_after_arm_ps=photon_after_arm,
                           max_arrival_mismatch_ps=max(physics.max_arrival_mismatch_ps, 1),
                           dark_span_ps=params.window_ps // 2, qubits=qubits.get(node))

    def emitter(i: int) -> LinkEnd:
        node = params.nodes[i]
        return LinkEnd(node, params.ends[i].qnic, fibre(i), physics.collection_efficiency,
                       switches.get(node), qubits.get(node))

    # An attempt's events come at known offsets from its slot time (the ends' actions; the
    # source at the slot time itself): after one of them, the others can only come this late.
    offsets = [params.action_offset_ps(i) for i in (0, 1)]

    def wait_after(mine: int, others: list[int]) -> int:
        return max([0] + [o - mine for o in others])

    if params.scheme is LinkScheme.BOTH_ENDPOINTS:
        d = [params.delay_ps(i) for i in (0, 1)]
        link = MemoryLink(params.name, (emitter(0), emitter(1)), tagger_of(params.station),
                          detectors=(physics.detector,) * 4, link_fidelity=physics.link_fidelity,
                          sync_delay_ps=max(d) - params.sync_lead_ps(),
                          max_arrival_mismatch_ps=physics.max_arrival_mismatch_ps,
                          pairing_tolerance_ps=abs(d[0] - d[1]))
    elif params.scheme is LinkScheme.AT_SOURCE:
        e = params.emitter_index
        order = (e, 1 - e)
        link = AtSourceLink(params.name, emitter(e), receiver(1 - e), physics.link_fidelity,
                            pairing_wait_ps=tuple(wait_after(offsets[i], [offsets[1 - i]]) for i in order))
    else:
        link = MidpointSourceLink(params.name, (receiver(0), receiver(1)),
                                  physics.mean_pairs_per_attempt, physics.link_fidelity,
                                  pairing_wait_ps=tuple(wait_after(offsets[i], [0]) for i in (0, 1)),
                                  shot_life_ps=max(offsets + [0]))
    world.add_memory_link(link)
    return link
