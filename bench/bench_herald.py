"""Herald latency: from the last detection tag ingested at the BSA station to PairReady at both
end nodes, over ZeroMQ and UDP on loopback, and in-process.

Per herald: the station ingests the tag batch that completes one attempt's window (detection,
one frame encoded and sent per end); both ends, attached to a wall-clock EventLoop as a node's
are, wake from the loop's poll, decode, check the sequence window and bind the pair. The time
stops at the later of the two PairReady callbacks. Station and ends share this process and one
thread (the ends are served one after the other), so the figure is the software path plus
loopback, without a hand-off between processes.

Baselines, same run, same wait (a blocking poll, as the event loop does): raw ZeroMQ fan-out, the
station's ROUTER sending one 56-byte frame to each of two DEALERs and the receiver waking until
both arrived, which is the transport floor of the ZeroMQ path; raw UDP fan-out, two 56-byte
datagrams, the floor of the UDP path. The raw one-way DEALER -> ROUTER latency is reported beside
them. Every path runs twice: with default scheduling, and with this thread and ZeroMQ's I/O thread
under SCHED_FIFO (skipped where the OS refuses). The target is a p99 of at most 100 us, about the
fibre delay of 20 km. Every latency figure also carries, as references, the fibre delay of 1 km
(4.9 us) and of every link configured in configs/testbeds/ (bench/testbed_links.py), so it reads
as a multiple of the fibre the herald's photons crossed anyway.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import zmq

from drivers.time_tagger import TagBatch
from qnode_fw.addresses import QubitAddress
from qnode_fw.benchmarks import Figure, Reference, Target
from qnode_fw.clock import VirtualClock, WallClock
from qnode_fw.loop import EventLoop
from qnode_fw.units import fibre_delay_ps
from timing.binding import PairBinder
from timing.detection import DetectorConfig, HeraldDetector
from timing.frames import FRAME_SIZE, link_id_for
from timing.herald_link import InProcessHeraldLink, ZmqHeraldEndpoint
from timing.herald_udp import UdpHeraldEndpoint
from timing.station import HeraldStation

from testbed_links import configured_links

PERIOD = 10_000
DETECTOR = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=PERIOD)
FIBRE_20KM_US = fibre_delay_ps(20.0) / 1e6
TARGET = Target("<=", 100.0)
#: SCHED_FIFO priority of the real-time runs (this thread and ZeroMQ's I/O thread); the waits
#: block in poll, so nothing spins at this priority.
RT_PRIORITY = 50
FIBRE_1KM = Reference("fibre_delay_1km", round(fibre_delay_ps(1.0) / 1e6, 3),
                      "one-way delay of 1 km of SMF-28 (qnode_fw.units, 4.897 us/km)")
FIBRE_20KM = Reference("fibre_delay_20km", round(FIBRE_20KM_US, 1),
                       "one-way delay of 20 km of SMF-28 (qnode_fw.units)")


@contextmanager
def _realtime(enabled: bool) -> Iterator[bool]:
    """Run the block with this thread under SCHED_FIFO, as a node would run its herald path;
    yields whether that took effect (the OS may refuse without CAP_SYS_NICE)."""
    if not enabled or not hasattr(os, "sched_setscheduler"):
        yield False
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)


def _context(realtime: bool) -> zmq.Context:
    ctx = zmq.Context()
    if realtime:  # ZeroMQ's I/O thread carries every frame: it gets the same priority
        ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_FIFO)
        ctx.set(zmq.THREAD_PRIORITY, RT_PRIORITY)
    return ctx


def _percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    a = np.asarray(samples_ns) / 1000.0
    return tuple(float(np.percentile(a, q)) for q in (50, 99, 99.9))


def _ends(clock, endpoints):
    """Binders at A and B; ``ready[node]`` collects the perf_counter time of each PairReady."""
    ready: dict[str, list[int]] = {"A": [], "B": []}
    binders = {}
    for node, partner in (("A", "B"), ("B", "A")):
        b = PairBinder(node, "A-B", link_id_for("A-B"), partner, "bsa", clock,
                       on_pair_ready=lambda r, node=node: ready[node].append(time.perf_counter_ns()),
                       expiry_ps=10**15)
        b.attach(endpoints[node])
        binders[node] = b
    return binders, ready


def _batch(k: int) -> tuple[TagBatch, int]:
    s = k * PERIOD
    return (TagBatch(np.array([1, 2, 3], np.int32), np.array([s, s + 200, s + 300], np.int64)),
            s + PERIOD // 2)


def _station(endpoint, clock) -> HeraldStation:
    detector = HeraldDetector(DETECTOR)
    detector.warm_up()  # numba's cache load off the clock
    return HeraldStation(endpoint, detector, ["A", "B"], clock)


def _herald_samples(n: int, binders, ready, station, step) -> list[int]:
    """Per attempt: record both emissions, time from the station ingesting the completing tag
    batch to the later PairReady at the two ends, running the loop with ``step`` meanwhile."""
    samples = []
    for k in range(n):
        for node in "AB":
            binders[node].record_emission(k, QubitAddress(0, k % 1000))
        batch, until = _batch(k)
        t0 = time.perf_counter_ns()
        station.ingest(batch, complete_until_ps=until)
        while len(ready["A"]) <= k or len(ready["B"]) <= k:
            step()
        samples.append(max(ready["A"][k], ready["B"][k]) - t0)
    return samples


def _zmq_latency(n: int, realtime: bool = False) -> list[int]:
    ctx = _context(realtime)
    loop = EventLoop(WallClock())
    bsa = ZmqHeraldEndpoint("bsa", "A-B", bind="tcp://127.0.0.1:0", context=ctx)
    eps = {e: ZmqHeraldEndpoint(e, "A-B", connect={"bsa": bsa.address}, context=ctx) for e in "AB"}
    binders, ready = _ends(loop.clock, eps)
    station = _station(bsa, loop.clock)
    for e in eps.values():
        e.attach(loop)
    bsa.attach(loop)
    # The station's ROUTER can address an end once it has connected: one sync request each.
    for e in eps.values():
        e.send("bsa", 2, 0, 0)
    deadline = time.monotonic() + 5
    while bsa.stats.received < 2 and time.monotonic() < deadline:
        loop.run_once(until_ps=loop.now_ps() + 10**9)
    try:
        samples = _herald_samples(n, binders, ready, station, loop.run_once)
    finally:
        for e in (*eps.values(), bsa):
            e.close()
        loop.close()
        ctx.term()
    return samples


def _udp_latency(n: int, realtime: bool = False) -> list[int]:
    loop = EventLoop(WallClock())
    bsa = UdpHeraldEndpoint("bsa", "A-B")
    eps = {e: UdpHeraldEndpoint(e, "A-B", peers={"bsa": bsa.address}) for e in "AB"}
    for e, ep in eps.items():
        bsa.add_peer(e, ep.address)
    binders, ready = _ends(loop.clock, eps)
    station = _station(bsa, loop.clock)
    for ep in (*eps.values(), bsa):
        ep.attach(loop)
    try:
        samples = _herald_samples(n, binders, ready, station, loop.run_once)
    finally:
        for ep in (*eps.values(), bsa):
            ep.close()
        loop.close()
    return samples


def _inproc_latency(n: int, realtime: bool = False) -> list[int]:
    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, "A-B")
    for e in "AB":
        link.set_delay("bsa", e, 0)
    binders, ready = _ends(loop.clock, {e: link.endpoint(e) for e in "AB"})
    station = _station(link.endpoint("bsa"), loop.clock)
    samples = _herald_samples(n, binders, ready, station, loop.run_until_idle)
    loop.close()
    return samples


def _raw_fanout(n: int, realtime: bool = False) -> list[int]:
    """ROUTER -> two DEALERs, one 56-byte frame each; wait in a blocking poll until both came."""
    ctx = _context(realtime)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.bind("tcp://127.0.0.1:0")
    address = router.getsockopt_string(zmq.LAST_ENDPOINT)
    dealers = []
    poller = zmq.Poller()
    for name in (b"A", b"B"):
        d = ctx.socket(zmq.DEALER)
        d.linger = 0
        d.routing_id = name
        d.connect(address)
        d.send(b"hello")
        router.recv_multipart()
        dealers.append(d)
        poller.register(d, zmq.POLLIN)
    payload = bytes(FRAME_SIZE)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        router.send(b"A", zmq.SNDMORE)
        router.send(payload)
        router.send(b"B", zmq.SNDMORE)
        router.send(payload)
        got = 0
        while got < 2:
            for sock, _ in poller.poll(1000):
                sock.recv()
                got += 1
        samples.append(time.perf_counter_ns() - t0)
    for s in (*dealers, router):
        s.close()
    ctx.term()
    return samples


def _raw_udp_fanout(n: int, realtime: bool = False) -> list[int]:
    """One 56-byte datagram to each of two sockets; wait in a blocking poll until both came."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = []
    poller = select.poll()
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        poller.register(s.fileno(), select.POLLIN)
        rx.append(s)
    by_fd = {s.fileno(): s for s in rx}
    addresses = [s.getsockname() for s in rx]
    payload = bytes(FRAME_SIZE)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        for a in addresses:
            tx.sendto(payload, a)
        got = 0
        while got < 2:
            for fd, _ in poller.poll(1000):
                by_fd[fd].recv(FRAME_SIZE)
                got += 1
        samples.append(time.perf_counter_ns() - t0)
    for s in (tx, *rx):
        s.close()
    return samples


def _raw_one_way(n: int, realtime: bool = False) -> list[int]:
    ctx = _context(realtime)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.bind("tcp://127.0.0.1:0")
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
    payload = bytes(FRAME_SIZE)
    dealer.send(payload)
    router.recv_multipart()
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        dealer.send(payload)
        poller.poll(1000)
        router.recv_multipart()
        samples.append(time.perf_counter_ns() - t0)
    dealer.close()
    router.close()
    ctx.term()
    return samples


def _measure(n: int, realtime: bool) -> dict[str, tuple[float, float, float]]:
    return {"fanout": _percentiles(_raw_fanout(n, realtime)),
            "one_way": _percentiles(_raw_one_way(n, realtime)),
            "udp_fanout": _percentiles(_raw_udp_fanout(n, realtime)),
            "zmq": _percentiles(_zmq_latency(n, realtime)),
            "udp": _percentiles(_udp_latency(n, realtime)),
            "inprocess": _percentiles(_inproc_latency(n, realtime))}


def run(quick: bool = False) -> list[Figure]:
    n = 2_000 if quick else 20_000
    runs = [("", _measure(n, False), "default scheduling")]
    with _realtime(True) as rt:
        if rt:
            runs.append(("_rt", _measure(n, True), "SCHED_FIFO for this thread (and ZeroMQ's "
                                                   "I/O thread)"))
    links, _unreadable = configured_links()
    references = (FIBRE_1KM, FIBRE_20KM, *(link.reference() for link in links))
    figures = []
    polled = "ends wait in a wall-clock event loop's blocking poll"
    paths = (("zmq", "ZeroMQ loopback", polled, "fanout", "raw_zmq_fanout",
              "ROUTER -> 2 DEALERs, 56 B each, blocking poll"),
             ("udp", "UDP loopback", polled, "udp_fanout", "raw_udp_fanout",
              "one 56 B datagram to each of 2 sockets, blocking poll"),
             ("inprocess", "in-process", "frames delivered by a virtual-time loop (no transport)",
              "fanout", "raw_zmq_fanout", "ROUTER -> 2 DEALERs, 56 B each, blocking poll"))
    for suffix, m, how in runs:
        for label, what, wait, base_key, base_name, base_what in paths:
            for q, v, base in zip(("p50", "p99", "p99.9"), m[label], m[base_key]):
                figures.append(Figure(
                    f"herald_latency_{label}{suffix}_{q}", round(v, 1), "us",
                    f"{base_name}{suffix}_{q}", round(base, 1),
                    f"last tag ingested -> PairReady at both ends, {what}, {n} heralds, {how}; "
                    f"{wait}; baseline: {base_what}", references, TARGET if q == "p99" else None))
        for q, v, base in zip(("p50", "p99", "p99.9"), m["one_way"], m["fanout"]):
            figures.append(Figure(f"raw_zmq_one_way{suffix}_{q}", round(v, 1), "us",
                                  f"raw_zmq_fanout{suffix}_{q}", round(base, 1),
                                  f"DEALER -> ROUTER, 56 B, blocking poll, {n} frames, {how}",
                                  references))
    return figures


if __name__ == "__main__":
    import json
    import sys

    for fig in run(quick="--quick" in sys.argv):
        print(json.dumps(fig.to_json()))
