"""The measurements wiring checks are made of, on any rig: counting, recording tags while something
happens, the test waveform, a marker comb in a tag stream, the coincidence peak, and judging which
tagger channels are lit against what the wiring says."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from drivers.time_tagger import TagBatch
from qnode_fw.errors import InstrumentError
from timing import kernels

from .bench import LoadedBench, Wiring
from .checks_config import LightCheck, ScanCheck, TriggerCheck
from .session import Session

MS_PS = 1_000_000_000


def count(session: Session, tagger: str, channels: list[int], duration_ps: int) -> dict[int, float]:
    rates = session.instrument(tagger).count_rates_hz(list(channels), int(duration_ps))
    session.rig.counted(duration_ps)
    return rates


def record(session: Session, tagger: str, channels: list[int], duration_ps: int,
           action: Callable[[], None] | None = None) -> TagBatch:
    """Stream ``channels`` for ``duration_ps`` after doing ``action`` (a trigger, say)."""
    device = session.instrument(tagger)
    device.start_stream(list(channels))
    try:
        if action is not None:
            action()
        session.rig.wait(int(duration_ps))
        return device.read_stream()
    finally:
        device.stop_stream()


@dataclass(frozen=True)
class TestWaveform:
    __test__ = False  # not a pytest class
    name: str
    samples: np.ndarray  # float, within [-0.9, 0.9]
    markers: np.ndarray  # uint8, the cabled marker's bit high from ``marker_sample`` on

    def edge_offsets_ps(self, cfg: TriggerCheck) -> np.ndarray:
        """Where each cycle's marker edge falls after the trigger, ps (float)."""
        return (np.arange(cfg.cycles) * cfg.samples + cfg.marker_sample) * 1e12 / cfg.sample_rate_hz


def test_waveform(cfg: TriggerCheck, marker: int, seed: int, label: str) -> TestWaveform:
    """A reproducible waveform of random samples (so a byte-order or block error cannot read back
    equal) whose marker ``marker`` rises once per cycle, at ``cfg.marker_sample``."""
    rng = np.random.default_rng([seed, cfg.samples])
    samples = rng.uniform(-0.9, 0.9, cfg.samples)
    markers = np.zeros(cfg.samples, np.uint8)
    markers[cfg.marker_sample:cfg.marker_sample + 16] = 1 << (marker - 1)
    name = ("hil" + re.sub(r"[^A-Za-z0-9]", "", label))[:12]
    return TestWaveform(name, samples, markers)


def comb_channels(batch: TagBatch, period_ps: float, tolerance_ps: float, min_edges: int,
                  exclude: int | None = None) -> dict[int, int]:
    """Channels (but ``exclude``) carrying a comb of ``period_ps``: how many consecutive tags are
    one period apart. Random light does not line up so; a marker burst does."""
    found = {}
    for ch in np.unique(batch.channels).tolist():
        if ch == exclude:
            continue
        t = batch.timestamps_ps[batch.channels == ch]
        hits = int(np.count_nonzero(np.abs(np.diff(t) - period_ps) <= tolerance_ps))
        if hits + 1 >= min_edges:
            found[int(ch)] = hits + 1
    return found


@dataclass(frozen=True)
class Peak:
    delay_ps: float  # centroid of the coincidence peak, t_det - t_ref
    coincidences: int  # tags pairs inside the window around it, background subtracted
    background: float  # accidental pairs per ps of delay


def correlation_peak(batch: TagBatch, ch_ref: int, ch_det: int, search_ps: int, bin_ps: int,
                     window_ps: int) -> Peak:
    """The highest bin of the ``t_det - t_ref`` histogram over ``±search_ps``, then the centroid of
    1 ps bins (timestamps are whole ps) over ``window_ps`` around it, with the flat accidental
    background removed."""
    a, b = kernels.split_two_channels(batch.channels.astype(np.int32), batch.timestamps_ps.astype(np.int64),
                                      ch_ref, ch_det)
    n_bins = max(1, 2 * search_ps // bin_ps)
    coarse = kernels.correlation_sorted(a, b, -search_ps, bin_ps, n_bins)
    if coarse.sum() == 0:
        return Peak(float("nan"), 0, 0.0)
    k = int(np.argmax(coarse))
    centre = -search_ps + (k + 0.5) * bin_ps
    lo = int(round(centre - window_ps / 2))
    fine = kernels.correlation_sorted(a, b, lo, 1, window_ps).astype(float)
    background = float(np.median(coarse)) / bin_ps
    signal = np.clip(fine - background, 0.0, None)
    total = float(signal.sum())
    if total <= 0:
        return Peak(float(centre), 0, background)
    delay = lo + float((signal * np.arange(window_ps)).sum()) / total  # 1 ps bin i holds delay lo + i
    return Peak(delay, int(round(total)), background)


def settle(session: Session, source: str, target_c: float, cfg: ScanCheck) -> None:
    """Set the crystal to ``target_c`` and wait until it reads within the settle tolerance."""
    device = session.instrument(source)
    device.set_crystal_temperature_c(target_c)
    waited = 0.0
    while abs((reading := device.crystal_temperature_c()) - target_c) > cfg.settle_tolerance_c:
        if waited >= cfg.settle_timeout_s:
            raise InstrumentError(f"crystal reads {reading:.3f} C after {waited:g} s, setpoint {target_c:.3f} C "
                                  f"(tolerance {cfg.settle_tolerance_c} C, checks.scan.settle_timeout_s)",
                                  resource=device.resource, command="crystal_temperature_c()")
        session.rig.wait(int(cfg.poll_ms * MS_PS))
        waited += cfg.poll_ms / 1000.0


# -- which channels should be lit ------------------------------------------------------------------

Channel = tuple[str, int]  # (tagger, input)


def light_map(wiring: Wiring, source: str, routes: dict[str, int]) -> dict[Channel, tuple[str, bool]]:
    """Every detector of ``source``'s arms with whether light reaches it, given the output each
    switched arm is routed to (``routes[arm name]``; 0 = disconnected, absent = its first output)."""
    out: dict[Channel, tuple[str, bool]] = {}
    for name, arm in wiring.arms.items():
        if arm.source != source:
            continue
        selected = routes.get(name, min(arm.detectors))
        for output, detector in arm.detectors.items():
            cable = wiring.detectors[detector]
            out[(cable.tagger, cable.input)] = (detector, output == selected)
    return out


def judge_light(bench: LoadedBench, rates: dict[Channel, float], expected: dict[Channel, tuple[str, bool]],
                cfg: LightCheck, situation: str) -> list[str]:
    """Problems, each naming the tagger, channel and detector, and where the light went instead."""
    problems = []
    wired = {(c.tagger, c.input) for c in [*bench.config.wiring.detectors.values(),
                                           *bench.config.wiring.markers.values()]}
    stray = {ch: r for ch, r in rates.items() if r >= cfg.lit_hz and ch not in expected}
    for (tagger, ch), (detector, lit) in sorted(expected.items()):
        rate = rates.get((tagger, ch), 0.0)
        if lit and rate < cfg.lit_hz:
            text = (f"{situation}: detector {detector} should light tagger {tagger!r} channel {ch} but it "
                    f"counted {rate:.0f} Hz (lit means >= {cfg.lit_hz:g} Hz)")
            elsewhere = [(c, r) for (t, c), r in sorted(stray.items()) if t == tagger]
            if elsewhere:
                where = ", ".join(f"channel {c} ({r:.3g} Hz)" for c, r in elsewhere)
                text += (f"; light arrived on tagger {tagger!r} {where} instead: check detector {detector}'s "
                         f"cable, or wiring.detectors.{detector}.input at {bench.where('wiring', 'detectors', detector, 'input')}")
                for c, _ in elsewhere:
                    stray.pop((tagger, c))
            problems.append(text)
        elif not lit and rate > cfg.dark_hz:
            problems.append(f"{situation}: tagger {tagger!r} channel {ch} (detector {detector}) counted "
                            f"{rate:.3g} Hz but should be dark (<= {cfg.dark_hz:g} Hz)")
    for (tagger, ch), rate in sorted(stray.items()):
        owner = "which the bench file wires to something else" if (tagger, ch) in wired else \
            "which the bench file does not wire"
        problems.append(f"{situation}: tagger {tagger!r} channel {ch} counted {rate:.3g} Hz, {owner}")
    return problems
