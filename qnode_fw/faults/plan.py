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
or the key (``--fault``). The models themselves are in :mod:`qnode_fw.config.faults`.
"""

from __future__ import annotations

import math

from ..config.faults import (MAX_HOLD_US, ClockFault, FaultPlan, InstrumentFault,
                             InstrumentFaultKind, MessageFaults, NodeCrash)
from ..config.source import Document, load_document, parse_yaml
from ..config.validate import parse_model
from ..errors import ConfigError, ConfigErrors
from ..units import S

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


__all__ = ["MAX_HOLD_US", "ClockFault", "FaultPlan", "InstrumentFault", "InstrumentFaultKind",
           "MessageFaults", "NodeCrash", "fault_plan_from_document", "load_fault_plan",
           "parse_fault_plan_yaml", "parse_fault_string", "seconds_ps"]
