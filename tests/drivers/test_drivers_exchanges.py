"""Exact exchanges, in the manner of PyMeasure's protocol tests: for a sequence of driver calls,
the exact bytes the instrument received and sent, in order, with nothing left unread on either
side. The expected bytes are written out from the command references, not captured from the code.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sim_backend.emulators import fake_timetagger

OK = ("tx", b'+0,"No error"\n')


def settled(rig, expected):
    """The emulator's log once it holds ``len(expected)`` entries; nothing left unread."""
    rig.emulator.log.wait_for(len(expected), timeout_s=1.0)
    assert rig.instrument.session.unread() == b""
    return rig.emulator.log.pairs()


def test_keysight_33500_upload_select_burst(rig_factory):
    rig = rig_factory("awg", "keysight_33500b")
    rig.emulator.log.clear()
    awg = rig.instrument
    samples = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 0.25, -0.25, 0.125])
    awg.upload_waveform(1, "herald", samples, 1e6)
    awg.select_waveform(1, "herald")
    awg.configure_burst(1, 3, "BUS")
    awg.trigger()
    floats = struct.pack("<8f", *samples)
    expected = [
        ("rx", b"FORM:BORD SWAP"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR1:DATA:ARB herald,#232" + floats), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"*WAI"),
        ("rx", b"SOUR1:FUNC:ARB:SRAT 1000000"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR1:FUNC:ARB herald"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR1:FUNC ARB"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR1:BURS:MODE TRIG"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR1:BURS:NCYC 3"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"TRIG1:SOUR BUS"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR1:BURS:STAT ON"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"*TRG"), ("rx", b"SYST:ERR?"), OK,
    ]
    assert settled(rig, expected) == expected
    assert rig.emulator.arbs[1]["herald"].tolist() == samples.astype(np.float32).tolist()
    assert rig.emulator.state[1]["BURS:NCYC"] == 3 and rig.emulator.triggers == 1


def test_tektronix_awg70k_waveform_markers_run(rig_factory):
    rig = rig_factory("awg", "tektronix_awg70k")
    rig.emulator.log.clear()
    awg = rig.instrument
    samples = np.array([0.0, 1.0, -1.0, 0.5])
    awg.upload_waveform(1, "emit", samples, 1e9, markers=np.array([1, 0, 2, 3], np.uint8))
    awg.select_waveform(1, "emit")
    awg.run()
    ok = ("tx", b'0,"No error"\n')
    expected = [
        ("rx", b'WLIS:WAV:NEW "emit",4'), ("rx", b"SYST:ERR?"), ok,
        ("rx", b'WLIS:WAV:DATA "emit",0,4,#216' + struct.pack("<4f", *samples)), ("rx", b"SYST:ERR?"), ok,
        ("rx", b'WLIS:WAV:MARK:DATA "emit",0,4,#14' + bytes([0x40, 0x00, 0x80, 0xC0])),
        ("rx", b"SYST:ERR?"), ok,
        ("rx", b"CLOC:SRAT 1000000000"), ("rx", b"SYST:ERR?"), ok,
        ("rx", b"*OPC?"), ("tx", b"1\n"),
        ("rx", b'SOUR1:CASS:WAV "emit"'), ("rx", b"SYST:ERR?"), ok,
        ("rx", b"AWGC:RUN"), ("rx", b"SYST:ERR?"), ok,
        ("rx", b"*OPC?"), ("tx", b"1\n"),
    ]
    assert settled(rig, expected) == expected
    assert rig.emulator.running and rig.emulator.state[1]["CASS"] == "emit"


def test_polatis_connect_replaces_route(rig_factory):
    rig = rig_factory("optical_switch", "polatis")
    sw = rig.instrument
    assert sw.num_inputs == 4
    rig.emulator.log.clear()
    sw.connect(1, 2)
    sw.connect(1, 3)
    ok = ("tx", b'0,"No error"\n')
    expected = [
        ("rx", b":OXC:SWIT:CONN:STAT?"), ("tx", b"(@),(@)\n"),
        ("rx", b":OXC:SWIT:CONN:ADD (@1),(@6)"), ("rx", b":SYST:ERR?"), ok,
        ("rx", b":OXC:SWIT:CONN:STAT?"), ("tx", b"(@1),(@6)\n"),
        ("rx", b":OXC:SWIT:CONN:SUB (@1),(@6)"), ("rx", b":SYST:ERR?"), ok,
        ("rx", b":OXC:SWIT:CONN:ADD (@1),(@7)"), ("rx", b":SYST:ERR?"), ok,
    ]
    assert settled(rig, expected) == expected


def test_dicon_echo_and_readback(rig_factory):
    rig = rig_factory("optical_switch", "dicon_mems_1xn")
    rig.emulator.log.clear()
    rig.instrument.connect(1, 5)
    expected = [("rx", b"I1 5"), ("tx", b"\n"), ("rx", b"I1?"), ("tx", b"\n5\r\n")]
    assert settled(rig, expected) == expected
    assert rig.emulator.channel == 5


def test_agiltron_binary_frames(rig_factory):
    rig = rig_factory("optical_switch", "agiltron_1xn")
    assert rig.emulator.log.pairs() == [("rx", bytes.fromhex("01300000")), ("tx", bytes.fromhex("0130ffff"))]
    rig.emulator.log.clear()
    rig.instrument.connect(1, 4)
    rig.instrument.disconnect(1)
    expected = [("rx", bytes.fromhex("01350003")), ("tx", bytes.fromhex("0135ffff")),
                ("rx", bytes.fromhex("01300000")), ("tx", bytes.fromhex("0130ffff"))]
    assert settled(rig, expected) == expected


def test_qubitekk_settings_are_read_back(rig_factory):
    rig = rig_factory("pair_source", "qubitekk_spdc")
    rig.emulator.log.clear()
    src = rig.instrument
    src.set_pump_current_ma(55.5)
    src.set_crystal_temperature_c(31.25)
    src.pump_on()
    expected = [
        ("rx", b":PLDC 55.50"), ("rx", b"PLID?"), ("tx", b"55.50\r\n"),
        ("rx", b":SETT 31250"), ("rx", b"SETP?"), ("tx", b"31250\r\n"),
        ("rx", b":PLON"), ("rx", b"PLST?"), ("tx", b"1\r\n"),
    ]
    assert settled(rig, expected) == expected


def test_thorlabs_pump_oven_commands(rig_factory):
    rig = rig_factory("pair_source", "thorlabs_itc4001_ted4015")
    itc, ted = rig.emulator, rig.others[0]
    assert ted.log.pairs()[:3] == [("rx", b"UNIT:TEMP C"), ("rx", b"SYST:ERR?"), OK]  # sent on opening
    itc.log.clear()
    ted.log.clear()
    src = rig.instrument
    src.set_pump_current_ma(65.0)
    src.set_crystal_temperature_c(35.5)
    src.pump_on()
    assert src.pump_current_ma() == pytest.approx(65.0)
    assert src.faults() == []
    itc_expected = [
        ("rx", b"SOUR:CURR:LEV:AMPL 0.065"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"OUTP 1"), ("rx", b"SYST:ERR?"), OK,
        ("rx", b"SOUR:CURR:LEV:AMPL?"), ("tx", b"6.500000E-02\n"),
        ("rx", b"OUTP:PROT:INTL:TRIP?"), ("tx", b"0\n"), ("rx", b"OUTP:PROT:KEYL:TRIP?"), ("tx", b"0\n"),
    ]
    ted_expected = [("rx", b"SOUR:TEMP 35.5"), ("rx", b"SYST:ERR?"), OK,
                    ("rx", b"OUTP:PROT:TRIP?"), ("tx", b"0\n")]
    itc.log.wait_for(len(itc_expected))
    ted.log.wait_for(len(ted_expected))
    assert itc.log.pairs() == itc_expected and ted.log.pairs() == ted_expected
    assert src.pump.session.unread() == b"" and src.oven.session.unread() == b""
    assert itc.current_a == pytest.approx(0.065) and itc.output_on and ted.setpoint_c == 35.5


def test_thorlabs_pump_oven_on_pyvisa_sim(rig_factory):
    src = rig_factory("pair_source", "thorlabs_pyvisa_sim").instrument
    src.set_pump_current_ma(65.0)
    src.set_crystal_temperature_c(35.5)
    src.pump_on()
    # pyvisa-sim keeps no byte log; the state it parsed from the exact commands is the evidence.
    assert src.pump.query("SOUR:CURR:LEV:AMPL?") == "0.065"
    assert src.oven.query("SOUR:TEMP?") == "35.5"
    assert src.pump.query("OUTP?") == "1"
    assert src.pump_current_ma() == 65.0


def test_thorlabs_pump_oven_on_pyvisa_sim_conformance(rig_factory):
    from drivers.conformance.instruments import LIMITS, check_pair_source

    check_pair_source(rig_factory("pair_source", "thorlabs_pyvisa_sim", LIMITS["pair_source"]).instrument)


def test_swabian_vendor_calls_and_stream(rig_factory):
    rig = rig_factory("time_tagger", "swabian")
    tagger = rig.instrument
    tagger.set_trigger_level_v(1, 0.08)
    tagger.set_input_delay_ps(2, 1500)
    tagger.set_dead_time_ps(1, 5000)
    tagger.start_stream([1, 2])
    tagger.tagger._inject_tags([1, 2, 1, 1, 3], [1000, 1000, 4000, 7000, 7500])
    batch = tagger.read_stream()
    assert fake_timetagger.CALLS == [
        ("createTimeTagger", ""), ("setTriggerLevel", 1, 0.08), ("setInputDelay", 2, 1500),
        ("setDeadtime", 1, 5000), ("TimeTagStream", 1 << 24, [1, 2]), ("TimeTagStream.getData",),
    ]
    # channel 1's tag at 4000 falls in its 5 ns dead time; channel 2 is delayed by 1500 ps
    assert batch.channels.tolist() == [1, 2, 1]
    assert batch.timestamps_ps.tolist() == [1000, 2500, 7000]
    assert not batch.overflow


def test_swabian_overflow_reported(rig_factory):
    rig = rig_factory("time_tagger", "swabian")
    tagger = rig.instrument
    tagger.start_stream([1])
    tagger.tagger._inject_tags([1, 1], [100, 10_000], missed_events=17)
    batch = tagger.read_stream()
    assert batch.overflow and batch.missed_events == 17
    assert batch.timestamps_ps.tolist() == [100, 10_000]


def test_id900_count_exchange(rig_factory):
    rig = rig_factory("time_tagger", "idq_id900")
    rig.emulator.log.clear()
    rates = rig.instrument.count_rates_hz([2], 5_000_000_000)  # 5 ms
    expected = [
        ("rx", b"INPU2:ENAB ON"), ("tx", b""), ("rx", b"INPU2:COUN:MODE CYCLE"), ("tx", b""),
        ("rx", b"INPU2:COUN:INTE 5"), ("tx", b""), ("rx", b"INPU2:COUN?"), ("tx", b"10"),
    ]
    assert settled(rig, expected) == expected
    assert rates == {2: 2000.0}  # the emulator counts 2000 Hz on input 2: 10 counts in 5 ms


def test_ptu_replay_applies_delay_and_dead_time(rig_factory):
    rig = rig_factory("time_tagger", "ptu_replay")
    tagger = rig.instrument
    tagger.set_input_delay_ps(2, 250)
    tagger.set_dead_time_ps(1, 3_000_000)  # 3 us: keeps every second channel-1 tag (they are 2 us apart)
    tagger.start_stream([1, 2])
    batch = tagger.read_stream()
    ch1 = batch.timestamps_ps[batch.channels == 1]
    ch2 = batch.timestamps_ps[batch.channels == 2]
    assert ch1[:3].tolist() == [0, 4_000_000, 8_000_000]
    assert ch2[:3].tolist() == [1_000_250, 3_000_250, 5_000_250]
    assert ch2.size == 20_000 and ch1.size == 10_000
