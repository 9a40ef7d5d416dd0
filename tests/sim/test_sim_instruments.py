"""Detector, tagger, AWG and determinism behaviour against closed forms and exact expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, NS, S, US
from sim_backend.physics.deadtime import dead_time_mask
from sim_backend.physics.detector import DetectorParams, detect
from sim_backend.physics.tagger import TaggerParams, TagStream, fifo_mask
from sim_backend.world import MarkerWire, World


def test_dead_time_gives_the_non_paralysable_rate():
    rate, tau = 20e6, 20 * NS  # r·τ = 0.4
    rng = np.random.default_rng(2)
    clicks = detect(np.empty(0, np.int64), 0, 100 * MS, DetectorParams(1.0, rate, tau, 0.0), rng)
    expected = rate / (1 + rate * tau * 1e-12) * 0.1
    assert abs(clicks.size - expected) <= 3 * math.sqrt(expected)
    assert np.diff(clicks).min() >= tau


def test_dead_time_kernel_does_not_extend_on_lost_clicks():
    t = np.array([0, 10, 19, 21, 30, 41, 60], np.int64)
    # registered: 0, 21 (>=20 after 0), 41 (>=20 after 21), 60 is 19 after 41: lost
    assert dead_time_mask(t, 20).tolist() == [True, False, False, True, False, True, False]


def test_dark_counts_and_jitter_statistics():
    rng = np.random.default_rng(3)
    det = DetectorParams(1.0, 0.0, 0, 50.0)
    arrivals = np.full(20000, 1_000_000, np.int64) + np.arange(20000, dtype=np.int64) * 100_000
    clicks = detect(arrivals, 0, 0, det, rng)
    residual = clicks - arrivals
    assert abs(residual.std() - det.jitter_sigma_ps) < 3 * det.jitter_sigma_ps / math.sqrt(2 * 20000)
    darks = detect(np.empty(0, np.int64), 0, 1 * S, DetectorParams(1.0, 5000.0, 0, 0.0), rng)
    assert abs(darks.size - 5000) <= 3 * math.sqrt(5000)


def test_efficiency_thins_photons_binomially():
    rng = np.random.default_rng(4)
    arrivals = np.arange(50000, dtype=np.int64) * 1000
    clicks = detect(arrivals, 0, 0, DetectorParams(0.3, 0.0, 0, 0.0), rng)
    assert abs(clicks.size - 15000) <= 3 * math.sqrt(50000 * 0.3 * 0.7)


def test_fifo_overflow_keeps_what_the_transfer_rate_drains():
    # 1e6 tags, one per ps, into a 1000-tag FIFO drained at 1e11 tags/s (0.1 per ps): the FIFO
    # fills, then only what drains gets in: 1000 + 0.1·1e6 kept
    t = np.arange(1_000_000, dtype=np.int64)
    keep = fifo_mask(t, 1000, 1e11)
    assert abs(int(keep.sum()) - (1000 + 0.1 * 1_000_000)) <= 2
    stream = TagStream(TaggerParams(jitter_rms_ps=0, fifo_tags=100, transfer_rate_tags_per_s=1e6,
                                    stream_buffer_tags=10_000))
    stream.enabled = {1}
    stream.write(1, np.zeros(500, np.int64), np.random.default_rng(0))
    batch = stream.read(1)
    assert len(batch) == 100 and batch.overflow and batch.missed_events == 400


def test_input_delay_and_bin_resolution():
    stream = TagStream(TaggerParams(jitter_rms_ps=0, bin_ps=10), input_delays_ps={2: 1234})
    stream.enabled = {2}
    stream.write(2, np.array([1000, 2005], np.int64), np.random.default_rng(0))
    batch = stream.read(10_000)
    assert batch.timestamps_ps.tolist() == [2230, 3230] and batch.channels.tolist() == [2, 2]


def test_awg_markers_become_tags_and_loop_events():
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(1)
    world = World(clock, streams, loop)
    world.add_tagger("tt", TaggerParams(jitter_rms_ps=0))
    ctx = DriverContext(clock=clock, loop=loop, streams=streams, world=world)
    awg = open_instrument(InstrumentSpec("awg", "awg", "sim", "sim"), ctx)
    tt = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), ctx)
    world.wire_marker("awg", 1, 1, MarkerWire("tt", 1, delay_ps=500))
    events = []
    world.marker_listeners.append(lambda awg_name, ch, marker, t: events.append((clock.now_ps(), t)))
    markers = np.zeros(100, np.uint8)
    markers[[10, 11, 50]] = 1  # rising edges at samples 10 and 50
    awg.upload_waveform(1, "m", np.zeros(100), 1e9, markers=markers)  # 1 ns per sample
    awg.select_waveform(1, "m")
    awg.configure_burst(1, 2, "BUS")
    awg.set_output(1, True)
    awg.run()
    tt.start_stream([1])
    clock.advance_to(1 * US)
    awg.trigger()
    loop.run_until(2 * US)
    edges = [1 * US + i * NS for i in (10, 50, 110, 150)]
    assert events == [(t, t) for t in edges]
    batch = tt.read_stream()
    assert batch.timestamps_ps.tolist() == [t + 500 for t in edges]


def _spdc_tags(seed, extra_instrument):
    from sim_backend.physics.fibre import Fibre
    from sim_backend.physics.spdc import SpdcParams
    from sim_backend.spdc_link import Analyser, Arm, SpdcLink

    clock = VirtualClock()
    streams = RandomStreams(seed)
    world = World(clock, streams)
    ctx = DriverContext(clock=clock, streams=streams, world=world)
    world.add_source("src", SpdcParams(oven_time_constant_ps=0))
    src = open_instrument(InstrumentSpec("src", "pair_source", "sim", "sim"), ctx)
    if extra_instrument:  # another part of the testbed with its own streams
        open_instrument(InstrumentSpec("q", "qnic", "sim", "sim", options={"node": "Z"}), ctx)
        world.link_rng("other").random(1000)
        world.tagger_rng("other").random(1000)
    tt = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), ctx)
    world.add_spdc_link(SpdcLink("l", "src", (Arm(Fibre(1.0), {1: Analyser("tt", (1,))}),
                                              Arm(Fibre(2.0), {1: Analyser("tt", (2,))}))))
    src.set_crystal_temperature_c(35.0)
    src.set_pump_current_ma(60.0)
    src.pump_on()
    tt.start_stream([1, 2])
    clock.advance_to(5 * MS)
    b = tt.read_stream()
    return b.channels.tolist(), b.timestamps_ps.tolist()


def test_same_seed_same_run_and_independent_streams():
    first = _spdc_tags(11, False)
    assert len(first[0]) > 1000
    assert _spdc_tags(11, False) == first
    assert _spdc_tags(11, True) == first
    assert _spdc_tags(12, False) != first


def test_fifo_fill_level_carries_across_reads():
    # 150 tags at t=0 into a 100-tag FIFO drained at 1 tag/us: 100 kept; 50 more 10 us later
    # find 10 freed slots
    stream = TagStream(TaggerParams(jitter_rms_ps=0, fifo_tags=100, transfer_rate_tags_per_s=1e6))
    stream.enabled = {1}
    rng = np.random.default_rng(0)
    stream.write(1, np.zeros(150, np.int64), rng)
    assert len(stream.read(1)) == 100
    stream.write(1, np.full(50, 10 * US, np.int64), rng)
    batch = stream.read(20 * US)
    assert len(batch) == 10 and batch.missed_events == 40
