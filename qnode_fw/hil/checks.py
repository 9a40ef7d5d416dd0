"""The bench checks and the plan that orders them by level.

=====  ==========================  ========================================================
level  check                       what it does
=====  ==========================  ========================================================
0      ``identify:<instrument>``   identification reply against the bench file's model
1      ``conformance:<tagger>``    the time-tagger interface's conformance checks
1      ``input_delays:<tagger>``   sets the calibrated (or zero) input delay on each wired input
1      ``awg_readback:<awg>``      uploads the test waveform and reads the AWG's memory back
2      ``conformance:<awg|switch>`` the AWG and optical-switch conformance checks
2      ``trigger_delay:<cable>``   a marker burst: trigger-to-tag delay, jitter, cycle period
3      ``conformance:<source>``    the pair-source conformance checks (turns the pump on)
3      ``pump_on_off:<source>``    detector rates with the pump off and on
3      ``switch_routing:<switch>`` light reaches only the detector behind the selected output
3      ``coincidence_delay:<src>`` signal-idler coincidence peak against the fibre lengths
3      ``temperature_scan:<src>``  crystal temperature scan finds the coincidence peak
=====  ==========================  ========================================================

Checks that need light set the source's operating point and turn the pump off when they end,
whatever happened; AWG outputs go off after the burst.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from qnode_fw.config.node import InstrumentKind

from .bench import LoadedBench
from .conformance import run_conformance
from .identity import identity_matches, identity_pattern
from .levels import Level
from .measure import (MS_PS, comb_channels, correlation_peak, count, judge_light, light_map, record, settle,
                      test_waveform)
from .session import Check, CheckContext, Session


def build_plan(bench: LoadedBench) -> list[Check]:
    cfg = bench.config
    names = partial(_names, cfg)
    plan = [Check(f"identify:{i.name}", Level.READ_ONLY, f"{i.name} identifies as a {i.model}",
                  partial(identify, name=i.name)) for i in cfg.instruments]
    for kind, level in ((InstrumentKind.TIME_TAGGER, Level.SETTINGS), (InstrumentKind.AWG, Level.OUTPUTS),
                        (InstrumentKind.OPTICAL_SWITCH, Level.OUTPUTS), (InstrumentKind.PAIR_SOURCE, Level.EMITS)):
        plan += [Check(f"conformance:{n}", level, f"{n} passes the {kind.value} interface's conformance checks",
                       partial(run_conformance, name=n)) for n in names(kind)]
    plan += [Check(f"input_delays:{n}", Level.SETTINGS, f"{n}'s wired inputs get their calibrated delays",
                   partial(input_delays, tagger=n)) for n in names(InstrumentKind.TIME_TAGGER)]
    plan += [Check(f"awg_readback:{n}", Level.SETTINGS, f"a waveform uploaded to {n} reads back identically",
                   partial(awg_readback, awg=n)) for n in names(InstrumentKind.AWG)]
    plan += [Check(f"trigger_delay:{c}", Level.OUTPUTS, f"marker cable {c}: trigger-to-tag delay and jitter",
                   partial(trigger_delay, cable_name=c)) for c in cfg.wiring.markers]
    for source in sorted({a.source for a in cfg.wiring.arms.values()}):
        plan.append(Check(f"pump_on_off:{source}", Level.EMITS, f"{source}'s pump turns the detector rates on "
                          "and off", partial(pump_on_off, source=source)))
        switches = sorted({a.switch for a in cfg.wiring.arms.values() if a.source == source and a.switch})
        plan += [Check(f"switch_routing:{s}", Level.EMITS, f"{s} routes light only to the selected output",
                       partial(switch_routing, switch=s, source=source)) for s in switches]
        plan.append(Check(f"coincidence_delay:{source}", Level.EMITS, f"{source}'s coincidence peak sits at the "
                          "fibre delay", partial(coincidence_delay, source=source)))
        plan.append(Check(f"temperature_scan:{source}", Level.EMITS, f"a crystal scan of {source} finds the "
                          "coincidence peak", partial(temperature_scan, source=source)))
    return sorted(plan, key=lambda c: c.level)  # stable: the order above within a level


def _names(cfg, kind: InstrumentKind) -> list[str]:
    return [i.name for i in cfg.of_kind(kind)]


# -- level 0 --------------------------------------------------------------------------------------

def identify(session: Session, ctx: CheckContext, name: str) -> None:
    inst = session.config.instrument(name)
    reply = session.instrument(name).identify()
    pattern = identity_pattern(inst)
    ctx.figure("identity", reply, configured=pattern)
    if not session.dry_run and not identity_matches(pattern, reply):
        origin = session.bench.where("instruments", session.config.instruments.index(inst), "model")
        ctx.fail(f"instrument {name} at {inst.resource!r} identifies as {reply!r}, not as the {inst.model} the "
                 f"bench file names at {origin} (expected /{pattern}/): wrong resource, or a wrong model")


# -- level 1 --------------------------------------------------------------------------------------

def input_delays(session: Session, ctx: CheckContext, tagger: str) -> None:
    for ch, delay in session.input_delays(tagger).items():
        source = "calibration" if ch in session.calibration.input_delays_ps.get(tagger, {}) else "none calibrated"
        ctx.figure(f"input_delay_ch{ch}", delay, "ps", configured=source)


def awg_readback(session: Session, ctx: CheckContext, awg: str) -> None:
    cfg = session.config.checks.trigger
    cables = [c for c in session.config.wiring.markers.values() if c.awg == awg]
    channel, marker = (cables[0].channel, cables[0].marker) if cables else (1, 1)
    wave = test_waveform(cfg, marker, session.config.bench.seed, awg)
    session.instrument(awg).upload_waveform(channel, wave.name, wave.samples, cfg.sample_rate_hz,
                                            markers=wave.markers)
    stored = session.rig.read_back_waveform(awg, channel, wave.name)
    if stored is None:
        ctx.skip(f"the {session.config.instrument(awg).model} driver gives no waveform read-back; the played "
                 "marker pattern is read back through the wiring by trigger_delay")
    sent = wave.samples.astype("<f4")
    stored = np.asarray(stored, dtype="<f4")
    differing = int(np.count_nonzero(sent != stored)) if stored.shape == sent.shape else sent.size
    ctx.figure("samples", int(stored.size), configured=int(sent.size))
    ctx.figure("differing_samples", differing, limit="== 0")
    if stored.shape != sent.shape or differing:
        ctx.fail(f"{awg} channel {channel} waveform {wave.name!r} reads back {stored.size} samples, "
                 f"{differing} of them different from the {sent.size} uploaded")


# -- level 2 --------------------------------------------------------------------------------------

def trigger_delay(session: Session, ctx: CheckContext, cable_name: str) -> None:
    cfg = session.config.checks.trigger
    cable = session.config.wiring.markers[cable_name]
    where = session.bench.where("wiring", "markers", cable_name, "input")
    applied = session.input_delays(cable.tagger)
    awg, tagger = session.instrument(cable.awg), session.instrument(cable.tagger)
    wave = test_waveform(cfg, cable.marker, session.config.bench.seed, cable.awg)
    ch = cable.channel
    awg.upload_waveform(ch, wave.name, wave.samples, cfg.sample_rate_hz, markers=wave.markers)
    awg.select_waveform(ch, wave.name)
    awg.set_amplitude_vpp(ch, cfg.amplitude_vpp)
    awg.set_offset_v(ch, 0.0)
    awg.configure_burst(ch, cfg.cycles, "BUS")
    awg.set_output(ch, True)
    awg.run()
    instants: list[int | None] = []
    try:
        def fire() -> None:
            instants.append(session.rig.trigger_instant_ps())
            awg.trigger()
        batch = record(session, cable.tagger, tagger.channels, cfg.burst_ps, fire)
    finally:
        awg.set_output(ch, False)
        awg.stop()
    offsets = wave.edge_offsets_ps(cfg)
    tags = batch.timestamps_ps[batch.channels == cable.input]
    ctx.figure("edges", int(tags.size), configured=cfg.cycles)
    if tags.size != cfg.cycles:
        message = (f"AWG {cable.awg} channel {ch} marker {cable.marker} played {cfg.cycles} edges; tagger "
                   f"{cable.tagger!r} channel {cable.input} recorded {tags.size}")
        elsewhere = comb_channels(batch, cfg.cycle_ps, 6 * np.sqrt(2) * cfg.max_jitter_rms_ps, cfg.cycles // 2,
                                  exclude=cable.input)
        if elsewhere:
            message += "; the burst arrived on " + ", ".join(f"tagger {cable.tagger!r} channel {c} ({n} edges)"
                                                             for c, n in elsewhere.items())
            message += f" instead: move the cable, or correct wiring.markers.{cable_name}.input at {where}"
        ctx.fail(message)
        return
    residuals = tags - offsets  # each edge's tag minus its place in the burst
    jitter = float(np.std(residuals, ddof=1))
    ctx.figure("jitter_rms", jitter, "ps", limit=f"<= {cfg.max_jitter_rms_ps:g} ps")
    if jitter > cfg.max_jitter_rms_ps:
        ctx.fail(f"marker cable {cable_name}: jitter {jitter:.1f} ps RMS exceeds {cfg.max_jitter_rms_ps:g} ps")
    period = float((tags[-1] - tags[0]) / (tags.size - 1))
    period_tolerance = 1.0 + 5 * np.sqrt(2) * cfg.max_jitter_rms_ps / (tags.size - 1)
    ctx.figure("cycle_period", period, "ps", configured=cfg.cycle_ps, limit=f"within {period_tolerance:.1f} ps")
    if abs(period - cfg.cycle_ps) > period_tolerance:
        ctx.fail(f"marker cable {cable_name}: the burst's cycle period reads back as {period:.1f} ps, the "
                 f"uploaded {cfg.samples} samples at {cfg.sample_rate_hz:g} Sa/s make {cfg.cycle_ps:.1f} ps")
    if instants[0] is None:
        ctx.note("trigger-to-tag delay not measured: no tagger timestamps a software trigger on a lab bench "
                 "(jitter and cycle period were)")
        return
    # The calibrated input delay in force cancels what the cable does not explain (the AWG's and
    # tagger's latencies), so a calibrated bench measures the cable's delay alone.
    delay = float(np.mean(residuals)) - instants[0]
    in_force = applied.get(cable.input, 0)
    residual = delay - cable.delay_ps
    ctx.figure("delay", delay, "ps", configured=cable.delay_ps, limit=f"within {cfg.delay_tolerance_ps} ps")
    ctx.figure("input_delay_in_force", in_force, "ps")
    if abs(residual) > cfg.delay_tolerance_ps:
        ctx.fail(f"marker cable {cable_name}: trigger-to-tag delay {delay:.0f} ps, {cable.cable_m:g} m of cable "
                 f"make {cable.delay_ps} ps (input delay in force {in_force} ps): check the cable length at "
                 f"{session.bench.where('wiring', 'markers', cable_name, 'cable_m')}, or run again with the "
                 "calibration this run measured")
    calibrated = int(round(in_force - residual))
    session.measured.input_delays_ps.setdefault(cable.tagger, {})[cable.input] = calibrated
    ctx.figure("calibrated_input_delay", calibrated, "ps")


# -- level 3 --------------------------------------------------------------------------------------

def _operate(session: Session, source: str) -> None:
    """Pump current and crystal temperature of the operating point; switched arms on their first
    output. The pump stays as it is."""
    op = session.config.operating[source]
    device = session.instrument(source)
    device.set_pump_current_ma(op.pump_current_ma)
    settle(session, source, session.crystal_temperature_c(source), session.config.checks.scan)
    for arm in session.config.wiring.arms.values():
        if arm.source == source and arm.switch:
            session.instrument(arm.switch).connect(arm.switch_input, min(arm.detectors))


def _rates(session: Session, taggers: set[str], duration_ps: int) -> dict[tuple[str, int], float]:
    out = {}
    for tagger in sorted(taggers):
        rates = count(session, tagger, session.instrument(tagger).channels, duration_ps)
        out.update({(tagger, ch): rate for ch, rate in rates.items()})
    return out


def _taggers_of(session: Session, source: str) -> set[str]:
    wiring = session.config.wiring
    return {wiring.detectors[d].tagger for a in wiring.arms.values() if a.source == source
            for d in a.detectors.values()}


def pump_on_off(session: Session, ctx: CheckContext, source: str) -> None:
    light = session.config.checks.light
    count_ps, settle_ps = int(light.count_ms * MS_PS), int(light.settle_ms * MS_PS)
    device = session.instrument(source)
    _operate(session, source)
    expected = light_map(session.config.wiring, source, {})
    taggers = _taggers_of(session, source)
    try:
        device.pump_off()
        session.rig.wait(settle_ps)
        off = _rates(session, taggers, count_ps)
        device.pump_on()
        session.rig.wait(settle_ps)
        on = _rates(session, taggers, count_ps)
    finally:
        device.pump_off()
    for (tagger, ch), (detector, lit) in sorted(expected.items()):
        if lit:
            ctx.figure(f"{detector}_on", on.get((tagger, ch), 0.0), "Hz", limit=f">= {light.lit_hz:g} Hz")
            ctx.figure(f"{detector}_off", off.get((tagger, ch), 0.0), "Hz", limit=f"<= {light.dark_hz:g} Hz")
    for problem in judge_light(session.bench, on, expected, light, f"{source} pump on"):
        ctx.fail(problem)
    dark = {ch: (det, False) for ch, (det, _) in expected.items()}
    for problem in judge_light(session.bench, off, dark, light, f"{source} pump off"):
        ctx.fail(problem)


def switch_routing(session: Session, ctx: CheckContext, switch: str, source: str) -> None:
    light = session.config.checks.light
    count_ps, settle_ps = int(light.count_ms * MS_PS), int(light.settle_ms * MS_PS)
    device, sw = session.instrument(source), session.instrument(switch)
    wiring = session.config.wiring
    arms = {n: a for n, a in wiring.arms.items() if a.switch == switch and a.source == source}
    taggers = _taggers_of(session, source)
    _operate(session, source)
    try:
        device.pump_on()
        for name, arm in arms.items():
            for output in [*sorted(arm.detectors), 0]:
                if output:
                    sw.connect(arm.switch_input, output)
                else:
                    sw.disconnect(arm.switch_input)
                session.rig.wait(settle_ps)
                rates = _rates(session, taggers, count_ps)
                situation = (f"switch {switch} input {arm.switch_input} -> output {output}" if output else
                             f"switch {switch} input {arm.switch_input} disconnected")
                expected = light_map(wiring, source, {name: output})
                for (tagger, ch), (detector, _) in sorted(expected.items()):
                    if detector in arm.detectors.values():  # the routing matrix, one figure per cell
                        label = f"out{output}" if output else "disconnected"
                        ctx.figure(f"{label}_{detector}", rates.get((tagger, ch), 0.0), "Hz")
                for problem in judge_light(session.bench, rates, expected, light, situation):
                    ctx.fail(problem)
            sw.connect(arm.switch_input, min(arm.detectors))
    finally:
        device.pump_off()


def _reference(session: Session, source: str) -> tuple[str, dict[int, str], str]:
    """(signal reference detector, idler detectors by output, idler arm name)."""
    wiring = session.config.wiring
    arms = wiring.arms_of(source)
    idler_name = next(n for n, a in wiring.arms.items() if a is arms["idler"])
    return arms["signal"].detectors[min(arms["signal"].detectors)], arms["idler"].detectors, idler_name


def coincidence_delay(session: Session, ctx: CheckContext, source: str) -> None:
    cc = session.config.checks.coincidence
    wiring = session.config.wiring
    arms = wiring.arms_of(source)
    ref, idlers, _ = _reference(session, source)
    ref_cable = wiring.detectors[ref]
    device = session.instrument(source)
    _operate(session, source)
    try:
        device.pump_on()
        for output, detector in sorted(idlers.items()):
            cable = wiring.detectors[detector]
            if cable.tagger != ref_cable.tagger:
                ctx.fail(f"detector {detector} is on tagger {cable.tagger!r}, the signal reference {ref} on "
                         f"{ref_cable.tagger!r}: coincidences need one tagger")
                continue
            if arms["idler"].switch:
                session.instrument(arms["idler"].switch).connect(arms["idler"].switch_input, output)
                session.rig.wait(int(session.config.checks.light.settle_ms * MS_PS))
            applied = session.input_delays(cable.tagger)
            batch = record(session, cable.tagger, [ref_cable.input, cable.input], int(cc.record_ms * MS_PS))
            peak = correlation_peak(batch, ref_cable.input, cable.input, cc.search_ps, cc.bin_ps, cc.window_ps)
            # As for marker cables: the input delays in force cancel what the fibres do not explain.
            expected = arms["idler"].delay_ps - arms["signal"].delay_ps
            ctx.figure(f"{detector}_coincidences", peak.coincidences, limit=f">= {cc.min_coincidences}")
            if peak.coincidences < cc.min_coincidences:
                ctx.fail(f"{detector} vs {ref}: {peak.coincidences} coincidences in {cc.record_ms:g} ms within "
                         f"±{cc.search_ps} ps, fewer than {cc.min_coincidences}: no pairs reach both detectors")
                continue
            residual = peak.delay_ps - expected
            ctx.figure(f"{detector}_delay", peak.delay_ps, "ps", configured=expected,
                       limit=f"within {cc.delay_tolerance_ps} ps")
            if abs(residual) > cc.delay_tolerance_ps:
                ctx.fail(f"{detector} vs {ref}: coincidence peak at {peak.delay_ps:.0f} ps, the fibre lengths say "
                         f"{expected} ps (input delays in force {applied.get(cable.input, 0)} and "
                         f"{applied.get(ref_cable.input, 0)} ps): check the fibres of arms {sorted(wiring.arms)}, "
                         "or run again with the calibration this run measured")
            session.measured.coincidence_delay_ps[(source, detector)] = peak.delay_ps
            calibrated = int(round(applied.get(cable.input, 0) - residual))
            session.measured.input_delays_ps.setdefault(cable.tagger, {})[cable.input] = calibrated
            ctx.figure(f"{detector}_calibrated_input_delay", calibrated, "ps")
    finally:
        device.pump_off()
        if arms["idler"].switch:
            session.instrument(arms["idler"].switch).connect(arms["idler"].switch_input, min(idlers))


def temperature_scan(session: Session, ctx: CheckContext, source: str) -> None:
    from timing.detection import count_coincidences

    sc, cc = session.config.checks.scan, session.config.checks.coincidence
    wiring = session.config.wiring
    op = session.config.operating[source]
    ref, idlers, _ = _reference(session, source)
    det = idlers[min(idlers)]
    ref_cable, det_cable = wiring.detectors[ref], wiring.detectors[det]
    arms = wiring.arms_of(source)
    centre = session.crystal_temperature_c(source)
    steps = int(round(sc.span_c / sc.step_c))
    temperatures = np.round(centre - sc.span_c / 2 + sc.step_c * np.arange(steps + 1), 3)
    device = session.instrument(source)
    _operate(session, source)
    rates = []
    peak_c = centre
    try:
        device.pump_on()
        delay = session.measured.coincidence_delay_ps.get((source, det))
        if delay is None:  # find the peak at the operating point (the fibres may not be what the file says)
            batch = record(session, ref_cable.tagger, [ref_cable.input, det_cable.input], int(cc.record_ms * MS_PS))
            peak = correlation_peak(batch, ref_cable.input, det_cable.input, cc.search_ps, cc.bin_ps, cc.window_ps)
            if peak.coincidences < cc.min_coincidences:
                ctx.fail(f"{source}: {peak.coincidences} coincidences between {ref} and {det} at the operating "
                         f"point, fewer than {cc.min_coincidences}: nothing to scan")
                return
            delay = peak.delay_ps
        ctx.figure("coincidence_delay", delay, "ps")
        for t in temperatures:
            settle(session, source, float(t), sc)
            batch = record(session, ref_cable.tagger, [ref_cable.input, det_cable.input], int(sc.record_ms * MS_PS))
            n = count_coincidences(batch.channels, batch.timestamps_ps, ref_cable.input, det_cable.input,
                                   window_ps=cc.window_ps, delay_ps=int(round(delay)))
            rates.append(n / (sc.record_ms * 1e-3))
        rates_arr = np.array(rates)
        fit = _peak(temperatures, rates_arr, sc.record_ms * 1e-3)
        ctx.figure("peak_rate", float(rates_arr.max()), "Hz")
        if isinstance(fit, str):
            ctx.fail(f"{source}: {fit} (scan {temperatures[0]:g}..{temperatures[-1]:g} C)")
            return
        peak_c, error_c, width_c = fit
        ctx.figure("peak_temperature", peak_c, "C", configured=op.crystal_temperature_c,
                   limit=f"within {sc.tolerance_c:g} C")
        ctx.figure("peak_temperature_error", error_c, "C")
        ctx.figure("half_max_width", width_c, "C")
        if abs(peak_c - op.crystal_temperature_c) > sc.tolerance_c:
            ctx.fail(f"{source}: the coincidence rate peaks at {peak_c:.2f} C, {abs(peak_c - op.crystal_temperature_c):.2f} C "
                     f"from the nominal {op.crystal_temperature_c:g} C "
                     f"({session.bench.where('operating', source, 'crystal_temperature_c')})")
        session.measured.crystal_temperature_c[source] = round(peak_c, 3)
    finally:
        device.pump_off()
        device.set_crystal_temperature_c(peak_c)


def _peak(temperatures: np.ndarray, rates: np.ndarray, seconds: float) -> tuple[float, float, float] | str:
    """Vertex of a parabola fitted (weighted by counting error) to the points at or above half the
    highest rate, its counting error, and the full width at half maximum; or why there is no peak."""
    top = float(rates.max())
    if top <= 0:
        return "no coincidences at any temperature"
    above = np.flatnonzero(rates >= top / 2)
    if above[0] == 0 or above[-1] == rates.size - 1:
        return "the rate is still at half its maximum at an end of the scan: widen checks.scan.span_c"
    if above.size < 3:
        return "fewer than 3 points above half maximum: use a smaller checks.scan.step_c"
    counts = rates[above] * seconds
    (a, b, _), cov = np.polyfit(temperatures[above], counts, 2, w=1 / np.sqrt(np.maximum(counts, 1)),
                                cov="unscaled")
    if a >= 0:
        return "the rates around the maximum do not form a peak"
    # Counting error of the vertex -b/2a, propagated from the fit's covariance.
    grad = np.array([b / (2 * a * a), -1 / (2 * a)])
    error = float(np.sqrt(grad @ cov[:2, :2] @ grad))

    def crossing(inside: int, outside: int) -> float:  # linear interpolation to half maximum
        r0, r1 = rates[outside], rates[inside]
        t0, t1 = temperatures[outside], temperatures[inside]
        return float(t0 + (top / 2 - r0) / (r1 - r0) * (t1 - t0))

    width = crossing(above[-1], above[-1] + 1) - crossing(above[0], above[0] - 1)
    return float(-b / (2 * a)), error, width
