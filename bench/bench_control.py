"""Control-path one-way latency over ZeroMQ loopback: ControlLink (envelope, reliability, acks,
EventLoop dispatch) against a raw ZeroMQ DEALER→ROUTER baseline measured in the same run.

Both sides run in this process; one-way latency is the time from ``send`` to the receive
callback (same monotonic clock). Messages are sent one at a time (no pipelining).
"""

from __future__ import annotations

import statistics
import time

import zmq

from qnode_fw.benchmarks import Figure
from qnode_fw.clock import WallClock
from qnode_fw.control import LinkSettings, ZmqControlLink
from qnode_fw.loop import EventLoop
from qnode_fw.units import MS


def _raw(n: int) -> list[int]:
    ctx = zmq.Context()
    r = ctx.socket(zmq.ROUTER); r.bind("tcp://127.0.0.1:0")
    d = ctx.socket(zmq.DEALER); d.connect(r.getsockopt_string(zmq.LAST_ENDPOINT))
    out = []
    payload = b'{"v":1,"k":"data","src":"A","dst":"B","st":[0,0],"seq":0,"t":"x","p":{"i":0}}'
    for _ in range(n):
        t0 = time.perf_counter_ns()
        d.send(payload)
        r.recv_multipart()
        out.append(time.perf_counter_ns() - t0)
    d.close(0); r.close(0); ctx.term()
    return out


def _link(n: int) -> list[int]:
    ctx = zmq.Context()
    loop = EventLoop(WallClock())
    settings = LinkSettings(heartbeat_ps=None, rate_per_s=1e9, burst=10**9)
    b = ZmqControlLink("B", loop, bind="tcp://127.0.0.1:0", peers={"A": None}, context=ctx,
                       settings=settings)
    b.start()
    a = ZmqControlLink("A", loop, bind="tcp://127.0.0.1:0", peers={"B": b.address}, context=ctx,
                       settings=settings)
    a.start()
    got: list[int] = []
    b.on_message = lambda p, t, pl: got.append(time.perf_counter_ns())
    a.send("B", "warmup", {})
    end = loop.now_ps() + 2000 * MS
    while not got and loop.now_ps() < end:
        loop.run_once(until_ps=loop.now_ps() + 1 * MS)
    out = []
    for i in range(n):
        got.clear()
        t0 = time.perf_counter_ns()
        a.send("B", "x", {"i": i})
        while not got:
            loop.run_once(until_ps=loop.now_ps() + 1 * MS)
        out.append(got[0] - t0)
    a.stop(); b.stop(); loop.close(); ctx.term()
    return out


def run(quick: bool = False) -> list[Figure]:
    n = 300 if quick else 3000
    raw, link = _raw(n), _link(n)
    rows = []
    for name, f in (("p50", statistics.median), ("p99", lambda s: sorted(s)[int(0.99 * len(s))])):
        lv, rv = f(link) / 1000, f(raw) / 1000
        rows.append(Figure(f"control_one_way_latency_{name}", round(lv, 1), "us",
                           f"raw_zmq_one_way_latency_{name}", round(rv, 1),
                           f"ZmqControlLink over TCP loopback, {n} sequential messages, no CURVE"))
    return rows


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
