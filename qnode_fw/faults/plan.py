"""The fault plan: which faults to inject into a testbed run, typed and validated.

Written in YAML (a ``faults:`` mapping in an experiment file, or a file of its own) or on the
command line as ``--fault drop=0.05,dup=0.01,reorder=0.01,delay_us=200``::

    seed: 7                                   # stream of the fault draws (default: the run's seed)
    control: {drop: 0.05, dup: 0.01, reorder: 0.01, reorder_us: 500, delay: 0.1, delay_us: 2000}
    herald:  {drop: 0.02}
    instruments:
      - {node: A, instrument: awg1, fault: timeout, at_s: 0.2, count: 1}
      - {node: bsa-AB, instrument: tagger, fault: overflow, at_s: 0.5, fraction: 0.3}
    nodes:
      - {node: B, crash_at_s: 0.3, restart_after_s: 0.1}
    clocks:
      - {node: A, at_s: 0.2, jump_us: 50}
      - {node: A, at_s: 0.4, drift_ppm: 200}

Message faults act on every message a node *sends* on that plane (control: data, acks,
heartbeats; herald: herald and clock-sync frames), each decision an independent draw:

* ``drop``    probability the message is lost;
* ``dup``     probability a second copy is sent (with its own draws for delay and reorder);
* ``reorder`` probability the message is held back by a uniform time in (0, ``reorder_us``], so
  messages sent meanwhile overtake it;
* ``delay``   probability the message is held back by exactly ``delay_us`` (a congested path);
  giving ``delay_us`` alone delays every message.

Every bad key or value is a :class:`~qnode_fw.errors.ConfigError` naming the file and line (YAML)
or the key (``--fault``).
"""

from __future__ import annotations

import enum
import math

from pydantic import Field, model_validator

from ..config.node import Strict
from ..config.source import Document, load_document, parse_yaml
from ..config.validate import parse_model
from ..errors import ConfigError, ConfigErrors
from ..units import S, US

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


# -- reading ------------------------------------------------------------------------------------


def fault_plan_from_document(doc: Document) -> FaultPlan:
    """Validate a document holding a plan (or a ``faults:`` mapping) as a :class:`FaultPlan`."""
    if isinstance(doc.data, dict) and "faults" in doc.data:
        try:
            return parse_model(FaultPlan, doc.sub(("faults",)))
        except ConfigErrors as exc:
            for e in exc.errors:             # the field paths are relative to faults:
                e.field = "faults" + (("." + e.field) if e.field else "")
            raise ConfigErrors(exc.errors) from None
    return parse_model(FaultPlan, doc)


def load_fault_plan(path: str) -> FaultPlan:
    return fault_plan_from_document(load_document(path))


def parse_fault_plan_yaml(text: str, file: str = "<faults>") -> FaultPlan:
    return fault_plan_from_document(parse_yaml(text, file))


_MESSAGE_KEYS = tuple(MessageFaults.model_fields)
_PLANES = ("control", "herald")
#: What ``--fault`` accepts, for error messages.
FAULT_STRING_KEYS = ("seed", *_MESSAGE_KEYS,
                     *(f"{p}.{k}" for p in _PLANES for k in _MESSAGE_KEYS))


def parse_fault_string(text: str, *, option: str = "--fault") -> FaultPlan:
    """``drop=0.05,dup=0.01`` (both planes) or ``control.drop=0.05,herald.reorder=0.1``."""
    planes: dict[str, dict[str, float]] = {p: {} for p in _PLANES}
    seed: int | None = None
    seen: set[str] = set()
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise ConfigError("no faults given", field=option, expected="key=value[,key=value...]")
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        field = f"{option} {key or item}"
        if not sep or not key or not raw:
            raise ConfigError(f"{item!r} is not key=value", field=field,
                              expected="key=value, e.g. drop=0.05")
        if key in seen:
            raise ConfigError(f"{key} given twice", field=field, expected="each key once")
        seen.add(key)
        if key == "seed":
            try:
                seed = int(raw)
            except ValueError:
                raise ConfigError(f"seed {raw!r} is not an integer", field=field,
                                  expected="an integer") from None
            continue
        plane, dot, name = key.rpartition(".")
        targets = [plane] if dot else list(_PLANES)
        if (dot and plane not in _PLANES) or name not in _MESSAGE_KEYS:
            raise ConfigError(f"unknown fault key {key!r}", field=field,
                              expected="one of " + ", ".join(FAULT_STRING_KEYS))
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{raw!r} is not a number", field=field, expected="a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{raw!r} is not a finite number", field=field,
                              expected="a finite number")
        for p in targets:
            planes[p][name] = value
    data: dict = {"seed": seed} if seed is not None else {}
    data.update({p: v for p, v in planes.items() if v})
    doc = Document(data, option)
    try:
        return parse_model(FaultPlan, doc)
    except ConfigError as exc:
        # Point at the --fault key, not at a YAML line that does not exist.
        first = getattr(exc, "errors", [exc])[0]
        raise ConfigError(first.message, field=f"{option} {_user_key(first.field or '', seen)}",
                          expected=first.expected) from None


def _user_key(field: str, given: set[str]) -> str:
    """The ``--fault`` key a validation error on ``field`` (``control.drop``) came from."""
    if field in given:
        return field
    plane, _, name = field.partition(".")
    if name and name in given:
        return name
    # A rule across fields of one plane (delay without delay_us): name the rate the user gave.
    for key in (f"{plane}.delay", "delay"):
        if key in given:
            return key
    return field


def seconds_ps(seconds: float) -> int:
    return int(round(seconds * S))
