"""The QNIC lab binding on its emulators: a Keysight 33500 emulator (real driver over a TCP
socket), the fake Swabian module (real driver), the bench that wires them, and the binding
opened through the driver registry with both instruments in the DriverContext."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from sim_backend.emulators import fake_timetagger
from sim_backend.emulators.awg import Keysight33500Emulator, TektronixAWG70kEmulator
from sim_backend.emulators.qnic_bench import Action, QnicBench

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_BINDING = REPO / "configs" / "qnic_bindings" / "two_qubit_keysight_swabian.yaml"
FAST = {"timeout_s": 0.5, "reconnect_initial_s": 0.01, "reconnect_attempts": 4}

#: The example binding's wiring table, written from the waveform names in the file: which
#: waveform does what to which qubit. Waveforms absent here (the second channel of a two-qubit
#: step, idle waveforms) do nothing on their own.
EXAMPLE_ACTIONS = {
    **{f"init_q{q}": Action("init", (q,)) for q in (0, 1)},
    **{f"{name}_q{q}": Action("gate", (q,), gate) for q in (0, 1)
       for name, gate in (("x", "X"), ("y", "Y"), ("z", "Z"), ("h", "H"), ("s", "S"), ("sdg", "SDG"))},
    "emit_q0": Action("emit", (0,)),
    "absorb_q0": Action("absorb", (0,)),
    "ro_q0": Action("readout", (0,)),
    "ro_q1": Action("readout", (1,)),
    "cx01_a": Action("gate", (0, 1), "CNOT"),
    "cx10_a": Action("gate", (1, 0), "CNOT"),
    "cz01_a": Action("gate", (0, 1), "CZ"),
    "mv01_a": Action("move", (0, 1)),
}


@dataclass
class LabRig:
    qnic: object
    awg: object
    tagger: object
    awg_emulator: Keysight33500Emulator | TektronixAWG70kEmulator
    bench: QnicBench

    def close(self) -> None:
        self.qnic.close()
        self.tagger.close()
        self.awg.close()
        self.awg_emulator.stop()


AWG_EMULATORS = {"keysight_33500b": Keysight33500Emulator, "tektronix_awg70k": TektronixAWG70kEmulator}


def open_lab_rig(binding: Path = EXAMPLE_BINDING, actions: dict[str, Action] | None = None,
                 awg_limits: dict | None = None, awg_model: str = "keysight_33500b",
                 **bench_options) -> LabRig:
    fake_timetagger.CALLS.clear()
    emu = AWG_EMULATORS[awg_model]().start()
    awg = open_instrument(InstrumentSpec("awg0", "awg", awg_model, emu.visa_socket_resource,
                                         awg_limits or {}, FAST))
    tagger = open_instrument(InstrumentSpec("tagger0", "time_tagger", "swabian", "", {},
                                            {"module": "sim_backend.emulators.fake_timetagger"}))
    options = {"num_qubits": 2, "marker_inputs": {1: 1, 2: 3}, "detector_input": 2,
               "click_start_ps": 60_000, **bench_options}
    bench = QnicBench(tagger.tagger, actions=EXAMPLE_ACTIONS if actions is None else actions,
                      **options).attach(emu)
    try:
        qnic = open_instrument(InstrumentSpec("qnic0", "qnic", "lab_binding", str(binding)),
                               DriverContext(instruments={"awg0": awg, "tagger0": tagger}))
    except BaseException:
        tagger.close()
        awg.close()
        emu.stop()
        raise
    return LabRig(qnic, awg, tagger, emu, bench)
