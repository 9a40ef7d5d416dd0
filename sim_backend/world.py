"""The World: the physical model of one simulated testbed, shared by all its simulated instruments.

It holds the quantum registry (every memory qubit), the pair sources, optical switches, time-tagger
streams, SPDC links, memory links and marker wiring. Instruments read time from their node clock
and call into the World; the World generates physics lazily: before a tagger is read, or before a
source or switch changes state, everything up to that moment is generated (vectorised per chunk),
so results do not depend on how often anyone looks.

Each part draws from its own named random stream (``world/link:<name>``, ``world/tagger:<name>``),
so adding a part never changes another part's randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from qnode_fw.rng import RandomStreams

from .memory_link import MemoryLink
from .physics.spdc import SpdcParams
from .physics.switch import SwitchModel, SwitchParams
from .physics.tagger import TaggerParams, TagStream
from .qnic import Emission, SimQNIC
from .quantum.registry import QuantumRegistry
from .spdc_link import SpdcLink


@dataclass
class SourceState:
    """A pair source's pump and oven, with the crystal approaching its setpoint exponentially."""

    params: SpdcParams
    pump_on: bool = False
    current_ma: float = 0.0
    setpoint_c: float = 25.0
    _from_c: float = 25.0
    _since_ps: int = 0

    def temperature_c(self, t_ps: int) -> float:
        tau = self.params.oven_time_constant_ps
        if tau <= 0:
            return self.setpoint_c
        return self.setpoint_c + (self._from_c - self.setpoint_c) * math.exp(-(t_ps - self._since_ps) / tau)

    def set_setpoint(self, t_ps: int, celsius: float) -> None:
        self._from_c = self.temperature_c(t_ps)
        self._since_ps = t_ps
        self.setpoint_c = float(celsius)


@dataclass
class MarkerWire:
    """An AWG marker output cabled to a time-tagger input (``delay_ps`` of cable)."""

    tagger: str
    channel: int
    delay_ps: int = 0


@dataclass
class World:
    clock: object
    streams: RandomStreams
    loop: object | None = None
    registry: QuantumRegistry = None  # type: ignore[assignment]
    chunk_ps: int = 1_000_000_000  # SPDC generation granularity (1 ms): source state is constant per chunk
    sources: dict[str, SourceState] = field(default_factory=dict)
    switches: dict[str, SwitchModel] = field(default_factory=dict)
    taggers: dict[str, TagStream] = field(default_factory=dict)
    spdc_links: dict[str, SpdcLink] = field(default_factory=dict)
    memory_links: dict[str, MemoryLink] = field(default_factory=dict)
    qnics: dict[tuple[str, int], SimQNIC] = field(default_factory=dict)
    marker_wires: dict[tuple[str, int, int], list[MarkerWire]] = field(default_factory=dict)
    marker_listeners: list[Callable[[str, int, int, int], None]] = field(default_factory=list)
    lost_emissions: list[Emission] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.registry is None:
            self.registry = QuantumRegistry(self.clock)

    # -- random streams ---------------------------------------------------------------------
    def link_rng(self, name: str) -> np.random.Generator:
        return self.streams.get(f"world/link:{name}")

    def tagger_rng(self, name: str) -> np.random.Generator:
        return self.streams.get(f"world/tagger:{name}")

    # -- building ---------------------------------------------------------------------------
    def add_source(self, name: str, params: SpdcParams | None = None) -> SourceState:
        state = SourceState(params or SpdcParams())
        state._since_ps = self.clock.now_ps()
        self.sources[name] = state
        return state

    def add_switch(self, name: str, params: SwitchParams | None = None) -> SwitchModel:
        model = SwitchModel(params or SwitchParams())
        self.switches[name] = model
        return model

    def add_tagger(self, name: str, params: TaggerParams | None = None) -> TagStream:
        stream = TagStream(params or TaggerParams())
        self.taggers[name] = stream
        return stream

    def add_spdc_link(self, link: SpdcLink) -> SpdcLink:
        link.generated_until_ps = self.clock.now_ps()
        self.spdc_links[link.name] = link
        return link

    def add_memory_link(self, link: MemoryLink) -> MemoryLink:
        self.memory_links[link.name] = link
        return link

    def add_qnic(self, qnic: SimQNIC) -> None:
        self.qnics[(qnic.node, qnic.qnic_address)] = qnic
        qnic.emission_listeners.append(self.on_emission)

    def wire_marker(self, awg: str, channel: int, marker: int, wire: MarkerWire) -> None:
        self.marker_wires.setdefault((awg, channel, marker), []).append(wire)

    # -- time -------------------------------------------------------------------------------
    def advance(self, now_ps: int | None = None) -> None:
        """Generate all physics up to ``now_ps`` (default: the clock)."""
        now = self.clock.now_ps() if now_ps is None else int(now_ps)
        for link in self.memory_links.values():
            link.flush(now, self)
        for link in self.spdc_links.values():
            start = link.generated_until_ps
            if start is None or start >= now:
                continue
            rng = self.link_rng(link.name)
            while start < now:
                end = min(now, start + self.chunk_ps)
                link.generate(self, start, end, rng)
                start = end
            link.generated_until_ps = now

    # -- events from instruments ------------------------------------------------------------
    def on_emission(self, emission: Emission) -> None:
        key = emission.key
        candidates = [(link, side) for link in self.memory_links.values()
                      if (side := link.end_index(key)) is not None]
        chosen = None
        for link, side in candidates:
            sw = link.ends[side].switch
            if sw is None:
                if chosen is None:
                    chosen = (link, side)
                continue
            name, inp, out = sw
            if int(self.switches[name].route(inp, np.array([emission.time_ps]))[0]) == out:
                chosen = (link, side)
        if chosen is None:
            self.lost_emissions.append(emission)  # switch mid-way or no link: the photon is lost
            return
        link, side = chosen
        link.add_emission(side, emission, self)

    def marker_edges(self, awg: str, channel: int, marker: int, times_ps: np.ndarray) -> None:
        """An AWG marker produced rising edges at ``times_ps``: tag them where cabled, and
        notify listeners at those times on the loop (trigger events on the clock)."""
        for wire in self.marker_wires.get((awg, channel, marker), []):
            self.taggers[wire.tagger].write(wire.channel, np.asarray(times_ps) + wire.delay_ps,
                                            self.tagger_rng(wire.tagger))
        if self.loop is not None and self.marker_listeners:
            for t in np.asarray(times_ps).tolist():
                for listener in self.marker_listeners:
                    self.loop.call_at(int(t), listener, awg, channel, marker, int(t))
