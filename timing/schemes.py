"""The three heralded link schemes of RFC 9340 §4.4.1, as the timing layer runs them.

:class:`LinkSchemeParams` is the typed, config-agnostic description of one link that the node and
testbed assembly builds from the link YAML (``scheme``, ``station``, ``fibre_km`` per end). From it
this module derives, per scheme, what each end does in attempt ``k``, who reads a heralding
detector, which herald frames go from whom to whom and when, and how long an attempt keeps a
communication qubit busy. All times are relative to the attempt's slot time
``t_k = start_ps + k·period_ps`` in the link's common time base (the station clock).

* ``both_endpoints``: the station is a BSA between the ends. Both ends emit at ``t_k − d_i`` so
  their photons meet at the BSA at ``t_k``; the BSA reads its tagger at ``t_k + herald_delay`` and
  sends one HERALD frame (Ψ± or FAILURE) to each end, arriving after ``d_i``. Pair name
  ``<BSA, last click time>``.
* ``midpoint_source``: the station is an EPPS between the ends; it pumps its source at ``t_k``.
  Each end arms a communication qubit to absorb at ``t_k + d_i − guard``, reads its transducer's
  herald detector at ``t_k + d_i + herald_delay`` and sends its own outcome (SUCCESS or FAILURE)
  to the other end, which gets it ``d_0 + d_1`` later (the classical fibre runs beside the
  quantum ones, through the EPPS). A pair exists only if both absorbed: each end binds once it
  knows both outcomes. Pair name ``<EPPS, t_k>`` (both ends derive it alone).
* ``at_source``: the station is the receiving end. The emitting end emits at ``t_k − d``; the
  receiver arms a communication qubit at ``t_k − guard``, reads its transducer's herald detector
  at ``t_k + herald_delay``, binds locally, and sends the outcome to the emitter (arriving ``d``
  later). Pair name ``<receiver, herald click time>``.

``d_i`` is the fibre delay from end ``i`` to the station (for ``at_source``: the emitter's fibre to
the receiver, 0 for the receiver itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from qnode_fw.addresses import NodeAddress
from qnode_fw.errors import ConfigError
from qnode_fw.units import FIBRE_DELAY_PS_PER_KM, NS, US

from .detection import ChannelMap, DetectorConfig, Protocol
from .schedule import ScheduleConfig


class LinkScheme(str, Enum):
    BOTH_ENDPOINTS = "both_endpoints"
    MIDPOINT_SOURCE = "midpoint_source"
    AT_SOURCE = "at_source"


class EndRole(str, Enum):
    EMIT = "emit"      # the end's communication qubit emits a photon entangled with itself
    ABSORB = "absorb"  # the end's communication qubit is armed to absorb an incoming photon


@dataclass(frozen=True, slots=True)
class LinkEndParams:
    """One end of a link: its node, the QNIC it uses and its fibre to the station (km)."""

    node: NodeAddress
    qnic: int = 0
    fibre_km: float = 0.0


@dataclass(frozen=True, slots=True)
class HeraldHop:
    """One herald frame of an attempt: ``sender`` -> ``receiver``, sent ``sent_ps`` after the slot
    time and arriving ``arrives_ps`` after it. ``carries`` says what it reports."""

    sender: NodeAddress
    receiver: NodeAddress
    sent_ps: int
    arrives_ps: int
    carries: str


#: Transducer herald detectors (``midpoint_source``, ``at_source``): the sync marker on channel 1
#: and the herald click on channel 2, decoded as a single-click herald.
TRANSDUCER_CHANNELS = ChannelMap(sync=1, a_h=2, a_v=3, b_h=4, b_v=5)
TRANSDUCER_HERALD_CHANNEL = TRANSDUCER_CHANNELS.a_h


@dataclass(frozen=True)
class LinkSchemeParams:
    """Everything the timing layer needs to run one link under its scheme.

    ``station`` is the BSA node (``both_endpoints``), the EPPS node (``midpoint_source``) or the
    receiving end (``at_source``; the other end emits). ``window_ps`` is the herald detection
    window, centred on the photon's arrival. ``guard_ps`` is how long before its photon is due a
    receiving memory is armed (at least the window). ``herald_delay_ps`` runs from the photon's
    arrival at a heralding detector to the herald frame leaving (tagger read and decoding); it
    must exceed half the window. With ``send_failures`` every attempt's outcome is sent, so a
    communication qubit is free again as soon as the outcome arrives; without it a failure is
    only learnt when the binder's expiry runs out. ``where`` names the config location in errors.
    """

    name: str
    scheme: LinkScheme
    station: NodeAddress
    ends: tuple[LinkEndParams, LinkEndParams]
    period_ps: int
    start_ps: int = 0
    window_ps: int = 2 * NS
    guard_ps: int = 500 * NS
    herald_delay_ps: int = 1 * US
    send_failures: bool = True
    delay_ps_per_km: int = FIBRE_DELAY_PS_PER_KM
    where: str = "links"

    def __post_init__(self) -> None:
        field = f"{self.where}.{self.name}"
        try:
            object.__setattr__(self, "scheme", LinkScheme(self.scheme))
        except ValueError:
            raise ConfigError(f"unknown link scheme {self.scheme!r}", field=f"{field}.scheme",
                              expected=" | ".join(s.value for s in LinkScheme)) from None
        object.__setattr__(self, "ends", tuple(self.ends))
        if len(self.ends) != 2 or self.ends[0].node == self.ends[1].node:
            raise ConfigError("a link joins two different end nodes", field=f"{field}.ends")
        for i, end in enumerate(self.ends):
            if not end.fibre_km >= 0:
                raise ConfigError(f"fibre length must be >= 0 km, got {end.fibre_km}",
                                  field=f"{field}.ends[{i}].fibre_km")
        nodes = [e.node for e in self.ends]
        if self.scheme is LinkScheme.AT_SOURCE:
            if self.station not in nodes:
                raise ConfigError(f"an at_source link is heralded by its receiving end: station "
                                  f"{self.station!r} must be one of {nodes}", field=f"{field}.station")
            emitter, receiver = self.ends[self.emitter_index], self.ends[1 - self.emitter_index]
            if receiver.fibre_km not in (0.0, emitter.fibre_km):
                raise ConfigError(f"the ends disagree on the fibre length ({emitter.fibre_km} km at "
                                  f"{emitter.node}, {receiver.fibre_km} km at {receiver.node})",
                                  field=f"{field}.fibre_km")
        elif self.station in nodes:
            raise ConfigError(f"a {self.scheme.value} link needs a station between its ends, not "
                              f"end {self.station!r}", field=f"{field}.station")
        if self.guard_ps < self.window_ps:
            raise ConfigError(f"guard {self.guard_ps} ps must cover the detection window "
                              f"{self.window_ps} ps", field=f"{field}.guard_ps")
        if self.herald_delay_ps <= self.window_ps // 2:
            raise ConfigError(f"herald delay {self.herald_delay_ps} ps must exceed half the "
                              f"window ({self.window_ps // 2} ps): the window has to close first",
                              field=f"{field}.herald_delay_ps")
        try:
            ScheduleConfig(self.start_ps, self.period_ps, self.window_ps)
        except ConfigError as exc:
            raise ConfigError(exc.message, field=f"{field}.{exc.field}") from None

    # -- who is who ------------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[NodeAddress, NodeAddress]:
        return (self.ends[0].node, self.ends[1].node)

    def index_of(self, node: NodeAddress) -> int:
        try:
            return self.nodes.index(node)
        except ValueError:
            raise ConfigError(f"{node!r} is not an end of link {self.name}",
                              field=f"{self.where}.{self.name}.ends") from None

    def partner(self, index: int) -> NodeAddress:
        return self.ends[1 - index].node

    @property
    def emitter_index(self) -> int:
        """``at_source`` only: the end that emits (the one that is not the station)."""
        return 0 if self.ends[1].node == self.station else 1

    def role(self, index: int) -> EndRole:
        if self.scheme is LinkScheme.BOTH_ENDPOINTS:
            return EndRole.EMIT
        if self.scheme is LinkScheme.MIDPOINT_SOURCE:
            return EndRole.ABSORB
        return EndRole.EMIT if index == self.emitter_index else EndRole.ABSORB

    def heralds_locally(self, index: int) -> bool:
        """Does end ``index`` read a heralding detector of its own (its transducer)?"""
        return self.role(index) is EndRole.ABSORB

    def herald_origin(self, index: int) -> NodeAddress:
        """The node a pair of this link is named after (and whose heralds end ``index`` binds)."""
        return self.station

    # -- delays ----------------------------------------------------------------------------
    def delay_ps(self, index: int) -> int:
        """Fibre delay from end ``index`` to the station."""
        if self.scheme is LinkScheme.AT_SOURCE:
            if index != self.emitter_index:
                return 0
            return self._delay(self.ends[index].fibre_km)
        return self._delay(self.ends[index].fibre_km)

    def _delay(self, km: float) -> int:
        return int(round(km * self.delay_ps_per_km))

    def slot_time_ps(self, attempt_id: int) -> int:
        return self.start_ps + attempt_id * self.period_ps

    def schedule_config(self) -> ScheduleConfig:
        return ScheduleConfig(self.start_ps, self.period_ps, self.window_ps)

    def action_offset_ps(self, index: int) -> int:
        """When end ``index`` emits or arms, relative to the slot time."""
        d = self.delay_ps(index)
        if self.scheme is LinkScheme.BOTH_ENDPOINTS:
            return -d
        if self.scheme is LinkScheme.MIDPOINT_SOURCE:
            return d - self.guard_ps
        return -d if index == self.emitter_index else -self.guard_ps

    def photon_offset_ps(self, index: int | None) -> int:
        """When the heralded photon is at the heralding detector of end ``index`` (None: the
        station's), relative to the slot time."""
        if self.scheme is LinkScheme.MIDPOINT_SOURCE and index is not None:
            return self.delay_ps(index)
        return 0

    def read_offset_ps(self, index: int | None) -> int:
        """When the heralding detector of end ``index`` (None: the station) is read and its
        herald frame leaves, relative to the slot time."""
        return self.photon_offset_ps(index) + self.herald_delay_ps

    def in_flight_ps(self, index: int) -> int:
        """How long after end ``index`` acts the photon of the attempt is still travelling or being
        detected (until the detection window closes): no optical switch in its path may move."""
        if self.role(index) is EndRole.EMIT:
            return self.delay_ps(index) + self.window_ps // 2
        return self.guard_ps + self.window_ps // 2

    # -- herald flow -----------------------------------------------------------------------
    def herald_hops(self) -> list[HeraldHop]:
        """Every herald frame of one attempt (with ``send_failures``; without it, only the
        successful outcomes travel)."""
        n0, n1 = self.nodes
        if self.scheme is LinkScheme.BOTH_ENDPOINTS:
            sent = self.read_offset_ps(None)
            return [HeraldHop(self.station, n, sent, sent + self.delay_ps(i), "psi+|psi-|failure")
                    for i, n in enumerate(self.nodes)]
        if self.scheme is LinkScheme.MIDPOINT_SOURCE:
            between = self.delay_ps(0) + self.delay_ps(1)
            return [HeraldHop(self.nodes[i], self.nodes[1 - i], self.read_offset_ps(i),
                              self.read_offset_ps(i) + between, "success|failure (own absorption)")
                    for i in (0, 1)]
        e = self.emitter_index
        sent = self.read_offset_ps(1 - e)
        return [HeraldHop(self.station, self.nodes[e], sent, sent + self.delay_ps(e),
                          "success|failure")]

    def outcome_known_ps(self, index: int) -> int:
        """When end ``index`` knows the attempt's outcome, relative to the slot time."""
        if self.scheme is LinkScheme.BOTH_ENDPOINTS:
            return self.read_offset_ps(None) + self.delay_ps(index)
        if self.scheme is LinkScheme.MIDPOINT_SOURCE:
            other = 1 - index
            return max(self.read_offset_ps(index),
                       self.read_offset_ps(other) + self.delay_ps(0) + self.delay_ps(1))
        if index == self.emitter_index:
            return self.read_offset_ps(1 - index) + self.delay_ps(index)
        return self.read_offset_ps(index)

    def busy_ps(self, index: int) -> int:
        """How long one attempt keeps end ``index``'s communication qubit (action to outcome)."""
        return self.outcome_known_ps(index) - self.action_offset_ps(index)

    def slots_per_attempt(self, index: int) -> int:
        """Slots one communication qubit of end ``index`` needs per attempt: it is free again
        strictly after :meth:`busy_ps` (a tie with a slot goes to the next one)."""
        return self.busy_ps(index) // self.period_ps + 1

    def binder_expiry_ps(self, index: int) -> int:
        """A binder entry's life: the outcome's arrival plus a slot (the loss fallback)."""
        return self.busy_ps(index) + self.period_ps + self.herald_delay_ps

    def detector_config(self, index: int | None) -> DetectorConfig:
        """Herald detection at the station (``index`` None, BSA) or at end ``index``'s transducer:
        the sync tag comes one window before the photon, the window is centred on the photon."""
        w = self.window_ps
        start = self.start_ps + self.photon_offset_ps(index) - w
        if index is None:
            return DetectorConfig(window_start_ps=w // 2, window_ps=w, protocol=Protocol.TWO_PHOTON,
                                  attempt_start_ps=start, attempt_period_ps=self.period_ps)
        return DetectorConfig(window_start_ps=w // 2, window_ps=w, protocol=Protocol.SINGLE_CLICK,
                              channels=TRANSDUCER_CHANNELS, attempt_start_ps=start,
                              attempt_period_ps=self.period_ps)

    def sync_lead_ps(self) -> int:
        """The sync tag precedes the photon by this much (the simulated link writes it there)."""
        return self.window_ps

    # -- closed forms ----------------------------------------------------------------------
    def joint_attempt_fraction(self, communication_qubits: tuple[int, int]) -> float:
        """Fraction of slots in which both ends act, when end ``i`` has
        ``communication_qubits[i]`` qubits for this link and acts whenever one is free.

        An end with ``n`` qubits and ``c`` = :meth:`slots_per_attempt` acts in ``min(1, n/c)`` of
        the slots (``n`` consecutive slots every ``c``). When both ends are limited their
        patterns line up only if they are the same, which is the case this closed form covers.
        """
        fractions = []
        for i, n in enumerate(communication_qubits):
            if n < 1:
                raise ValueError(f"end {self.nodes[i]} needs a communication qubit")
            fractions.append((min(n, self.slots_per_attempt(i)), self.slots_per_attempt(i)))
        limited = [(n, c) for n, c in fractions if n < c]
        if len(limited) == 2 and limited[0] != limited[1]:
            raise ValueError("both ends are limited with different cadences: no closed form")
        return min(n / c for n, c in fractions)

    def pair_rate_hz(self, success_probability: float,
                     communication_qubits: tuple[int, int] = (1, 1)) -> float:
        """Heralded pairs per second: success probability per attempt times joint attempts per
        second (consumers free each pair's qubits as soon as it is ready)."""
        return (success_probability * self.joint_attempt_fraction(communication_qubits)
                / (self.period_ps * 1e-12))
