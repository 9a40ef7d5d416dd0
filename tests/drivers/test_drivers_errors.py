"""Error paths for every driver with a wire protocol: an error reply, a timeout, a disconnect in
the middle of a command followed by a successful reconnect, an out-of-limit request that sends
nothing, and garbage in a reply. Each error must name the resource and the command."""

from __future__ import annotations

import time

import pytest

from qnode_fw.errors import (InstrumentDisconnected, InstrumentError, InstrumentTimeout,
                             SafetyLimitError)

# model -> (kind, call that sends a setting, regex of the setting, call that queries, regex of the
#           query, garbage reply, out-of-limit call, limits)
CASES = {
    "keysight_33500b": ("awg", lambda i: i.set_amplitude_vpp(1, 1.0), r"SOUR1:VOLT 1$",
                        lambda i: i.amplitude[1], r"SOUR1:VOLT\?", b"volts!\n",
                        lambda i: i.set_amplitude_vpp(1, 2.5), {"amplitude_vpp": (0, 2)}),
    "tektronix_awg70k": ("awg", lambda i: i.set_amplitude_vpp(1, 0.3), r"SOUR1:VOLT 0.3$",
                         lambda i: i.amplitude[1], r"SOUR1:VOLT\?", b"\x00\xff\n",
                         lambda i: i.set_amplitude_vpp(1, 0.45), {"amplitude_vpp": (0, 0.4)}),
    "polatis": ("optical_switch", lambda i: i.connect(1, 2), r"CONN:ADD",
                lambda i: i.connections(), r"CONN:STAT\?", b"(@1,2),(@5)\n",
                lambda i: i.connect(1, 4), {"output_port": (1, 3)}),
    "dicon_mems_1xn": ("optical_switch", lambda i: i.connect(1, 2), r"^I1 2$",
                       lambda i: i.connections(), r"^I1\?$", b"\nfive\r\n",
                       lambda i: i.connect(1, 4), {"output_port": (1, 3)}),
    "agiltron_1xn": ("optical_switch", lambda i: i.connect(1, 2), r"^\x01\x35",
                     lambda i: i.connect(1, 3), r"^\x01\x35\x00\x02", b"\x01\x35\x00\x00",
                     lambda i: i.connect(1, 4), {"output_port": (1, 3)}),
    "qubitekk_spdc": ("pair_source", lambda i: i.set_pump_current_ma(40), r":PLDC",
                      lambda i: i.pump_current_ma(), r"PLID\?", b"4O.00\r\n",
                      lambda i: i.set_pump_current_ma(70), {"pump_current_ma": (0, 60)}),
    "thorlabs_itc4001_ted4015": ("pair_source", lambda i: i.set_pump_current_ma(40), r"SOUR:CURR:LEV:AMPL 0.04$",
                                 lambda i: i.pump_current_ma(), r"SOUR:CURR:LEV:AMPL\?", b"forty mA\n",
                                 lambda i: i.set_pump_current_ma(70), {"pump_current_ma": (0, 60)}),
    "idq_id900": ("time_tagger", lambda i: i.set_trigger_level_v(1, 0.5), r"INPU1:THRE 0.500",
                  lambda i: i.threshold[1], r"INPU1:THRE\?", b"half a volt",
                  lambda i: i.set_trigger_level_v(1, 1.5), {"trigger_level_v": (-1, 1)}),
}
MODELS = sorted(CASES)


def _rig(rig_factory, model):
    kind, *_, limits = CASES[model]
    return rig_factory(kind, model, limits)


@pytest.mark.parametrize("model", MODELS)
def test_error_reply_raises_with_resource_command_and_message(rig_factory, model):
    rig = _rig(rig_factory, model)
    _, setting, pattern, *_ = CASES[model]
    rig.emulator.inject(pattern, "error", message='-222,"Data out of range"' if model not in
                        ("idq_id900",) else "SCPI_ERR_PARAMETER_OUT_OF_RANGE")
    with pytest.raises(InstrumentError) as info:
        setting(rig.instrument)
    err = info.value
    assert err.resource == rig.instrument.resource
    assert err.command is not None and err.command != ""
    if model in ("keysight_33500b", "tektronix_awg70k", "polatis", "thorlabs_itc4001_ted4015"):
        assert "Data out of range" in err.message  # the instrument's own words
    if model == "idq_id900":
        assert "SCPI_ERR_PARAMETER_OUT_OF_RANGE" in err.message


@pytest.mark.parametrize("model", MODELS)
def test_timeout_then_next_command_works(rig_factory, model):
    rig = _rig(rig_factory, model)
    _, setting, _, query, qpattern, *_ = CASES[model]
    rig.emulator.inject(qpattern, "silent")
    with pytest.raises(InstrumentTimeout) as info:
        query(rig.instrument)
    assert info.value.resource == rig.instrument.resource and info.value.command
    query(rig.instrument)  # the session reopened cleanly: no stale reply is read


@pytest.mark.parametrize("model", [m for m in MODELS if m != "idq_id900"])
def test_disconnect_mid_command_then_reconnect(rig_factory, model):
    rig = _rig(rig_factory, model)
    _, setting, pattern, query, *_ = CASES[model]
    query(rig.instrument)  # the emulator has surely accepted the first connection now
    connections = rig.emulator.connections
    rig.emulator.inject(pattern, "drop")
    with pytest.raises((InstrumentDisconnected, InstrumentTimeout)) as info:
        setting(rig.instrument)
    assert info.value.resource == rig.instrument.resource
    setting(rig.instrument)  # reconnects (bounded backoff) and succeeds
    query(rig.instrument)
    assert rig.emulator.connections == connections + 1
    # a two-controller source reconnects the session of the controller that dropped (the pump)
    session = rig.instrument.pump.session if model == "thorlabs_itc4001_ted4015" else rig.instrument.session
    assert session.reconnects == 1


def test_zmq_lost_request_then_fresh_socket(rig_factory):
    rig = _rig(rig_factory, "idq_id900")
    rig.emulator.inject(r"INPU1:THRE 0.500", "drop")
    with pytest.raises(InstrumentTimeout):
        rig.instrument.set_trigger_level_v(1, 0.5)
    rig.instrument.set_trigger_level_v(1, 0.5)  # a new REQ socket (lazy pirate) and the retry works
    assert rig.emulator.state[1]["THRE"] == 0.5
    assert rig.instrument.session.reconnects == 1


@pytest.mark.parametrize("model", MODELS)
def test_out_of_limit_sends_nothing(rig_factory, model):
    rig = _rig(rig_factory, model)
    *_, beyond, _ = CASES[model]
    time.sleep(0.05)
    before = rig.emulator.log.pairs()
    with pytest.raises(SafetyLimitError) as info:
        beyond(rig.instrument)
    assert "nothing was sent" in str(info.value)
    time.sleep(0.05)
    assert rig.emulator.log.pairs() == before


@pytest.mark.parametrize("model", MODELS)
def test_garbage_reply_raises(rig_factory, model):
    rig = _rig(rig_factory, model)
    _, _, _, query, qpattern, garbage, *_ = CASES[model]
    rig.emulator.inject(qpattern, "garbage", reply=garbage)
    with pytest.raises(InstrumentError) as info:
        query(rig.instrument)
    assert info.value.resource == rig.instrument.resource
    assert info.value.command


def test_reconnect_gives_up_after_bounded_attempts(rig_factory):
    rig = _rig(rig_factory, "polatis")
    rig.instrument.session.close()
    rig.emulator.stop()  # nobody listens any more
    slept = []
    rig.instrument.session._sleep = slept.append
    with pytest.raises(InstrumentDisconnected) as info:
        rig.instrument.connections()
    assert "after 4 attempts" in str(info.value)
    assert slept == [0.01, 0.02, 0.04]


def test_swabian_vendor_error_names_call(rig_factory):
    rig = rig_factory("time_tagger", "swabian", {"trigger_level_v": (-5, 5)})
    with pytest.raises(InstrumentError) as info:
        rig.instrument.set_trigger_level_v(1, 3.0)  # inside our limit, outside the tagger's range
    assert info.value.command == "setTriggerLevel(1, 3.0)"
    assert "out of range" in info.value.message


def test_swabian_out_of_limit_calls_nothing(rig_factory):
    from sim_backend.emulators import fake_timetagger
    rig = rig_factory("time_tagger", "swabian", {"trigger_level_v": (-1, 1)})
    before = list(fake_timetagger.CALLS)
    with pytest.raises(SafetyLimitError):
        rig.instrument.set_trigger_level_v(1, 1.2)
    assert fake_timetagger.CALLS == before
