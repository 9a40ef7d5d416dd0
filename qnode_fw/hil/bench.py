"""The bench file: one bench's instruments, how they are cabled, and what its checks expect.

::

    bench: {name: lab-bsa-1, backend: lab}       # lab | sim | emulated
    include: [calibration.yaml]                  # optional: the calibration a previous run wrote
    instruments:
      - {name: awg, kind: awg, model: keysight_33500b, resource: "TCPIP::10.0.0.5::5025::SOCKET",
         limits: {amplitude_vpp: [0, 1]}}
      - {name: tagger, kind: time_tagger, model: swabian, resource: "1910000ABC"}
      - {name: osw, kind: optical_switch, model: polatis, resource: "10.0.0.7:3082"}
      - {name: spdc, kind: pair_source, model: qubitekk_spdc, resource: /dev/ttyUSB0,
         limits: {pump_current_ma: [0, 60], crystal_temperature_c: [20, 45]}}
    wiring:
      markers:      # AWG marker output -> tagger input, over a coaxial cable
        sync: {awg: awg, channel: 1, marker: 1, tagger: tagger, input: 1, cable_m: 3.0}
      detectors:    # single-photon detector -> tagger input
        A: {tagger: tagger, input: 2}
        B: {tagger: tagger, input: 4}
        C: {tagger: tagger, input: 5}
      arms:         # a pair source's arm -> fibre -> (switch input, output) -> detector
        idler: {source: spdc, role: idler, fibre_m: 5, switch: osw, switch_input: 1,
                detectors: {1: A, 2: B}}
        signal: {source: spdc, role: signal, fibre_m: 2, detectors: {1: C}}
    operating:      # where each pair source runs for the checks that need light
      spdc: {pump_current_ma: 45, crystal_temperature_c: 35}
    checks: {...}   # optional thresholds and durations (defaults in :mod:`.checks_config`)
    simulation: {...}  # sim and emulated benches only: the physics behind the instruments

Wiring sections are mappings keyed by name, so a file that ``include:``\\ s another can change one
cable. ``simulation.as_built`` holds such changes for the simulated cables only: the bench file
says one thing, the simulated bench is cabled another way, which is how a wiring mistake is
rehearsed. Every error names the file, line and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from qnode_fw.config.node import NAME_PATTERN, CalibrationConfig, InstrumentConfig, InstrumentKind, Strict
from qnode_fw.config.source import Document, load_document, merge_overrides
from qnode_fw.config.validate import parse_model
from qnode_fw.errors import ConfigError, ConfigErrors
from qnode_fw.units import FIBRE_DELAY_PS_PER_KM

from .checks_config import ChecksConfig

#: Speed of light in vacuum, m/s; a cable's delay is length / (velocity factor * c).
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0

Backend = Literal["lab", "sim", "emulated"]


class BenchInfo(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    #: ``lab``: the instruments themselves; ``sim``: the simulated instruments (model ``sim``) on
    #: the physical model; ``emulated``: the real drivers against their protocol emulators, which
    #: share that physical model.
    backend: Backend
    seed: int = 1


class BenchInstrument(InstrumentConfig):
    #: Regular expression the identification reply must match (searched, case-insensitive);
    #: default: the model's own pattern in :mod:`.identity`.
    identity: str | None = None


class MarkerCable(Strict):
    """An AWG marker output cabled to a time-tagger input."""

    awg: str
    channel: int = Field(1, ge=1)
    marker: int = Field(1, ge=1, le=2)
    tagger: str
    input: int = Field(ge=1)
    cable_m: float = Field(0.0, ge=0)
    #: Coaxial cable (RG-58, RG-316): about 0.66-0.70 of the speed of light.
    velocity_factor: float = Field(0.66, gt=0, le=1)

    @property
    def delay_ps(self) -> int:
        return int(round(self.cable_m / (self.velocity_factor * SPEED_OF_LIGHT_M_PER_S) * 1e12))


class DetectorCable(Strict):
    """A single-photon detector's output cabled to a time-tagger input."""

    tagger: str
    input: int = Field(ge=1)


class ArmPath(Strict):
    """One arm of a pair source: fibre, optionally an optical switch, detectors behind it."""

    source: str
    role: Literal["signal", "idler"]
    fibre_m: float = Field(0.0, ge=0)
    switch: str | None = None
    switch_input: int = Field(1, ge=1)
    #: Detector name per switch output (key 1 when the arm has no switch).
    detectors: dict[int, str] = Field(min_length=1)

    @property
    def delay_ps(self) -> int:
        return int(round(self.fibre_m * FIBRE_DELAY_PS_PER_KM / 1000.0))


class Wiring(Strict):
    markers: dict[str, MarkerCable] = {}
    detectors: dict[str, DetectorCable] = {}
    arms: dict[str, ArmPath] = {}

    def arms_of(self, source: str) -> dict[str, ArmPath]:
        """``{"signal": arm, "idler": arm}`` of ``source``."""
        return {a.role: a for a in self.arms.values() if a.source == source}

    def switched_arms(self, switch: str) -> list[ArmPath]:
        return [a for a in self.arms.values() if a.switch == switch]


class OperatingPoint(Strict):
    pump_current_ma: float = Field(ge=0)
    #: The crystal's nominal phase-matching temperature (a calibration file's value wins).
    crystal_temperature_c: float


class Simulation(Strict):
    """The physical model behind a ``sim`` or ``emulated`` bench (ignored on a ``lab`` bench)."""

    #: Per instrument: the simulated model's parameters (``SpdcParams``, ``TaggerParams``,
    #: ``SwitchParams`` fields; an AWG's ``trigger_latency_ps``).
    physics: dict[str, dict[str, Any]] = {}
    #: Per detector: ``DetectorParams`` fields (efficiency, dark_count_rate_hz, dead_time_ps,
    #: jitter_fwhm_ps).
    detectors: dict[str, dict[str, Any]] = {}
    #: Per arm: extra loss (coupling, filters) in dB.
    arm_loss_db: dict[str, float] = {}
    #: Changes to ``wiring`` for the simulated cables only (the bench as it is really cabled).
    as_built: dict[str, Any] = {}


class BenchFile(Strict):
    bench: BenchInfo
    instruments: list[BenchInstrument] = Field(min_length=1)
    wiring: Wiring = Wiring()
    operating: dict[str, OperatingPoint] = {}
    checks: ChecksConfig = ChecksConfig()
    simulation: Simulation = Simulation()
    calibration: CalibrationConfig | None = None

    def instrument(self, name: str) -> BenchInstrument:
        for inst in self.instruments:
            if inst.name == name:
                return inst
        raise KeyError(name)

    def of_kind(self, kind: InstrumentKind) -> list[BenchInstrument]:
        return [i for i in self.instruments if i.kind == kind]


@dataclass(frozen=True)
class LoadedBench:
    """A validated bench file, the document it came from (for file:line in messages) and the
    wiring the simulated cables follow (``wiring`` with ``simulation.as_built`` merged over it)."""

    config: BenchFile
    document: Document
    path: Path
    as_built: Wiring

    @property
    def name(self) -> str:
        return self.config.bench.name

    @property
    def backend(self) -> str:
        return self.config.bench.backend

    def where(self, *path: str | int) -> str:
        """``file:line`` of a field, for messages that tell a person what to correct."""
        origin = self.document.origin(tuple(path))
        return f"{origin.file}:{origin.line}"


def load_bench(path: str | Path) -> LoadedBench:
    """Load and validate a bench file; raises :class:`ConfigErrors` naming file, line, field."""
    path = Path(path)
    doc = load_document(path)
    config = parse_model(BenchFile, doc)
    from .physics import check_simulation

    errors = check_bench(doc, config, config.wiring, ("wiring",)) + check_simulation(doc, config)
    as_built = config.wiring
    if config.simulation.as_built:
        wiring_doc = doc.sub(("wiring",)) if "wiring" in doc.data else Document({}, doc.file)
        merged = merge_overrides(wiring_doc, doc.sub(("simulation", "as_built")))
        as_built = parse_model(Wiring, merged)
        errors += check_bench(merged, config, as_built, ())
    if errors:
        raise ConfigErrors(errors)
    return LoadedBench(config, doc, path, as_built)


def check_bench(doc: Document, cfg: BenchFile, wiring: Wiring, at: tuple) -> list[ConfigError]:
    """Instrument names, backends and identities (when ``at`` is the file's own ``wiring``), then
    the wiring's references, kinds, tagger inputs, arms and operating points; ``at`` is where
    ``wiring`` sits in ``doc``."""
    own = at == ("wiring",)
    errors = _check_instruments(doc, cfg) if own else []
    kinds = {inst.name: inst.kind for inst in cfg.instruments}

    def ref(path: tuple, name: str, kind: InstrumentKind) -> None:
        if name not in kinds:
            errors.append(doc.error(at + path, f"no instrument named {name!r}",
                                    expected=f"one of {sorted(kinds)}"))
        elif kinds[name] != kind:
            errors.append(doc.error(at + path, f"{name!r} is a {kinds[name].value}, not a {kind.value}"))

    used_inputs: dict[tuple[str, int], str] = {}

    def claim(path: tuple, tagger: str, channel: int, what: str) -> None:
        key = (tagger, channel)
        if key in used_inputs:
            errors.append(doc.error(at + path, f"tagger {tagger!r} input {channel} is already taken by "
                                    f"{used_inputs[key]}", expected="one cable per tagger input"))
        used_inputs[key] = what

    for name, cable in wiring.markers.items():
        ref(("markers", name, "awg"), cable.awg, InstrumentKind.AWG)
        ref(("markers", name, "tagger"), cable.tagger, InstrumentKind.TIME_TAGGER)
        claim(("markers", name, "input"), cable.tagger, cable.input, f"marker cable {name!r}")
    for name, det in wiring.detectors.items():
        ref(("detectors", name, "tagger"), det.tagger, InstrumentKind.TIME_TAGGER)
        claim(("detectors", name, "input"), det.tagger, det.input, f"detector {name!r}")
    for name, arm in wiring.arms.items():
        ref(("arms", name, "source"), arm.source, InstrumentKind.PAIR_SOURCE)
        if arm.switch is not None:
            ref(("arms", name, "switch"), arm.switch, InstrumentKind.OPTICAL_SWITCH)
        elif set(arm.detectors) != {1}:
            errors.append(doc.error(at + ("arms", name, "detectors"), "an arm without a switch has one "
                                    "detector, under key 1", expected="detectors: {1: NAME}"))
        for output, det in arm.detectors.items():
            if det not in wiring.detectors:
                errors.append(doc.error(at + ("arms", name, "detectors", output), f"no detector named {det!r}",
                                        expected=f"one of {sorted(wiring.detectors)}"))
    for source in sorted({a.source for a in wiring.arms.values()}):
        roles = sorted(a.role for a in wiring.arms.values() if a.source == source)
        if roles != ["idler", "signal"]:
            first = next(n for n, a in wiring.arms.items() if a.source == source)
            errors.append(doc.error(at + ("arms", first, "source"), f"pair source {source!r} has arms "
                                    f"{roles}", expected="exactly one signal and one idler arm"))
        if own and source not in cfg.operating:
            errors.append(doc.error(("operating",), f"pair source {source!r} has arms but no operating point",
                                    expected=f"operating: {{{source}: {{pump_current_ma: .., "
                                             f"crystal_temperature_c: ..}}}}"))
    return errors


def _check_instruments(doc: Document, cfg: BenchFile) -> list[ConfigError]:
    from .identity import identity_pattern

    errors: list[ConfigError] = []
    seen: set[str] = set()
    for i, inst in enumerate(cfg.instruments):
        if inst.name in seen:
            errors.append(doc.error(("instruments", i, "name"), f"instrument name {inst.name!r} is used twice",
                                    expected="unique names"))
        seen.add(inst.name)
        errors += _backend_problems(doc, cfg.bench.backend, i, inst)
        if inst.identity is not None:
            try:
                re.compile(inst.identity)
            except re.error as exc:
                errors.append(doc.error(("instruments", i, "identity"), f"not a regular expression: {exc}"))
        elif identity_pattern(inst) is None:
            errors.append(doc.error(("instruments", i, "identity"), f"no identification pattern is known "
                                    f"for model {inst.model!r}",
                                    expected="identity: a regular expression the *IDN? reply matches"))
    for name in cfg.operating:
        if name not in {i.name for i in cfg.of_kind(InstrumentKind.PAIR_SOURCE)}:
            errors.append(doc.error(("operating", name), f"{name!r} is not a pair source of this bench"))
    return errors


_EMULATOR_RESOURCE = "emulator"


def _backend_problems(doc: Document, backend: str, i: int, inst: BenchInstrument) -> list[ConfigError]:
    from .emulated import EMULATED_MODELS

    path = ("instruments", i)
    if backend == "sim" and inst.model != "sim":
        return [doc.error(path + ("model",), f"a sim bench runs simulated instruments, not {inst.model!r}",
                          expected="model: sim")]
    if backend == "emulated":
        if inst.model not in EMULATED_MODELS:
            return [doc.error(path + ("model",), f"no protocol emulator is coupled to the bench physics for "
                              f"model {inst.model!r}", expected=f"one of {sorted(EMULATED_MODELS)}")]
        if inst.resource != _EMULATOR_RESOURCE:
            return [doc.error(path + ("resource",), "an emulated bench starts its own emulators",
                              expected=f"resource: {_EMULATOR_RESOURCE}")]
    if backend == "lab" and (inst.model == "sim" or inst.resource in ("sim", _EMULATOR_RESOURCE)):
        return [doc.error(path + ("model",), "a lab bench drives real instruments",
                          expected="a real driver model and its resource (or bench.backend: sim)")]
    return []
