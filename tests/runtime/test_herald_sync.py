"""Clock sync over a node process's herald link (qnode_fw.testbed.herald_sync), on real ZeroMQ
herald endpoints wired as NodeLinks wires them: the end binds the link's ROUTER, the station
connects to it. The station's clock runs 3 ms ahead of the end's and 20 ppm fast.

Oracle: two-way time transfer over a path whose legs are both non-negative puts each exchange's
offset within its one-way delay of the truth, so the fitted offset lies within the mean one-way
delay plus the fit's own uncertainty of ``SimulatedClock.offset_at`` (the truth). With CurveZMQ
the end's ROUTER knows the station only after the station's first frame (its hello), so sync
working there shows the hello and the gate on it; the end never sends before it has a route
(no send failures)."""

from __future__ import annotations

import time

import pytest
import zmq

from qnode_fw.clock import WallClock
from qnode_fw.control import CurveIdentity, NodeAuthenticator
from qnode_fw.loop import EventLoop
from qnode_fw.testbed.herald_sync import HeraldClockSync, HeraldSyncSettings, sync_lines
from qnode_fw.units import MS, US
from timing.clock_sync import SimulatedClock
from timing.herald_link import CurveKeys, ZmqHeraldEndpoint

LINK = "A-B"
FAST = HeraldSyncSettings(interval_ps=2 * MS, block=4, window=16)


@pytest.mark.parametrize("curve", [False, True], ids=["plain", "curve"])
def test_an_end_finds_its_stations_clock_over_the_herald_link(curve):
    loop = EventLoop(WallClock())
    end_ctx, station_ctx = zmq.Context(), zmq.Context()
    auth = None
    end_keys = station_keys = None
    if curve:
        a, s = CurveIdentity.generate(), CurveIdentity.generate()
        auth = NodeAuthenticator(end_ctx, {"A": a.public, "bsa": s.public})
        auth.start()
        end_keys = CurveKeys(a.public, a.secret)
        station_keys = CurveKeys(s.public, s.secret, peer_public={"A": a.public})
    end_ep = ZmqHeraldEndpoint("A", LINK, bind="tcp://127.0.0.1:0", context=end_ctx, curve=end_keys)
    station_ep = ZmqHeraldEndpoint("bsa", LINK, connect={"A": end_ep.address}, context=station_ctx,
                                   curve=station_keys)
    station_clock = SimulatedClock(loop.clock, offset_ps=3 * MS, drift_ppm=20.0)
    end = HeraldClockSync("A", loop, FAST)
    station = HeraldClockSync("bsa", loop, FAST, clock=station_clock)
    try:
        for ep in (end_ep, station_ep):
            ep.attach(loop)
        end.add_end(LINK, end_ep, "bsa")
        station.add_station(LINK, station_ep, ("A",))
        end.start()
        station.start()
        deadline = time.monotonic() + 20
        while end.status()[LINK].samples < 12:
            assert time.monotonic() < deadline, end.status()
            loop.run_until(loop.now_ps() + 20 * MS)
        st = end.status()[LINK]
        truth = station_clock.offset_at(loop.now_ps())
        end.stop()
        station.stop()
    finally:
        for ep in (end_ep, station_ep):
            ep.close()
        if auth is not None:
            auth.stop()
        end_ctx.term(); station_ctx.term()
        loop.close()
    assert st.station == "bsa" and st.exchanges >= 12 * FAST.block
    assert abs(st.offset_us * US - truth) <= (st.delay_us + st.uncertainty_us) * US, (st, truth / US)
    assert 0 < st.delay_us < 50_000 and st.faults == []
    assert end_ep.stats.send_failures == 0                 # no request before the route existed
    assert station.answered()[LINK] >= st.exchanges
    lines = sync_lines(end) + sync_lines(station)
    assert lines[0].startswith(f"  clock sync {LINK} to bsa: offset +") and "answered" in lines[1]
    assert set(end.to_dict()["links"][LINK]) == {"station", "exchanges", "offset_us", "uncertainty_us",
                                                  "drift_ppm", "delay_us", "samples", "faults"}


def test_without_a_station_frame_an_end_does_not_ask():
    """Before it has heard the station the end sends nothing (its ROUTER may have no route)."""
    loop = EventLoop(WallClock())
    ctx = zmq.Context()
    end_ep = ZmqHeraldEndpoint("A", LINK, bind="tcp://127.0.0.1:0", context=ctx)
    end = HeraldClockSync("A", loop, FAST)
    try:
        end_ep.attach(loop)
        end.add_end(LINK, end_ep, "bsa")
        end.start()
        loop.run_until(loop.now_ps() + 30 * MS)
        st = end.status()[LINK]
        assert st.exchanges == 0 and st.offset_us is None
        assert end_ep.stats.sent == 0 and end_ep.stats.send_failures == 0
        assert "no estimate yet" in sync_lines(end)[0]
    finally:
        end.stop()
        end_ep.close()
        ctx.term()
        loop.close()
