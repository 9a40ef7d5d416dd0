"""Rigs: what stands between the bench checks and the bench.

A rig opens the bench's instruments (with the limits a check asks for), lets time pass, and says
what only a simulated bench can know. The checks are written once against this and the driver
interfaces:

* :class:`LabRig` - the instruments at the bench file's resources; time is wall time;
* :class:`SimRig` - the simulated instruments (model ``sim``) on the bench's physical World,
  virtual time;
* :class:`~qnode_fw.hil.emulated.EmulatedRig` - the real drivers against their protocol
  emulators, which share that World (in its own module);
* :class:`DryRunRig` - simulated stand-ins behind recorders: every call a check makes is listed,
  nothing reaches an instrument.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Mapping

import numpy as np

from drivers.instrument import Instrument
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import QnodeError
from qnode_fw.rng import RandomStreams

from .bench import BenchInstrument, LoadedBench
from .physics import build_world, physics_options, standin_options


class Rig(ABC):
    backend: str

    def start(self) -> None:
        """Bring up what stands in for the lab (emulators, the physics); no instrument is contacted."""

    @abstractmethod
    def open(self, instrument: BenchInstrument, limits: Mapping[str, tuple[float, float]]) -> Instrument:
        """Open ``instrument`` enforcing ``limits`` (the bench's own, or tighter)."""

    @abstractmethod
    def wait(self, duration_ps: int) -> None:
        """Let ``duration_ps`` of bench time pass (light keeps arriving, ovens keep settling)."""

    def counted(self, duration_ps: int) -> None:
        """A tagger just counted for ``duration_ps``; on a bench whose time does not pass while
        counting, let it pass now so the next change comes after the counted span."""

    def trigger_instant_ps(self) -> int | None:
        """Now, in the time tagger's time base, when the rig knows it (a software trigger sent now
        starts there); None on a lab bench, where no tagger timestamps a software trigger."""
        return None

    def read_back_waveform(self, awg: str, channel: int, name: str) -> np.ndarray | None:
        """The samples stored under ``name`` in the AWG's memory, when they can be read back."""
        return None

    def traffic(self) -> dict[str, str] | None:
        """What each emulated instrument received since :meth:`start` (``"0 bytes received"``),
        from the emulators' own logs; None where nothing stands in for the instruments."""
        return None

    def close(self) -> None:
        """Stop what :meth:`start` started."""


class LabRig(Rig):
    backend = "lab"

    def __init__(self, bench: LoadedBench, sleep: Callable[[float], None] = time.sleep) -> None:
        self.bench = bench
        self._sleep = sleep

    def open(self, instrument, limits):
        return open_instrument(InstrumentSpec(instrument.name, instrument.kind.value, instrument.model,
                                              instrument.resource, dict(limits), dict(instrument.options)))

    def wait(self, duration_ps: int) -> None:
        self._sleep(duration_ps * 1e-12)


class SimRig(Rig):
    """The simulated instruments on the bench's World. ``standin`` builds them for a dry run of any
    bench: then the instruments' own options (driver options) are left out and the physics is
    :func:`~.physics.standin_options`'."""

    backend = "sim"

    def __init__(self, bench: LoadedBench, *, standin: bool = False) -> None:
        self.bench = bench
        self.standin = standin
        self._awgs: dict[str, list[Any]] = {}

    def start(self) -> None:
        self.clock = VirtualClock()
        self.streams = RandomStreams(self.bench.config.bench.seed)
        self._options = standin_options if self.standin else physics_options
        self.world = build_world(self.bench, self.clock, self.streams, options=self._options)
        if self.standin:
            # Stand-in ovens settle at once, so the sources cannot change within a longer chunk
            # of pump time; fewer chunks keep a lab bench's long counts cheap to list.
            self.world.chunk_ps = 100 * self.world.chunk_ps
        self.context = DriverContext(clock=self.clock, streams=self.streams, world=self.world)

    def open(self, instrument, limits):
        options = self._options(self.bench, instrument.name)
        if not self.standin:
            options = {**instrument.options, **options}
        device = open_instrument(InstrumentSpec(instrument.name, instrument.kind.value, "sim", "sim",
                                                dict(limits), options), self.context)
        if instrument.kind.value == "awg":
            self._awgs.setdefault(instrument.name, []).append(device)
        return device

    def _catch_up(self) -> None:
        # A simulated tagger counts by generating the physics ahead of the clock; the clock must
        # pass that span before anything changes, or the change would apply too late.
        ahead = max([self.clock.now_ps(), *(l.generated_until_ps or 0 for l in self.world.spdc_links.values())])
        self.clock.advance_to(ahead)

    def wait(self, duration_ps: int) -> None:
        self._catch_up()
        self.clock.advance_to(self.clock.now_ps() + int(duration_ps))

    def counted(self, duration_ps: int) -> None:
        self._catch_up()

    def trigger_instant_ps(self) -> int:
        return self.clock.now_ps()

    def read_back_waveform(self, awg, channel, name):
        for device in reversed(self._awgs.get(awg, [])):
            # The simulated AWG's waveform memory (what the instrument holds, not what was sent).
            stored = device._waveforms.get(name)
            if stored is not None:
                return stored.samples
        return None


class Recorder:
    """Stands for an instrument in a dry run: every call is logged (``log(text)``) and passed to a
    simulated stand-in, so a check runs through exactly the calls it would make on the bench."""

    _PLAIN = frozenset({"kind", "model", "name", "resource", "limits"})

    def __init__(self, target: Instrument, name: str, log: Callable[[str], None]) -> None:
        self._target = target
        self._name = name
        self._log = log

    def __getattr__(self, attr: str):
        value = getattr(self._target, attr)
        if attr.startswith("_") or attr in self._PLAIN:
            return value
        if not callable(value):
            self._log(f"{self._name}.{attr}  (read)")
            return value

        def call(*args, **kwargs):
            text = f"{self._name}.{attr}({_format_args(args, kwargs)})"
            try:
                result = value(*args, **kwargs)
            except QnodeError as exc:
                self._log(f"{text}  -> refused before sending: {getattr(exc, 'message', exc)}")
                raise
            self._log(text)
            return result

        return call


def _format_args(args: tuple, kwargs: dict) -> str:
    def one(v: Any) -> str:
        if isinstance(v, np.ndarray):
            return f"<{v.size} {v.dtype.name} values>"
        return repr(v)

    return ", ".join([*(one(a) for a in args), *(f"{k}={one(v)}" for k, v in kwargs.items())])


class DryRunRig(Rig):
    """Runs every check on simulated stand-ins behind :class:`Recorder` s; the bench's own rig is
    started (an emulated bench's emulators run, and can show they received nothing) but never
    opened."""

    def __init__(self, bench: LoadedBench, bench_rig: Rig, log: Callable[[str], None]) -> None:
        self.bench = bench
        self.bench_rig = bench_rig
        self.backend = bench_rig.backend
        self.standin = SimRig(bench, standin=True)
        self.log = log

    def start(self) -> None:
        self.bench_rig.start()
        self.standin.start()

    def open(self, instrument, limits):
        self.log(f"connect {instrument.name} ({instrument.model} at {instrument.resource!r}), "
                 f"limits {dict(limits)}")
        return Recorder(self.standin.open(instrument, limits), instrument.name, self.log)

    def wait(self, duration_ps: int) -> None:
        self.log(f"wait {duration_ps / 1e9:g} ms")
        self.standin.wait(duration_ps)

    def counted(self, duration_ps: int) -> None:
        self.standin.counted(duration_ps)

    def trigger_instant_ps(self) -> int | None:
        return self.standin.trigger_instant_ps() if self._bench_can("trigger_instant_ps") else None

    def read_back_waveform(self, awg, channel, name):
        return self.standin.read_back_waveform(awg, channel, name) if self._bench_can("read_back_waveform") else None

    def _bench_can(self, method: str) -> bool:
        """Whether the bench's own rig knows more than a lab bench (so the listing follows the
        same path the real run takes)."""
        return getattr(type(self.bench_rig), method) is not getattr(Rig, method)

    def traffic(self) -> dict[str, str] | None:
        return self.bench_rig.traffic()

    def close(self) -> None:
        self.bench_rig.close()
