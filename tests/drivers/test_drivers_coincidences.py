"""Coincidence measurements: the Swabian driver through the vendor's Coincidences virtual channels
(exact vendor calls, rates against the test signal's closed form), the PTU replay tagger from a
file with known tags, the shared counting rule against an independent pair count, and the
Swabian driver's bounded waits and checks on what the module returns."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.coincidences import count_coincidences, group_coincidences
from qnode_fw.errors import InstrumentError, InstrumentTimeout
from sim_backend.emulators import fake_timetagger
from timing.ptu import write_ptu_t2

US = 1_000_000  # ps


def test_swabian_coincidences_vendor_calls_and_test_signal_rate(rig_factory):
    rig = rig_factory("time_tagger", "swabian")
    tagger = rig.instrument
    tagger.tagger.setTestSignal([1, 2], True)  # both inputs tick together every 1.25 us
    fake_timetagger.CALLS.clear()
    rates = tagger.coincidence_rates_hz([(1, 2), (1, 2, 3)], 1000, 10 * US)
    virtual = fake_timetagger.FIRST_VIRTUAL_CHANNEL
    assert fake_timetagger.CALLS == [
        ("Coincidences", [[1, 2], [1, 2, 3]], 1000), ("Countrate", [virtual, virtual + 1]),
        ("Countrate.startFor", 10 * US, True), ("Countrate.clear",),
        ("Countrate.waitUntilFinished", 300), ("Countrate.getData",),
    ]
    # 8 ticks in 10 us, each one coincidence of (1, 2); input 3 never fires
    assert rates == {(1, 2): pytest.approx(8 / 10e-6), (1, 2, 3): 0.0}


@pytest.mark.parametrize("delay_ps, window_ps, expected_hz", [
    (0, 1000, 800e3), (1000, 1000, 800e3), (1001, 1000, 0.0), (-1000, 1000, 800e3), (1500, 2000, 800e3),
])
def test_swabian_coincidence_window_against_input_delay(rig_factory, delay_ps, window_ps, expected_hz):
    rig = rig_factory("time_tagger", "swabian", {"input_delay_ps": (-5000, 5000)})
    tagger = rig.instrument
    tagger.tagger.setTestSignal([1, 2], True)
    tagger.set_input_delay_ps(2, delay_ps)
    rates = tagger.coincidence_rates_hz([(1, 2)], window_ps, 100 * US)
    assert rates[(1, 2)] == pytest.approx(expected_hz)


def test_swabian_stalled_measurement_times_out(rig_factory):
    tagger = rig_factory("time_tagger", "swabian").instrument
    tagger.tagger._stall = True
    with pytest.raises(InstrumentTimeout) as info:
        tagger.count_rates_hz([1], 5 * US)
    assert info.value.command == "Countrate.waitUntilFinished(300)"
    with pytest.raises(InstrumentTimeout):
        tagger.coincidence_rates_hz([(1, 2)], 1000, 5 * US)


def test_swabian_garbled_arrays_raise(rig_factory):
    tagger = rig_factory("time_tagger", "swabian").instrument
    tagger.tagger._garble = True
    with pytest.raises(InstrumentError, match="garbled count rates") as info:
        tagger.count_rates_hz([1, 2], 5 * US)
    assert info.value.command == "Countrate.getData()"
    tagger.start_stream([1, 2])
    tagger.tagger._inject_tags([1, 2], [10, 20])
    tagger.tagger._garble = True
    with pytest.raises(InstrumentError, match="garbled stream buffer"):
        tagger.read_stream()


def test_bad_groups_start_nothing(rig_factory):
    tagger = rig_factory("time_tagger", "swabian").instrument
    fake_timetagger.CALLS.clear()
    for groups in ([(1, 1)], [(1, 99)], []):
        with pytest.raises(InstrumentError):
            tagger.coincidence_rates_hz(groups, 1000, US)
    with pytest.raises(InstrumentError):
        tagger.coincidence_rates_hz([(1, 2)], -1, US)
    assert fake_timetagger.CALLS == []


def test_ptu_replay_coincidences_from_known_tags(tmp_path):
    from drivers.registry import InstrumentSpec, open_instrument

    k = np.arange(1000, dtype=np.int64)
    t = np.concatenate([k * US, k * US + 300, k[::2] * US + 200])
    ch = np.concatenate([np.full(1000, 1), np.full(1000, 2), np.full(500, 3)])
    order = np.argsort(t, kind="stable")
    path = tmp_path / "pairs.ptu"
    write_ptu_t2(path, ch[order], t[order], resolution_ps=1)
    tagger = open_instrument(InstrumentSpec("t", "time_tagger", "ptu_replay", str(path), {}, {"inputs": 3}))
    rates = tagger.coincidence_rates_hz([(1, 2), (1, 2, 3), (1, 3)], 500, 1000 * US)
    # every ch2 tag is 300 ps after a ch1 tag; the triple fires on the ch2 tag of even microseconds
    # (ch1 300 ps and ch3 100 ps before it); each ch3 tag is 200 ps after a ch1 tag
    assert rates[(1, 2)] == pytest.approx(1000 / 1e-3)
    assert rates[(1, 2, 3)] == pytest.approx(500 / 1e-3)
    assert rates[(1, 3)] == pytest.approx(500 / 1e-3)
    assert tagger.coincidence_rates_hz([(1, 3)], 199, 1000 * US)[(1, 3)] == 0.0
    assert tagger.coincidence_rates_hz([(1, 3)], 200, 1000 * US)[(1, 3)] == pytest.approx(500 / 1e-3)


def test_pair_rule_matches_an_independent_pair_count():
    rng = np.random.default_rng(5)
    w = 1000
    a = np.unique(rng.integers(0, 100_000, 3000)) * 10 * w  # spaced >= 10 w
    offsets = rng.integers(-2 * w, 2 * w + 1, a.size)
    b = a + offsets  # each b has one a within 2 w, the next a 8 w or more away
    ch = np.concatenate([np.ones(a.size, int), np.full(b.size, 2)])
    ts = np.concatenate([a, b])
    order = np.argsort(ts, kind="stable")
    got = count_coincidences(ch[order], ts[order], [(1, 2)], w)[(1, 2)]
    assert got == int(np.count_nonzero(np.abs(offsets) <= w))


def test_simultaneous_tags_are_one_coincidence_stamped_last():
    ch = np.array([1, 2, 3, 1, 2])
    ts = np.array([100, 100, 150, 5000, 5900])
    assert group_coincidences(ch, ts, (1, 2), 0).tolist() == [100]
    assert group_coincidences(ch, ts, (1, 2, 3), 50).tolist() == [150]
    assert group_coincidences(ch, ts, (1, 2), 900).tolist() == [100, 5900]
