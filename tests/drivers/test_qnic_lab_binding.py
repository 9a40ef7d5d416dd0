"""The QNIC lab binding against the Keysight 33500 emulator and the fake Swabian tagger: the exact
SCPI exchange of opening and of each operation, the tagger calls of a readout, thresholding of the
counts in the window, readout failures, and binding-file errors naming file, line and field.

Expected bytes are written out from the Keysight command set (docs/drivers.md), not captured."""

from __future__ import annotations

import struct
import textwrap

import numpy as np
import pytest

from drivers.qnic import Basis, Gate
from drivers.qnic_binding import binding_from_dict, load_binding
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnic_lab_rig import EXAMPLE_BINDING, open_lab_rig
from qnode_fw.errors import ConfigError, InstrumentError, InstrumentTimeout, SafetyLimitError
from sim_backend.emulators import fake_timetagger
from sim_backend.emulators.idq import IdqTimeControllerEmulator
from sim_backend.emulators.qnic_bench import TRIGGER_PERIOD_PS, Action

OK = ("tx", b'+0,"No error"\n')

SMALL = """\
qnic_address: 3
num_qubits: 2
communication_qubits: [0]
awg: awg0
tagger: tagger0
sample_rate_hz: 1.0e+8
idle_samples: 8
readout_timeout_s: 0.05
channels:
  1: {amplitude_vpp: 0.4}
  2: {amplitude_vpp: 0.3, offset_v: 0.1}
waveforms:
  init_a: {channel: 1, pulses: [{samples: 8, amplitude: 0.5}]}
  x_a: {channel: 1, pulses: [{samples: 4, amplitude: 0.25}, {samples: 4, amplitude: -0.25}]}
  h_a: {channel: 1, pulses: [{samples: 8, amplitude: 0.125}]}
  ro_a: {channel: 1, pulses: [{samples: 2}, {samples: 6, amplitude: 1.0, marker: 1}]}
  emit_a: {channel: 1, pulses: [{samples: 8, amplitude: 0.75, marker: 2}]}
  cx_a: {channel: 1, pulses: [{samples: 16, amplitude: 0.5}]}
  cx_b: {channel: 2, pulses: [{samples: 8, amplitude: 0.5}]}
  init_b: {channel: 2, pulses: [{samples: 8, amplitude: 0.5}]}
  ro_b: {channel: 2, pulses: [{samples: 8, amplitude: 1.0}]}
operations:
  - {op: init, qubits: [0], play: [init_a]}
  - {op: init, qubits: [1], play: [init_b]}
  - {op: X, qubits: [0], play: [x_a]}
  - {op: CNOT, qubits: [0, 1], play: [[cx_a, cx_b]]}
  - {op: emit, qubits: [0], play: [emit_a]}
  - {op: move, qubits: [0, 1], play: [[cx_a, cx_b], x_a], duration_ps: 999000}
  - {op: measure_X, qubits: [0], play: [h_a]}
readout:
  - {qubit: 0, pulse: ro_a, reference_channel: 1, detector_channels: [2],
     window_start_ps: 1000, window_ps: 5000, threshold: 2, bright_outcome: 0}
  - {qubit: 1, pulse: ro_b, reference_channel: 3, detector_channels: [2, 4],
     window_start_ps: 0, window_ps: 1000, threshold: 1, bright_outcome: 1}
"""

SMALL_ACTIONS = {"init_a": Action("init", (0,)), "init_b": Action("init", (1,)),
                 "x_a": Action("gate", (0,), "X"), "h_a": Action("gate", (0,), "H"),
                 "cx_a": Action("gate", (0, 1), "CNOT"), "emit_a": Action("emit", (0,)),
                 "ro_a": Action("readout", (0,)), "ro_b": Action("readout", (1,))}


def setting(command: str) -> list:
    """A Keysight setting: the command, then the error-queue query and its empty answer."""
    return [("rx", command.encode()), ("rx", b"SYST:ERR?"), OK]


def upload(ch: int, name: str, samples: list[float], rate: str, marker_point: int | None = None) -> list:
    block = struct.pack(f"<{len(samples)}f", *samples)
    header = f"#{len(str(len(block)))}{len(block)}".encode()
    out = setting("FORM:BORD SWAP")
    out += [("rx", f"SOUR{ch}:DATA:ARB {name},".encode() + header + block), ("rx", b"SYST:ERR?"), OK]
    out += [("rx", b"*WAI")] + setting(f"SOUR{ch}:FUNC:ARB:SRAT {rate}")
    if marker_point is not None:
        out += setting(f"SOUR{ch}:MARK:POIN {marker_point}")
    return out


def select(ch: int, name: str) -> list:
    return setting(f"SOUR{ch}:FUNC:ARB {name}") + setting(f"SOUR{ch}:FUNC ARB")


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    rigs = []

    def make(**options):
        rig = open_lab_rig(path, actions=SMALL_ACTIONS, **options)
        rig.tagger.set_dead_time_ps(2, 0)  # scripted clicks may be 1 ps apart
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def exchange(rig, count: int) -> list:
    rig.awg_emulator.log.wait_for(count, timeout_s=1.0)
    assert rig.awg.session.unread() == b""
    return rig.awg_emulator.log.pairs()


def test_opening_uploads_arms_and_streams(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    rig = open_lab_rig(path, actions=SMALL_ACTIONS)
    try:
        log = rig.awg_emulator.log.pairs()
        idx = next(i for i, (d, m) in enumerate(log) if m == b"FORM:BORD SWAP")
        rate = "100000000"
        expected = upload(1, "idle_ch1", [0.0] * 8, rate) + upload(2, "idle_ch2", [0.0] * 8, rate)
        expected += upload(1, "init_a", [0.5] * 8, rate)
        expected += upload(1, "x_a", [0.25] * 4 + [-0.25] * 4, rate)
        expected += upload(1, "h_a", [0.125] * 8, rate)
        expected += upload(1, "ro_a", [0.0, 0.0] + [1.0] * 6, rate, marker_point=2)
        expected += upload(1, "emit_a", [0.75] * 8, rate)  # marker 2 only: no sync point on a 33500
        expected += upload(1, "cx_a", [0.5] * 16, rate)
        expected += upload(2, "cx_b", [0.5] * 8, rate)
        expected += upload(2, "init_b", [0.5] * 8, rate)
        expected += upload(2, "ro_b", [1.0] * 8, rate)
        for ch, vpp, offset in ((1, "0.4", "0"), (2, "0.3", "0.1")):
            expected += select(ch, f"idle_ch{ch}")
            expected += setting(f"SOUR{ch}:VOLT {vpp}") + setting(f"SOUR{ch}:VOLT:OFFS {offset}")
            expected += setting(f"SOUR{ch}:BURS:MODE TRIG") + setting(f"SOUR{ch}:BURS:NCYC 1")
            expected += setting(f"TRIG{ch}:SOUR BUS") + setting(f"SOUR{ch}:BURS:STAT ON")
            expected += setting(f"OUTP{ch} ON")
        expected += setting("OUTP1 ON") + setting("OUTP2 ON")  # run(): outputs of the armed channels
        assert log[idx:] == expected
        assert rig.awg.session.unread() == b""
        assert fake_timetagger.CALLS == [("createTimeTagger", ""), ("TimeTagStream", 1 << 24, [1, 2, 3, 4])]
        assert rig.awg_emulator.arbs[1]["x_a"].tolist() == [0.25] * 4 + [-0.25] * 4
        assert rig.awg_emulator.state[2]["VOLT:OFFS"] == pytest.approx(0.1)
    finally:
        rig.close()


def test_each_operation_exact_exchange(small):
    rig = small()
    q = rig.qnic
    rig.awg_emulator.log.clear()
    fake_timetagger.CALLS.clear()

    q.init(0)
    q.gate(Gate.X, 0)
    q.gate(Gate.X, 0)  # x_a is still selected: only the trigger goes out
    q.gate(Gate.CNOT, 0, 1)
    q.init(1)
    q.emit(0, attempt_id=41)
    q.move(0, 1)
    expected = select(1, "init_a") + setting("*TRG")
    expected += select(1, "x_a") + setting("*TRG")
    expected += setting("*TRG")
    expected += select(1, "cx_a") + select(2, "cx_b") + setting("*TRG")
    expected += select(1, "idle_ch1") + select(2, "init_b") + setting("*TRG")
    expected += select(1, "emit_a") + select(2, "idle_ch2") + setting("*TRG")
    expected += select(1, "cx_a") + select(2, "cx_b") + setting("*TRG")
    expected += select(1, "x_a") + select(2, "idle_ch2") + setting("*TRG")
    assert exchange(rig, len(expected)) == expected
    assert fake_timetagger.CALLS == []  # operations other than readout never touch the tagger
    assert [p for p in rig.bench.played] == [
        {1: "init_a", 2: "idle_ch2"}, {1: "x_a", 2: "idle_ch2"}, {1: "x_a", 2: "idle_ch2"},
        {1: "cx_a", 2: "cx_b"}, {1: "idle_ch1", 2: "init_b"}, {1: "emit_a", 2: "idle_ch2"},
        {1: "cx_a", 2: "cx_b"}, {1: "x_a", 2: "idle_ch2"}]
    assert q.operation_log == [("init", 0), ("X", 0), ("X", 0), ("CNOT", 0, 1), ("init", 1),
                               ("emit", 0, 41), ("move", 0, 1)]


def test_measure_in_x_exact_exchange_and_tagger_calls(small):
    rig = small()
    rig.awg_emulator.log.clear()
    fake_timetagger.CALLS.clear()
    rig.bench.script_clicks([1000, 2000, 3000])
    assert rig.qnic.measure(0, Basis.X) == 0
    expected = select(1, "h_a") + setting("*TRG") + select(1, "ro_a") + setting("*TRG")
    assert exchange(rig, len(expected)) == expected
    # drain what earlier operations left, then one read that holds the reference and the clicks
    assert fake_timetagger.CALLS == [("TimeTagStream.getData",), ("TimeTagStream.getData",)]
    result = rig.qnic.last_readout
    assert (result.qubit, result.counts, result.threshold, result.outcome) == (0, 3, 2, 0)
    assert result.reference_ps == 2 * TRIGGER_PERIOD_PS  # the readout was the bench's 2nd trigger


def test_measure_in_z_needs_no_basis_change(small):
    rig = small()
    rig.awg_emulator.log.clear()
    rig.bench.script_clicks([])
    assert rig.qnic.measure(0, Basis.Z) == 1
    expected = select(1, "ro_a") + setting("*TRG")
    assert exchange(rig, len(expected)) == expected


@pytest.mark.parametrize("offsets, counts, outcome", [
    ([], 0, 1),
    ([999, 1000, 6000], 1, 1),          # window is [1000, 6000): 999 and 6000 fall outside
    ([999, 1000, 5999, 6000], 2, 0),    # exactly the threshold: bright
    ([1000, 2000, 3000, 4000, 5000], 5, 0),
    ([-500, 7000, 90_000], 0, 1),       # clicks outside the window never count
])
def test_readout_thresholds_counts_in_window(small, offsets, counts, outcome):
    rig = small()
    rig.bench.script_clicks(offsets)
    result = rig.qnic.readout(0)
    assert (result.counts, result.outcome) == (counts, outcome)


@pytest.mark.parametrize("offsets, outcome", [([], 0), ([0], 1), ([999], 1), ([1000], 0)])
def test_readout_bright_outcome_one_and_second_reference_input(small, offsets, outcome):
    rig = small()
    rig.bench.script_clicks(offsets)
    assert rig.qnic.measure(1) == outcome  # qubit 1: reference on input 3, window [0, 1000) ps


def test_readout_uses_the_last_reference_tag(small):
    rig = small()
    q = rig.qnic
    # tags of earlier operations that arrive late (after the drain) must not be taken as time zero
    rig.awg_emulator.trigger_listeners.insert(0, lambda playing: rig.tagger.tagger._inject_tags(
        [1, 2], [rig.bench.now_ps + 10, rig.bench.now_ps + 2000]) if playing.get(1) == "ro_a" else None)
    rig.bench.script_clicks([1000, 1500])
    result = q.readout(0)
    assert result.reference_ps == rig.bench.now_ps and result.counts == 2


def test_missing_reference_times_out_naming_tagger(small):
    rig = small(marker_inputs={1: 1})  # channel 2's marker cable is not connected
    with pytest.raises(InstrumentTimeout) as info:
        rig.qnic.measure(1)
    assert info.value.resource == rig.tagger.resource and info.value.command == "readout 1"
    assert "input 3" in info.value.message


def test_overflow_during_readout_raises(small):
    rig = small()
    rig.awg_emulator.trigger_listeners.append(
        lambda playing: rig.tagger.tagger._inject_tags([], [], missed_events=5))
    with pytest.raises(InstrumentError, match="5 missed"):
        rig.qnic.readout(0)


def test_unbound_operation_sends_nothing(small):
    rig = small()
    before = rig.awg_emulator.log.pairs()
    with pytest.raises(InstrumentError, match="no Y on qubits") as info:
        rig.qnic.gate(Gate.Y, 0)
    assert info.value.command == "Y 0"
    with pytest.raises(InstrumentError, match="no measure_Y"):
        rig.qnic.measure(0, Basis.Y)
    assert rig.awg_emulator.log.pairs() == before


def test_awg_safety_limit_stops_opening_before_the_setting(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    with pytest.raises(SafetyLimitError, match="amplitude_vpp=0.4"):
        open_lab_rig(path, actions=SMALL_ACTIONS, awg_limits={"amplitude_vpp": (0.0, 0.35)})


def test_durations_from_waveform_lengths(small):
    q = small().qnic
    ns = 1000  # ps; 10 ns per sample at 100 MS/s
    assert q.duration_ps("init") == 80 * ns
    assert q.duration_ps(Gate.CNOT) == 160 * ns  # the longer of the two channels of the step
    assert q.duration_ps("move") == 999_000  # the binding's own duration wins
    assert q.duration_ps("readout") == 80 * ns  # the 80 ns pulse outlasts the window (ends at 6 ns)
    assert q.duration_ps("measure_X") == 80 * ns + 80 * ns
    assert q.duration_ps("measure") == q.duration_ps("measure_X")


def test_example_binding_durations():
    rig = open_lab_rig(EXAMPLE_BINDING)
    try:
        q = rig.qnic
        ps_per_sample = 4000  # 250 MS/s
        assert q.duration_ps("X") == 56 * ps_per_sample
        assert q.duration_ps("I") == 200_000
        assert q.duration_ps("CNOT") == 264 * ps_per_sample
        # measure: the Y basis change (two 56-sample pulses) plus the window end, 50 ns + 3.7 us
        assert q.duration_ps("measure") == 112 * ps_per_sample + 3_750_000
    finally:
        rig.close()


def test_absorb_without_a_transducer_refuses_and_sends_nothing(small):
    rig = small()
    before = rig.awg_emulator.log.pairs()
    with pytest.raises(InstrumentError, match="no absorbing transducer") as info:
        rig.qnic.absorb(0, attempt_id=5)
    assert info.value.command == "absorb 0 5"
    assert rig.awg_emulator.log.pairs() == before


def test_registered_and_listed():
    from drivers.registry import driver_for

    info = driver_for("qnic", "lab_binding")
    assert info.transport == "binding" and info.interface == "drivers.qnic.QNIC"
    assert info.qualname == "drivers.qnic_lab.LabQNIC"
