"""Interface conformance checks: one function per instrument kind, taking only an opened
:class:`~drivers.instrument.Instrument`. They use nothing model specific, so the same checks run
against every real driver (on its emulator) and against the simulated instruments.

Each check assumes a freshly opened instrument with the limits returned by ``LIMITS[kind]``.
"""

from __future__ import annotations

import numpy as np

from drivers.awg import AWG
from drivers.optical_switch import OpticalSwitch
from drivers.pair_source import PhotonPairSource
from drivers.time_tagger import TagBatch, TimeTagger
from qnode_fw.errors import InstrumentError, SafetyLimitError

from .expect import close, raises

LIMITS = {
    "awg": {"amplitude_vpp": (0.0, 0.45)},
    "optical_switch": {"output_port": (1, 3)},
    "pair_source": {"pump_current_ma": (0.0, 60.0), "crystal_temperature_c": (20.0, 45.0)},
    "time_tagger": {"trigger_level_v": (-1.0, 1.0)},
}


def check_identity(inst) -> None:
    ident = inst.identify()
    assert isinstance(ident, str) and ident.strip()
    assert inst.kind in ("awg", "optical_switch", "pair_source", "time_tagger", "qnic")
    assert isinstance(inst.model, str) and inst.model


def check_awg(awg: AWG) -> None:
    check_identity(awg)
    assert awg.num_channels >= 1
    n = 64
    wave = np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False)) * 0.8
    markers = np.zeros(n, np.uint8)
    markers[0] = 1
    awg.upload_waveform(1, "conf", wave, 1e8, markers=markers)
    awg.select_waveform(1, "conf")
    awg.set_amplitude_vpp(1, 0.4)
    awg.set_offset_v(1, 0.0)
    awg.configure_burst(1, 1, "BUS")
    awg.set_output(1, True)
    awg.run()
    awg.trigger()
    awg.stop()
    with raises(SafetyLimitError):
        awg.set_amplitude_vpp(1, 0.5)
    with raises(InstrumentError):
        awg.upload_waveform(1, "bad", np.array([0.0, 1.5]), 1e9)  # samples outside [-1, 1]
    with raises(InstrumentError):
        awg.set_output(awg.num_channels + 1, True)


def check_optical_switch(sw: OpticalSwitch) -> None:
    check_identity(sw)
    assert sw.num_inputs >= 1 and sw.num_outputs >= 2
    assert sw.connections() == {}
    sw.connect(1, 2)
    assert sw.connections() == {1: 2}
    sw.connect(1, 3)  # replaces the previous route
    assert sw.connections() == {1: 3}
    sw.disconnect(1)
    assert sw.connections() == {}
    with raises(SafetyLimitError):
        sw.connect(1, 4)
    assert sw.connections() == {}
    with raises(InstrumentError):
        sw.connect(sw.num_inputs + 1, 1)


def check_pair_source(src: PhotonPairSource) -> None:
    check_identity(src)
    src.set_pump_current_ma(45.0)
    assert close(src.pump_current_ma(), 45.0)
    src.pump_on()
    assert src.pump_is_on() is True
    src.pump_off()
    assert src.pump_is_on() is False
    src.set_crystal_temperature_c(32.5)
    assert close(src.crystal_temperature_setpoint_c(), 32.5)
    assert isinstance(src.crystal_temperature_c(), float)
    assert src.faults() == []
    with raises(SafetyLimitError):
        src.set_pump_current_ma(61.0)
    assert close(src.pump_current_ma(), 45.0)
    with raises(SafetyLimitError):
        src.set_crystal_temperature_c(50.0)
    assert close(src.crystal_temperature_setpoint_c(), 32.5)


def check_time_tagger(tagger: TimeTagger) -> None:
    check_identity(tagger)
    chans = tagger.channels
    assert len(chans) >= 2 and all(isinstance(c, int) for c in chans)
    a, b = [c for c in chans if c > 0][:2]
    tagger.set_trigger_level_v(a, 0.25)
    tagger.set_input_delay_ps(a, 0)
    tagger.set_dead_time_ps(a, 0)
    with raises(SafetyLimitError):
        tagger.set_trigger_level_v(a, 1.5)
    rates = tagger.count_rates_hz([a, b], 10_000_000_000)  # 10 ms
    assert set(rates) == {a, b}
    assert all(isinstance(r, float) and r >= 0 for r in rates.values())
    if getattr(tagger, "measures_coincidences", False):
        coincidences = tagger.coincidence_rates_hz([(a, b)], 1000, 10_000_000_000)
        assert set(coincidences) == {(a, b)}
        assert all(isinstance(r, float) and r >= 0 for r in coincidences.values())
        with raises(InstrumentError):
            tagger.coincidence_rates_hz([(a,)], 1000, 10_000_000_000)  # a group needs two channels
    else:
        with raises(InstrumentError):
            tagger.coincidence_rates_hz([(a, b)], 1000, 10_000_000_000)
    if not getattr(tagger, "streams_tags", True):
        with raises(InstrumentError):
            tagger.start_stream([a, b])
        return
    tagger.start_stream([a, b])
    batch = tagger.read_stream()
    assert isinstance(batch, TagBatch)
    assert batch.timestamps_ps.dtype == np.int64 and batch.channels.dtype == np.int32
    assert np.all(np.diff(batch.timestamps_ps) >= 0)
    assert set(np.unique(batch.channels).tolist()) <= {a, b}
    tagger.stop_stream()


CHECKS = {
    "awg": check_awg,
    "optical_switch": check_optical_switch,
    "pair_source": check_pair_source,
    "time_tagger": check_time_tagger,
}
