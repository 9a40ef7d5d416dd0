"""Every real driver opened through the registry against its protocol emulator, by resource
string alone (exactly what a node YAML would hold). A module of its own, not the conftest, so tests
import it by a name no other folder's conftest can shadow."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.registry import InstrumentSpec, open_instrument
from sim_backend.emulators import fake_timetagger
from sim_backend.emulators.awg import Keysight33500Emulator, TektronixAWG70kEmulator
from sim_backend.emulators.idq import IdqTimeControllerEmulator
from sim_backend.emulators.pair_sources import (QubitekkSpdcEmulator, ThorlabsItc4001Emulator,
                                                ThorlabsTed4015Emulator)
from sim_backend.emulators.switches import AgiltronEmulator, DiconMemsEmulator, PolatisEmulator

REPO = Path(__file__).resolve().parents[2]
THORLABS_YAML = REPO / "configs" / "emulators" / "thorlabs_itc4001_ted4015.yaml"
FAST = {"timeout_s": 0.3, "reconnect_initial_s": 0.01, "reconnect_attempts": 4}


@dataclass
class Rig:
    instrument: Any
    emulator: Any  # None when the far end is a module or file
    others: list = field(default_factory=list)  # further emulators the instrument talks to


def _spec(kind, model, resource, limits=None, **options):
    return InstrumentSpec(name=f"{model}-1", kind=kind, model=model, resource=resource,
                          limits=limits or {}, options={**FAST, **options})


def keysight(limits=None):
    emu = Keysight33500Emulator().start()
    return Rig(open_instrument(_spec("awg", "keysight_33500b", emu.visa_socket_resource, limits)), emu)


def tektronix(limits=None):
    emu = TektronixAWG70kEmulator().start()
    return Rig(open_instrument(_spec("awg", "tektronix_awg70k", emu.visa_socket_resource, limits)), emu)


def polatis(limits=None):
    emu = PolatisEmulator(ingress=4, egress=4).start()
    return Rig(open_instrument(_spec("optical_switch", "polatis", emu.visa_socket_resource, limits)), emu)


def dicon(limits=None):
    emu = DiconMemsEmulator(channels=8).start()
    return Rig(open_instrument(_spec("optical_switch", "dicon_mems_1xn", emu.serial_url, limits,
                                     channels=8)), emu)


def agiltron(limits=None):
    emu = AgiltronEmulator(ports=8).start()
    return Rig(open_instrument(_spec("optical_switch", "agiltron_1xn", emu.serial_url, limits, ports=8)), emu)


def qubitekk(limits=None):
    emu = QubitekkSpdcEmulator().start()
    return Rig(open_instrument(_spec("pair_source", "qubitekk_spdc", emu.serial_url, limits)), emu)


def thorlabs(limits=None):
    """The ITC4001 (the rig's emulator: pump current, interlocks) and TED4015 on sockets."""
    itc, ted = ThorlabsItc4001Emulator().start(), ThorlabsTed4015Emulator().start()
    spec = _spec("pair_source", "thorlabs_itc4001_ted4015", itc.visa_socket_resource, limits,
                 oven_resource=ted.visa_socket_resource)
    return Rig(open_instrument(spec), itc, [ted])


def thorlabs_pyvisa_sim(limits=None):
    """The same pair served by pyvisa-sim from YAML, reached by resource strings alone."""
    lib = f"|{THORLABS_YAML}@sim"
    spec = _spec("pair_source", "thorlabs_itc4001_ted4015", "USB0::0x1313::0x804A::M00000001::INSTR" + lib,
                 limits, oven_resource="USB0::0x1313::0x8048::M00000002::INSTR" + lib)
    return Rig(open_instrument(spec), None)


def swabian(limits=None):
    fake_timetagger.CALLS.clear()
    spec = _spec("time_tagger", "swabian", "", limits, module="sim_backend.emulators.fake_timetagger")
    return Rig(open_instrument(spec), fake_timetagger)


def id900(limits=None):
    emu = IdqTimeControllerEmulator().start()
    return Rig(open_instrument(_spec("time_tagger", "idq_id900", emu.endpoint, limits)), emu)


def ptu_replay(limits=None, path=None):
    import numpy as np
    from timing.ptu import write_ptu_t2

    t = np.arange(0, 40_000_000_000, 1_000_000, dtype=np.int64)  # 40 ms, one tag per us
    ch = (np.arange(t.size) % 2 + 1).astype(np.int64)
    write_ptu_t2(path, ch, t, resolution_ps=1)
    return Rig(open_instrument(_spec("time_tagger", "ptu_replay", str(path), limits, inputs=2)), None)


FACTORIES = {
    "awg": {"keysight_33500b": keysight, "tektronix_awg70k": tektronix},
    "optical_switch": {"polatis": polatis, "dicon_mems_1xn": dicon, "agiltron_1xn": agiltron},
    "pair_source": {"qubitekk_spdc": qubitekk, "thorlabs_itc4001_ted4015": thorlabs},
    "time_tagger": {"swabian": swabian, "idq_id900": id900, "ptu_replay": ptu_replay},
}
