"""SPDC links against closed forms: pulsed coincidences, accidentals and CAR vs μ (thermal
multi-pair statistics, efficiencies, dark counts, window), CW rates with jitter, the phase-matching
temperature scan, CHSH with switch-selected bases and polarisation tomography."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, NS, S
from sim_backend.physics import spdc
from sim_backend.physics.detector import DetectorParams
from sim_backend.physics.fibre import Fibre
from sim_backend.physics.tagger import TaggerParams
from sim_backend.spdc_link import Analyser, Arm, SpdcLink
from sim_backend.world import World


def rig(params, arms, seed=1, tagger=TaggerParams(jitter_rms_ps=0.0)):
    clock = VirtualClock()
    streams = RandomStreams(seed)
    world = World(clock, streams)
    ctx = DriverContext(clock=clock, streams=streams, world=world)
    world.add_tagger("tt", tagger)
    world.add_source("src", params)
    source = open_instrument(InstrumentSpec("src", "pair_source", "sim", "sim"), ctx)
    tt = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), ctx)
    world.add_spdc_link(SpdcLink("l", "src", arms))
    return world, clock, source, tt


def bare_arm(channel, km, eta, dark_hz, jitter_fwhm_ps=15.0, extra_db=0.0):
    return Arm(Fibre(km), {1: Analyser("tt", (channel,), None,
                                       DetectorParams(eta, dark_hz, 20 * NS, jitter_fwhm_ps))}, extra_db)


def pulse_index(t, delay, period, window):
    rel = t - delay
    k = np.rint(rel / period).astype(np.int64)
    return np.unique(k[np.abs(rel - k * period) <= window // 2])


def within(count, expected, sigmas=3.0):
    return abs(count - expected) <= sigmas * math.sqrt(max(expected, 1.0))


@pytest.mark.parametrize("mu, eta_a, eta_b, dark_a, dark_b, window", [
    (0.01, 0.5, 0.3, 50_000.0, 20_000.0, 2 * NS),
    (0.1, 0.5, 0.3, 50_000.0, 20_000.0, 2 * NS),
    (0.4, 0.5, 0.3, 50_000.0, 20_000.0, 2 * NS),
    (0.01, 0.9, 0.9, 200_000.0, 200_000.0, 5 * NS),  # darks matter, wide window (dead fraction 0.4 %)
    (0.05, 0.1, 0.6, 500_000.0, 100.0, 500),  # low efficiency, narrow window
])
def test_pulsed_coincidences_accidentals_and_car(mu, eta_a, eta_b, dark_a, dark_b, window):
    rep = 10e6
    params = spdc.SpdcParams(mode="pulsed", repetition_rate_hz=rep, pair_rate_per_mw_hz=mu * rep,
                             pump_threshold_ma=0.0, pump_slope_mw_per_ma=0.1, oven_time_constant_ps=0,
                             phase_matching_temperature_c=30.0)
    # 2 km of fibre at 0.2 dB/km on arm a: the closed form uses η = η_det · 10^(-0.04)
    world, clock, source, tt = rig(params, (bare_arm(1, 2.0, eta_a, dark_a), bare_arm(2, 0.0, eta_b, dark_b)))
    source.set_crystal_temperature_c(30.0)
    source.set_pump_current_ma(10.0)  # 1 mW
    source.pump_on()
    tt.start_stream([1, 2])
    duration = 200 * MS
    clock.advance_to(duration)
    batch = tt.read_stream()
    period = params.period_ps
    fibre = Fibre(2.0)
    ka = pulse_index(batch.timestamps_ps[batch.channels == 1], fibre.delay_ps, period, window)
    kb = pulse_index(batch.timestamps_ps[batch.channels == 2], 0, period, window)
    n_pulses = duration // period
    ea, eb = eta_a * fibre.transmission, eta_b
    da = DetectorParams(eta_a, dark_a).dark_probability(window)
    db = DetectorParams(eta_b, dark_b).dark_probability(window)
    p_cc = spdc.thermal_coincidence_probability(mu, ea, eb, da, db)
    p_acc = spdc.thermal_click_probability(mu, ea, da) * spdc.thermal_click_probability(mu, eb, db)
    coincidences = np.intersect1d(ka, kb).size
    accidentals = np.intersect1d(ka + 1, kb).size  # a in pulse k, b in pulse k+1
    assert within(ka.size, n_pulses * spdc.thermal_click_probability(mu, ea, da))
    assert within(coincidences, n_pulses * p_cc)
    assert within(accidentals, n_pulses * p_acc)
    car = coincidences / accidentals
    car_err = car * math.sqrt(1 / coincidences + 1 / accidentals)
    assert abs(car - p_cc / p_acc) <= 3 * car_err


def test_cw_coincidence_and_accidental_rates_with_jitter_and_window():
    rate = 1.0e6
    eta_a, eta_b = 0.1, 0.15
    dark = 1000.0
    jitter_fwhm = 300.0
    window = 300
    params = spdc.SpdcParams(mode="cw", pair_rate_per_mw_hz=rate, pump_threshold_ma=0.0,
                             pump_slope_mw_per_ma=0.1, oven_time_constant_ps=0, phase_matching_temperature_c=25.0)
    world, clock, source, tt = rig(params, (bare_arm(1, 0.0, eta_a, dark, jitter_fwhm),
                                            bare_arm(2, 0.0, eta_b, dark, jitter_fwhm)))
    source.set_crystal_temperature_c(25.0)
    source.set_pump_current_ma(10.0)
    source.pump_on()
    tt.start_stream([1, 2])
    duration = 2 * S
    clock.advance_to(duration)
    batch = tt.read_stream()
    ta = batch.timestamps_ps[batch.channels == 1]
    tb = batch.timestamps_ps[batch.channels == 2]

    def count(offset):
        lo = np.searchsorted(tb, ta + offset - window // 2, side="left")
        hi = np.searchsorted(tb, ta + offset + window // 2, side="left")
        return int((hi - lo).sum())

    sigma = math.sqrt(2) * jitter_fwhm / 2.3548
    true_rate, acc_rate = spdc.cw_rates(rate, eta_a, eta_b, dark, dark, window, sigma)
    assert within(ta.size, (rate * eta_a + dark) * 2, 3.5)
    assert within(count(0), (true_rate + acc_rate) * 2)
    assert within(count(100 * NS), acc_rate * 2)


def test_temperature_scan_finds_the_phase_matching_optimum():
    t0 = 36.3
    params = spdc.SpdcParams(mode="pulsed", repetition_rate_hz=10e6, pair_rate_per_mw_hz=2e5,
                             pump_threshold_ma=0.0, pump_slope_mw_per_ma=0.1,
                             phase_matching_temperature_c=t0, phase_matching_fwhm_c=2.0,
                             oven_time_constant_ps=50 * MS)
    world, clock, source, tt = rig(params, (bare_arm(1, 0.0, 0.5, 100.0), bare_arm(2, 0.0, 0.5, 100.0)))
    source.set_pump_current_ma(10.0)
    source.pump_on()
    tt.start_stream([1, 2])
    temps = np.arange(32.0, 40.01, 0.5)
    counts = []
    for temp in temps:
        source.set_crystal_temperature_c(float(temp))
        clock.advance_to(clock.now_ps() + 500 * MS)  # settle 10 time constants
        tt.read_stream()
        clock.advance_to(clock.now_ps() + 100 * MS)
        b = tt.read_stream()
        ka = pulse_index(b.timestamps_ps[b.channels == 1], 0, params.period_ps, 2 * NS)
        kb = pulse_index(b.timestamps_ps[b.channels == 2], 0, params.period_ps, 2 * NS)
        counts.append(np.intersect1d(ka, kb).size)
    counts = np.array(counts, float)
    i = int(np.argmax(counts))
    # parabola through the peak and its neighbours refines the optimum below the step
    y0, y1, y2 = counts[i - 1], counts[i], counts[i + 1]
    peak = temps[i] + 0.5 * 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
    assert abs(peak - t0) < 0.25
    assert source.crystal_temperature_c() == pytest.approx(40.0, abs=0.01)


def chsh_rig(visibility, seed=3):
    # μ = 5e-4: multi-pair coincidences (which lower S below 2√2·V) stay below 0.1 %
    params = spdc.SpdcParams(mode="pulsed", repetition_rate_hz=80e6, pair_rate_per_mw_hz=4e4,
                             pump_threshold_ma=0.0, pump_slope_mw_per_ma=0.1, visibility=visibility,
                             phase_matching_temperature_c=30.0, oven_time_constant_ps=0)
    det = DetectorParams(0.8, 10.0, 20 * NS, 15.0)
    arm_a = Arm(Fibre(1.0), {1: Analyser("tt", (1, 2), 0.0, det), 2: Analyser("tt", (3, 4), 45.0, det)},
                switch=("swA", 1))
    arm_b = Arm(Fibre(1.0), {1: Analyser("tt", (5, 6), 22.5, det), 2: Analyser("tt", (7, 8), 67.5, det)},
                switch=("swB", 1))
    world, clock, source, tt = rig(params, (arm_a, arm_b), seed)
    ctx = DriverContext(clock=clock, streams=world.streams, world=world)
    swa = open_instrument(InstrumentSpec("swA", "optical_switch", "sim", "sim",
                                         options={"num_outputs": 2, "switching_time_ps": 1 * MS}), ctx)
    swb = open_instrument(InstrumentSpec("swB", "optical_switch", "sim", "sim",
                                         options={"num_outputs": 2, "switching_time_ps": 1 * MS}), ctx)
    source.set_crystal_temperature_c(30.0)
    source.set_pump_current_ma(10.0)
    source.pump_on()
    return world, clock, tt, swa, swb


def correlation_counts(batch, channels_a, channels_b, delay, period):
    out = np.zeros((2, 2))
    idx = {}
    for ch in (*channels_a, *channels_b):
        idx[ch] = pulse_index(batch.timestamps_ps[batch.channels == ch], delay, period, 2 * NS)
    for ra, ca in enumerate(channels_a):
        for rb, cb in enumerate(channels_b):
            out[ra, rb] = np.intersect1d(idx[ca], idx[cb]).size
    return out


@pytest.mark.parametrize("visibility", [1.0, 0.85])
def test_chsh_with_switch_selected_bases(visibility):
    world, clock, tt, swa, swb = chsh_rig(visibility)
    tt.start_stream(list(range(1, 9)))
    delay = Fibre(1.0).delay_ps
    settings = {(1, 1): ((1, 2), (5, 6)), (1, 2): ((1, 2), (7, 8)), (2, 1): ((3, 4), (5, 6)), (2, 2): ((3, 4), (7, 8))}
    e = {}
    for (pa, pb), (cha, chb) in settings.items():
        swa.connect(1, pa)
        swb.connect(1, pb)
        clock.advance_to(clock.now_ps() + 2 * MS)  # switching time: no light passes
        tt.read_stream()
        clock.advance_to(clock.now_ps() + 300 * MS)
        n = correlation_counts(tt.read_stream(), cha, chb, delay, 12_500)
        e[(pa, pb)] = (n[0, 0] + n[1, 1] - n[0, 1] - n[1, 0]) / n.sum()
        e[(pa, pb, "n")] = n.sum()
    s = e[(1, 1)] - e[(1, 2)] + e[(2, 1)] + e[(2, 2)]
    # each E has variance (1 - E²)/N; S sums four independent estimates
    var = sum((1 - e[k] ** 2) / e[(*k, "n")] for k in settings)
    assert abs(s - 2 * math.sqrt(2) * visibility) <= 3 * math.sqrt(var)


def test_no_light_passes_while_the_switch_moves():
    world, clock, tt, swa, swb = chsh_rig(1.0)
    tt.start_stream(list(range(1, 9)))
    swa.connect(1, 1)
    swb.connect(1, 1)
    clock.advance_to(clock.now_ps() + 1 * MS)
    batch = tt.read_stream()
    delay = Fibre(1.0).delay_ps
    # the first ms of routes is the switching time: no photon of either arm may be tagged (only darks,
    # 10 Hz per detector: expected 0.04 tags in 1 ms over 4 detectors)
    assert np.count_nonzero(batch.timestamps_ps < 1 * MS + delay) <= 2
    clock.advance_to(clock.now_ps() + 10 * MS)
    assert len(tt.read_stream()) > 100


def test_polarisation_tomography_reconstructs_the_configured_state():
    """Linear-inversion tomography: each arm's switch selects a Z (0°), X (45°) or Y (circular)
    analyser; coincidences of the 9 settings give every Pauli correlation."""
    from sim_backend.physics.polarization import CIRCULAR, entangled_state
    from sim_backend.quantum.operators import I2, X, Y, Z

    visibility = 0.9
    params = spdc.SpdcParams(mode="pulsed", repetition_rate_hz=80e6, pair_rate_per_mw_hz=4e4,
                             pump_threshold_ma=0.0, pump_slope_mw_per_ma=0.1, visibility=visibility,
                             bell_state="PSI_MINUS", phase_matching_temperature_c=30.0, oven_time_constant_ps=0)
    det = DetectorParams(0.8, 10.0, 20 * NS, 15.0)
    bases = {1: 0.0, 2: 45.0, 3: CIRCULAR}  # switch port -> analyser: Z, X, Y
    arm_a = Arm(Fibre(0.5), {p: Analyser("tt", (2 * p - 1, 2 * p), a, det) for p, a in bases.items()},
                switch=("swA", 1))
    arm_b = Arm(Fibre(0.5), {p: Analyser("tt", (2 * p + 5, 2 * p + 6), a, det) for p, a in bases.items()},
                switch=("swB", 1))
    world, clock, source, tt = rig(params, (arm_a, arm_b), seed=4,
                                   tagger=TaggerParams(channels=tuple(range(1, 13)), jitter_rms_ps=8.0))
    ctx = DriverContext(clock=clock, streams=world.streams, world=world)
    sw = {n: open_instrument(InstrumentSpec(n, "optical_switch", "sim", "sim",
                                            options={"num_outputs": 3, "switching_time_ps": 1 * MS}), ctx)
          for n in ("swA", "swB")}
    source.set_crystal_temperature_c(30.0)
    source.set_pump_current_ma(10.0)
    source.pump_on()
    tt.start_stream(list(range(1, 13)))
    pauli = {1: Z, 2: X, 3: Y}
    delay = Fibre(0.5).delay_ps
    corr, single_a, single_b, counts = {}, {1: [], 2: [], 3: []}, {1: [], 2: [], 3: []}, []
    for pa in bases:
        for pb in bases:
            sw["swA"].connect(1, pa)
            sw["swB"].connect(1, pb)
            clock.advance_to(clock.now_ps() + 2 * MS)
            tt.read_stream()
            clock.advance_to(clock.now_ps() + 150 * MS)
            n = correlation_counts(tt.read_stream(), (2 * pa - 1, 2 * pa), (2 * pb + 5, 2 * pb + 6), delay, 12_500)
            total = n.sum()
            counts.append(total)
            corr[(pa, pb)] = (n[0, 0] + n[1, 1] - n[0, 1] - n[1, 0]) / total
            single_a[pa].append((n[0].sum() - n[1].sum()) / total)
            single_b[pb].append((n[:, 0].sum() - n[:, 1].sum()) / total)
    est = np.kron(I2, I2).astype(complex)
    for pa in bases:
        est += np.mean(single_a[pa]) * np.kron(pauli[pa], I2) + np.mean(single_b[pa]) * np.kron(I2, pauli[pa])
        for pb in bases:
            est += corr[(pa, pb)] * np.kron(pauli[pa], pauli[pb])
    est /= 4
    expected = entangled_state(visibility, "PSI_MINUS")
    n_min = min(counts)
    assert np.max(np.abs(est - expected)) < 3 / math.sqrt(n_min)
    # Ψ− weight (1 − <XX> − <YY> − <ZZ>)/4 = (1 + 3V)/4, with the variance of the three estimates
    weight = (1 - corr[(2, 2)] - corr[(3, 3)] - corr[(1, 1)]) / 4
    n_diag = {k: counts[3 * (k - 1) + (k - 1)] for k in bases}
    sigma = math.sqrt(sum((1 - corr[(k, k)] ** 2) / n_diag[k] for k in bases)) / 4
    assert abs(weight - (1 + 3 * visibility) / 4) <= 3 * sigma


def test_sim_tagger_counts_coincidences_of_a_cw_source_at_the_closed_form_rate():
    """``coincidence_rates_hz`` (the Swabian rule: |t_b - t_a| <= window for two channels) on the
    next 0.5 s of the stream: true pairs ``R·η_a·η_b·erf(W/(√2σ))`` plus accidentals
    ``S_a·S_b·2W``; the measured tags stay in the stream for the next read."""
    from drivers.coincidences import count_coincidences

    rate, eta_a, eta_b, dark, jitter_fwhm, window = 1.0e6, 0.1, 0.15, 1000.0, 300.0, 300
    params = spdc.SpdcParams(mode="cw", pair_rate_per_mw_hz=rate, pump_threshold_ma=0.0,
                             pump_slope_mw_per_ma=0.1, oven_time_constant_ps=0,
                             phase_matching_temperature_c=25.0)
    world, clock, source, tt = rig(params, (bare_arm(1, 0.0, eta_a, dark, jitter_fwhm),
                                            bare_arm(2, 0.0, eta_b, dark, jitter_fwhm)), seed=5)
    assert tt.measures_coincidences
    source.set_crystal_temperature_c(25.0)
    source.set_pump_current_ma(10.0)
    source.pump_on()
    tt.start_stream([1, 2])
    duration = S // 2
    rates = tt.coincidence_rates_hz([(1, 2)], window, duration)
    assert list(rates) == [(1, 2)] and clock.now_ps() == 0
    measured = rates[(1, 2)] * duration / S
    sigma = math.sqrt(2) * jitter_fwhm / 2.3548
    # The cw_rates window is centred full width: |Δt| <= W is a width of 2W.
    true_rate, acc_rate = spdc.cw_rates(rate, eta_a, eta_b, dark, dark, 2 * window, sigma)
    assert within(measured, (true_rate + acc_rate) * duration / S)
    clock.advance_to(duration)
    batch = tt.read_stream()
    again = count_coincidences(batch.channels, batch.timestamps_ps, [(1, 2)], window)[(1, 2)]
    assert again == round(measured)
