"""What every simulated instrument shares: finding the World, clock and random stream in the
DriverContext, and reading typed options from the instrument spec."""

from __future__ import annotations

from dataclasses import fields

from drivers.limits import SafetyLimits
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import ConfigError
from qnode_fw.rng import RandomStreams


def world_from_context(spec, context):
    """The testbed World from ``context``; a node opened alone gets a private World on its clock."""
    from sim_backend.world import World

    if context is not None and context.world is not None:
        return context.world
    clock = getattr(context, "clock", None) or VirtualClock()
    streams = getattr(context, "streams", None) or RandomStreams(0)
    world = World(clock, streams, getattr(context, "loop", None))
    if context is not None:
        context.world = world
        context.clock = clock
        context.streams = streams
    return world


def limits_of(spec) -> SafetyLimits:
    return SafetyLimits(dict(spec.limits))


def dataclass_from_options(cls, options: dict, field_prefix: str):
    """Build ``cls`` from a dict, naming the offending field on a bad key or value."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}", field=f"{field_prefix}.{unknown[0]}",
                          expected=", ".join(sorted(known)))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), field=field_prefix) from None
