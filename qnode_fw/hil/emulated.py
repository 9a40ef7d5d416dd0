"""The emulated bench: the real drivers against their protocol emulators, the emulators cabled
together through one physical World.

Each emulator speaks its instrument's protocol exactly as in the driver tests; here it is also
*mirrored* into the World: after every message it answers, its state (pump on and current, oven
setpoint, switch routes, a bus trigger with the waveform it starts) is copied into the physical
model at the bench's current time. The Swabian tagger's vendor module is
:mod:`.coupled_timetagger`, whose virtual time is the bench's time and whose inputs receive the
World's tags. So a driver command travels as bytes to an emulator, changes the physics, and comes
back as tags through the tagger driver, as on a real bench.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

import numpy as np

from drivers.registry import InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.rng import RandomStreams
from sim_backend.emulators import fake_timetagger
from sim_backend.emulators.awg import Keysight33500Emulator
from sim_backend.emulators.pair_sources import QubitekkSpdcEmulator
from sim_backend.emulators.switches import AgiltronEmulator, DiconMemsEmulator, PolatisEmulator

from . import coupled_timetagger
from .physics import build_world, physics_options
from .rig import Rig

COUPLED_MODULE = coupled_timetagger.__name__
_RIG_NUMBERS = itertools.count(1)


@cache
def mirrored(cls: type) -> type:
    """``cls`` whose ``mirror`` callback runs after every message it answered."""

    def respond(self, message: bytes):
        reply = cls.respond(self, message)
        if self.mirror is not None:
            self.mirror()
        return reply

    return type(f"Mirrored{cls.__name__}", (cls,), {"mirror": None, "respond": respond})


@dataclass(frozen=True)
class EmulatorKit:
    """How one driver model is emulated: the emulator, the resource its driver opens, the driver
    options that must agree with the emulator, and the mirror into the World."""

    make: Callable[[dict, dict], Any]  # (instrument options, physics options) -> emulator
    resource: Callable[[Any], str]
    driver_options: Callable[[dict], dict]  # physics options -> driver options
    mirror: Callable[["EmulatedRig", str, Any], Callable[[], None]]


def _trigger_mirror(started: Callable[[Any], list[tuple[int, int, np.ndarray]]]):
    """An AWG emulator's mirror: on each new trigger, the marker edges ``started(emulator)`` says
    it starts, as (channel, marker, offsets after the trigger in s)."""

    def make(rig: "EmulatedRig", name: str, emu) -> Callable[[], None]:
        seen = emu.triggers

        def mirror() -> None:
            nonlocal seen
            if emu.triggers != seen:
                seen = emu.triggers
                for channel, marker, offsets_s in started(emu):
                    rig.marker_edges(name, channel, marker, offsets_s)

        return mirror

    return make


def _keysight_started(emu) -> list[tuple[int, int, np.ndarray]]:
    """A bus trigger starts the armed burst of each channel; the sync marker rises at MARK:POIN
    of every cycle."""
    out = []
    for ch, st in emu.state.items():
        wave = emu.arbs[ch].get(st["FUNC:ARB"])
        if (st["OUTP"] == "1" and st["BURS:STAT"] == "1" and st["TRIG:SOUR"] == "BUS"
                and st["FUNC"] == "ARB" and wave is not None):
            samples = np.arange(int(st["BURS:NCYC"])) * wave.size + int(st["MARK:POIN"])
            out.append((ch, 1, samples / float(st["SRAT"])))
    return out


def _switch_mirror(routes: Callable[[Any], dict[int, int]]):
    def make(rig: "EmulatedRig", name: str, emu) -> Callable[[], None]:
        last: dict[int, int] = {}

        def mirror() -> None:
            nonlocal last
            now = routes(emu)
            for port in sorted(set(last) | set(now)):
                if last.get(port) != now.get(port):
                    rig.route(name, port, now.get(port, 0))
            last = now

        return mirror

    return make


def _qubitekk_mirror(rig: "EmulatedRig", name: str, emu) -> Callable[[], None]:
    def mirror() -> None:
        rig.source(name, pump_on=emu.pump_on, current_ma=emu.pump_ma,
                   setpoint_c=emu.setpoint / emu.counts_per_c)

    return mirror


EMULATED_MODELS: dict[str, EmulatorKit] = {
    "keysight_33500b": EmulatorKit(
        lambda o, p: mirrored(Keysight33500Emulator)(channels=int(p.get("channels", 2))),
        lambda e: e.visa_socket_resource, lambda p: {"channels": int(p.get("channels", 2))},
        _trigger_mirror(_keysight_started)),
    "polatis": EmulatorKit(
        lambda o, p: mirrored(PolatisEmulator)(ingress=p["num_inputs"], egress=p["num_outputs"]),
        lambda e: e.visa_socket_resource, lambda p: {},
        _switch_mirror(lambda e: {i: o - e.ingress for i, o in e.routes.items()})),
    "dicon_mems_1xn": EmulatorKit(
        lambda o, p: mirrored(DiconMemsEmulator)(channels=p["num_outputs"]),
        lambda e: e.serial_url, lambda p: {"channels": p["num_outputs"]},
        _switch_mirror(lambda e: {1: e.channel} if e.channel else {})),
    "agiltron_1xn": EmulatorKit(
        lambda o, p: mirrored(AgiltronEmulator)(ports=p["num_outputs"]),
        lambda e: e.serial_url, lambda p: {"ports": p["num_outputs"]},
        _switch_mirror(lambda e: {1: e.position} if e.position else {})),
    "qubitekk_spdc": EmulatorKit(
        lambda o, p: mirrored(QubitekkSpdcEmulator)(counts_per_c=int(o.get("temperature_counts_per_c", 1000))),
        lambda e: e.serial_url, lambda p: {}, _qubitekk_mirror),
    # The Swabian tagger has no wire protocol; its vendor module is coupled instead (below).
    "swabian": None,  # type: ignore[dict-item]
}


class EmulatedRig(Rig):
    backend = "emulated"

    def __init__(self, bench) -> None:
        self.bench = bench
        self.emulators: dict[str, Any] = {}
        self._taggers: dict[str, Any] = {}  # serial -> coupled tagger object
        self._serials: dict[str, str] = {}  # instrument name -> tagger serial
        self._lock = threading.RLock()
        self._calls_at_start = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        cfg = self.bench.config
        self.clock = VirtualClock()
        self.streams = RandomStreams(cfg.bench.seed)
        self.world = build_world(self.bench, self.clock, self.streams, instant_oven=True)
        for stream in self.world.taggers.values():
            # The coupled tagger measures whatever its driver asks for; its inputs see every tag.
            stream.enabled = set(stream.params.channels)
        self._calls_at_start = len(fake_timetagger.CALLS)
        for inst in cfg.instruments:
            if inst.model == "swabian":
                serial = f"HIL-{inst.name}-{next(_RIG_NUMBERS)}"  # two emulated benches may run at once
                self._serials[inst.name] = serial
                coupled_timetagger.PHYSICS[serial] = self
                continue
            kit = EMULATED_MODELS[inst.model]
            physics = physics_options(self.bench, inst.name)
            emulator = kit.make(dict(inst.options), physics)
            emulator.mirror = kit.mirror(self, inst.name, emulator)
            emulator.mirror()  # the instrument's power-on state
            self.emulators[inst.name] = emulator.start()

    def close(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()
        for serial in self._serials.values():
            coupled_timetagger.PHYSICS.pop(serial, None)

    def open(self, instrument, limits):
        if instrument.model == "swabian":
            resource, options = self._serials[instrument.name], {"module": COUPLED_MODULE}
        else:
            kit = EMULATED_MODELS[instrument.model]
            emulator = self.emulators[instrument.name]
            resource = kit.resource(emulator)
            options = kit.driver_options(physics_options(self.bench, instrument.name))
        return open_instrument(InstrumentSpec(instrument.name, instrument.kind.value, instrument.model, resource,
                                              dict(limits), {**instrument.options, **options}))

    # -- time -----------------------------------------------------------------------------------
    def now_ps(self) -> int:
        return self.clock.now_ps()

    def attach(self, serial: str, tagger) -> None:
        self._taggers[serial] = tagger

    def tags_until(self, serial: str, end_ps: int) -> tuple[np.ndarray, np.ndarray]:
        name = next(n for n, s in self._serials.items() if s == serial)
        with self._lock:
            self.world.advance(end_ps)
            batch = self.world.taggers[name].read(end_ps)
            self.clock.advance_to(max(end_ps, self.clock.now_ps()))
        return batch.channels, batch.timestamps_ps

    def wait(self, duration_ps: int) -> None:
        if self._taggers:
            for tagger in self._taggers.values():  # moves the bench's time with it
                tagger._advance_ps(int(duration_ps))
            return
        with self._lock:
            self.clock.advance_to(self.clock.now_ps() + int(duration_ps))

    def trigger_instant_ps(self) -> int:
        return self.clock.now_ps()

    # -- mirrors: emulator state into the World (called from the emulators' threads) ------------
    def marker_edges(self, awg: str, channel: int, marker: int, offsets_s: np.ndarray) -> None:
        latency = int(self.bench.config.simulation.physics.get(awg, {}).get("trigger_latency_ps", 0))
        with self._lock:
            start = self.clock.now_ps() + latency
            self.world.marker_edges(awg, channel, marker, start + np.rint(offsets_s * 1e12).astype(np.int64))

    def route(self, switch: str, input_port: int, output_port: int) -> None:
        with self._lock:
            now = self.clock.now_ps()
            self.world.advance(now)  # light that already passed saw the old route
            self.world.switches[switch].command(now, input_port, output_port)

    def source(self, name: str, *, pump_on: bool, current_ma: float, setpoint_c: float) -> None:
        with self._lock:
            state = self.world.sources[name]
            if (state.pump_on, state.current_ma, state.setpoint_c) == (pump_on, current_ma, setpoint_c):
                return
            now = self.clock.now_ps()
            self.world.advance(now)  # photons generated so far used the old settings
            state.pump_on, state.current_ma = pump_on, float(current_ma)
            state.set_setpoint(now, setpoint_c)

    # -- what the emulators saw -----------------------------------------------------------------
    def read_back_waveform(self, awg, channel, name):
        emulator = self.emulators.get(awg)
        if isinstance(emulator, Keysight33500Emulator):
            return emulator.arbs.get(channel, {}).get(name)
        return None

    def traffic(self) -> dict[str, str]:
        out = {name: f"{sum(len(m) for m in emu.log.received())} bytes received"
               for name, emu in self.emulators.items()}
        calls = len(fake_timetagger.CALLS) - self._calls_at_start  # the vendor module's call log
        for name in self._serials:
            out[name] = f"{calls} vendor-module calls"
        return out
