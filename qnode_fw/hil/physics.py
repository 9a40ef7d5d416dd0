"""The physical bench behind a ``sim`` or ``emulated`` bench file: a :class:`~sim_backend.world.World`
built from the wiring *as built* (``wiring`` with ``simulation.as_built`` over it) and the
``simulation`` section's parameters.

Marker cables become :class:`~sim_backend.world.MarkerWire` delays; each pair source's two arms
become one :class:`~sim_backend.spdc_link.SpdcLink` (fibre, optional switch, a bare detector per
switch output wired to its tagger input). The sim bench's simulated instruments and the emulated
bench's protocol emulators both act on this World, so both benches see the same physics.
"""

from __future__ import annotations

from dataclasses import fields, replace

from qnode_fw.config.node import InstrumentKind
from qnode_fw.config.source import Document
from qnode_fw.errors import ConfigError
from sim_backend.instruments.common import dataclass_from_options
from sim_backend.physics.detector import DetectorParams
from sim_backend.physics.fibre import Fibre
from sim_backend.physics.spdc import SpdcParams
from sim_backend.physics.switch import SwitchParams
from sim_backend.physics.tagger import TaggerParams
from sim_backend.spdc_link import Analyser, Arm, SpdcLink
from sim_backend.world import MarkerWire, World

from .bench import BenchFile, LoadedBench

#: The parameters a ``simulation.physics`` entry may set, per instrument kind.
_AWG_OPTIONS = frozenset({"channels", "trigger_latency_ps"})
_PARAMS = {
    InstrumentKind.PAIR_SOURCE: SpdcParams,
    InstrumentKind.TIME_TAGGER: TaggerParams,
    InstrumentKind.OPTICAL_SWITCH: SwitchParams,
}


def check_simulation(doc: Document, cfg: BenchFile) -> list[ConfigError]:
    """Every ``simulation.physics`` and ``simulation.detectors`` key is a parameter of its model."""
    errors: list[ConfigError] = []
    kinds = {i.name: i.kind for i in cfg.instruments}
    for name, options in cfg.simulation.physics.items():
        path = ("simulation", "physics", name)
        if name not in kinds:
            errors.append(doc.error(path, f"no instrument named {name!r}", expected=f"one of {sorted(kinds)}"))
            continue
        known = _AWG_OPTIONS if kinds[name] == InstrumentKind.AWG else \
            {f.name for f in fields(_PARAMS[kinds[name]])} if kinds[name] in _PARAMS else set()
        for key in options:
            if key not in known:
                errors.append(doc.error(path + (key,), f"unknown {kinds[name].value} parameter {key!r}",
                                        expected=", ".join(sorted(known)) or "no parameters"))
    detector_fields = {f.name for f in fields(DetectorParams)}
    for name, options in cfg.simulation.detectors.items():
        if name not in cfg.wiring.detectors:
            errors.append(doc.error(("simulation", "detectors", name), f"no detector named {name!r} in the wiring"))
        for key in options:
            if key not in detector_fields:
                errors.append(doc.error(("simulation", "detectors", name, key), f"unknown detector parameter "
                                        f"{key!r}", expected=", ".join(sorted(detector_fields))))
    for name in cfg.simulation.arm_loss_db:
        if name not in cfg.wiring.arms:
            errors.append(doc.error(("simulation", "arm_loss_db", name), f"no arm named {name!r} in the wiring"))
    return errors


def physics_options(bench: LoadedBench, name: str) -> dict:
    """The simulated model's parameters of instrument ``name``: the ``simulation.physics`` entry,
    with sizes (tagger channels, switch ports, AWG channels) defaulting to cover every cable of
    both the declared and the as-built wiring."""
    cfg = bench.config
    inst = cfg.instrument(name)
    options = dict(cfg.simulation.physics.get(name, {}))
    wirings = (cfg.wiring, bench.as_built)
    if inst.kind == InstrumentKind.TIME_TAGGER and "channels" not in options:
        used = [c.input for w in wirings for c in [*w.markers.values(), *w.detectors.values()]
                if c.tagger == name]
        options["channels"] = list(range(1, max([8, *used]) + 1))
    elif inst.kind == InstrumentKind.OPTICAL_SWITCH:
        arms = [a for w in wirings for a in w.switched_arms(name)]
        options.setdefault("num_inputs", max([1, *(a.switch_input for a in arms)]))
        options.setdefault("num_outputs", max([4, *(o for a in arms for o in a.detectors)]))
    elif inst.kind == InstrumentKind.AWG:
        used = [c.channel for w in wirings for c in w.markers.values() if c.awg == name]
        options.setdefault("channels", max([2, *used]))
    return options


def standin_options(bench: LoadedBench, name: str) -> dict:
    """Parameters for a dry run's simulated stand-in of ``name``: whatever the bench is, its pair
    sources peak at the nominal crystal temperature, settle at once and give each detector about
    ten times the lit threshold at the operating current, so every check runs its whole course
    (and lists every call) without costing more than a dry run should."""
    options = physics_options(bench, name)
    cfg = bench.config
    if cfg.instrument(name).kind != InstrumentKind.PAIR_SOURCE or name not in cfg.operating:
        return options
    op = cfg.operating[name]
    slope = 0.1  # mW/mA, above a zero threshold
    pairs_hz = 20 * cfg.checks.light.lit_hz
    return {"mode": "cw", "pump_threshold_ma": 0.0, "pump_slope_mw_per_ma": slope,
            "pair_rate_per_mw_hz": pairs_hz / (slope * max(op.pump_current_ma, 1e-3)),
            "phase_matching_temperature_c": op.crystal_temperature_c, "oven_time_constant_ps": 0}


def build_world(bench: LoadedBench, clock, streams, *, options=physics_options, instant_oven: bool = False) -> World:
    """The World of ``bench`` with each instrument's parameters from ``options(bench, name)``;
    ``instant_oven`` makes crystal ovens settle at once (the emulated SPDC module reports its
    setpoint as the temperature at once, and the physics must agree)."""
    cfg = bench.config
    world = World(clock, streams)
    parameters = options
    for inst in cfg.instruments:
        options = parameters(bench, inst.name)
        prefix = f"simulation.physics.{inst.name}"
        if inst.kind == InstrumentKind.PAIR_SOURCE:
            params = dataclass_from_options(SpdcParams, options, prefix)
            world.add_source(inst.name, replace(params, oven_time_constant_ps=0) if instant_oven else params)
        elif inst.kind == InstrumentKind.TIME_TAGGER:
            world.add_tagger(inst.name, dataclass_from_options(TaggerParams, options, prefix))
        elif inst.kind == InstrumentKind.OPTICAL_SWITCH:
            world.add_switch(inst.name, dataclass_from_options(SwitchParams, options, prefix))
    wiring = bench.as_built
    for source in sorted({a.source for a in wiring.arms.values()}):
        arms = wiring.arms_of(source)
        world.add_spdc_link(SpdcLink(source, source, (_arm(bench, arms["signal"]), _arm(bench, arms["idler"]))))
    for cable in wiring.markers.values():
        world.wire_marker(cable.awg, cable.channel, cable.marker, MarkerWire(cable.tagger, cable.input,
                                                                             cable.delay_ps))
    return world


def _arm(bench: LoadedBench, arm) -> Arm:
    sim = bench.config.simulation
    wiring = bench.as_built
    name = next(n for n, a in wiring.arms.items() if a is arm)
    analysers = {}
    for output, detector in arm.detectors.items():
        cable = wiring.detectors[detector]
        params = dataclass_from_options(DetectorParams, dict(sim.detectors.get(detector, {})),
                                        f"simulation.detectors.{detector}")
        analysers[output] = Analyser(cable.tagger, (cable.input,), None, params)
    return Arm(Fibre(arm.fibre_m / 1000.0), analysers, sim.arm_loss_db.get(name, 0.0),
               (arm.switch, arm.switch_input) if arm.switch else None)
