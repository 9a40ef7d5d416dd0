"""The fault plan's models: which faults to inject into a testbed run (see
:mod:`qnode_fw.faults.plan` for the YAML and ``--fault`` forms and what each field means).

They live with the other configuration models so that the experiment YAML
(:class:`~.experiment.ExperimentConfig`, ``faults:``) can hold a plan without the configuration
package importing the fault injectors.
"""

from __future__ import annotations

import enum

from pydantic import Field, model_validator

from ..units import US
from .node import Strict

#: Longest hold-back a plan may ask for: longer is a partition, which ``nodes:`` models.
MAX_HOLD_US = 60e6


class MessageFaults(Strict):
    """Faults on one message plane (control or herald); see the module docstring."""

    drop: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    dup: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    reorder: float = Field(0.0, ge=0, le=1, allow_inf_nan=False)
    reorder_us: float = Field(1000.0, gt=0, le=MAX_HOLD_US, allow_inf_nan=False)
    delay: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    delay_us: float = Field(0.0, ge=0, le=MAX_HOLD_US, allow_inf_nan=False)

    @model_validator(mode="after")
    def _delay_needs_amount(self) -> "MessageFaults":
        if self.delay and not self.delay_us:
            raise ValueError("delay (a rate) needs delay_us, the time a delayed message is held")
        return self

    @property
    def delay_rate(self) -> float:
        if self.delay is not None:
            return self.delay
        return 1.0 if self.delay_us else 0.0

    @property
    def active(self) -> bool:
        return bool(self.drop or self.dup or self.reorder or self.delay_rate)

    @property
    def reorder_ps(self) -> int:
        return max(1, int(round(self.reorder_us * US)))

    @property
    def delay_ps(self) -> int:
        return int(round(self.delay_us * US))


class InstrumentFaultKind(str, enum.Enum):
    TIMEOUT = "timeout"          # the instrument does not answer this command
    DISCONNECT = "disconnect"    # the connection drops in the middle of the command
    GARBAGE = "garbage"          # the reply is not what the protocol says
    ERROR = "error"              # the instrument refuses: an entry in its error queue
    OVERFLOW = "overflow"        # a time tagger's buffer overflows: tags lost in one read


class InstrumentFault(Strict):
    """``count`` commands of ``instrument`` on ``node`` fail as ``fault``, from ``at_s`` on (and
    again every ``every_s`` if given). ``command`` is a regular expression over the command (the
    wire message for an emulated instrument, the method name for a simulated or vendor-module
    one); by default any command but an error-queue poll."""

    node: str | None = None
    instrument: str
    fault: InstrumentFaultKind
    at_s: float = Field(0.0, ge=0, allow_inf_nan=False)
    count: int = Field(1, ge=1, le=10_000)
    every_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    command: str | None = None
    message: str | None = None                 # error: the instrument's own words
    reply: str = "\x00#?garbled\xff"             # garbage: what comes back instead
    fraction: float = Field(0.5, gt=0, le=1, allow_inf_nan=False)   # overflow: share of tags lost

    @property
    def target(self) -> str:
        return f"{self.node}/{self.instrument}" if self.node else self.instrument


class NodeCrash(Strict):
    """``node``'s process dies at ``crash_at_s`` without a goodbye; it starts again, with empty
    state and a new boot id, ``restart_after_s`` later (never, if not given)."""

    node: str
    crash_at_s: float = Field(ge=0, allow_inf_nan=False)
    restart_after_s: float | None = Field(None, gt=0, allow_inf_nan=False)


class ClockFault(Strict):
    """At ``at_s`` the clock of ``node`` steps by ``jump_us`` and/or starts running at
    ``drift_ppm`` (relative to true time, continuously: no step from the drift change)."""

    node: str
    at_s: float = Field(0.0, ge=0, allow_inf_nan=False)
    jump_us: float | None = Field(None, allow_inf_nan=False, ge=-3.6e9, le=3.6e9)
    drift_ppm: float | None = Field(None, allow_inf_nan=False, ge=-1e5, le=1e5)

    @model_validator(mode="after")
    def _something(self) -> "ClockFault":
        if self.jump_us is None and self.drift_ppm is None:
            raise ValueError("a clock fault needs jump_us, drift_ppm or both")
        return self

    @property
    def jump_ps(self) -> int:
        return int(round((self.jump_us or 0.0) * US))


class FaultPlan(Strict):
    seed: int | None = None
    control: MessageFaults = MessageFaults()
    herald: MessageFaults = MessageFaults()
    instruments: list[InstrumentFault] = Field([], max_length=1000)
    nodes: list[NodeCrash] = Field([], max_length=1000)
    clocks: list[ClockFault] = Field([], max_length=1000)

    @property
    def empty(self) -> bool:
        return not (self.control.active or self.herald.active or self.instruments or self.nodes
                    or self.clocks)

    def with_overrides(self, other: "FaultPlan") -> "FaultPlan":
        """This plan with the message faults and seed that ``other`` sets replacing its own, and
        ``other``'s instrument, node and clock faults added (``--fault`` over a YAML plan)."""
        update: dict = {"instruments": self.instruments + other.instruments,
                        "nodes": self.nodes + other.nodes, "clocks": self.clocks + other.clocks}
        for plane in ("control", "herald"):
            mine, theirs = getattr(self, plane), getattr(other, plane)
            update[plane] = mine.model_copy(update=theirs.model_dump(exclude_unset=True))
        if other.seed is not None:
            update["seed"] = other.seed
        return self.model_copy(update=update)
