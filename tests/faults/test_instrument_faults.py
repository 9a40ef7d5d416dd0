"""Instrument faults from a FaultPlan, injected where the bytes come from: in the protocol
emulators for real drivers (VISA socket, raw TCP, serial over socket://, ZeroMQ REQ) and on the
driver instance for a simulated tagger and the Swabian vendor module. Each fault surfaces as the
typed error naming the instrument's resource and the command; the next command works, after at
most one reconnect; a dead instrument is named after a bounded number of backoff pauses and
comes back when the instrument does."""

from __future__ import annotations

import time

import numpy as np
import pytest

from drivers.registry import InstrumentSpec, open_instrument
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import (ConfigError, InstrumentDisconnected, InstrumentError,
                             InstrumentTimeout)
from qnode_fw.faults import FaultTargets, apply_fault_plan, parse_fault_plan_yaml
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from sim_backend.emulators.awg import Keysight33500Emulator
from sim_backend.emulators.idq import IdqTimeControllerEmulator
from sim_backend.emulators.pair_sources import QubitekkSpdcEmulator
from sim_backend.emulators.switches import PolatisEmulator

FAST = {"timeout_s": 0.3, "reconnect_initial_s": 0.01, "reconnect_attempts": 4,
        "reconnect_max_s": 0.04}


def _open(kind, model, resource, **options):
    return open_instrument(InstrumentSpec(name="dev", kind=kind, model=model, resource=resource,
                                          options={**FAST, **options}))


# model -> (make emulator, kind, resource of emulator, a setting and the regex of its command,
#           a query and the regex of its command)
WIRE = {
    "keysight_33500b": (Keysight33500Emulator, "awg", lambda e: e.visa_socket_resource,
                        lambda i: i.set_amplitude_vpp(1, 1.0), r"SOUR1:VOLT 1$",
                        lambda i: i.amplitude[1], r"SOUR1:VOLT\?"),
    "polatis": (lambda: PolatisEmulator(ingress=4, egress=4), "optical_switch",
                lambda e: e.visa_socket_resource, lambda i: i.connect(1, 2), r"CONN:ADD",
                lambda i: i.connections(), r"CONN:STAT\?"),
    "qubitekk_spdc": (QubitekkSpdcEmulator, "pair_source", lambda e: e.serial_url,
                      lambda i: i.set_pump_current_ma(40), r":PLDC",
                      lambda i: i.pump_current_ma(), r"PLID\?"),
    "idq_id900": (IdqTimeControllerEmulator, "time_tagger", lambda e: e.endpoint,
                  lambda i: i.set_trigger_level_v(1, 0.5), r"INPU1:THRE 0.500",
                  lambda i: i.threshold[1], r"INPU1:THRE\?"),
}
#: Faults of a reply hit a query (a reply is replaced, not added); the others hit a setting.
ON_QUERY = {"timeout", "garbage"}
EXPECTED = {"timeout": InstrumentTimeout, "disconnect": (InstrumentDisconnected, InstrumentTimeout),
            "garbage": InstrumentError, "error": InstrumentError}


def _plan(fault, extra=""):
    return parse_fault_plan_yaml(
        f"instruments: [{{node: A, instrument: dev, fault: {fault}, at_s: 0.001{extra}}}]")


@pytest.fixture
def wire_rig():
    made = []

    def make(model):
        factory, kind, resource, *_ = WIRE[model]
        emu = factory().start()
        inst = _open(kind, model, resource(emu))
        made.append((inst, emu))
        return inst, emu

    yield make
    for inst, emu in made:
        inst.close()
        emu.stop()


# A ZeroMQ REQ transport (ID900) has no connection to lose: there a disconnect is a timeout.
CASES = [(m, f) for m in sorted(WIRE) for f in ("timeout", "disconnect", "garbage", "error")
         if (m, f) != ("idq_id900", "disconnect")]


@pytest.mark.parametrize(("model", "fault"), CASES)
def test_wire_fault_is_named_and_the_instrument_recovers(wire_rig, model, fault):
    inst, emu = wire_rig(model)
    *_, setting, setting_re, query, query_re = WIRE[model]
    command, pattern = (query, query_re) if fault in ON_QUERY else (setting, setting_re)
    query(inst)                                  # connected and answering
    loop = EventLoop(VirtualClock())
    applied = apply_fault_plan(_plan(fault, f", command: '{pattern}'"), FaultTargets(
        loop, RandomStreams(1), emulators={("A", "dev"): emu}, instruments={("A", "dev"): inst}))
    loop.run_until(10**9)                        # the fault is armed at 1 ms
    assert [(e.kind, e.target) for e in applied.log] == [("instrument", "A/dev")]
    slept: list[float] = []
    inst.session._sleep = slept.append
    with pytest.raises(EXPECTED[fault]) as info:
        command(inst)
    assert info.value.resource == inst.resource and info.value.command
    setting(inst)                                # the next commands go through
    query(inst)
    assert inst.session.reconnects <= 1 and sum(slept) <= 0.01 * 3


def test_dead_instrument_is_named_after_bounded_backoff_and_comes_back():
    emu = PolatisEmulator(ingress=4, egress=4).start()
    port = emu.port
    inst = _open("optical_switch", "polatis", emu.visa_socket_resource)
    try:
        inst.connections()
        emu.stop()                              # the switch loses power
        inst.session.close()
        slept: list[float] = []
        inst.session._sleep = slept.append
        start = time.monotonic()
        with pytest.raises(InstrumentDisconnected) as info:
            inst.connect(1, 2)
        assert info.value.resource == inst.resource and "after 4 attempts" in str(info.value)
        assert slept == [0.01, 0.02, 0.04]      # doubling, capped at reconnect_max_s
        assert time.monotonic() - start < 2.0
        emu = PolatisEmulator(port=port, ingress=4, egress=4).start()   # power back
        inst.session._sleep = time.sleep
        inst.connect(1, 2)
        assert inst.connections() and inst.session.reconnects == 1
    finally:
        inst.close()
        emu.stop()


def _sim_tagger():
    from sim_backend.instruments import SimTimeTagger  # registers the simulated drivers
    from drivers.registry import DriverContext
    ctx = DriverContext(clock=VirtualClock())
    tagger = open_instrument(InstrumentSpec(name="tagger", kind="time_tagger", model="sim",
                                            resource="sim", options={}), ctx)
    assert isinstance(tagger, SimTimeTagger)
    return tagger, ctx


@pytest.mark.parametrize("fault", ["timeout", "disconnect", "garbage", "error"])
def test_driver_level_faults_on_a_simulated_instrument(fault):
    tagger, _ = _sim_tagger()
    loop = EventLoop(VirtualClock())
    applied = apply_fault_plan(_plan(fault, ", command: set_trigger, count: 2"), FaultTargets(
        loop, RandomStreams(1), instruments={("A", "dev"): tagger}))
    loop.run_until(10**9)
    tagger.set_input_delay_ps(1, 5)             # other commands are not hit
    for _ in range(2):
        with pytest.raises(EXPECTED[fault]) as info:
            tagger.set_trigger_level_v(1, 0.2)
        assert info.value.resource == "sim://tagger/tagger"
        assert info.value.command == "set_trigger_level_v(1, 0.2)"
        assert "injected fault" in info.value.message
    tagger.set_trigger_level_v(1, 0.2)          # count exhausted: works again
    assert applied.summary()["instrument_faults_fired"] == {"A/dev": 2}
    applied.remove()
    assert "set_trigger_level_v" not in vars(tagger)


def test_tagger_overflow_loses_tags_and_flags_the_batch():
    from drivers.registry import DriverContext
    from sim_backend.emulators import fake_timetagger
    tagger = open_instrument(InstrumentSpec(
        name="swabian", kind="time_tagger", model="swabian", resource="",
        options={"module": "sim_backend.emulators.fake_timetagger"}), DriverContext())
    try:
        loop = EventLoop(VirtualClock())
        apply_fault_plan(_plan("overflow", ", fraction: 0.5"), FaultTargets(
            loop, RandomStreams(3), instruments={("A", "dev"): tagger}))
        loop.run_until(10**9)
        tagger.start_stream([1, 2])
        vendor = tagger.tagger
        n = 4000
        vendor._inject_tags(np.tile([1, 2], n // 2), np.arange(n, dtype=np.int64) * 1000)
        batch = tagger.read_stream()
        assert batch.overflow and batch.missed_events == n - len(batch)
        # Each tag is lost with probability 1/2: within 3 sigma of n/2.
        assert abs(len(batch) - n / 2) <= 3 * np.sqrt(n / 4)
        assert np.all(np.diff(batch.timestamps_ps) >= 0)
        vendor._inject_tags(np.array([1]), np.array([n * 1000 + 5], dtype=np.int64))
        assert not tagger.read_stream().overflow   # one read overflowed, not every one
    finally:
        tagger.close()
        fake_timetagger._TAGGERS.clear()


def test_a_plan_naming_what_is_not_there_is_refused_at_apply():
    loop = EventLoop(VirtualClock())
    tagger, _ = _sim_tagger()
    with pytest.raises(ConfigError, match="no instrument 'A/dev'"):
        apply_fault_plan(_plan("timeout"), FaultTargets(loop, RandomStreams(1)))
    emu = Keysight33500Emulator()
    with pytest.raises(ConfigError, match="cannot overflow"):
        apply_fault_plan(_plan("overflow"), FaultTargets(loop, RandomStreams(1),
                                                         emulators={("A", "dev"): emu}))
    with pytest.raises(ConfigError, match="no node 'Z'"):
        apply_fault_plan(parse_fault_plan_yaml("clocks: [{node: Z, jump_us: 1}]"),
                         FaultTargets(loop, RandomStreams(1), nodes=["A"]))


def test_in_processes_mode_each_node_applies_only_its_own_entries():
    loop = EventLoop(VirtualClock())
    tagger, _ = _sim_tagger()
    plan = parse_fault_plan_yaml(
        "instruments: [{node: A, instrument: dev, fault: timeout},"
        " {instrument: tagger, fault: error}, {instrument: dev, fault: garbage}]\n"
        "clocks: [{node: A, jump_us: 3}]")
    # Node B's process: A's entries and an instrument B does not have are left to others.
    applied = apply_fault_plan(plan, FaultTargets(loop, RandomStreams(1), nodes=["A", "B"],
                                                  instruments={("B", "tagger"): tagger},
                                                  only_node="B"))
    loop.run_until(10**9)
    assert [(e.kind, e.target) for e in applied.log] == [("instrument", "tagger")]
    with pytest.raises(InstrumentError, match="injected"):
        tagger.set_trigger_level_v(1, 0.1)
