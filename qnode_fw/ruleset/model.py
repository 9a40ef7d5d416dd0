"""The RuleSet model: RuleSet → Stages → Rules → Conditions + Actions (schema version 1).

One RuleSet per node per connection, written by the connection's Responder (QRNA two-pass setup)
and installed in that node's :class:`~qnode_fw.ruleset.executor.RuleSetExecutor`.

Shape (stable; the control plane builds RuleSets from these classes)::

    RuleSet{id, owner, connection, stages[], timing[]}
      Stage{name, variables{name: number}, rules[]}
        Rule{name, partners[], conditions[], actions[]}

* ``id`` is shared by the RuleSets of every node of one connection; every message carries it.
  ``owner`` is the node the RuleSet runs on; ``connection`` names the connection (for people,
  records and teardown).
* Stage variables belong to their Stage; Rules of other Stages cannot see them.
* Qubits (Bell-pair halves) enter Stage 0 and only ever move forward (``Promote`` or ``Move``
  to a later Stage) until they are freed, measured, consumed by a swap/purification, or
  delivered. ``Move`` also carries the pair from its communication qubit into a storage qubit.
* A Rule fires when all its Conditions hold at once. Conditions that *bind qubits*
  (:data:`BINDING_CONDITIONS`) pick concrete pairs with a given partner, in pair-name order, never
  arrival order; Actions act on the qubits bound under the partner they name.
* There are no loops: conditional behaviour is written as separate Rules with distinct
  Conditions (QRNA, "Action Clauses ... do not include loop primitives").
* ``timing`` lists, per swapping peer, that peer's discard timer and the worst-case one-way
  latency from it; install checks this node's discard timers against them (QRNA race: an end
  node must not discard before the swapper's notice can arrive).

Times are integer picoseconds. Partners are node addresses. Tags (``tag``) pair the Rules of
different nodes that talk to each other, like QuISP's ``shared_rule_tag``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Union

from ..addresses import NodeAddress

SCHEMA = "qnode-ruleset"
SCHEMA_VERSION = 1

# -- conditions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnoughResources:
    """At least ``count`` unbusy pairs with ``partner`` in this Stage, each with fidelity estimate
    >= ``min_fidelity``. Binds the ``count`` pairs with the smallest names."""

    kind: ClassVar[str] = "enough_resources"
    partner: NodeAddress
    count: int = 1
    min_fidelity: float = 0.0


@dataclass(frozen=True)
class FidelityAtLeast:
    """Every pair bound for ``partner`` by this Rule has fidelity estimate >= ``value``; binds one
    pair when nothing else in the Rule binds ``partner``."""

    kind: ClassVar[str] = "fidelity_at_least"
    partner: NodeAddress
    value: float


class Parity(str, Enum):
    MATCH = "match"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class PurificationResultArrived:
    """``partner``'s PurificationResult (rule tag ``tag``) has arrived for a purification this node
    also measured, naming the same kept and sacrificed pairs. ``parity`` selects agreeing
    (``match``) or disagreeing (``mismatch``) results, so keep and discard are separate Rules.
    A result naming different sacrificed pairs counts as a mismatch. Binds the kept pair."""

    kind: ClassVar[str] = "purification_result"
    partner: NodeAddress
    tag: int
    parity: Parity = Parity.MATCH


@dataclass(frozen=True)
class SwapResultArrived:
    """Swapper ``partner``'s SwapResult (tag ``tag``) has arrived for a pair this node holds with
    it, by pair name. Binds that pair; once the Rule fires, the pair is renamed to the result's new
    name and its partner becomes the result's new partner."""

    kind: ClassVar[str] = "swap_result"
    partner: NodeAddress
    tag: int


@dataclass(frozen=True)
class PairAgeOver:
    """A pair with ``partner`` is older than ``limit_ps`` (since creation): the discard timer."""

    kind: ClassVar[str] = "pair_age_over"
    partner: NodeAddress
    limit_ps: int


@dataclass(frozen=True)
class StageTimeout:
    """A pair with ``partner`` has waited in this Stage longer than ``after_ps``."""

    kind: ClassVar[str] = "stage_timeout"
    partner: NodeAddress
    after_ps: int


@dataclass(frozen=True)
class TimerExpired:
    """Stage timer ``timer`` (armed by :class:`SetTimer`) has fired; firing the Rule consumes it."""

    kind: ClassVar[str] = "timer_expired"
    timer: str


class Counter(str, Enum):
    MEASUREMENTS = "measurements"
    CYCLES = "cycles"  # rule firings in this Stage


@dataclass(frozen=True)
class MeasureCount:
    """This Stage's ``counter`` is below ``limit`` (QuISP ``measure_count``: tomography runs
    until ``num_measure`` measurements are done)."""

    kind: ClassVar[str] = "measure_count"
    limit: int
    counter: Counter = Counter.MEASUREMENTS


class CompareOp(str, Enum):
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="
    GE = ">="
    GT = ">"


@dataclass(frozen=True)
class VariableCompare:
    """Stage variable ``variable`` compared with ``value`` by ``op``."""

    kind: ClassVar[str] = "variable_compare"
    variable: str
    op: CompareOp
    value: float


Condition = Union[
    EnoughResources, FidelityAtLeast, PurificationResultArrived, SwapResultArrived, PairAgeOver,
    StageTimeout, TimerExpired, MeasureCount, VariableCompare,
]

#: Conditions that bind pairs with their ``partner`` (and how many each guarantees).
BINDING_CONDITIONS = (EnoughResources, FidelityAtLeast, PurificationResultArrived,
                      SwapResultArrived, PairAgeOver, StageTimeout)

# -- actions --------------------------------------------------------------------------------


class PurificationMethod(str, Enum):
    """Single selection checks one Pauli parity with one sacrificed pair; double selection uses
    two sacrificed pairs (the second pair first purifies the first, as in Fujii-Yamamoto)."""

    SINGLE_X = "SINGLE_X"
    SINGLE_Z = "SINGLE_Z"
    SINGLE_Y = "SINGLE_Y"
    DOUBLE_X = "DOUBLE_X"
    DOUBLE_Z = "DOUBLE_Z"

    @property
    def pairs_needed(self) -> int:
        return 3 if self.name.startswith("DOUBLE") else 2


@dataclass(frozen=True)
class Purify:
    """Purify the bound pairs with ``partner``: keep the smallest-named one, measure the others,
    send a PurificationResult (tag ``tag``) to ``partner``; the kept pair waits in this Stage."""

    kind: ClassVar[str] = "purify"
    partner: NodeAddress
    method: PurificationMethod
    tag: int


@dataclass(frozen=True)
class Swap:
    """Bell-state measurement of the pair bound for ``left`` with the one bound for ``right``;
    TRANSFER: a SwapResult to both carrying the Pauli frame (left only), the new partner and the
    new pair name <owner, swap time>. Frees both qubits."""

    kind: ClassVar[str] = "swap"
    left: NodeAddress
    right: NodeAddress
    tag: int


@dataclass(frozen=True)
class PauliCorrection:
    """Apply the Pauli frame of the bound SwapResult to the pair bound for ``partner``."""

    kind: ClassVar[str] = "pauli_correction"
    partner: NodeAddress


class MeasureBasis(str, Enum):
    X = "X"
    Y = "Y"
    Z = "Z"
    RANDOM = "RANDOM"  # uniformly among X, Y, Z from the node's named random stream


@dataclass(frozen=True)
class Measure:
    """Measure the pairs bound for ``partner`` in ``basis`` (tomography, QKD, CHSH), report each
    outcome to the application with the pair name, and free the qubits."""

    kind: ClassVar[str] = "measure"
    partner: NodeAddress
    basis: MeasureBasis = MeasureBasis.Z
    purpose: str = "tomography"


@dataclass(frozen=True)
class GateOp:
    """One gate of a QCIRC: ``slots`` index the pairs bound for the action's partner."""

    gate: str
    slots: tuple[int, ...]


@dataclass(frozen=True)
class QCirc:
    """Apply a small circuit from the QNIC's fixed gate set to the pairs bound for ``partner``."""

    kind: ClassVar[str] = "qcirc"
    partner: NodeAddress
    gates: tuple[GateOp, ...]


@dataclass(frozen=True)
class Promote:
    """Move the pairs bound for ``partner`` to Stage ``stage`` (default: the next Stage)."""

    kind: ClassVar[str] = "promote"
    partner: NodeAddress
    stage: str | None = None


@dataclass(frozen=True)
class Move:
    """Transfer each pair bound for ``partner`` into a free storage qubit of the same QNIC (a MOVE:
    state transfer with its own duration and error) and promote it to Stage ``stage`` (default:
    the next Stage). Frees the communication qubit for the next link attempt (RFC 9340 §5.4.3;
    QRNA Figure 2: a left success goes into the buffer before the right side is tried). A Rule
    whose move finds too few free storage qubits does not fire until some are free."""

    kind: ClassVar[str] = "move"
    partner: NodeAddress
    stage: str | None = None


@dataclass(frozen=True)
class Free:
    """Re-initialise the qubits bound for ``partner`` and return them to the free pool."""

    kind: ClassVar[str] = "free"
    partner: NodeAddress
    reason: str = "discard"


@dataclass(frozen=True)
class Deliver:
    """Hand the pairs bound for ``partner`` to the application."""

    kind: ClassVar[str] = "deliver"
    partner: NodeAddress


@dataclass(frozen=True)
class SendMessage:
    """Send a Notice with ``text`` to ``peer`` (names the first bound pair, if any)."""

    kind: ClassVar[str] = "send_message"
    peer: NodeAddress
    text: str
    tag: int = -1


@dataclass(frozen=True)
class SetVariable:
    kind: ClassVar[str] = "set_variable"
    variable: str
    value: float


@dataclass(frozen=True)
class IncrementVariable:
    kind: ClassVar[str] = "increment_variable"
    variable: str
    by: float = 1.0


@dataclass(frozen=True)
class SetTimer:
    """Arm Stage timer ``timer`` to fire ``delay_ps`` from now (re-arming replaces it)."""

    kind: ClassVar[str] = "set_timer"
    timer: str
    delay_ps: int


Action = Union[
    Purify, Swap, PauliCorrection, Measure, QCirc, Promote, Move, Free, Deliver, SendMessage,
    SetVariable, IncrementVariable, SetTimer,
]

CONDITION_TYPES: dict[str, type] = {c.kind: c for c in (
    EnoughResources, FidelityAtLeast, PurificationResultArrived, SwapResultArrived, PairAgeOver,
    StageTimeout, TimerExpired, MeasureCount, VariableCompare)}
ACTION_TYPES: dict[str, type] = {a.kind: a for a in (
    Purify, Swap, PauliCorrection, Measure, QCirc, Promote, Move, Free, Deliver, SendMessage,
    SetVariable, IncrementVariable, SetTimer)}

# -- structure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    partners: tuple[NodeAddress, ...]
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class Stage:
    name: str
    rules: tuple[Rule, ...]
    variables: dict[str, float] = field(default_factory=dict, hash=False, compare=True)


@dataclass(frozen=True)
class PeerTiming:
    """Swapping peer ``peer`` discards its half of a pair shared with this node after
    ``discard_after_ps``; its swap (the Bell-state measurement) takes up to ``operation_ps`` before
    the notice leaves, and messages from it take at most ``one_way_latency_ps``."""

    peer: NodeAddress
    discard_after_ps: int
    one_way_latency_ps: int
    operation_ps: int = 0


@dataclass(frozen=True)
class RuleSet:
    id: str
    owner: NodeAddress
    connection: str
    stages: tuple[Stage, ...]
    timing: tuple[PeerTiming, ...] = ()

    def stage_index(self, name: str) -> int:
        for i, stage in enumerate(self.stages):
            if stage.name == name:
                return i
        raise KeyError(name)

    @property
    def partners(self) -> frozenset[NodeAddress]:
        """Every node this RuleSet names as a partner, in any rule."""
        return frozenset(p for s in self.stages for r in s.rules for p in r.partners)
