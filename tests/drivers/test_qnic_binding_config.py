"""Binding files: every mistake is a ConfigError naming the file, the line and the field; all
mistakes of a file are reported together; waveforms are synthesised as the pulses say."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from drivers.qnic_binding import Pulse, Waveform, binding_from_dict, load_binding
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnic_lab_rig import EXAMPLE_BINDING, FAST
from qnode_fw.errors import ConfigError, ConfigErrors
from sim_backend.emulators.awg import Keysight33500Emulator
from sim_backend.emulators.idq import IdqTimeControllerEmulator
from test_qnic_lab_binding import SMALL


def line_of(text: str, fragment: str) -> int:
    """1-based line of the first line containing ``fragment`` (found independently of the loader)."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def errors_for(tmp_path, text: str) -> list[ConfigError]:
    path = tmp_path / "binding.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_binding(path)
    errors = info.value.errors if isinstance(info.value, ConfigErrors) else [info.value]
    assert all(e.file == str(path) for e in errors)
    return errors


def one(errors: list[ConfigError], field: str) -> ConfigError:
    found = [e for e in errors if e.field == field]
    assert found, f"no error on {field}; got {[(e.field, e.message) for e in errors]}"
    return found[0]


@pytest.mark.parametrize("old, new, field, anchor, words", [
    ("{samples: 8, amplitude: 0.125}", "{samples: 8, amplitude: 1.5}",
     "waveforms.h_a.pulses[0].amplitude", "h_a:", "less than or equal to 1"),
    ("{op: X, qubits: [0], play: [x_a]}", "{op: XX, qubits: [0], play: [x_a]}",
     "operations[2].op", "op: XX", "unknown operation 'XX'"),
    ("{op: X, qubits: [0], play: [x_a]}", "{op: X, qubits: [0], play: [x_b]}",
     "operations[2].play[0]", "play: [x_b]", "'x_b' is not defined"),
    ("play: [[cx_a, cx_b]]}", "play: [[cx_a, init_a]]}",
     "operations[3].play[0][1]", "init_a]]", "both on channel 1"),
    ("{op: X, qubits: [0], play: [x_a]}", "{op: X, qubits: [2], play: [x_a]}",
     "operations[2].qubits", "qubits: [2]", "qubit 2 is out of range"),
    ("{op: X, qubits: [0], play: [x_a]}", "{op: X, qubits: [0, 1], play: [x_a]}",
     "operations[2].qubits", "op: X, qubits: [0, 1]", "X takes 1 qubit"),
    ("{op: move, qubits: [0, 1]", "{op: move, qubits: [1, 0]",
     "operations[5].qubits", "op: move", "not a storage qubit"),
    ("threshold: 2,", "treshold: 2,", "readout[0].treshold", "treshold", "unknown key 'treshold'"),
    ("detector_channels: [2],", "detector_channels: [1],", "readout[0].detector_channels",
     "detector_channels: [1]", "also a detector channel"),
    ("  x_a: {channel: 1,", "  idle_ch1x: {channel: 1,", "waveforms.idle_ch1x", "idle_ch1x",
     "reserved"),
    ("  h_a: {channel: 1,", "  h_a: {channel: 5,", "waveforms.h_a.channel", "channel: 5",
     "channel 5 has no settings"),
    ("{op: X, qubits: [0], play: [x_a]}", "{op: X, qubits: [0], play: [{x_a: 1}]}",
     "operations[2].play[0]", "play: [{x_a: 1}]", "a step is a waveform name or a list"),
    ("sample_rate_hz: 1.0e+8", "sample_rate_hz: fast", "sample_rate_hz", "sample_rate_hz", "number"),
])
def test_mistake_names_file_line_and_field(tmp_path, old, new, field, anchor, words):
    assert old in SMALL
    text = SMALL.replace(old, new, 1)
    err = one(errors_for(tmp_path, text), field)
    assert err.line == line_of(text, anchor)
    assert words in str(err)


def test_required_operations_are_listed_together(tmp_path):
    text = SMALL.replace("  - {op: init, qubits: [1], play: [init_b]}\n", "")
    text = text.replace("  - {op: emit, qubits: [0], play: [emit_a]}\n", "")
    messages = [e.message for e in errors_for(tmp_path, text)]
    assert "qubit 1 has no init binding" in messages
    assert "communication qubit 0 has no emit binding" in messages


def test_duplicate_binding_and_duplicate_key(tmp_path):
    text = SMALL.replace("  - {op: measure_X", "  - {op: X, qubits: [0], play: [h_a]}\n  - {op: measure_X")
    err = one(errors_for(tmp_path, text), "operations[6]")
    assert "bound twice (also operations[2])" in err.message and err.line == line_of(text, "play: [h_a]}")
    text = SMALL.replace("qnic_address: 3\n", "qnic_address: 3\nqnic_address: 4\n")
    err = errors_for(tmp_path, text)[0]
    assert err.field == "qnic_address" and err.line == 2 and "twice" in err.message


def test_from_dict_without_lines_names_the_field():
    data = yaml.safe_load(EXAMPLE_BINDING.read_text())
    assert binding_from_dict(data) == load_binding(EXAMPLE_BINDING)
    data["readout"][1]["pulse"] = "nope"
    with pytest.raises(ConfigError) as info:
        binding_from_dict(data, file="bench.yaml")
    assert info.value.field == "readout[1].pulse" and info.value.file == "bench.yaml"


def test_instruments_are_found_by_name_and_kind(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    spec = InstrumentSpec("qnic0", "qnic", "lab_binding", str(path))
    with Keysight33500Emulator() as emu:
        awg = open_instrument(InstrumentSpec("awg0", "awg", "keysight_33500b", emu.visa_socket_resource,
                                             {}, FAST))
        try:
            with pytest.raises(ConfigError) as info:
                open_instrument(spec, DriverContext(instruments={"awg0": awg}))
            assert (info.value.file, info.value.field) == (str(path), "tagger")
            assert "'tagger0' is not open" in str(info.value)
            with pytest.raises(ConfigError) as info:
                open_instrument(spec, DriverContext(instruments={"awg0": awg, "tagger0": awg}))
            assert "is a awg, not a time_tagger" in str(info.value)
            with IdqTimeControllerEmulator() as idq_emu:
                idq = open_instrument(InstrumentSpec("tagger0", "time_tagger", "idq_id900",
                                                     idq_emu.endpoint, {}, FAST))
                try:
                    before = len(emu.log.pairs())
                    with pytest.raises(ConfigError, match="cannot stream tags") as info:
                        open_instrument(spec, DriverContext(instruments={"awg0": awg, "tagger0": idq}))
                    assert info.value.field == "tagger"
                    assert len(emu.log.pairs()) == before  # refused before touching the AWG
                finally:
                    idq.close()
        finally:
            awg.close()


# -- waveform synthesis against closed forms -------------------------------------------------


def test_square_gaussian_and_carrier_samples():
    rate = 1e9
    w = Waveform(channel=1, pulses=[Pulse(samples=4, amplitude=-0.5),
                                    Pulse(samples=61, amplitude=0.8, envelope="gaussian"),
                                    Pulse(samples=8, amplitude=0.5, frequency_hz=1.25e8, phase_deg=90)])
    s = w.samples(rate)
    assert s.size == 73 and w.duration_ps(rate) == 73_000
    assert s[:4].tolist() == [-0.5] * 4
    g = s[4:65]
    assert g[30] == pytest.approx(0.8)  # the centre sample of an odd-length gaussian
    sigma = 61 / 6
    assert g[0] == pytest.approx(0.8 * math.exp(-0.5 * (30 / sigma) ** 2))
    assert g[10] == pytest.approx(g[50])
    # carrier: 0.5 cos(2 pi f t + 90 deg) with t counted from the waveform start (sample 65)
    k = np.arange(65, 73)
    assert s[65:] == pytest.approx(0.5 * np.cos(2 * np.pi * 1.25e8 * k / rate + np.pi / 2))
    assert w.markers() is None


def test_marker_bits_follow_the_pulses():
    w = Waveform(channel=2, pulses=[Pulse(samples=3), Pulse(samples=2, marker=1), Pulse(samples=1, marker=3)])
    assert w.markers().tolist() == [0, 0, 0, 1, 1, 3]
