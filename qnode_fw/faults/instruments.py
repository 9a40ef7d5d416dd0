"""Instrument faults: timeouts, a disconnect mid-command, garbage replies, error-queue entries and
time-tagger overflow, injected where the instrument's bytes come from.

Two places, one plan entry (:class:`~qnode_fw.faults.plan.InstrumentFault`):

* **Protocol emulators** (``sim_backend.emulators``): the fault goes into the emulator's one-shot
  fault list, so the real driver, transport and :class:`~drivers.transports.session.Session`
  meet it on the wire: ``timeout`` -> the emulator stays silent, ``disconnect`` -> it closes the
  connection after reading the command, ``garbage`` -> it answers with ``reply``, ``error`` -> it
  queues ``message`` in its error queue (``SYST:ERR?``) or answers with it (ID900).
* **Driver instances** without an emulator (the simulated instruments, vendor-module drivers such
  as the Swabian tagger, a real instrument in a dry run): the instrument's public methods are
  wrapped on that instance, and an armed fault raises the typed error the driver would raise
  (:class:`InstrumentTimeout`, :class:`InstrumentDisconnected`, :class:`InstrumentError`) naming
  the resource and the call, or, for ``overflow``, the next ``read_stream`` loses ``fraction`` of
  its tags and comes back flagged ``overflow`` with ``missed_events`` set, as a tagger reports a
  buffer overrun.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import (ConfigError, InstrumentDisconnected, InstrumentError, InstrumentTimeout)
from .plan import InstrumentFault, InstrumentFaultKind

#: Default command pattern: anything but an error-queue poll, so the fault hits a real command.
ANY_COMMAND = r"^(?!\s*:?SYST(EM)?:ERR)"

_EMULATOR_ACTION = {
    InstrumentFaultKind.TIMEOUT: "silent",
    InstrumentFaultKind.DISCONNECT: "drop",
    InstrumentFaultKind.GARBAGE: "garbage",
    InstrumentFaultKind.ERROR: "error",
}

#: Methods that are lifecycle, not commands.
_NOT_COMMANDS = frozenset({"close", "from_config"})


def arm_emulator(emulator, fault: InstrumentFault) -> int:
    """Queue ``fault.count`` one-shot faults in a protocol emulator; returns how many."""
    if fault.fault is InstrumentFaultKind.OVERFLOW:
        raise ConfigError(f"{type(emulator).__name__} serves a command protocol without tag "
                          "streaming, so it cannot overflow", field=f"faults.instruments "
                          f"{fault.target}", expected="timeout, disconnect, garbage or error")
    action = _EMULATOR_ACTION[fault.fault]
    pattern = fault.command or ANY_COMMAND
    for _ in range(fault.count):
        emulator.inject(pattern, action, reply=fault.reply.encode("latin-1", "replace"),
                        message=fault.message or "")
    return fault.count


@dataclass(slots=True)
class _Armed:
    fault: InstrumentFault
    pattern: re.Pattern[str]
    remaining: int


class InstrumentFaultShim:
    """Wraps one driver instance's command methods so armed faults fire on matching calls."""

    def __init__(self, instrument, rng: np.random.Generator) -> None:
        self.instrument = instrument
        self.rng = rng
        self.armed: list[_Armed] = []
        self.fired: list[tuple[str, str]] = []        # (fault kind, call) in order
        self._lock = threading.Lock()                   # drivers may be called from threads
        self._wrapped = [name for name in self._commands()]
        for name in self._wrapped:
            setattr(instrument, name, self._wrap(name, getattr(instrument, name)))

    def _commands(self) -> list[str]:
        cls = type(self.instrument)
        out = []
        for name in dir(cls):
            if name.startswith("_") or name in _NOT_COMMANDS:
                continue
            if inspect.isfunction(inspect.getattr_static(cls, name)):
                out.append(name)
        return out

    def arm(self, fault: InstrumentFault) -> int:
        if fault.fault is InstrumentFaultKind.OVERFLOW and "read_stream" not in self._wrapped:
            raise ConfigError(f"instrument {self.instrument.name} is not a time tagger, so it "
                              "cannot overflow", field=f"faults.instruments {fault.target}",
                              expected="overflow only on time taggers")
        default = "^read_stream$" if fault.fault is InstrumentFaultKind.OVERFLOW else "."
        with self._lock:
            self.armed.append(_Armed(fault, re.compile(fault.command or default), fault.count))
        return fault.count

    def _take(self, name: str) -> InstrumentFault | None:
        with self._lock:
            for a in self.armed:
                if a.pattern.search(name):
                    if a.fault.fault is InstrumentFaultKind.OVERFLOW and name != "read_stream":
                        continue
                    a.remaining -= 1
                    if a.remaining == 0:
                        self.armed.remove(a)
                    return a.fault
        return None

    def _wrap(self, name: str, method: Callable) -> Callable:
        @functools.wraps(method)
        def call(*args, **kwargs):
            fault = self._take(name)
            if fault is None:
                return method(*args, **kwargs)
            shown = f"{name}({', '.join(repr(a) for a in args)})"
            self.fired.append((fault.fault.value, shown))
            resource = self.instrument.resource
            kind = fault.fault
            if kind is InstrumentFaultKind.TIMEOUT:
                raise InstrumentTimeout("no reply within the timeout (injected fault)",
                                        resource=resource, command=shown)
            if kind is InstrumentFaultKind.DISCONNECT:
                raise InstrumentDisconnected("connection lost in the middle of the command "
                                             "(injected fault)", resource=resource, command=shown)
            if kind is InstrumentFaultKind.GARBAGE:
                raise InstrumentError(f"garbled reply {fault.reply!r} (injected fault)",
                                      resource=resource, command=shown)
            if kind is InstrumentFaultKind.ERROR:
                raise InstrumentError(f"instrument error: {fault.message or 'execution error'} "
                                      "(injected fault)", resource=resource, command=shown)
            return self._overflow(method(*args, **kwargs), fault.fraction)

        return call

    def _overflow(self, batch, fraction: float):
        n = len(batch)
        lost = self.rng.random(n) < fraction
        batch.channels = batch.channels[~lost]
        batch.timestamps_ps = batch.timestamps_ps[~lost]
        batch.overflow = True
        batch.missed_events = int(batch.missed_events) + int(lost.sum())
        return batch

    def remove(self) -> None:
        for name in self._wrapped:
            vars(self.instrument).pop(name, None)
        self.armed.clear()
