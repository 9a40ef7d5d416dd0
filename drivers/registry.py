"""Driver registry: which class serves which (kind, model), and opening an instrument from its spec.

Drivers register themselves with :func:`register_driver`. The registry imports the driver modules
lazily (opening a node should not import every vendor library), from :data:`DRIVER_MODULES`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from qnode_fw.errors import ConfigError

from .instrument import Instrument

#: Modules that register drivers. ``sim_backend.instruments`` (the simulated instruments, model
#: ``sim`` for every kind) may be absent in a partial checkout; it alone is optional.
DRIVER_MODULES: tuple[str, ...] = (
    "drivers.keysight_33500",
    "drivers.tektronix_awg70k",
    "drivers.swabian_tagger",
    "drivers.idq_id900",
    "drivers.ptu_replay_tagger",
    "drivers.polatis",
    "drivers.dicon_mems",
    "drivers.agiltron_switch",
    "drivers.qubitekk_spdc",
    "drivers.thorlabs_pump_oven",
    "drivers.qnic_lab",
    "sim_backend.instruments",
)
OPTIONAL_MODULES = frozenset({"sim_backend.instruments"})

#: Interface class name per kind, for listings.
INTERFACES = {
    "awg": "drivers.awg.AWG",
    "time_tagger": "drivers.time_tagger.TimeTagger",
    "optical_switch": "drivers.optical_switch.OpticalSwitch",
    "pair_source": "drivers.pair_source.PhotonPairSource",
    "qnic": "drivers.qnic.QNIC",
}


@dataclass(frozen=True)
class InstrumentSpec:
    """One ``instruments[]`` entry of a node YAML."""

    name: str
    kind: str
    model: str
    resource: str
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


@dataclass
class DriverContext:
    """What a node hands a driver besides its spec (all optional)."""

    clock: Any = None  # qnode_fw.clock.Clock
    loop: Any = None  # qnode_fw.loop.EventLoop
    streams: Any = None  # qnode_fw.rng.RandomStreams
    world: Any = None  # the simulated backend's shared physical model
    instruments: dict[str, Instrument] = field(default_factory=dict)  # already opened, by name


@dataclass(frozen=True, slots=True)
class DriverInfo:
    kind: str
    model: str
    transport: str
    description: str
    interface: str
    cls: type

    @property
    def qualname(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


_DRIVERS: dict[tuple[str, str], DriverInfo] = {}
_loaded = False


def register_driver(*, kind: str, model: str, transport: str, description: str = "") -> Callable[[type], type]:
    """Class decorator: make ``cls`` the driver of ``model`` for ``kind``."""

    def decorate(cls: type) -> type:
        if not hasattr(cls, "from_config"):
            raise TypeError(f"{cls.__qualname__} needs a from_config(spec, context) classmethod")
        key = (kind, model)
        existing = _DRIVERS.get(key)
        if existing is not None and existing.cls is not cls and existing.qualname != \
                f"{cls.__module__}.{cls.__qualname__}":
            raise TypeError(f"driver for kind={kind!r} model={model!r} already registered by "
                            f"{existing.qualname}")
        cls.model = model
        _DRIVERS[key] = DriverInfo(kind, model, transport, description or (cls.__doc__ or "").strip()
                                   .split("\n")[0], INTERFACES.get(kind, kind), cls)
        return cls

    return decorate


def load_drivers() -> None:
    global _loaded
    if _loaded:
        return
    for module in DRIVER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if module in OPTIONAL_MODULES and exc.name is not None and module.startswith(exc.name):
                continue
            raise
    _loaded = True


def all_drivers() -> list[DriverInfo]:
    load_drivers()
    return sorted(_DRIVERS.values(), key=lambda d: (d.kind, d.model))


def driver_for(kind: str, model: str) -> DriverInfo:
    load_drivers()
    info = _DRIVERS.get((kind, model))
    if info is None:
        known = sorted(m for k, m in _DRIVERS if k == kind)
        raise ConfigError(f"no driver for model {model!r} of kind {kind!r}", field="model",
                          expected=", ".join(known) if known else f"a registered {kind} model")
    return info


def open_instrument(spec: InstrumentSpec, context: DriverContext | None = None) -> Instrument:
    info = driver_for(spec.kind, spec.model)
    context = context or DriverContext()
    # A World in another process (sim_backend.remote.RemoteWorld, processes mode) opens the
    # simulated instruments itself: they live where the physics is.
    serve = getattr(context.world, "open_instrument", None)
    if spec.model == "sim" and serve is not None:
        return serve(spec, context)
    return info.cls.from_config(spec, context)
