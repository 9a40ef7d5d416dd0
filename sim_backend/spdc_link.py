"""An SPDC link: a pair source whose two photons travel down two arms to analysers and detectors.

Each arm: fibre, extra loss (coupling, filters), optionally an optical switch that selects one of
several analysers (e.g. two measurement bases for CHSH), and per analyser one detector per outcome,
each wired to a time-tagger channel. Generation is vectorised per chunk of pump time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .physics import polarization as pol
from .physics.detector import DetectorParams, detect
from .physics.fibre import Fibre, db_to_transmission
from .physics.spdc import sample_cw_pairs, sample_pulsed_pairs


@dataclass(frozen=True)
class Analyser:
    """A polarisation analyser at ``angle_deg`` (or ``"circular"``: quarter-wave plate first) with
    detectors on ``channels`` (outcome 0, 1), or ``angle_deg=None`` and one channel: a bare
    detector that sees every photon."""

    tagger: str
    channels: tuple[int, ...]
    angle_deg: float | str | None = None
    detector: DetectorParams = field(default_factory=DetectorParams)

    def __post_init__(self) -> None:
        want = 1 if self.angle_deg is None else 2
        if len(self.channels) != want:
            raise ValueError(f"an analyser at angle {self.angle_deg} needs {want} channel(s), got {self.channels}")


@dataclass(frozen=True)
class Arm:
    fibre: Fibre
    analysers: dict[int, Analyser]  # by switch output port (1 without a switch)
    extra_loss_db: float = 0.0
    switch: tuple[str, int] | None = None  # (switch name, input port) at the arm's far end


@dataclass
class SpdcLink:
    name: str
    source: str
    arms: tuple[Arm, Arm]
    generated_until_ps: int | None = None
    pairs_generated: int = 0
    #: last registered click per (tagger, channel), so dead time spans chunk boundaries
    last_click: dict[tuple[str, int], int] = field(default_factory=dict)

    def generate(self, world, start_ps: int, end_ps: int, rng: np.random.Generator) -> None:
        state = world.sources[self.source]
        params = state.params
        if state.pump_on:
            temperature = state.temperature_c(start_ps)
            if params.mode == "pulsed":
                mu = params.mean_pairs_per_pulse(state.current_ma, temperature)
                times = sample_pulsed_pairs(mu, start_ps, end_ps, params.period_ps, rng)
            else:
                times = sample_cw_pairs(params.pair_rate_hz(state.current_ma, temperature), start_ps, end_ps, rng)
        else:
            times = np.empty(0, np.int64)
        self.pairs_generated += int(times.size)
        ports = []
        for arm in self.arms:
            if arm.switch is None:
                ports.append(np.ones(times.size, np.int64))
            else:
                sw_name, sw_input = arm.switch
                ports.append(world.switches[sw_name].route(sw_input, times + arm.fibre.delay_ps))
        rho = params.polarization_state()
        outcomes = [np.zeros(times.size, np.int64), np.zeros(times.size, np.int64)]
        # photons a switch blocks (port 0) or routes nowhere are lost; the other photon of the
        # pair is then analysed with its marginal state (angle None on the lost side)
        for pa in [0, *self.arms[0].analysers]:
            sel_a = ports[0] == pa
            if not sel_a.any():
                continue
            for pb in [0, *self.arms[1].analysers]:
                sel = sel_a & (ports[1] == pb)
                count = int(np.count_nonzero(sel))
                if count == 0:
                    continue
                an_a = self.arms[0].analysers.get(int(pa))
                an_b = self.arms[1].analysers.get(int(pb))
                probs = pol.outcome_probabilities(rho, an_a.angle_deg if an_a else None,
                                                  an_b.angle_deg if an_b else None)
                if probs.size == 1:
                    continue  # no analyser on either side: a single outcome
                ra, rb = pol.sample_outcomes(probs, count, rng)
                outcomes[0][sel] = ra
                outcomes[1][sel] = rb
        for arm, port, outcome in zip(self.arms, ports, outcomes):
            base = arm.fibre.transmission * db_to_transmission(arm.extra_loss_db)
            if arm.switch is not None:
                base *= world.switches[arm.switch[0]].params.transmission
            arrivals = times + arm.fibre.delay_ps
            u = rng.random(times.size)
            for p, analyser in arm.analysers.items():
                for r, channel in enumerate(analyser.channels):
                    hit = (port == p) & (outcome == r) & (u < base * analyser.detector.efficiency)
                    key = (analyser.tagger, channel)
                    clicks = detect(arrivals[hit], start_ps + arm.fibre.delay_ps, end_ps + arm.fibre.delay_ps,
                                    analyser.detector, rng, apply_efficiency=False,
                                    previous_click_ps=self.last_click.get(key))
                    if clicks.size:
                        self.last_click[key] = int(clicks[-1])
                        world.taggers[analyser.tagger].write(channel, clicks, world.tagger_rng(analyser.tagger))
