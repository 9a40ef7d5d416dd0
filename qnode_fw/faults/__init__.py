"""Fault injection: a typed plan of faults and the shims that inject them into a testbed.

* :mod:`.plan` - :class:`FaultPlan` from YAML (:func:`load_fault_plan`,
  :func:`fault_plan_from_document`) or a ``--fault`` string (:func:`parse_fault_string`);
* :mod:`.messages` - drop/duplicate/reorder/delay of control and herald messages, one sender-side
  shim for in-process and ZeroMQ transports;
* :mod:`.instruments` - timeouts, disconnects, garbage, error-queue entries and tagger overflow,
  in the protocol emulators or on driver instances;
* :mod:`.clocks` - clock steps and drift changes on a simulated node clock;
* :mod:`.apply` - :func:`apply_fault_plan` (what the testbed runner calls) over
  :class:`FaultTargets`, returning :class:`AppliedFaults` (counts and an event log for the run
  record; ``remove()`` undoes it). Node crash and restart are scheduled there and carried out by
  the runner's ``crash``/``restart`` callables.
"""

from .apply import AppliedFaults, FaultTargets, InjectedFault, apply_fault_plan
from .plan import (FAULT_STRING_KEYS, ClockFault, FaultPlan, InstrumentFault, InstrumentFaultKind,
                   MessageFaults, NodeCrash, fault_plan_from_document, load_fault_plan,
                   parse_fault_plan_yaml, parse_fault_string)

__all__ = ["FAULT_STRING_KEYS", "AppliedFaults", "ClockFault", "FaultPlan", "FaultTargets",
           "InjectedFault", "InstrumentFault", "InstrumentFaultKind", "MessageFaults", "NodeCrash",
           "apply_fault_plan", "fault_plan_from_document", "load_fault_plan",
           "parse_fault_plan_yaml", "parse_fault_string"]
